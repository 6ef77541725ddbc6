#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdrparse.h"
#include "keytable.h"
#include "log.h"

/* ------------------------------------------------------------ lines */

#define MAX_FIELDS 8

struct line {
	const char *fname;
	int lineno;
	char buf[MA_KT_MAX_LINE + 1];
	char *field[MAX_FIELDS];
	int nfields;
};

/*
 * Takes the next line of text into l (comment dropped, split at blanks).
 * Returns 1 with a line, 0 at the end, -1 with err.
 */
static int next_line(const char **pos, const char *end, struct line *l, struct mw_buf *err)
{
	while (*pos < end) {
		const char *s = *pos;
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
		*pos = nl != NULL ? nl + 1 : end;
		l->lineno++;
		if (n > MA_KT_MAX_LINE) {
			mw_buf_printf(err, "%s:%d: line longer than %d bytes", l->fname, l->lineno,
				      MA_KT_MAX_LINE);
			return -1;
		}
		memcpy(l->buf, s, n);
		l->buf[n] = '\0';
		if (memchr(l->buf, '\0', n) != NULL) {
			mw_buf_printf(err, "%s:%d: NUL byte in the line", l->fname, l->lineno);
			return -1;
		}
		char *hash = strchr(l->buf, '#');
		if (hash != NULL)
			*hash = '\0';
		l->nfields = 0;
		char *p = l->buf;
		for (;;) {
			while (*p == ' ' || *p == '\t' || *p == '\r')
				p++;
			if (*p == '\0')
				break;
			if (l->nfields == MAX_FIELDS) {
				mw_buf_printf(err, "%s:%d: too many fields", l->fname, l->lineno);
				return -1;
			}
			l->field[l->nfields++] = p;
			while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
				p++;
			if (*p != '\0')
				*p++ = '\0';
		}
		if (l->nfields > 0)
			return 1;
	}
	return 0;
}

static void lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x21 || *p == 0x7f)
			return 0;
	return 1;
}

/* ------------------------------------------------------------ KeyTable */

static int valid_selector(const char *s)
{
	/* RFC 6376 3.1: sub-domain syntax, dot-separated labels */
	char norm[MA_DOMAIN_MAX];
	return strlen(s) <= 63 && ma_domain_normalize(s, strlen(s), norm, sizeof(norm)) == 0 &&
	       strcmp(norm, s) == 0;
}

int ma_keytable_parse(const char *text, size_t len, const char *fname, struct ma_keytable *kt,
		      struct mw_buf *err)
{
	const char *pos = text, *end = text + len;
	struct line *l = mw_xcalloc(1, sizeof(*l));
	int r, cap = 0;

