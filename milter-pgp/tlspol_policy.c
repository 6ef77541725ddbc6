#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sock.h"
#include "strnum.h"
#include "tlspol_policy.h"

static const char *const levels[] = { "none", "may", "encrypt", "dane", "dane-only",
				      "fingerprint", "verify", "secure", NULL };
static const char *const attrs[] = { "match", "ciphers", "protocols", "exclude", "servername",
				     "connection_reuse", "tafile", NULL };

static int in_list(const char *const *list, const char *s, size_t n)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strlen(list[i]) == n && memcmp(list[i], s, n) == 0)
			return 1;
	return 0;
}

int tlspol_policy_check(const char *policy, struct mw_buf *err)
{
	const char *p = policy;
	size_t n = strcspn(p, " \t");
	if (n == 0 || !in_list(levels, p, n)) {
		mw_buf_puts(err, "unknown TLS policy \"");
		mw_buf_append_printable(err, p, n, 40);
		mw_buf_puts(err, "\" (none, may, encrypt, dane, dane-only, fingerprint, verify, secure)");
		return -1;
	}
	int matches = 0;
	int has_match_level = (n == 6 && memcmp(p, "verify", 6) == 0) || (n == 6 && memcmp(p, "secure", 6) == 0) ||
			      (n == 11 && memcmp(p, "fingerprint", 11) == 0);
	int fingerprint = n == 11;
	p += n;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		size_t an = strcspn(p, " \t");
		const char *eq = memchr(p, '=', an);
		if (eq == NULL || eq == p || eq + 1 == p + an) {
			mw_buf_puts(err, "expected attribute=value, not \"");
			mw_buf_append_printable(err, p, an, 60);
			mw_buf_puts(err, "\"");
			return -1;
		}
		if (!in_list(attrs, p, (size_t)(eq - p))) {
			mw_buf_puts(err, "unknown attribute \"");
			mw_buf_append_printable(err, p, (size_t)(eq - p), 40);
			mw_buf_puts(err, "\"");
			return -1;
		}
		if (eq - p == 5 && memcmp(p, "match", 5) == 0) {
			if (!has_match_level) {
				mw_buf_puts(err, "match= only goes with fingerprint, verify or secure");
				return -1;
			}
			matches++;
		}
		p += an;
	}
	if (fingerprint && matches == 0) {
		mw_buf_puts(err, "fingerprint needs match=");
		return -1;
	}
	return 0;
}

static int host_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int tlspol_dest_normalize(const char *in, size_t len, struct mw_buf *out)
{
	mw_buf_reset(out);
	if (len == 0 || len > 300)
		return -1;
	size_t i = 0;
	int bracket = in[0] == '[';
	if (bracket)
		mw_buf_putc(out, '[');
	i = bracket;
	size_t start = i;
	for (; i < len; i++) {
		int c = (unsigned char)in[i];
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (bracket && c == ']')
			break;
		if (!host_char(c) && !(bracket && c == ':'))
			return -1;
		mw_buf_putc(out, c);
	}
	size_t hlen = i - start;
	if (hlen == 0 || hlen > 255)
		return -1;
	if (!bracket) {
		/* a domain: no empty label (a leading dot is the .parent form) */
		const char *s = mw_buf_str(out);
		const char *d = s[0] == '.' ? s + 1 : s;
		if (*d == '\0' || strstr(d, "..") != NULL || d[0] == '.' || s[out->len - 1] == '.')
			return -1;
		return mw_buf_failed(out) ? -1 : 0;
	}
	if (i == len)
		return -1; /* no closing bracket */
	mw_buf_putc(out, ']');
	i++;
	if (i < len) {
		if (in[i] != ':')
			return -1;
		unsigned long long port;
		if (mw_parse_uint_n(in + i + 1, len - i - 1, 65535, &port) < 0 || port == 0)
			return -1;
		mw_buf_append(out, in + i, len - i);
	}
	return mw_buf_failed(out) ? -1 : 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct tlspol_policy_entry *)a)->dest, ((const struct tlspol_policy_entry *)b)->dest);
}

static void fail(struct mw_buf *err, const char *name, unsigned line, const char *what)
{
	mw_buf_printf(err, "%s:%u: %s", name, line, what);
}

