#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dmarc_record.h"

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* [s, e) without white space on either side. */
static void trim(const char **s, const char **e)
{
	while (*s < *e && is_wsp(**s))
		(*s)++;
	while (*e > *s && is_wsp((*e)[-1]))
		(*e)--;
}

static int word_is(const char *s, const char *e, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(e - s) == n && strncasecmp(s, word, n) == 0;
}

static enum ma_dmarc_policy policy_word(const char *s, const char *e)
{
	if (word_is(s, e, "none"))
		return MA_DMARC_P_NONE;
	if (word_is(s, e, "quarantine"))
		return MA_DMARC_P_QUARANTINE;
	if (word_is(s, e, "reject"))
		return MA_DMARC_P_REJECT;
	return MA_DMARC_P_UNSPECIFIED;
}

/* One URI of rua=: scheme ":" and at least one more character, all of
   them URI characters (RFC 3986 2), '%' followed by two hex digits. */
static int uri_ok(const char *s, const char *e)
{
	const char *p = s;
	if (p == e || !is_alpha(*p))
		return 0;
	while (p < e && (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' || *p == '.'))
		p++;
	if (p == e || *p != ':' || p + 1 == e)
		return 0;
	for (p++; p < e; p++) {
		if (*p == '%') {
			if (e - p < 3 || !is_hex(p[1]) || !is_hex(p[2]))
				return 0;
			p += 2;
		} else if (!is_alpha(*p) && !is_digit(*p) && strchr("-._~:/?#[]@!$&'()*+,;=", *p) == NULL) {
			return 0;
		}
	}
	return 1;
}

/* rua=: at least one syntactically valid URI (RFC 9989 4.10.1), the
   obsolete "!size" suffix allowed. */
static int urilist_has_valid(const char *s, const char *e)
{
	while (s < e) {
		const char *comma = memchr(s, ',', (size_t)(e - s));
		const char *end = comma != NULL ? comma : e;
		const char *us = s, *ue = end;
		trim(&us, &ue);
		const char *bang = memchr(us, '!', (size_t)(ue - us));
		if (bang != NULL)
			ue = bang;
		if (uri_ok(us, ue))
			return 1;
		s = comma != NULL ? comma + 1 : e;
	}
	return 0;
}

enum tag_id { T_P, T_SP, T_NP, T_ADKIM, T_ASPF, T_PSD, T_T, T_PCT, T_RF, T_RI, T_RUA, T_RUF, T_FO, T_COUNT };
static const char *const tag_names[T_COUNT] = { "p", "sp", "np", "adkim", "aspf", "psd", "t", "pct",
						"rf", "ri", "rua", "ruf", "fo" };

enum ma_dmarc_parse ma_dmarc_record_parse(const char *text, size_t len, struct ma_dmarc_record *rec)
{
	const char *p = text, *end = text + len;
	int p_bad = 1, sp_bad = 0, np_bad = 0, rua_valid = 0;
	unsigned seen = 0;

	memset(rec, 0, sizeof(*rec));
	rec->pct = 100;
	rec->adkim = rec->aspf = 'r';
	rec->psd = 'u';

	/* v=DMARC1 first (RFC 9989 4.7: otherwise the record is ignored) */
	if (p == end || (*p != 'v' && *p != 'V'))
		goto not_dmarc;
	p++;
	while (p < end && is_wsp(*p))
		p++;
	if (p == end || *p != '=')
		goto not_dmarc;
	p++;
	while (p < end && is_wsp(*p))
		p++;
	if (end - p < 6 || memcmp(p, "DMARC1", 6) != 0)
		goto not_dmarc;
	p += 6;
	while (p < end && is_wsp(*p))
		p++;
	if (p < end && *p != ';')
		goto not_dmarc;

	while (p < end) {
		const char *seg = ++p; /* past the ';' */
		const char *semi = memchr(seg, ';', (size_t)(end - seg));
		const char *segend = semi != NULL ? semi : end;
		p = segend;
		trim(&seg, &segend);
		if (seg == segend)
			continue; /* a trailing or doubled ';' */
		const char *ns = seg, *ne = seg;
		while (ne < segend && is_alpha(*ne))
			ne++;
		const char *vs = ne;
		while (vs < segend && is_wsp(*vs))
			vs++;
		if (ne == ns || vs == segend || *vs != '=') {
			rec->unknown_tags++;
			continue;
		}
		vs++;
		const char *ve = segend;
		trim(&vs, &ve);
		int bad = vs == ve;
		for (const char *c = vs; c < ve; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
				bad = 1;
		int id = T_COUNT;
		for (int i = 0; i < T_COUNT; i++)
			if (word_is(ns, ne, tag_names[i]))
				id = i;
		if (id == T_COUNT || (seen & (1u << id))) {
			rec->unknown_tags++; /* unknown, or repeated: the first value stays */
			continue;
		}
		seen |= 1u << id;
		enum ma_dmarc_policy pol = bad ? MA_DMARC_P_UNSPECIFIED : policy_word(vs, ve);
		switch (id) {
		case T_P:
			rec->p = pol;
			p_bad = pol == MA_DMARC_P_UNSPECIFIED;
			break;
		case T_SP:
			rec->sp = pol;
			sp_bad = pol == MA_DMARC_P_UNSPECIFIED;
			break;
		case T_NP:
			rec->np = pol;
			np_bad = pol == MA_DMARC_P_UNSPECIFIED;
			break;
		case T_ADKIM:
		case T_ASPF:
			if (!bad && (word_is(vs, ve, "r") || word_is(vs, ve, "s"))) {
				char mode = (char)(*vs | 0x20);
				if (id == T_ADKIM)
					rec->adkim = mode;
				else
					rec->aspf = mode;
			}
			break;
		case T_PSD:
			if (!bad && (word_is(vs, ve, "y") || word_is(vs, ve, "n") || word_is(vs, ve, "u")))
				rec->psd = (char)(*vs | 0x20);
			break;
		case T_T:
			if (!bad && (word_is(vs, ve, "y") || word_is(vs, ve, "n")))
				rec->testing = (*vs | 0x20) == 'y';
			break;
		case T_PCT: {
			rec->has_pct = 1;
			int n = 0, digits = 0;
			for (const char *c = vs; c < ve && !bad; c++) {
				if (!is_digit(*c) || ++digits > 3)
					bad = 1;
				else
					n = n * 10 + (*c - '0');
			}
			if (!bad && n <= 100)
				rec->pct = n;
			break;
		}
		case T_RF:
			rec->has_rf = 1;
			break;
		case T_RI:
			rec->has_ri = 1;
			break;
		case T_RUA:
			rua_valid = !bad && urilist_has_valid(vs, ve);
			if (rua_valid && (size_t)(ve - vs) < sizeof(rec->rua)) {
				memcpy(rec->rua, vs, (size_t)(ve - vs));
				rec->rua[ve - vs] = '\0';
			}
			break;
		default: /* ruf, fo: reports, not evaluation */
			break;
		}
	}

	if (p_bad || sp_bad || np_bad) {
		const char *what = p_bad ? (seen & (1u << T_P) ? "an invalid p=" : "no p=") :
				   sp_bad ? "an invalid sp=" : "an invalid np=";
		if (!rua_valid) {
			snprintf(rec->problem, sizeof(rec->problem), "DMARC record with %s and no valid rua=", what);
			rec->unusable = 1;
			return MA_DMARC_REC_UNUSABLE;
		}
		/* RFC 9989 4.10.1: act as if p=none was published */
		rec->p = MA_DMARC_P_NONE;
		rec->sp = rec->np = MA_DMARC_P_UNSPECIFIED;
		rec->p_from_rua = 1;
	}
	return MA_DMARC_REC_OK;

not_dmarc:
	snprintf(rec->problem, sizeof(rec->problem), "not a DMARC record (v=DMARC1 is not first)");
	return MA_DMARC_REC_NOT_DMARC;
}

const char *ma_dmarc_policy_name(enum ma_dmarc_policy p)
{
	switch (p) {
	case MA_DMARC_P_UNSPECIFIED: return "unspecified";
	case MA_DMARC_P_NONE: return "none";
	case MA_DMARC_P_QUARANTINE: return "quarantine";
	case MA_DMARC_P_REJECT: return "reject";
	}
	return "none";
}
