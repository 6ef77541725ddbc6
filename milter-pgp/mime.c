#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "log.h"
#include "mime.h"

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int is_tspecial_or_space(int c)
{
	return c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* Skips white space, folds and (nested) comments. */
static size_t skip_cfws(const char *s, size_t len, size_t i)
{
	int depth = 0;
	while (i < len) {
		char c = s[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
		} else if (c == '(') {
			depth = 1;
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			break;
		}
		i++;
	}
	return i;
}

/* A token into out (cut to size, lowercased if fold). */
static size_t read_token(const char *s, size_t len, size_t i, char *out, size_t size, int fold)
{
	size_t n = 0;
	while (i < len && !is_tspecial_or_space((unsigned char)s[i])) {
		if (n + 1 < size)
			out[n++] = (char)(fold ? lower((unsigned char)s[i]) : s[i]);
		i++;
	}
	out[n] = '\0';
	return i;
}

static size_t read_value(const char *s, size_t len, size_t i, char *out, size_t size, int fold)
{
	if (i < len && s[i] == '"') {
		size_t n = 0;
		for (i++; i < len && s[i] != '"'; i++) {
			char c = s[i];
			if (c == '\\' && i + 1 < len)
				c = s[++i];
			if (c == '\r' || c == '\n')
				continue; /* unfolding */
			if (n + 1 < size)
				out[n++] = (char)(fold ? lower((unsigned char)c) : c);
		}
		out[n] = '\0';
		return i < len ? i + 1 : i;
	}
	return read_token(s, len, i, out, size, fold);
}

int mp_ctype_parse(const char *value, size_t len, struct mp_ctype *ct)
{
	memset(ct, 0, sizeof(*ct));
	size_t i = skip_cfws(value, len, 0);
	i = read_token(value, len, i, ct->type, sizeof(ct->type), 1);
	i = skip_cfws(value, len, i);
	if (ct->type[0] == '\0' || i >= len || value[i] != '/')
		return -1;
	i = skip_cfws(value, len, i + 1);
	i = read_token(value, len, i, ct->subtype, sizeof(ct->subtype), 1);
	if (ct->subtype[0] == '\0')
		return -1;
	while (i < len) {
		i = skip_cfws(value, len, i);
		if (i >= len)
			break;
		if (value[i] != ';') {
			i++; /* junk between parameters: skip it */
			continue;
		}
		i = skip_cfws(value, len, i + 1);
		char name[64], v[256];
		i = read_token(value, len, i, name, sizeof(name), 1);
		i = skip_cfws(value, len, i);
		if (i >= len || value[i] != '=')
			continue;
		i = skip_cfws(value, len, i + 1);
		if (strcmp(name, "boundary") == 0) {
			i = read_value(value, len, i, ct->boundary, sizeof(ct->boundary), 0);
		} else if (strcmp(name, "protocol") == 0) {
			i = read_value(value, len, i, ct->protocol, sizeof(ct->protocol), 1);
		} else if (strcmp(name, "smime-type") == 0) {
			i = read_value(value, len, i, ct->smime_type, sizeof(ct->smime_type), 1);
		} else {
			size_t before = i;
			i = read_value(value, len, i, v, sizeof(v), 0);
			if (i == before)
				i++;
		}
	}
	return 0;
}

const char *mp_protection_name(enum mp_protection p)
{
	switch (p) {
	case MP_PGP_MIME: return "PGP/MIME";
	case MP_PGP_INLINE: return "inline PGP";
	case MP_SMIME: return "S/MIME";
	default: return "plain";
	}
}

/* ------------------------------------------------------------ walking */

struct walk {
	struct mp_result *r;
};

/* The end of the line starting at i (the index of '\n', or len). */
static size_t line_end(const char *s, size_t len, size_t i)
{
	const char *nl = memchr(s + i, '\n', len - i);
	return nl != NULL ? (size_t)(nl - s) : len;
}

static size_t trim_cr(const char *s, size_t start, size_t end)
{
	while (end > start && (s[end - 1] == '\r' || s[end - 1] == ' ' || s[end - 1] == '\t'))
		end--;
	return end;
}

#define ARMOR "-----BEGIN PGP MESSAGE-----"

/* A text leaf is inline PGP when its first non-blank line is the armor
   header of an OpenPGP message (RFC 4880 6.2). */
static int is_inline_pgp(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t e = line_end(s, len, i);
		size_t t = trim_cr(s, i, e);
		if (t > i)
			return t - i == strlen(ARMOR) && memcmp(s + i, ARMOR, strlen(ARMOR)) == 0;
		i = e + 1;
	}
	return 0;
}

