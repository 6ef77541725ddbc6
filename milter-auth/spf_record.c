#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "spf_record.h"
#include "strnum.h"

int ma_spf_domain_is_valid(const char *domain)
{
	size_t len = strlen(domain), label = 0;
	int labels = 0;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (domain[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (++label == 1)
			labels++;
		if (label > 63)
			return 0;
	}
	return label > 0 && labels >= 2;
}

int ma_spf_is_record(const char *text, size_t len)
{
	return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

/* Bytes up to the next space or the end (inputs carry a length and need
   not be NUL-terminated). */
static size_t term_length(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n] != ' ')
		n++;
	return n;
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_delimiter(char c)
{
	return strchr(".-+,/_=", c) != NULL && c != '\0';
}

/*
 * Checks a macro-string (RFC 7208 7.1); with explanation, an
 * explain-string (spaces, and the c, r, t macros allowed). Sets *ends_macro
 * when the string ends with a macro-expand (a valid domain-end).
 */
static int check_macro_string(const char *s, size_t len, int explanation, int *ends_macro)
{
	if (ends_macro != NULL)
		*ends_macro = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c != '%') {
			if (ends_macro != NULL)
				*ends_macro = 0;
			if ((unsigned char)c >= 0x21 && (unsigned char)c <= 0x7e)
				continue;
			if (explanation && c == ' ')
				continue;
			return -1;
		}
		if (i + 1 >= len)
			return -1;
		c = s[++i];
		if (c == '%' || c == '_' || c == '-') {
			if (ends_macro != NULL)
				*ends_macro = 1;
			continue;
		}
		if (c != '{' || i + 1 >= len)
			return -1;
		char letter = s[++i];
		char lower = (char)(letter >= 'A' && letter <= 'Z' ? letter - 'A' + 'a' : letter);
		if (strchr("slodiphv", lower) == NULL && !(explanation && strchr("crt", lower) != NULL))
			return -1;
		if (lower == '\0')
			return -1;
		i++;
		size_t digits = 0;
		int nonzero = 0;
		while (i < len && is_digit(s[i])) {
			nonzero |= s[i] != '0';
			digits++;
			i++;
		}
		if (digits > 0 && !nonzero)
			return -1; /* a part count of zero */
		if (i < len && (s[i] == 'r' || s[i] == 'R'))
			i++;
		while (i < len && is_delimiter(s[i]))
			i++;
		if (i >= len || s[i] != '}')
			return -1;
		if (ends_macro != NULL)
			*ends_macro = 1;
	}
	return 0;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static int valid_toplabel(const char *s, size_t len)
{
	int alpha = 0;
	if (len == 0 || s[0] == '-' || s[len - 1] == '-')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (is_alpha(s[i]))
			alpha = 1;
		else if (s[i] == '-')
			alpha = 1; /* the second form: not all-numeric either */
		else if (!is_digit(s[i]))
			return 0;
	}
	return alpha;
}

/* domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static int check_domain_spec(const char *s, size_t len)
{
	int ends_macro;
	if (len == 0 || check_macro_string(s, len, 0, &ends_macro) < 0)
		return -1;
	if (ends_macro)
		return 0;
	size_t end = len;
	if (s[end - 1] == '.')
		end--;
	size_t dot = end;
	while (dot > 0 && s[dot - 1] != '.')
		dot--;
	if (dot == 0)
		return -1; /* no "." before the top label */
	return valid_toplabel(s + dot, end - dot) ? 0 : -1;
}

/* "/" cidr: "0" / %x31-39 *DIGIT, at most max. */
static int parse_cidr(const char *s, size_t len, unsigned max)
{
	unsigned long long v;
	if (len == 0 || (len > 1 && s[0] == '0'))
		return -1;
	if (mw_parse_uint_n(s, len, max, &v) < 0)
		return -1;
	return 0;
}

/* Splits an optional dual-cidr-length off the end of a/mx arguments;
   returns the length left for the domain-spec, or -1. */
