#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "strnum.h"
#include "tlspol_sts.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 8461 3.1: sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim] */
int tlspol_sts_txt_parse(const char *txt, size_t len, char *id)
{
	static const char v[] = "v=STSv1";
	if (len < sizeof(v) - 1 || memcmp(txt, v, sizeof(v) - 1) != 0)
		return 0;
	size_t i = sizeof(v) - 1;
	int have_id = 0, fields = 0;
	for (;;) {
		/* sts-field-delim = *WSP ";" *WSP */
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] != ';')
			return i == sizeof(v) - 1 ? 0 : -1; /* "v=STSv10": not ours */
		i++;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		/* sts-field = sts-field-name "=" sts-field-value */
		size_t ks = i;
		while (i < len && (is_alnum(txt[i]) || txt[i] == '_' || txt[i] == '-' || txt[i] == '.'))
			i++;
		if (i == ks || i == len || txt[i] != '=')
			return -1;
		size_t kl = i - ks;
		i++;
		size_t vs = i;
		/* sts-field-value = 1*(%x21-3A / %x3C / %x3E-7E) */
		while (i < len && (unsigned char)txt[i] >= 0x21 && (unsigned char)txt[i] <= 0x7e && txt[i] != ';' &&
		       txt[i] != '=')
			i++;
		size_t vl = i - vs;
		if (vl == 0)
			return -1;
		fields++;
		if (kl == 2 && memcmp(txt + ks, "id", 2) == 0) {
			if (have_id)
				return -1;
			if (vl > TLSPOL_STS_ID_MAX)
				return -1;
			for (size_t k = 0; k < vl; k++)
				if (!is_alnum(txt[vs + k]))
					return -1;
			memcpy(id, txt + vs, vl);
			id[vl] = '\0';
			have_id = 1;
		}
	}
	return have_id ? 1 : -1;
}

const char *tlspol_sts_mode_name(enum tlspol_sts_mode mode)
{
	switch (mode) {
	case TLSPOL_STS_ENFORCE: return "enforce";
	case TLSPOL_STS_TESTING: return "testing";
	case TLSPOL_STS_NONE: break;
	}
	return "none";
}

int tlspol_sts_mode_parse(const char *s, enum tlspol_sts_mode *mode)
{
	if (strcmp(s, "enforce") == 0)
		*mode = TLSPOL_STS_ENFORCE;
	else if (strcmp(s, "testing") == 0)
		*mode = TLSPOL_STS_TESTING;
	else if (strcmp(s, "none") == 0)
		*mode = TLSPOL_STS_NONE;
	else
		return -1;
	return 0;
}

/* An mx pattern: a host name, or "*." and a host name; lowercased into out. */
static int mx_pattern_ok(const char *v, size_t n, struct mw_buf *out)
{
	mw_buf_reset(out);
	size_t i = 0;
	if (n >= 2 && v[0] == '*' && v[1] == '.') {
		mw_buf_puts(out, "*.");
		i = 2;
	}
	if (n - i == 0 || n > 253)
		return -1;
	size_t label = 0;
	for (; i < n; i++) {
		char c = v[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 'a' - 'A');
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || ((c == '-' || c == '_') && label > 0)) {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		mw_buf_putc(out, c);
	}
	if (label == 0)
		return -1; /* empty or trailing dot */
	return mw_buf_failed(out) ? -1 : 0;
}