static int is_smime(const struct mp_ctype *ct)
{
	if (strcmp(ct->type, "application") == 0 &&
	    (strcmp(ct->subtype, "pkcs7-mime") == 0 || strcmp(ct->subtype, "x-pkcs7-mime") == 0))
		return 1;
	return strcmp(ct->type, "multipart") == 0 && strcmp(ct->subtype, "signed") == 0 &&
	       (strcmp(ct->protocol, "application/pkcs7-signature") == 0 ||
		strcmp(ct->protocol, "application/x-pkcs7-signature") == 0);
}

/* Finds the Content-Type of a part's header block [0, hlen): unfolded into
   a copy, at most sizeof(buf). */
static size_t part_ctype(const char *s, size_t hlen, char *buf, size_t size)
{
	size_t i = 0, n = 0;
	int in = 0;
	while (i < hlen) {
		size_t e = line_end(s, hlen, i);
		size_t t = trim_cr(s, i, e);
		if (in && t > i && (s[i] == ' ' || s[i] == '\t')) {
			for (size_t k = i; k < t && n + 1 < size; k++)
				buf[n++] = s[k];
		} else {
			in = 0;
			if (t - i >= 13 && strncasecmp(s + i, "content-type:", 13) == 0 && n == 0) {
				in = 1;
				for (size_t k = i + 13; k < t && n + 1 < size; k++)
					buf[n++] = s[k];
			}
		}
		i = e + 1;
	}
	buf[n] = '\0';
	return n;
}

static enum mp_protection walk_entity(struct walk *w, const struct mp_ctype *ct, int have_ct,
				      const char *s, size_t len, unsigned depth);

/* Whether line [i, t) is the delimiter "--boundary" (close: "--boundary--"). */
static int is_delimiter(const char *s, size_t i, size_t t, const char *b, size_t bl, int *close)
{
	if (t - i < bl + 2 || s[i] != '-' || s[i + 1] != '-' || memcmp(s + i + 2, b, bl) != 0)
		return 0;
	size_t rest = t - i - 2 - bl;
	*close = rest >= 2 && s[i + 2 + bl] == '-' && s[i + 3 + bl] == '-';
	return rest == 0 || *close;
}

/* A multipart is protected when every part is (all inline PGP, say); one
   part in clear makes the whole plain, to be encrypted. */