static long strip_dual_cidr(const char *s, size_t len)
{
	size_t end = len;
	/* "//" ip6-cidr at the very end */
	size_t i = end;
	while (i > 0 && is_digit(s[i - 1]))
		i--;
	if (i >= 2 && i < end && s[i - 1] == '/' && s[i - 2] == '/') {
		if (parse_cidr(s + i, end - i, 128) < 0)
			return -1;
		end = i - 2;
		i = end;
		while (i > 0 && is_digit(s[i - 1]))
			i--;
	}
	if (i >= 1 && i < end && s[i - 1] == '/' && (i < 2 || s[i - 2] != '/')) {
		if (parse_cidr(s + i, end - i, 32) < 0)
			return -1;
		end = i - 1;
	} else if (i < end && i >= 1 && s[i - 1] == '/') {
		return -1;
	}
	/* a lone "/" or "//" with nothing after it */
	if (end > 0 && s[end - 1] == '/' && (end == len || end + 1 == len))
		return -1;
	return (long)end;
}

static int check_ip(const char *s, size_t len, int family, unsigned maxcidr)
{
	char text[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	const char *slash = memchr(s, '/', len);
	size_t al = slash != NULL ? (size_t)(slash - s) : len;

	if (al == 0 || al >= sizeof(text))
		return -1;
	memcpy(text, s, al);
	text[al] = '\0';
	if (inet_pton(family, text, addr) != 1)
		return -1;
	if (slash != NULL && parse_cidr(slash + 1, len - al - 1, maxcidr) < 0)
		return -1;
	return 0;
}

static int fail(struct mw_buf *why, const char *term, size_t tl, const char *what)
{
	mw_buf_printf(why, "%s in \"%.*s\"", what, (int)(tl > 80 ? 80 : tl), term);
	return -1;
}

int ma_spf_record_check(const char *record, size_t len, struct mw_buf *why)
{
	int redirects = 0, exps = 0;

	if (!ma_spf_is_record(record, len)) {
		mw_buf_puts(why, "not an SPF record");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)record[i];
		if (c < 0x20 || c > 0x7e) {
			mw_buf_puts(why, c < 0x20 ? "control character in the record" : "non-ASCII byte in the record");
			return -1;
		}
	}
	size_t pos = 6;
	while (pos < len) {
		while (pos < len && record[pos] == ' ')
			pos++;
		if (pos >= len)
			break;
		const char *t = record + pos;
		size_t tl = term_length(t, len - pos);
		pos += tl;

		/* modifier: name "=" ... */
		size_t n = 0;
		if (is_alpha(t[0])) {
			n = 1;
			while (n < tl && (is_alpha(t[n]) || is_digit(t[n]) || t[n] == '-' || t[n] == '_' || t[n] == '.'))
				n++;
		}
		if (n > 0 && n < tl && t[n] == '=') {
			const char *v = t + n + 1;
			size_t vl = tl - n - 1;
			if (n == 8 && strncasecmp(t, "redirect", 8) == 0) {
				if (++redirects > 1)
					return fail(why, t, tl, "redirect given twice");
				if (check_domain_spec(v, vl) < 0)
					return fail(why, t, tl, "bad domain");
			} else if (n == 3 && strncasecmp(t, "exp", 3) == 0) {
				if (++exps > 1)
					return fail(why, t, tl, "exp given twice");
				if (check_domain_spec(v, vl) < 0)
					return fail(why, t, tl, "bad domain");
			} else if (check_macro_string(v, vl, 0, NULL) < 0) {
				return fail(why, t, tl, "bad macro");
			}
			continue;
		}

		/* mechanism: [qualifier] name [":" ...] */
		size_t k = t[0] == '+' || t[0] == '-' || t[0] == '~' || t[0] == '?';
		size_t name = k;
		while (k < tl && (is_alpha(t[k]) || is_digit(t[k])))
			k++;
		size_t nl = k - name;
		const char *nm = t + name;
		const char *arg = t + k;
		size_t al = tl - k;
#define IS(word) (nl == sizeof(word) - 1 && strncasecmp(nm, word, nl) == 0)
		if (IS("all")) {
			if (al != 0)
				return fail(why, t, tl, "junk after all");
		} else if (IS("include") || IS("exists")) {
			if (al < 2 || arg[0] != ':' || check_domain_spec(arg + 1, al - 1) < 0)
				return fail(why, t, tl, "bad domain");
		} else if (IS("a") || IS("mx")) {
			long dl = strip_dual_cidr(arg, al);
			if (dl < 0)
				return fail(why, t, tl, "bad CIDR length");
			if (dl > 0 && (arg[0] != ':' || check_domain_spec(arg + 1, (size_t)dl - 1) < 0))
				return fail(why, t, tl, "bad domain");
		} else if (IS("ptr")) {
			if (al > 0 && (arg[0] != ':' || check_domain_spec(arg + 1, al - 1) < 0))
				return fail(why, t, tl, "bad domain");
		} else if (IS("ip4")) {
			if (al < 2 || arg[0] != ':' || check_ip(arg + 1, al - 1, AF_INET, 32) < 0)
				return fail(why, t, tl, "bad IPv4 network");
		} else if (IS("ip6")) {
			if (al < 2 || arg[0] != ':' || check_ip(arg + 1, al - 1, AF_INET6, 128) < 0)
				return fail(why, t, tl, "bad IPv6 network");
		} else {
			return fail(why, t, tl, "unknown mechanism");
		}
#undef IS
	}
	return 0;
}