	memset(kt, 0, sizeof(*kt));
	l->fname = fname;
	while ((r = next_line(&pos, end, l, err)) == 1) {
		if (l->nfields != 2) {
			mw_buf_printf(err, "%s:%d: expected \"NAME DOMAIN:SELECTOR:/path/to/key\"", fname,
				      l->lineno);
			goto fail;
		}
		char *name = l->field[0], *v = l->field[1];
		char *c1 = strchr(v, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
		if (c1 == NULL || c2 == NULL) {
			mw_buf_printf(err, "%s:%d: \"%s\" is not DOMAIN:SELECTOR:/path/to/key", fname,
				      l->lineno, v);
			goto fail;
		}
		*c1 = *c2 = '\0';
		char *domain = v, *selector = c1 + 1, *path = c2 + 1;
		char norm[MA_DOMAIN_MAX];
		if (strcmp(domain, "%") != 0) {
			if (ma_domain_normalize(domain, strlen(domain), norm, sizeof(norm)) < 0) {
				mw_buf_printf(err, "%s:%d: \"%s\" is not a domain", fname, l->lineno, domain);
				goto fail;
			}
			domain = norm;
		}
		lower(selector);
		if (!valid_selector(selector)) {
			mw_buf_printf(err, "%s:%d: \"%s\" is not a selector (letters, digits, '-', dots)",
				      fname, l->lineno, selector);
			goto fail;
		}
		if (path[0] != '/') {
			/* OpenDKIM also takes inline key data here; we want the
			   key in a file whose mode we can check */
			mw_buf_printf(err, "%s:%d: the key must be an absolute file path (inline keys are "
				      "not supported)", fname, l->lineno);
			goto fail;
		}
		for (int i = 0; i < kt->n; i++) {
			if (strcmp(kt->rows[i].name, name) == 0) {
				mw_buf_printf(err, "%s:%d: key name \"%s\" already defined at line %d", fname,
					      l->lineno, name, kt->rows[i].line);
				goto fail;
			}
		}
		if (kt->n == MA_KT_MAX_ROWS) {
			mw_buf_printf(err, "%s:%d: more than %d keys", fname, l->lineno, MA_KT_MAX_ROWS);
			goto fail;
		}
		if (kt->n == cap) {
			cap = cap ? cap * 2 : 16;
			kt->rows = mw_xrealloc(kt->rows, (size_t)cap * sizeof(*kt->rows));
		}
		struct ma_key_row *k = &kt->rows[kt->n++];
		k->name = mw_xstrdup(name);
		k->domain = mw_xstrdup(domain);
		k->selector = mw_xstrdup(selector);
		k->path = mw_xstrdup(path);
		k->line = l->lineno;
	}
	if (r < 0)
		goto fail;
	free(l);
	return 0;
fail:
	free(l);
	ma_keytable_free(kt);
	return -1;
}

void ma_keytable_free(struct ma_keytable *kt)
{
	for (int i = 0; i < kt->n; i++) {
		free(kt->rows[i].name);
		free(kt->rows[i].domain);
		free(kt->rows[i].selector);
		free(kt->rows[i].path);
	}
	free(kt->rows);
	memset(kt, 0, sizeof(*kt));
}

/* ------------------------------------------------------------ SigningTable */

int ma_signtable_kind(const char *spec, const char **path)
{
	if (strncmp(spec, "refile:", 7) == 0) {
		*path = spec + 7;
		return 1;
	}
	*path = strncmp(spec, "file:", 5) == 0 ? spec + 5 : spec;
	return 0;
}

int ma_wildcard_match(const char *p, const char *t)
{
	/* iterative, with one backtrack point: linear in practice, never
	   exponential on patterns full of '*' */
	const char *star = NULL, *resume = NULL;
	while (*t != '\0') {
		if (*p == '*') {
			star = p++;
			resume = t;
		} else if (*p != '\0' && (*p == *t || ((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p) ==
					  ((*t >= 'A' && *t <= 'Z') ? *t - 'A' + 'a' : *t))) {
			p++;
			t++;
		} else if (star != NULL) {
			p = star + 1;
			t = ++resume;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

int ma_signtable_parse(const char *text, size_t len, const char *fname, int refile,
		       const struct ma_keytable *kt, struct ma_signtable *st, struct mw_buf *err)
{
	const char *pos = text, *end = text + len;
	struct line *l = mw_xcalloc(1, sizeof(*l));
	int r, cap = 0;

	memset(st, 0, sizeof(*st));
	st->refile = refile;
	l->fname = fname;
	while ((r = next_line(&pos, end, l, err)) == 1) {
		if (l->nfields < 2 || l->nfields > 3) {
			mw_buf_printf(err, "%s:%d: expected \"PATTERN KEYNAME [SIGNER]\"", fname, l->lineno);
			goto fail;
		}
		char *pattern = l->field[0];
		lower(pattern);
		if (!printable(pattern)) {
			mw_buf_printf(err, "%s:%d: control character in the pattern", fname, l->lineno);
			goto fail;
		}
		if (!refile && strchr(pattern, '*') != NULL && strcmp(pattern, "*") != 0) {
			size_t pl = strlen(pattern);
			if (!(pl >= 2 && strcmp(pattern + pl - 2, "@*") == 0 &&
			      strchr(pattern, '*') == pattern + pl - 1)) {
				mw_buf_printf(err, "%s:%d: wildcard pattern \"%s\" in a file: table (OpenDKIM "
					      "reads patterns only from refile: tables: write "
					      "dkim_signing_table = refile:%s)", fname, l->lineno, pattern, fname);
				goto fail;
			}
		}
		int key = -1;
		for (int i = 0; i < kt->n; i++)
			if (strcmp(kt->rows[i].name, l->field[1]) == 0)
				key = i;
		if (key < 0) {
			mw_buf_printf(err, "%s:%d: key name \"%s\" is not in the key table", fname, l->lineno,
				      l->field[1]);
			goto fail;
		}
		if (l->nfields == 3 && !printable(l->field[2])) {
			mw_buf_printf(err, "%s:%d: control character in the signer", fname, l->lineno);
			goto fail;
		}
		for (int i = 0; i < st->n; i++) {
			if (strcmp(st->rows[i].pattern, pattern) == 0 && st->rows[i].key == key) {
				mw_buf_printf(err, "%s:%d: \"%s %s\" repeats line %d", fname, l->lineno,
					      pattern, l->field[1], st->rows[i].line);
				goto fail;
			}
		}
		if (st->n == MA_KT_MAX_ROWS) {
			mw_buf_printf(err, "%s:%d: more than %d rows", fname, l->lineno, MA_KT_MAX_ROWS);
			goto fail;
		}
		if (st->n == cap) {
			cap = cap ? cap * 2 : 16;
			st->rows = mw_xrealloc(st->rows, (size_t)cap * sizeof(*st->rows));
		}
		struct ma_sign_row *row = &st->rows[st->n++];
		row->pattern = mw_xstrdup(pattern);
		row->key = key;
		row->signer = l->nfields == 3 ? mw_xstrdup(l->field[2]) : NULL;
		row->line = l->lineno;
	}
	if (r < 0)
		goto fail;
	free(l);
	return 0;
fail:
	free(l);
	ma_signtable_free(st);
	return -1;
}

void ma_signtable_free(struct ma_signtable *st)
{
	for (int i = 0; i < st->n; i++) {
		free(st->rows[i].pattern);
		free(st->rows[i].signer);
	}
	free(st->rows);
	memset(st, 0, sizeof(*st));
}

/* Every row whose pattern is exactly key. */
static int rows_with(const struct ma_signtable *st, const char *key, int *rows, int max)
{
	int n = 0;
	for (int i = 0; i < st->n && n < max; i++)
		if (strcmp(st->rows[i].pattern, key) == 0)
			rows[n++] = i;
	return n;
}

int ma_signtable_match(const struct ma_signtable *st, const char *local, const char *domain,
		       int *rows, int max)
{
	if (max <= 0 || domain[0] == '\0')
		return 0;
	if (st->refile) {
		struct mw_buf addr = MW_BUF_INIT;
		int n = 0;
		mw_buf_printf(&addr, "%s@%s", local, domain);
		for (int i = 0; i < st->n; i++) {
			if (ma_wildcard_match(st->rows[i].pattern, mw_buf_str(&addr))) {
				n = rows_with(st, st->rows[i].pattern, rows, max);
				break;
			}
		}
		mw_buf_free(&addr);
		return n;
	}
	/* OpenDKIM's order for flat tables: user@host, host, user@.parent
	   for each parent, .parent for each parent, user@*, * */
	struct mw_buf key = MW_BUF_INIT;
	int n = 0;
	if (local[0] != '\0') {
		mw_buf_printf(&key, "%s@%s", local, domain);
		n = rows_with(st, mw_buf_str(&key), rows, max);
	}
	if (n == 0)
		n = rows_with(st, domain, rows, max);
	for (int pass = 0; pass < 2 && n == 0; pass++) {
		if (pass == 0 && local[0] == '\0')
			continue;
		for (const char *p = domain; n == 0 && p != NULL; p = strchr(p + 1, '.')) {
			const char *parent = p == domain ? NULL : p; /* ".example.org" */
			if (parent == NULL)
				continue;
			mw_buf_reset(&key);
			if (pass == 0)
				mw_buf_printf(&key, "%s@%s", local, parent);
			else
				mw_buf_puts(&key, parent);
			n = rows_with(st, mw_buf_str(&key), rows, max);
		}
	}
	if (n == 0 && local[0] != '\0') {
		mw_buf_reset(&key);
		mw_buf_printf(&key, "%s@*", local);
		n = rows_with(st, mw_buf_str(&key), rows, max);
	}
	if (n == 0)
		n = rows_with(st, "*", rows, max);
	mw_buf_free(&key);
	return n;
}

/* ------------------------------------------------------------ login map */

int ma_loginmap_parse(const char *text, size_t len, const char *fname, struct ma_loginmap *lm,
		      struct mw_buf *err)
{
	const char *pos = text, *end = text + len;
	struct line *l = mw_xcalloc(1, sizeof(*l));
	int r, cap = 0;

	memset(lm, 0, sizeof(*lm));
	l->fname = fname;
	while ((r = next_line(&pos, end, l, err)) == 1) {
		char *key = l->field[0];
		lower(key);
		char *at = strchr(key, '@');
		char norm[MA_DOMAIN_MAX];
		if (l->nfields < 2 || at == NULL || strchr(at + 1, '@') != NULL || !printable(key) ||
		    ma_domain_normalize(at + 1, strlen(at + 1), norm, sizeof(norm)) < 0) {
			mw_buf_printf(err, "%s:%d: expected \"user@domain LOGIN[, LOGIN...]\" or "
				      "\"@domain LOGIN[, LOGIN...]\"", fname, l->lineno);
			goto fail;
		}
		if (lm->n == MA_KT_MAX_ROWS) {
			mw_buf_printf(err, "%s:%d: more than %d rows", fname, l->lineno, MA_KT_MAX_ROWS);
			goto fail;
		}
		if (lm->n == cap) {
			cap = cap ? cap * 2 : 16;
			lm->rows = mw_xrealloc(lm->rows, (size_t)cap * sizeof(*lm->rows));
		}
		struct ma_login_row *row = &lm->rows[lm->n++];
		struct mw_buf k = MW_BUF_INIT;
		mw_buf_printf(&k, "%.*s@%s", (int)(at - key), key, norm);
		row->key = mw_buf_steal(&k);
		mw_buf_free(&k);
		/* logins: the other fields, split at commas too */
		int nl = 0, lcap = 4;
		row->logins = mw_xcalloc((size_t)lcap + 1, sizeof(char *));
		for (int f = 1; f < l->nfields; f++) {
			char *save = NULL;
			for (char *t = strtok_r(l->field[f], ",", &save); t != NULL;
			     t = strtok_r(NULL, ",", &save)) {
				if (nl == lcap) {
					lcap *= 2;
					row->logins = mw_xrealloc(row->logins, ((size_t)lcap + 1) * sizeof(char *));
				}
				row->logins[nl++] = mw_xstrdup(t);
				row->logins[nl] = NULL;
			}
		}
		if (nl == 0) {
			mw_buf_printf(err, "%s:%d: no login names", fname, l->lineno);
			goto fail;
		}
	}
	if (r < 0)
		goto fail;
	free(l);
	return 0;
fail:
	free(l);
	ma_loginmap_free(lm);
	return -1;
}

void ma_loginmap_free(struct ma_loginmap *lm)
{
	for (int i = 0; i < lm->n; i++) {
		for (char **p = lm->rows[i].logins; p != NULL && *p != NULL; p++)
			free(*p);
		free(lm->rows[i].logins);
		free(lm->rows[i].key);
	}
	free(lm->rows);
	memset(lm, 0, sizeof(*lm));
}

static const struct ma_login_row *login_lookup(const struct ma_loginmap *lm, const char *key)
{
	for (int i = 0; i < lm->n; i++)
		if (strcmp(lm->rows[i].key, key) == 0)
			return &lm->rows[i];
	return NULL;
}

int ma_loginmap_check(const struct ma_loginmap *lm, const char *login, const char *local,
		      const char *domain)
{
	struct mw_buf key = MW_BUF_INIT;
	mw_buf_printf(&key, "%s@%s", local, domain);
	const struct ma_login_row *row = local[0] != '\0' ? login_lookup(lm, mw_buf_str(&key)) : NULL;
	if (row == NULL) {
		mw_buf_setf(&key, "@%s", domain);
		row = login_lookup(lm, mw_buf_str(&key));
	}
	mw_buf_free(&key);
	if (row == NULL)
		return -1;
	for (char **p = row->logins; *p != NULL; p++)
		if (strcasecmp(*p, login) == 0)
			return 1;
	return 0;
}