int tlspol_policy_parse(struct tlspol_policy *p, const char *name, const char *text, size_t len,
			struct mw_buf *err)
{
	memset(p, 0, sizeof(*p));
	size_t cap = 0;
	unsigned line = 0;
	struct mw_buf dest = MW_BUF_INIT, why = MW_BUF_INIT, pol = MW_BUF_INIT;
	size_t pos = 0;
	int rc = -1;
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos;
		pos += ll + (nl != NULL);
		line++;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll > TLSPOL_POLICY_MAX_LINE) {
			fail(err, name, line, "line too long");
			goto out;
		}
		if (memchr(l, '\0', ll) != NULL) {
			fail(err, name, line, "NUL byte");
			goto out;
		}
		size_t i = 0;
		while (i < ll && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i == ll || l[i] == '#')
			continue;
		size_t dn = i;
		while (dn < ll && l[dn] != ' ' && l[dn] != '\t')
			dn++;
		if (tlspol_dest_normalize(l + i, dn - i, &dest) < 0) {
			mw_buf_printf(err, "%s:%u: bad destination \"", name, line);
			mw_buf_append_printable(err, l + i, dn - i, 80);
			mw_buf_puts(err, "\" (expected domain, .domain or [host]:port)");
			goto out;
		}
		while (dn < ll && (l[dn] == ' ' || l[dn] == '\t'))
			dn++;
		size_t end = ll;
		while (end > dn && (l[end - 1] == ' ' || l[end - 1] == '\t'))
			end--;
		if (dn == end) {
			fail(err, name, line, "no policy after the destination");
			goto out;
		}
		/* one space between words, as Postfix gets it */
		mw_buf_reset(&pol);
		int space = 0;
		for (size_t k = dn; k < end; k++) {
			if (l[k] == ' ' || l[k] == '\t') {
				space = 1;
				continue;
			}
			if ((unsigned char)l[k] < ' ' || (unsigned char)l[k] >= 0x7f) {
				fail(err, name, line, "control or non-ASCII byte in the policy");
				goto out;
			}
			if (space)
				mw_buf_putc(&pol, ' ');
			space = 0;
			mw_buf_putc(&pol, l[k]);
		}
		mw_buf_reset(&why);
		if (tlspol_policy_check(mw_buf_str(&pol), &why) < 0) {
			mw_buf_printf(err, "%s:%u: %s", name, line, mw_buf_str(&why));
			goto out;
		}
		if (p->n >= TLSPOL_POLICY_MAX_ENTRIES) {
			fail(err, name, line, "too many entries");
			goto out;
		}
		if (p->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			void *nv = realloc(p->v, ncap * sizeof(*p->v));
			if (nv == NULL) {
				fail(err, name, line, "out of memory");
				goto out;
			}
			p->v = nv;
			cap = ncap;
		}
		struct tlspol_policy_entry *e = &p->v[p->n];
		e->dest = mw_buf_steal(&dest);
		e->policy = mw_buf_steal(&pol);
		e->line = line;
		if (e->dest == NULL || e->policy == NULL) {
			free(e->dest);
			free(e->policy);
			fail(err, name, line, "out of memory");
			goto out;
		}
		p->n++;
	}
	if (p->n > 1) {
		qsort(p->v, p->n, sizeof(*p->v), cmp_entry);
		for (size_t k = 1; k < p->n; k++) {
			if (strcmp(p->v[k - 1].dest, p->v[k].dest) == 0) {
				unsigned a = p->v[k - 1].line, b = p->v[k].line;
				mw_buf_printf(err, "%s:%u: %s is already listed at line %u", name, a > b ? a : b,
					      p->v[k].dest, a > b ? b : a);
				goto out;
			}
		}
	}
	p->path = strdup(name);
	rc = p->path == NULL ? -1 : 0;
out:
	if (rc < 0)
		tlspol_policy_free(p);
	mw_buf_free(&dest);
	mw_buf_free(&why);
	mw_buf_free(&pol);
	return rc;
}

int tlspol_policy_load(struct tlspol_policy *p, const char *path, struct mw_buf *err)
{
	memset(p, 0, sizeof(*p));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct mw_buf text;
	mw_buf_init(&text, TLSPOL_POLICY_MAX_FILE);
	if (mw_sock_read_all(fd, &text, TLSPOL_POLICY_MAX_FILE) < 0) {
		if (errno == EFBIG)
			mw_buf_printf(err, "%s: larger than %d bytes", path, TLSPOL_POLICY_MAX_FILE);
		else
			mw_buf_printf(err, "%s: %s", path, strerror(errno));
		close(fd);
		mw_buf_free(&text);
		return -1;
	}
	close(fd);
	int rc = tlspol_policy_parse(p, path, mw_buf_str(&text), mw_buf_len(&text), err);
	mw_buf_free(&text);
	return rc;
}

void tlspol_policy_free(struct tlspol_policy *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].dest);
		free(p->v[i].policy);
	}
	free(p->v);
	free(p->path);
	memset(p, 0, sizeof(*p));
}

static const struct tlspol_policy_entry *find(const struct tlspol_policy *p, const char *dest)
{
	struct tlspol_policy_entry key = { .dest = (char *)dest };
	if (p->n == 0)
		return NULL;
	return bsearch(&key, p->v, p->n, sizeof(*p->v), cmp_entry);
}

const struct tlspol_policy_entry *tlspol_policy_lookup(const struct tlspol_policy *p, const char *dest)
{
	const struct tlspol_policy_entry *e = find(p, dest);
	if (e != NULL || dest[0] == '[' || dest[0] == '.')
		return e;
	for (const char *d = strchr(dest, '.'); d != NULL; d = strchr(d + 1, '.')) {
		e = find(p, d);
		if (e != NULL)
			return e;
	}
	return NULL;
}