/* ------------------------------------------------------------ normalization */

/* Value of a cidr at s (digits), or 0 for none. */
static unsigned long cidr_value(const char *s, size_t len)
{
	unsigned long v = 0;
	for (size_t i = 0; i < len && is_digit(s[i]); i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v;
}

/* a / mx with their dual-cidr: rewrite when the length that applies to
   the client is 0, and drop the other family's length (libspf2 refuses a
   0 there too). */
static void normalize_a_mx(const char *t, size_t tl, size_t qlen, int mx, int client_v6, struct mw_buf *out)
{
	const char *arg = t + qlen + (mx ? 2 : 1);
	size_t al = tl - qlen - (mx ? 2 : 1);
	long dl = strip_dual_cidr(arg, al);
	const char *cidr = arg + dl;
	size_t cl = al - (size_t)dl;
	int has4 = 0, has6 = 0;
	unsigned long c4 = 32, c6 = 128;
	const char *dd = NULL;
	for (size_t i = 0; i + 1 < cl; i++)
		if (cidr[i] == '/' && cidr[i + 1] == '/') {
			dd = cidr + i;
			break;
		}
	if (dd != NULL) {
		has6 = 1;
		c6 = cidr_value(dd + 2, cl - (size_t)(dd + 2 - cidr));
		if (dd > cidr) {
			has4 = 1;
			c4 = cidr_value(cidr + 1, (size_t)(dd - cidr - 1));
		}
	} else if (cl > 0) {
		has4 = 1;
		c4 = cidr_value(cidr + 1, cl - 1);
	}
	int zero = client_v6 ? (has6 && c6 == 0) : (has4 && c4 == 0);
	mw_buf_append(out, t, qlen); /* the qualifier */
	if (zero) {
		mw_buf_puts(out, "include:");
		if (dl > 0)
			mw_buf_append(out, arg + 1, (size_t)dl - 1);
		else
			mw_buf_puts(out, "%{d}");
		mw_buf_puts(out, mx ? (client_v6 ? MA_SPF_ANY_MX6 : MA_SPF_ANY_MX4)
				    : (client_v6 ? MA_SPF_ANY_A6 : MA_SPF_ANY_A4));
		return;
	}
	mw_buf_puts(out, mx ? "mx" : "a");
	mw_buf_append(out, arg, (size_t)dl);
	if (client_v6 && has6)
		mw_buf_printf(out, "//%lu", c6);
	else if (!client_v6 && has4)
		mw_buf_printf(out, "/%lu", c4);
}

int ma_spf_record_normalize(const char *record, size_t len, int client_v6, struct mw_buf *out)
{
	struct mw_buf redirect = MW_BUF_INIT, why = MW_BUF_INIT;
	if (ma_spf_record_check(record, len, &why) < 0) {
		mw_buf_free(&why);
		return -1;
	}
	mw_buf_free(&why);
	mw_buf_puts(out, "v=spf1");
	size_t pos = 6;
	while (pos < len) {
		while (pos < len && record[pos] == ' ')
			pos++;
		if (pos >= len)
			break;
		const char *t = record + pos;
		size_t tl = term_length(t, len - pos);
		pos += tl;

		size_t n = 0;
		if (is_alpha(t[0])) {
			n = 1;
			while (n < tl && (is_alpha(t[n]) || is_digit(t[n]) || t[n] == '-' || t[n] == '_' || t[n] == '.'))
				n++;
		}
		if (n > 0 && n < tl && t[n] == '=') {
			if (n == 8 && strncasecmp(t, "redirect", 8) == 0) {
				mw_buf_putc(&redirect, ' ');
				mw_buf_append(&redirect, t, tl);
			} else if (n == 3 && strncasecmp(t, "exp", 3) == 0) {
				mw_buf_putc(out, ' ');
				mw_buf_append(out, t, tl);
			}
			continue; /* unknown modifiers are ignored (RFC 7208 6) */
		}
		size_t q = t[0] == '+' || t[0] == '-' || t[0] == '~' || t[0] == '?';
		size_t k = q;
		while (k < tl && (is_alpha(t[k]) || is_digit(t[k])))
			k++;
		mw_buf_putc(out, ' ');
		if (k - q == 1 && (t[q] == 'a' || t[q] == 'A')) {
			normalize_a_mx(t, tl, q, 0, client_v6, out);
		} else if (k - q == 2 && strncasecmp(t + q, "mx", 2) == 0) {
			normalize_a_mx(t, tl, q, 1, client_v6, out);
		} else if (k - q == 3 && (strncasecmp(t + q, "ip4", 3) == 0 || strncasecmp(t + q, "ip6", 3) == 0)) {
			int six = t[q + 2] == '6';
			const char *slash = memchr(t, '/', tl);
			if (slash != NULL && tl - (size_t)(slash - t) == 2 && slash[1] == '0') {
				mw_buf_append(out, t, q);
				mw_buf_puts(out, six ? "ip6:::/1 " : "ip4:0.0.0.0/1 ");
				mw_buf_append(out, t, q);
				mw_buf_puts(out, six ? "ip6:8000::/1" : "ip4:128.0.0.0/1");
			} else {
				mw_buf_append(out, t, tl);
			}
		} else {
			mw_buf_append(out, t, tl);
		}
	}
	mw_buf_puts(out, mw_buf_str(&redirect));
	mw_buf_free(&redirect);
	return mw_buf_failed(out) ? -1 : 0;
}

/* ------------------------------------------------------------ expansion */

static void macro_value(char letter, const struct ma_spf_macros *m, struct mw_buf *out)
{
	const char *hex = m->upper_hex ? "0123456789ABCDEF" : "0123456789abcdef";
	char text[INET6_ADDRSTRLEN];

	switch (letter) {
	case 's': mw_buf_puts(out, m->sender); break;
	case 'l': mw_buf_puts(out, m->local); break;
	case 'o': mw_buf_puts(out, m->sender_domain); break;
	case 'd': mw_buf_puts(out, m->domain); break;
	case 'h': mw_buf_puts(out, m->helo); break;
	case 'p': mw_buf_puts(out, m->ptr != NULL ? m->ptr : "unknown"); break;
	case 'r': mw_buf_puts(out, m->receiver != NULL ? m->receiver : "unknown"); break;
	case 'v': mw_buf_puts(out, m->v6 ? "ip6" : "in-addr"); break;
	case 't': mw_buf_printf(out, "%lld", (long long)m->now); break;
	case 'i':
		if (!m->v6) {
			mw_buf_printf(out, "%u.%u.%u.%u", m->addr[0], m->addr[1], m->addr[2], m->addr[3]);
		} else {
			for (int b = 0; b < 16; b++)
				mw_buf_printf(out, "%s%c.%c", b ? "." : "", hex[m->addr[b] >> 4], hex[m->addr[b] & 15]);
		}
		break;
	case 'c':
		inet_ntop(m->v6 ? AF_INET6 : AF_INET, m->addr, text, sizeof(text));
		mw_buf_puts(out, text);
		break;
	default:
		break;
	}
}

/* Split value at delimiters, reverse, keep the rightmost n, join with '.'. */
static void transform(const char *value, const char *delims, int reverse, unsigned long n, struct mw_buf *out)
{
	const char *parts[256];
	size_t lens[256];
	size_t count = 0;
	const char *p = value;

	for (;;) {
		size_t l = strcspn(p, delims);
		if (count < 256) {
			parts[count] = p;
			lens[count++] = l;
		}
		if (p[l] == '\0')
			break;
		p += l + 1;
	}
	if (reverse)
		for (size_t a = 0, b = count - 1; a < b; a++, b--) {
			const char *tp = parts[a];
			size_t tl = lens[a];
			parts[a] = parts[b];
			lens[a] = lens[b];
			parts[b] = tp;
			lens[b] = tl;
		}
	size_t first = n > 0 && n < count ? count - n : 0;
	for (size_t k = first; k < count; k++) {
		if (k > first)
			mw_buf_putc(out, '.');
		mw_buf_append(out, parts[k], lens[k]);
	}
}

static void url_escape(const char *in, struct mw_buf *out)
{
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (is_alpha((char)*p) || is_digit((char)*p) || strchr("-._~", *p) != NULL)
			mw_buf_putc(out, *p);
		else
			mw_buf_printf(out, "%%%02X", *p);
	}
}

