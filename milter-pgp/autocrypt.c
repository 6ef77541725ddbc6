#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "autocrypt.h"

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ------------------------------------------------------------ Autocrypt header */

static int b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Base64 with white space anywhere; padding only at the end. */
static int b64_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char *o = malloc(len / 4 * 3 + 3);
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	if (o == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_ws((char)c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int d = b64_digit(c);
		if (d < 0 || pad > 0) {
			free(o);
			return -1;
		}
		acc = (acc << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (pad > 2 || bits >= 6 || n == 0) {
		free(o);
		return -1;
	}
	*out = o;
	*outlen = n;
	return 0;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && is_ws(**s))
		(*s)++;
	while (*e > *s && is_ws((*e)[-1]))
		(*e)--;
}

static int name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

int mp_ac_parse(const char *value, size_t len, struct mp_ac_header *out, const char **why)
{
	const char *p = value, *end = value + len;
	int have_addr = 0, have_pe = 0;
	const char *kd = NULL;
	size_t kdlen = 0;
	memset(out, 0, sizeof(*out));
	if (len > MP_AC_VALUE_MAX) {
		*why = "too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if (value[i] == '\0') {
			*why = "a NUL byte";
			return -1;
		}
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *ae = semi != NULL ? semi : end;
		const char *as = p;
		p = semi != NULL ? semi + 1 : end;
		trim(&as, &ae);
		if (as == ae)
			continue;
		const char *eq = memchr(as, '=', (size_t)(ae - as));
		if (eq == NULL) {
			*why = "an attribute without =";
			return -1;
		}
		const char *ns = as, *ne = eq, *vs = eq + 1, *ve = ae;
		trim(&ns, &ne);
		trim(&vs, &ve);
		size_t nn = (size_t)(ne - ns), vn = (size_t)(ve - vs);
		if (name_is(ns, nn, "addr")) {
			if (have_addr++) {
				*why = "addr twice";
				return -1;
			}
			if (vn == 0 || vn >= sizeof(out->addr) || memchr(vs, '@', vn) == NULL) {
				*why = "addr is not an address";
				return -1;
			}
			for (size_t i = 0; i < vn; i++) {
				unsigned char c = (unsigned char)vs[i];
				if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == ',') {
					*why = "addr is not an address";
					return -1;
				}
				out->addr[i] = lower((char)c);
			}
			out->addr[vn] = '\0';
		} else if (name_is(ns, nn, "prefer-encrypt")) {
			if (have_pe++) {
				*why = "prefer-encrypt twice";
				return -1;
			}
			out->mutual = name_is(vs, vn, "mutual");
		} else if (name_is(ns, nn, "keydata")) {
			if (kd != NULL) {
				*why = "keydata twice";
				return -1;
			}
			kd = vs;
			kdlen = vn;
		} else if (nn == 0 || ns[0] != '_') {
			*why = "an unknown critical attribute";
			return -1;
		}
	}
	if (!have_addr || kd == NULL) {
		*why = !have_addr ? "no addr" : "no keydata";
		return -1;
	}
	if (b64_decode(kd, kdlen, &out->keydata, &out->keylen) < 0) {
		*why = "keydata is not base64";
		return -1;
	}
	return 0;
}

void mp_ac_header_free(struct mp_ac_header *h)
{
	free(h->keydata);
	h->keydata = NULL;
	h->keylen = 0;
}

/* ------------------------------------------------------------ Authentication-Results */

/*
 * The value without comments (each replaced by a space) into out (at most
 * size - 1 characters); quoted strings kept. -1 when it does not fit.
 */