int tlspol_sts_policy_parse(const char *text, size_t len, struct tlspol_sts_policy *out, struct mw_buf *err)
{
	memset(out, 0, sizeof(*out));
	int have_version = 0, have_mode = 0, have_age = 0;
	struct mw_buf pat = MW_BUF_INIT;
	size_t pos = 0;
	unsigned line = 0;
	if (len > TLSPOL_STS_POLICY_MAX) {
		mw_buf_printf(err, "policy larger than %d bytes", TLSPOL_STS_POLICY_MAX);
		return -1;
	}
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos;
		pos += ll + (nl != NULL);
		line++;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			continue; /* a trailing empty line (and lenient about blank ones) */
		const char *colon = memchr(l, ':', ll);
		if (colon == NULL || colon == l) {
			mw_buf_printf(err, "line %u: expected \"name: value\"", line);
			goto bad;
		}
		size_t kl = (size_t)(colon - l);
		for (size_t k = 0; k < kl; k++) {
			if (!is_alnum(l[k]) && l[k] != '_' && l[k] != '-' && l[k] != '.') {
				mw_buf_printf(err, "line %u: bad field name", line);
				goto bad;
			}
		}
		const char *v = colon + 1;
		size_t vl = ll - kl - 1;
		while (vl > 0 && is_wsp(*v)) {
			v++;
			vl--;
		}
		while (vl > 0 && is_wsp(v[vl - 1]))
			vl--;
		for (size_t k = 0; k < vl; k++) {
			if ((unsigned char)v[k] < 0x20 && v[k] != '\t') {
				mw_buf_printf(err, "line %u: control byte in a value", line);
				goto bad;
			}
		}
		char val[64];
		int short_val = vl < sizeof(val);
		if (short_val) {
			memcpy(val, v, vl);
			val[vl] = '\0';
		}
		if (kl == 7 && memcmp(l, "version", 7) == 0) {
			if (have_version++)
				continue; /* the first one counts */
			if (!short_val || strcmp(val, "STSv1") != 0) {
				mw_buf_printf(err, "line %u: version is not STSv1", line);
				goto bad;
			}
		} else if (kl == 4 && memcmp(l, "mode", 4) == 0) {
			if (have_mode++)
				continue;
			if (!short_val || tlspol_sts_mode_parse(val, &out->mode) < 0) {
				mw_buf_printf(err, "line %u: mode is not enforce, testing or none", line);
				goto bad;
			}
		} else if (kl == 7 && memcmp(l, "max_age", 7) == 0) {
			if (have_age++)
				continue;
			/* max-age-value = 1*10(DIGIT) */
			if (!short_val || vl > 10 || mw_parse_uint(val, TLSPOL_STS_MAX_AGE_MAX, &out->max_age) < 0) {
				mw_buf_printf(err, "line %u: max_age is not a number of seconds up to %llu", line,
					      TLSPOL_STS_MAX_AGE_MAX);
				goto bad;
			}
		} else if (kl == 2 && memcmp(l, "mx", 2) == 0) {
			if (mx_pattern_ok(v, vl, &pat) < 0) {
				mw_buf_printf(err, "line %u: bad mx pattern \"", line);
				mw_buf_append_printable(err, v, vl, 80);
				mw_buf_puts(err, "\"");
				goto bad;
			}
			if (out->nmx >= TLSPOL_STS_MAX_MX) {
				mw_buf_printf(err, "more than %d mx patterns", TLSPOL_STS_MAX_MX);
				goto bad;
			}
			out->mx[out->nmx] = mw_buf_steal(&pat);
			if (out->mx[out->nmx] == NULL) {
				mw_buf_puts(err, "out of memory");
				goto bad;
			}
			out->nmx++;
		}
		/* other fields: ignored (RFC 8461 3.2) */
	}
	if (!have_version) {
		mw_buf_puts(err, "no version field");
		goto bad;
	}
	if (!have_mode) {
		mw_buf_puts(err, "no mode field");
		goto bad;
	}
	if (!have_age) {
		mw_buf_puts(err, "no max_age field");
		goto bad;
	}
	if (out->mode != TLSPOL_STS_NONE && out->nmx == 0) {
		mw_buf_printf(err, "mode %s without any mx field", tlspol_sts_mode_name(out->mode));
		goto bad;
	}
	mw_buf_free(&pat);
	return 0;
bad:
	mw_buf_free(&pat);
	tlspol_sts_policy_free(out);
	return -1;
}

void tlspol_sts_policy_free(struct tlspol_sts_policy *p)
{
	for (int i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	memset(p, 0, sizeof(*p));
}

int tlspol_sts_policy_copy(struct tlspol_sts_policy *dst, const struct tlspol_sts_policy *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->mode = src->mode;
	dst->max_age = src->max_age;
	for (int i = 0; i < src->nmx; i++) {
		dst->mx[i] = strdup(src->mx[i]);
		if (dst->mx[i] == NULL) {
			tlspol_sts_policy_free(dst);
			return -1;
		}
		dst->nmx++;
	}
	return 0;
}

int tlspol_sts_postfix_policy(const struct tlspol_sts_policy *p, struct mw_buf *out)
{
	mw_buf_puts(out, "secure match=");
	for (int i = 0; i < p->nmx; i++) {
		if (i > 0)
			mw_buf_putc(out, ':');
		/* Postfix writes "any subdomain" as a leading dot */
		mw_buf_puts(out, p->mx[i][0] == '*' ? p->mx[i] + 1 : p->mx[i]);
	}
	mw_buf_puts(out, " servername=hostname");
	return mw_buf_failed(out) ? -1 : 0;
}

int tlspol_sts_mx_match(const char *pattern, const char *host)
{
	if (pattern[0] != '*')
		return strcmp(pattern, host) == 0;
	const char *dot = strchr(host, '.');
	return dot != NULL && dot != host && strcmp(dot, pattern + 1) == 0;
}
