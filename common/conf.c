#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "sock.h"
#include "strnum.h"

/* What we remember about each key of the schema. */
struct entry {
	struct mw_buf raw;  /* the value as written; MULTI: one value per line */
	struct mw_buf where; /* "file:line" of the last assignment */
	int set_in_file;
};

struct mw_conf {
	const struct mw_conf_key *schema;
	size_t nkeys;
	void *target;
	struct entry *entries;
	struct mw_buf error;
	struct mw_buf source; /* the file (or name) loaded: where unset keys "are" */
	int loaded;
};

#define FIELD(cfg, key, type) ((type *)((char *)(cfg)->target + (key)->offset))

static void release_value(struct mw_conf *cfg, const struct mw_conf_key *key)
{
	switch (key->type) {
	case MW_CONF_STRING:
	case MW_CONF_SOCKET: {
		char **p = FIELD(cfg, key, char *);
		free(*p);
		*p = NULL;
		break;
	}
	case MW_CONF_LIST: {
		char ***p = FIELD(cfg, key, char **);
		if (*p != NULL)
			for (char **w = *p; *w != NULL; w++)
				free(*w);
		free(*p);
		*p = NULL;
		break;
	}
	case MW_CONF_CUSTOM:
		if (key->release != NULL)
			key->release(cfg->target);
		break;
	default:
		break;
	}
}

struct mw_conf *mw_conf_new(const struct mw_conf_key *schema, void *target)
{
	struct mw_conf *cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return NULL;
	cfg->schema = schema;
	while (schema[cfg->nkeys].name != NULL)
		cfg->nkeys++;
	cfg->target = target;
	cfg->entries = calloc(cfg->nkeys + 1, sizeof(*cfg->entries));
	if (cfg->entries == NULL) {
		free(cfg);
		return NULL;
	}
	for (size_t i = 0; i < cfg->nkeys; i++) {
		mw_buf_init(&cfg->entries[i].raw, MW_CONF_MAX_FILE_SIZE);
		mw_buf_init(&cfg->entries[i].where, 0);
	}
	mw_buf_init(&cfg->error, 4096);
	mw_buf_init(&cfg->source, 0);
	return cfg;
}

void mw_conf_free(struct mw_conf *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nkeys; i++) {
		release_value(cfg, &cfg->schema[i]);
		if (cfg->schema[i].flags & MW_CONF_SECRET)
			mw_buf_wipe(&cfg->entries[i].raw);
		else
			mw_buf_free(&cfg->entries[i].raw);
		mw_buf_free(&cfg->entries[i].where);
	}
	free(cfg->entries);
	mw_buf_free(&cfg->error);
	mw_buf_free(&cfg->source);
	free(cfg);
}

const char *mw_conf_error(const struct mw_conf *cfg)
{
	return mw_buf_str(&cfg->error);
}

static const struct mw_conf_key *find_key(const struct mw_conf *cfg, const char *name, size_t *idx)
{
	for (size_t i = 0; i < cfg->nkeys; i++) {
		if (strcmp(cfg->schema[i].name, name) == 0) {
			if (idx != NULL)
				*idx = i;
			return &cfg->schema[i];
		}
	}
	return NULL;
}

const char *mw_conf_where(const struct mw_conf *cfg, const char *name)
{
	size_t i;
	if (find_key(cfg, name, &i) == NULL || !cfg->entries[i].set_in_file)
		return mw_buf_len(&cfg->source) ? mw_buf_str(&cfg->source) : "default";
	return mw_buf_str(&cfg->entries[i].where);
}

int mw_conf_is_set(const struct mw_conf *cfg, const char *name)
{
	size_t i;
	return find_key(cfg, name, &i) != NULL && cfg->entries[i].set_in_file;
}

int mw_conf_fail(struct mw_conf *cfg, const char *key, const char *fmt, ...)
{
	va_list ap;
	mw_buf_reset(&cfg->error);
	mw_buf_printf(&cfg->error, "%s: %s: ", mw_conf_where(cfg, key), key);
	va_start(ap, fmt);
	mw_buf_vprintf(&cfg->error, fmt, ap);
	va_end(ap);
	return -1;
}