static int strip_comments(const char *s, size_t len, char *out, size_t size)
{
	size_t o = 0;
	int depth = 0, quoted = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\0')
			return -1;
		if (c == '\\' && (quoted || depth > 0)) {
			if (depth == 0) {
				if (o + 2 >= size || i + 1 >= len)
					return -1;
				out[o++] = c;
				out[o++] = s[++i];
			} else {
				i++;
			}
			continue;
		}
		if (depth > 0) {
			if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				c = ' ';
			else
				continue;
		} else if (c == '"') {
			quoted = !quoted;
		} else if (c == '(' && !quoted) {
			depth = 1;
			continue;
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* Reads "name = value" at *p within e (value a token or a quoted string);
   1 with both copied (lower-cased, cut to fit), 0 when none is left. */
static int next_pair(const char **p, const char *e, char *name, size_t nsize, char *val, size_t vsize)
{
	const char *s = *p;
	size_t n = 0, v = 0;
	while (s < e && is_ws(*s))
		s++;
	if (s >= e)
		return 0;
	while (s < e && !is_ws(*s) && *s != '=') {
		if (n + 1 < nsize)
			name[n++] = lower(*s);
		s++;
	}
	name[n] = '\0';
	while (s < e && is_ws(*s))
		s++;
	if (s < e && *s == '=') {
		s++;
		while (s < e && is_ws(*s))
			s++;
		if (s < e && *s == '"') {
			for (s++; s < e && *s != '"'; s++) {
				if (*s == '\\' && s + 1 < e)
					s++;
				if (v + 1 < vsize)
					val[v++] = lower(*s);
			}
			if (s < e)
				s++;
		} else {
			while (s < e && !is_ws(*s)) {
				if (v + 1 < vsize)
					val[v++] = lower(*s);
				s++;
			}
		}
	}
	val[v] = '\0';
	*p = s;
	return 1;
}

enum mp_ac_ar mp_ac_ar_verdict(const char *value, size_t len, const char *authserv_id, const char *from_domain,
			       mp_ac_aligned_fn aligned)
{
	char *text = malloc(len + 1);
	enum mp_ac_ar verdict = MP_AC_AR_OTHER;
	if (text == NULL || strip_comments(value, len, text, len + 1) < 0) {
		free(text);
		return MP_AC_AR_OTHER;
	}
	const char *p = text, *end = text + strlen(text);
	int first = 1;
	while (p <= end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *se = semi != NULL ? semi : end;
		const char *q = p;
		p = se + 1;
		if (first) {
			/* authserv-id [version] */
			const char *s = q, *e;
			first = 0;
			while (s < se && is_ws(*s))
				s++;
			for (e = s; e < se && !is_ws(*e); e++)
				;
			if ((size_t)(e - s) != strlen(authserv_id) || strncasecmp(s, authserv_id, (size_t)(e - s)) != 0)
				break;
			verdict = MP_AC_AR_NONE;
			continue;
		}
		char name[32], val[MP_AC_ADDR_MAX], method[32], result[32];
		if (!next_pair(&q, se, method, sizeof(method), result, sizeof(result)))
			continue;
		method[strcspn(method, "/")] = '\0';
		int is_dmarc = strcmp(method, "dmarc") == 0, is_dkim = strcmp(method, "dkim") == 0;
		if ((!is_dmarc && !is_dkim) || strcmp(result, "pass") != 0)
			continue;
		while (next_pair(&q, se, name, sizeof(name), val, sizeof(val))) {
			const char *at = strrchr(val, '@');
			const char *d = at != NULL ? at + 1 : val;
			size_t dn = strlen(d);
			char dom[MP_AC_ADDR_MAX];
			snprintf(dom, sizeof(dom), "%.*s", (int)(dn > 0 && d[dn - 1] == '.' ? dn - 1 : dn), d);
			if (is_dmarc && strcmp(name, "header.from") == 0 && strcmp(dom, from_domain) == 0)
				verdict = MP_AC_AR_DMARC;
			else if (is_dkim && strcmp(name, "header.d") == 0 && dom[0] != '\0' &&
				 aligned(dom, from_domain) && verdict != MP_AC_AR_DMARC)
				verdict = MP_AC_AR_DKIM;
		}
	}
	free(text);
	return verdict;
}

/* ------------------------------------------------------------ Date */

static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
				      "jul", "aug", "sep", "oct", "nov", "dec" };

/* Digits at *p: 1 with the number (at most maxd digits), 0 when none. */
static int number(const char **p, const char *e, int maxd, long *out)
{
	long v = 0;
	int n = 0;
	while (*p < e && **p >= '0' && **p <= '9' && n < maxd) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n;
}

static void skip_ws(const char **p, const char *e)
{
	while (*p < e && is_ws(**p))
		(*p)++;
}

int mp_ac_date(const char *value, size_t len, long long *out)
{
	char text[256];
	if (len >= sizeof(text) || strip_comments(value, len, text, sizeof(text)) < 0)
		return -1;
	const char *p = text, *e = text + strlen(text);
	long day, year, hh, mm, ss = 0;
	int mon = -1;
	skip_ws(&p, e);
	if (e - p >= 4 && p[0] > '9') { /* day-of-week "," */
		const char *c = memchr(p, ',', (size_t)(e - p));
		if (c == NULL)
			return -1;
		p = c + 1;
		skip_ws(&p, e);
	}
	if (number(&p, e, 2, &day) == 0)
		return -1;
	skip_ws(&p, e);
	for (int i = 0; i < 12 && e - p >= 3; i++)
		if (strncasecmp(p, months[i], 3) == 0)
			mon = i;
	if (mon < 0)
		return -1;
	p += 3;
	skip_ws(&p, e);
	int yd = number(&p, e, 4, &year);
	if (yd < 2)
		return -1;
	if (yd == 2)
		year += year < 50 ? 2000 : 1900;
	else if (yd == 3)
		year += 1900;
	skip_ws(&p, e);
	if (number(&p, e, 2, &hh) == 0)
		return -1;
	skip_ws(&p, e);
	if (p >= e || *p++ != ':')
		return -1;
	skip_ws(&p, e);
	if (number(&p, e, 2, &mm) == 0)
		return -1;
	skip_ws(&p, e);
	if (p < e && *p == ':') {
		p++;
		skip_ws(&p, e);
		if (number(&p, e, 2, &ss) == 0)
			return -1;
	}
	skip_ws(&p, e);
	long zone = 0;
	if (p < e && (*p == '+' || *p == '-')) {
		int neg = *p++ == '-';
		long z;
		if (number(&p, e, 4, &z) != 4)
			return -1;
		zone = (z / 100) * 3600 + (z % 100) * 60;
		if (neg)
			zone = -zone;
	} else if (p < e) {
		static const struct {
			const char *name;
			int hours;
		} zones[] = { { "ut", 0 }, { "gmt", 0 }, { "z", 0 }, { "edt", -4 }, { "est", -5 }, { "cdt", -5 },
			      { "cst", -6 }, { "mdt", -6 }, { "mst", -7 }, { "pdt", -7 }, { "pst", -8 } };
		size_t zn = 0;
		while (p + zn < e && !is_ws(p[zn]))
			zn++;
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (name_is(p, zn, zones[i].name))
				zone = zones[i].hours * 3600L;
		/* other military zones mean nothing (RFC 5322 4.3): taken as UTC */
	}
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970 || year > 9999)
		return -1;
	struct tm tm = { 0 };
	tm.tm_year = (int)year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = (int)day;
	tm.tm_hour = (int)hh;
	tm.tm_min = (int)mm;
	tm.tm_sec = (int)ss;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = (long long)t - zone;
	return 0;
}

/* ------------------------------------------------------------ our header */

void mp_ac_header_value(const char *addr, int mutual, const unsigned char *key, size_t len, struct mw_buf *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	mw_buf_printf(out, " addr=%s;%s keydata=", addr, mutual ? " prefer-encrypt=mutual;" : "");
	size_t col = 76; /* a new line at once: "keydata=" then the lines */
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)key[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;
		if (n > 1)
			v |= (unsigned)key[i + 1] << 8;
		if (n > 2)
			v |= key[i + 2];
		char q[4] = { tab[(v >> 18) & 63], tab[(v >> 12) & 63], n > 1 ? tab[(v >> 6) & 63] : '=',
			      n > 2 ? tab[v & 63] : '=' };
		if (col >= 76) {
			mw_buf_puts(out, "\n\t");
			col = 0;
		}
		mw_buf_append(out, q, 4);
		col += 4;
	}
}