static enum mp_protection walk_multipart(struct walk *w, const struct mp_ctype *ct, const char *s, size_t len,
					 unsigned depth)
{
	const char *b = ct->boundary;
	size_t bl = strlen(b);
	enum mp_protection all = MP_PLAIN;
	int nparts = 0;
	if (bl == 0) {
		w->r->malformed = 1;
		return MP_PLAIN;
	}
	size_t i = 0, part_start = 0;
	int in_part = 0, closed = 0;
	while (i <= len && !closed) {
		size_t e = line_end(s, len, i);
		size_t t = trim_cr(s, i, e);
		int close = 0;
		if (is_delimiter(s, i, t, b, bl, &close)) {
			if (in_part) {
				/* the CRLF before the delimiter belongs to it */
				size_t pe = i;
				if (pe > part_start && s[pe - 1] == '\n')
					pe--;
				if (pe > part_start && s[pe - 1] == '\r')
					pe--;
				const char *p = s + part_start;
				size_t plen = pe - part_start;
				/* the part's headers end at the first empty line */
				size_t k = 0, hlen = plen, bstart = plen;
				if (plen > 0 && (p[0] == '\n' || (p[0] == '\r' && plen > 1 && p[1] == '\n'))) {
					hlen = 0;
					bstart = p[0] == '\n' ? 1 : 2;
				} else {
					while (k < plen) {
						size_t ke = line_end(p, plen, k);
						if (ke + 1 < plen && (p[ke + 1] == '\n' ||
								      (p[ke + 1] == '\r' && ke + 2 < plen && p[ke + 2] == '\n'))) {
							hlen = ke + 1;
							bstart = p[ke + 1] == '\n' ? ke + 2 : ke + 3;
							break;
						}
						k = ke + 1;
					}
				}
				char cbuf[1024];
				struct mp_ctype pct;
				int have = part_ctype(p, hlen, cbuf, sizeof(cbuf)) > 0 &&
					   mp_ctype_parse(cbuf, strlen(cbuf), &pct) == 0;
				if (w->r->parts >= MP_MAX_PARTS) {
					w->r->malformed = 1;
					return MP_PLAIN;
				}
				enum mp_protection pp = walk_entity(w, &pct, have, p + bstart,
								    bstart <= plen ? plen - bstart : 0, depth + 1);
				if (w->r->malformed)
					return MP_PLAIN;
				if (nparts++ == 0)
					all = pp;
				else if (pp == MP_PLAIN)
					all = MP_PLAIN;
			}
			in_part = 1;
			closed = close;
			part_start = e < len ? e + 1 : len;
		}
		if (e >= len)
			break;
		i = e + 1;
	}
	if (!closed) {
		w->r->malformed = 1; /* a boundary that never closes */
		return MP_PLAIN;
	}
	return all;
}

static enum mp_protection walk_entity(struct walk *w, const struct mp_ctype *ct, int have_ct,
				      const char *s, size_t len, unsigned depth)
{
	if (depth > w->r->max_depth)
		w->r->max_depth = depth;
	if (depth > MP_MAX_DEPTH) {
		w->r->malformed = 1;
		return MP_PLAIN;
	}
	if (have_ct && is_smime(ct))
		return MP_SMIME;
	if (have_ct && strcmp(ct->type, "multipart") == 0) {
		if (strcmp(ct->subtype, "encrypted") == 0 &&
		    strcmp(ct->protocol, "application/pgp-encrypted") == 0)
			return MP_PGP_MIME;
		if (depth == 0 && strcmp(ct->subtype, "signed") == 0 &&
		    strcmp(ct->protocol, "application/pgp-signature") == 0)
			w->r->pgp_signed = 1;
		return walk_multipart(w, ct, s, len, depth);
	}
	w->r->parts++;
	if ((!have_ct || strcmp(ct->type, "text") == 0) && is_inline_pgp(s, len))
		return MP_PGP_INLINE;
	return MP_PLAIN;
}

void mp_classify(const char *ctype_value, size_t ctype_len, const char *body, size_t len,
		 struct mp_result *r)
{
	struct walk w = { r };
	struct mp_ctype ct;
	memset(r, 0, sizeof(*r));
	int have = ctype_value != NULL && mp_ctype_parse(ctype_value, ctype_len, &ct) == 0;
	r->protection = walk_entity(&w, &ct, have, body, len, 0);
	if (r->malformed)
		r->protection = MP_PLAIN;
}

void mp_mime_boundary(const char *prefix, char *out, size_t size)
{
	unsigned char r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		mw_msg_panic("getrandom failed");
	size_t n = (size_t)snprintf(out, size, "%s", prefix);
	for (size_t i = 0; i < sizeof(r) && n + 2 < size; i++)
		n += (size_t)snprintf(out + n, size - n, "%02x", r[i]);
}