int ma_spf_expand(const char *text, size_t len, int explanation, const struct ma_spf_macros *m,
		  struct mw_buf *out)
{
	if (check_macro_string(text, len, explanation, NULL) < 0)
		return -1;
	struct mw_buf value = MW_BUF_INIT, done = MW_BUF_INIT;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '%') {
			mw_buf_putc(out, text[i]);
			continue;
		}
		char c = text[++i];
		if (c == '%') {
			mw_buf_putc(out, '%');
			continue;
		}
		if (c == '_') {
			mw_buf_putc(out, ' ');
			continue;
		}
		if (c == '-') {
			mw_buf_puts(out, "%20");
			continue;
		}
		/* "{" letter digits [r] delimiters "}" (checked above) */
		char letter = text[i + 1];
		int upper = letter >= 'A' && letter <= 'Z';
		char lower = (char)(upper ? letter - 'A' + 'a' : letter);
		i += 2;
		unsigned long n = 0;
		while (is_digit(text[i]))
			n = n * 10 + (unsigned long)(text[i++] - '0');
		int reverse = 0;
		if (text[i] == 'r' || text[i] == 'R') {
			reverse = 1;
			i++;
		}
		char delims[16];
		size_t dn = 0;
		while (text[i] != '}' && dn + 1 < sizeof(delims))
			delims[dn++] = text[i++];
		delims[dn] = '\0';
		if (dn == 0)
			memcpy(delims, ".", 2);
		mw_buf_reset(&value);
		macro_value(lower, m, &value);
		mw_buf_reset(&done);
		transform(mw_buf_str(&value), delims, reverse, n, &done);
		if (upper)
			url_escape(mw_buf_str(&done), out);
		else
			mw_buf_puts(out, mw_buf_str(&done));
	}
	mw_buf_free(&value);
	mw_buf_free(&done);
	return mw_buf_failed(out) ? -1 : 0;
}