/* Splits a LIST value into words and appends them to the target's array. */
static int append_words(char ***listp, const char *value, struct mw_buf *err)
{
	size_t n = 0;
	if (*listp != NULL)
		while ((*listp)[n] != NULL)
			n++;
	const char *p = value;
	while (*p != '\0') {
		p += strspn(p, " \t,");
		size_t wl = strcspn(p, " \t,");
		if (wl == 0)
			break;
		if (n >= 100000) {
			mw_buf_puts(err, "too many list items");
			return -1;
		}
		char **nl = realloc(*listp, (n + 2) * sizeof(char *));
		char *w = strndup(p, wl);
		if (nl == NULL || w == NULL) {
			free(w);
			if (nl != NULL)
				*listp = nl;
			mw_buf_puts(err, "out of memory");
			return -1;
		}
		*listp = nl;
		nl[n++] = w;
		nl[n] = NULL;
		p += wl;
	}
	if (*listp == NULL) {
		/* An empty value is an empty list, not "unset". */
		*listp = calloc(1, sizeof(char *));
		if (*listp == NULL) {
			mw_buf_puts(err, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int range_error(const struct mw_conf_key *key, unsigned long long v, struct mw_buf *err)
{
	if (v < key->min || (key->max != 0 && v > key->max)) {
		char lo[32], hi[32];
		if (key->type == MW_CONF_DURATION) {
			mw_format_duration_ms(key->min, lo, sizeof(lo));
			mw_format_duration_ms(key->max, hi, sizeof(hi));
		} else {
			snprintf(lo, sizeof(lo), "%llu", key->min);
			snprintf(hi, sizeof(hi), "%llu", key->max);
		}
		if (key->max != 0)
			mw_buf_printf(err, "must be between %s and %s", lo, hi);
		else
			mw_buf_printf(err, "must be at least %s", lo);
		return -1;
	}
	return 0;
}

/* Stores one value; -1 with a message (without location) in err. */
static int store_value(struct mw_conf *cfg, const struct mw_conf_key *key, const char *value,
		       int first_in_this_load, struct mw_buf *err)
{
	unsigned long long v;

	switch (key->type) {
	case MW_CONF_STRING:
		release_value(cfg, key);
		*FIELD(cfg, key, char *) = strdup(value);
		if (*FIELD(cfg, key, char *) == NULL) {
			mw_buf_puts(err, "out of memory");
			return -1;
		}
		return 0;
	case MW_CONF_SOCKET: {
		struct mw_sockspec spec;
		if (mw_sock_parse(value, &spec, err) < 0)
			return -1;
		release_value(cfg, key);
		*FIELD(cfg, key, char *) = strdup(value);
		return *FIELD(cfg, key, char *) != NULL ? 0 : -1;
	}
	case MW_CONF_BOOL: {
		int b;
		if (mw_parse_bool(value, &b) < 0) {
			mw_buf_puts(err, "expected yes or no");
			return -1;
		}
		*FIELD(cfg, key, int) = b;
		return 0;
	}
	case MW_CONF_UINT:
		if (mw_parse_uint(value, UINT64_MAX, &v) < 0) {
			mw_buf_puts(err, "expected a whole number");
			return -1;
		}
		if (range_error(key, v, err) < 0)
			return -1;
		*FIELD(cfg, key, unsigned long long) = v;
		return 0;
	case MW_CONF_DURATION:
		if (mw_parse_duration_ms(value, UINT64_MAX, &v) < 0) {
			mw_buf_puts(err, "expected a duration such as 500ms, 5s, 10m, 1h or 1d");
			return -1;
		}
		if (range_error(key, v, err) < 0)
			return -1;
		*FIELD(cfg, key, unsigned long long) = v;
		return 0;
	case MW_CONF_SIZE:
		if (mw_parse_size(value, UINT64_MAX, &v) < 0) {
			mw_buf_puts(err, "expected a size such as 512, 64k or 10m");
			return -1;
		}
		if (range_error(key, v, err) < 0)
			return -1;
		*FIELD(cfg, key, unsigned long long) = v;
		return 0;
	case MW_CONF_OCTAL: {
		size_t n = strlen(value);
		v = 0;
		if (n == 0 || n > 5 || strspn(value, "01234567") != n) {
			mw_buf_puts(err, "expected an octal file mode such as 0660");
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			v = v * 8 + (unsigned)(value[i] - '0');
		if (v > 07777) {
			mw_buf_puts(err, "expected an octal file mode such as 0660");
			return -1;
		}
		*FIELD(cfg, key, unsigned long long) = v;
		return 0;
	}
	case MW_CONF_ENUM:
		for (int i = 0; key->choices[i] != NULL; i++) {
			if (strcmp(value, key->choices[i]) == 0) {
				*FIELD(cfg, key, int) = i;
				return 0;
			}
		}
		mw_buf_puts(err, "expected one of:");
		for (int i = 0; key->choices[i] != NULL; i++)
			mw_buf_printf(err, " %s", key->choices[i]);
		return -1;
	case MW_CONF_LIST:
		if (first_in_this_load)
			release_value(cfg, key);
		return append_words(FIELD(cfg, key, char **), value, err);
	case MW_CONF_CUSTOM:
		if (first_in_this_load && (key->flags & MW_CONF_MULTI))
			release_value(cfg, key);
		return key->parse(cfg->target, value, err);
	}
	mw_buf_puts(err, "internal error: bad key type");
	return -1;
}

static int apply_defaults(struct mw_conf *cfg)
{
	struct mw_buf err = MW_BUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < cfg->nkeys; i++) {
		const struct mw_conf_key *key = &cfg->schema[i];
		if (key->def == NULL)
			continue;
		mw_buf_reset(&err);
		if (store_value(cfg, key, key->def, 1, &err) < 0) {
			mw_buf_setf(&cfg->error, "default: %s: %s", key->name, mw_buf_str(&err));
			ret = -1;
			break;
		}
		mw_buf_set(&cfg->entries[i].raw, key->def);
	}
	mw_buf_free(&err);
	return ret;
}

/* State of one file being read. */
struct reader {
	struct mw_conf *cfg;
	const char *name;
	int depth;
};

static int read_file(struct mw_conf *cfg, const char *path, int depth, const char *from);

static int fail_at(struct mw_conf *cfg, const char *file, unsigned line, const char *fmt, ...)
	MW_PRINTF(4, 5);
static int fail_at(struct mw_conf *cfg, const char *file, unsigned line, const char *fmt, ...)
{
	va_list ap;
	mw_buf_reset(&cfg->error);
	mw_buf_printf(&cfg->error, "%s:%u: ", file, line);
	va_start(ap, fmt);
	mw_buf_vprintf(&cfg->error, fmt, ap);
	va_end(ap);
	return -1;
}

static int valid_key_name(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* One logical line "key = value" (continuations already joined). */
static int handle_line(struct reader *r, unsigned lineno, char *line, size_t len)
{
	struct mw_conf *cfg = r->cfg;
	char *eq = memchr(line, '=', len);

	if (eq == NULL)
		return fail_at(cfg, r->name, lineno, "expected \"key = value\"");
	char *kend = eq;
	while (kend > line && is_space(kend[-1]))
		kend--;
	size_t klen = (size_t)(kend - line);
	char *value = eq + 1;
	while (is_space(*value))
		value++;
	char *vend = line + len;
	while (vend > value && is_space(vend[-1]))
		vend--;
	*vend = '\0';

	if (!valid_key_name(line, klen)) {
		struct mw_buf shown = MW_BUF_INIT;
		mw_buf_append_printable(&shown, line, klen, 64);
		fail_at(cfg, r->name, lineno, "bad key name \"%s\"", mw_buf_str(&shown));
		mw_buf_free(&shown);
		return -1;
	}
	line[klen] = '\0';

	for (const char *p = value; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return fail_at(cfg, r->name, lineno, "%s: control character in value", line);

	if (strcmp(line, "include") == 0) {
		if (*value == '\0')
			return fail_at(cfg, r->name, lineno, "include: missing file name");
		if (r->depth + 1 >= MW_CONF_MAX_DEPTH)
			return fail_at(cfg, r->name, lineno, "include: nested more than %d deep",
				       MW_CONF_MAX_DEPTH);
		struct mw_buf path = MW_BUF_INIT;
		if (value[0] != '/') {
			const char *slash = strrchr(r->name, '/');
			if (slash != NULL)
				mw_buf_append(&path, r->name, (size_t)(slash - r->name) + 1);
		}
		mw_buf_puts(&path, value);
		struct mw_buf from = MW_BUF_INIT;
		mw_buf_printf(&from, "%s:%u", r->name, lineno);
		int ret = read_file(cfg, mw_buf_str(&path), r->depth + 1, mw_buf_str(&from));
		mw_buf_free(&path);
		mw_buf_free(&from);
		return ret;
	}

	size_t idx;
	const struct mw_conf_key *key = find_key(cfg, line, &idx);
	if (key == NULL)
		return fail_at(cfg, r->name, lineno, "unknown key \"%s\"", line);
	struct entry *e = &cfg->entries[idx];
	if (e->set_in_file && !(key->flags & MW_CONF_MULTI))
		return fail_at(cfg, r->name, lineno, "%s is already set at %s", line,
			       mw_buf_str(&e->where));

	struct mw_buf err = MW_BUF_INIT;
	if (store_value(cfg, key, value, !e->set_in_file, &err) < 0) {
		struct mw_buf shown = MW_BUF_INIT;
		if (key->flags & MW_CONF_SECRET)
			mw_buf_puts(&shown, "<hidden>");
		else
			mw_buf_append_printable(&shown, value, strlen(value), 200);
		fail_at(cfg, r->name, lineno, "%s = %s: %s", line, mw_buf_str(&shown),
			mw_buf_str(&err));
		mw_buf_free(&shown);
		mw_buf_free(&err);
		return -1;
	}
	mw_buf_free(&err);

	if (!e->set_in_file)
		mw_buf_reset(&e->raw);
	else
		mw_buf_putc(&e->raw, '\n');
	mw_buf_puts(&e->raw, value);
	e->set_in_file = 1;
	mw_buf_setf(&e->where, "%s:%u", r->name, lineno);
	return 0;
}

static int parse_text(struct mw_conf *cfg, const char *name, const char *text, size_t len, int depth)
{
	struct reader r = { cfg, name, depth };
	struct mw_buf logical;
	unsigned lineno = 0, logical_start = 0;
	size_t pos = 0;
	int ret = 0;

	mw_buf_init(&logical, MW_CONF_MAX_LINE);
	while (ret == 0 && pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + 1;
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (memchr(line, '\0', llen) != NULL) {
			ret = fail_at(cfg, name, lineno, "NUL byte in line");
			break;
		}
		size_t skip = 0;
		while (skip < llen && is_space(line[skip]))
			skip++;
		if (skip == llen || line[skip] == '#')
			continue; /* blank or comment: does not end a logical line */
		if (skip > 0) {
			if (mw_buf_len(&logical) == 0) {
				ret = fail_at(cfg, name, lineno,
					      "continuation line without a line to continue");
				break;
			}
			mw_buf_putc(&logical, ' ');
			mw_buf_append(&logical, line + skip, llen - skip);
		} else {
			/* A new logical line starts: finish the previous one. */
			if (mw_buf_len(&logical) > 0)
				ret = handle_line(&r, logical_start, logical.data, mw_buf_len(&logical));
			mw_buf_reset(&logical);
			logical_start = lineno;
			mw_buf_append(&logical, line, llen);
		}
		if (ret == 0 && mw_buf_failed(&logical))
			ret = fail_at(cfg, name, logical_start, "line too long (over %d bytes)",
				      MW_CONF_MAX_LINE);
	}
	if (ret == 0 && mw_buf_len(&logical) > 0)
		ret = handle_line(&r, logical_start, logical.data, mw_buf_len(&logical));
	mw_buf_free(&logical);
	return ret;
}

static int read_file(struct mw_conf *cfg, const char *path, int depth, const char *from)
{
	/* Where a file-level error is reported: the include line, or path:0. */
	struct mw_buf at = MW_BUF_INIT;
	if (from != NULL)
		mw_buf_puts(&at, from);
	else
		mw_buf_printf(&at, "%s:0", path);

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	int ret = -1;
	char *text = NULL;

	if (fd < 0) {
		mw_buf_setf(&cfg->error, "%s: cannot read configuration file %s: %s", mw_buf_str(&at),
			    path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_buf_setf(&cfg->error, "%s: %s is not a regular file", mw_buf_str(&at), path);
		goto out;
	}
	if (st.st_size > MW_CONF_MAX_FILE_SIZE) {
		mw_buf_setf(&cfg->error, "%s: %s is larger than %d bytes", mw_buf_str(&at), path,
			    MW_CONF_MAX_FILE_SIZE);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		mw_buf_setf(&cfg->error, "%s: out of memory", mw_buf_str(&at));
		goto out;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mw_buf_setf(&cfg->error, "%s: cannot read configuration file %s: %s",
				    mw_buf_str(&at), path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	ret = parse_text(cfg, path, text, got, depth);
out:
	if (fd >= 0)
		close(fd);
	free(text);
	mw_buf_free(&at);
	return ret;
}

static int check_required(struct mw_conf *cfg)
{
	for (size_t i = 0; i < cfg->nkeys; i++) {
		const struct mw_conf_key *key = &cfg->schema[i];
		if ((key->flags & MW_CONF_REQUIRED) && !cfg->entries[i].set_in_file &&
		    key->def == NULL) {
			mw_buf_setf(&cfg->error, "%s: required key %s is not set",
				    cfg->loaded ? "configuration" : "configuration", key->name);
			return -1;
		}
	}
	return 0;
}

int mw_conf_load_file(struct mw_conf *cfg, const char *path)
{
	if (apply_defaults(cfg) < 0 || read_file(cfg, path, 0, NULL) < 0)
		return -1;
	if (check_required(cfg) < 0) {
		/* Name the file: the admin has to add the key there. */
		struct mw_buf msg = MW_BUF_INIT;
		mw_buf_printf(&msg, "%s:0: %s", path,
			      mw_buf_str(&cfg->error) + strlen("configuration: "));
		mw_buf_set(&cfg->error, mw_buf_str(&msg));
		mw_buf_free(&msg);
		return -1;
	}
	cfg->loaded = 1;
	mw_buf_set(&cfg->source, path);
	return 0;
}

int mw_conf_load_string(struct mw_conf *cfg, const char *name, const char *text, size_t len)
{
	if (apply_defaults(cfg) < 0 || parse_text(cfg, name, text, len, 0) < 0 ||
	    check_required(cfg) < 0)
		return -1;
	cfg->loaded = 1;
	return 0;
}

void mw_conf_print(const struct mw_conf *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->nkeys; i++) {
		const struct mw_conf_key *key = &cfg->schema[i];
		const struct entry *e = &cfg->entries[i];
		const char *raw = mw_buf_str(&e->raw);

		if (key->help != NULL)
			fprintf(out, "# %s\n", key->help);
		if ((key->flags & MW_CONF_MULTI) && *raw == '\0') {
			fprintf(out, "# %s = (not set)\n", key->name);
			continue;
		}
		if (!e->set_in_file && key->def == NULL) {
			fprintf(out, "# %s = (not set)\n", key->name);
			continue;
		}
		/* MULTI values were stored one per line: print one key line each. */
		const char *p = raw;
		do {
			size_t n = strcspn(p, "\n");
			if (key->flags & MW_CONF_SECRET)
				fprintf(out, "%s = <hidden>\n", key->name);
			else
				fprintf(out, "%s = %.*s\n", key->name, (int)n, p);
			p += n;
			if (*p == '\n')
				p++;
		} while (*p != '\0');
	}
}
