#include "config.h"

#include <string.h>

#include "hdrparse.h"

/* Skips a comment starting at s[*i] == '(' (nested, with quoted-pairs). */
static void skip_comment(const char *s, size_t len, size_t *i)
{
	int depth = 0;
	while (*i < len) {
		char c = s[*i];
		if (c == '\\') {
			*i += 2;
			continue;
		}
		(*i)++;
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			break;
	}
	if (*i > len)
		*i = len; /* an escape at the very end */
}

/* Skips a quoted string starting at s[*i] == '"'. */
static void skip_quoted(const char *s, size_t len, size_t *i)
{
	(*i)++;
	while (*i < len) {
		char c = s[*i];
		if (c == '\\') {
			*i += 2;
			continue;
		}
		(*i)++;
		if (c == '"')
			break;
	}
	if (*i > len)
		*i = len;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ma_domain_normalize(const char *in, size_t len, char *out, size_t outlen)
{
	while (len > 0 && is_ws(in[0])) {
		in++;
		len--;
	}
	while (len > 0 && is_ws(in[len - 1]))
		len--;
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > 253 || len >= outlen)
		return -1;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
			   c >= 0x80) {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			label++;
			c = (unsigned char)(c - 'A' + 'a');
		} else {
			return -1;
		}
		if (label > 63)
			return -1;
		out[i] = (char)c;
	}
	out[len] = '\0';
	return label > 0 ? 0 : -1;
}

/* The local part without comments, white space and quote marks,
   lower-cased ("" when longer than RFC 5321 allows). */
static void copy_local(const char *s, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '(') {
			skip_comment(s, len, &i);
			i--;
			continue;
		}
		if (is_ws(s[i]) || s[i] == '"')
			continue;
		if (s[i] == '\\' && i + 1 < len)
			i++;
		if (n + 1 >= MA_LOCAL_MAX) {
			out[0] = '\0';
			return;
		}
		char c = s[i];
		out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[n] = '\0';
}

/*
 * Takes one mailbox (the text between top-level commas, group syntax
 * already removed) and finds its addr-spec's domain: inside <...> when
 * there is an angle-addr, otherwise the whole text without comments.
 */
static void take_mailbox(const char *s, size_t len, struct ma_from *out)
{
	size_t i = 0, start = 0, end = len;
	int angle = 0;

	/* Find a top-level '<' ... '>' */
	for (i = 0; i < len; i++) {
		if (s[i] == '(') {
			skip_comment(s, len, &i);
			i--;
		} else if (s[i] == '"') {
			skip_quoted(s, len, &i);
			i--;
		} else if (s[i] == '<') {
			angle = 1;
			start = i + 1;
			break;
		}
	}
	if (angle) {
		size_t j = start;
		end = len;
		while (j < len && s[j] != '>') {
			if (s[j] == '"') {
				skip_quoted(s, len, &j);
				continue;
			}
			j++;
		}
		end = j;
		/* obsolete route: <@a,@b:user@domain> */
		for (size_t k = start; k < end; k++) {
			if (s[k] == '"') {
				skip_quoted(s, end, &k);
				k--;
				continue;
			}
			if (s[k] == ':') {
				start = k + 1;
				break;
			}
		}
	}

	/* The domain follows the last '@' outside quotes and comments. */
	size_t at = (size_t)-1;
	for (i = start; i < end; i++) {
		if (s[i] == '(') {
			skip_comment(s, end, &i);
			i--;
		} else if (s[i] == '"') {
			skip_quoted(s, end, &i);
			i--;
		} else if (s[i] == '@') {
			at = i;
		}
	}
	int empty = 1;
	for (i = start; i < end; i++)
		if (!is_ws(s[i]))
			empty = 0;
	if (empty && !angle)
		return; /* nothing between two commas: not a mailbox */
	out->mailboxes++;
	if (at == (size_t)-1) {
		out->without_domain++;
		return;
	}
	if (out->mailboxes == 1)
		copy_local(s + start, at - start, out->first_local);
	/* Copy the domain without comments or white space. */
	char dom[MA_DOMAIN_MAX + 1];
	size_t dl = 0;
	for (i = at + 1; i < end; i++) {
		if (s[i] == '(') {
			skip_comment(s, end, &i);
			i--;
			continue;
		}
		if (is_ws(s[i]))
			continue;
		if (dl >= MA_DOMAIN_MAX) {
			out->without_domain++;
			return;
		}
		dom[dl++] = s[i];
	}
	char norm[MA_DOMAIN_MAX];
	if (dl == 0 || dom[0] == '[' || ma_domain_normalize(dom, dl, norm, sizeof(norm)) < 0) {
		out->without_domain++;
		return;
	}
	for (int k = 0; k < out->ndomains; k++)
		if (strcmp(out->domains[k], norm) == 0)
			return;
	if (out->ndomains < MA_FROM_MAX_MAILBOXES)
		memcpy(out->domains[out->ndomains++], norm, strlen(norm) + 1);
}

void ma_from_parse(const char *value, size_t len, struct ma_from *out)
{
	size_t i = 0, item = 0;

	memset(out, 0, sizeof(*out));
	while (i <= len) {
		char c = i < len ? value[i] : ',';
		if (c == '(') {
			skip_comment(value, len, &i);
			continue;
		}
		if (c == '"') {
			skip_quoted(value, len, &i);
			continue;
		}
		if (c == '<') {
			/* commas inside an angle-addr (routes) do not split */
			while (i < len && value[i] != '>') {
				if (value[i] == '"') {
					skip_quoted(value, len, &i);
					continue;
				}
				i++;
			}
			if (i < len)
				i++;
			continue;
		}
		if (c == ':') {
			/* a group's display name ends here: the list starts after it */
			item = i + 1;
			i++;
			continue;
		}
		if (c == ',' || c == ';') {
			take_mailbox(value + item, i - item, out);
			item = i + 1;
		}
		i++;
	}
}

int ma_ar_authserv_id(const char *value, size_t len, char *id, size_t idlen)
{
	size_t i = 0, n = 0;

	/* CFWS before the authserv-id */
	while (i < len) {
		if (is_ws(value[i]))
			i++;
		else if (value[i] == '(')
			skip_comment(value, len, &i);
		else
			break;
	}
	if (i < len && value[i] == '"') {
		for (i++; i < len && value[i] != '"'; i++) {
			char c = value[i];
			if (c == '\\' && i + 1 < len)
				c = value[++i];
			if (n + 1 >= idlen)
				return -1;
			id[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
	} else {
		/* token: up to white space, ';' or a comment */
		for (; i < len; i++) {
			char c = value[i];
			if (is_ws(c) || c == ';' || c == '(' || (unsigned char)c < 0x20)
				break;
			if (n + 1 >= idlen)
				return -1;
			id[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
	}
	id[n] = '\0';
	return n > 0 ? 0 : -1;
}

int ma_dkim_tag(const char *value, size_t len, const char *tag, char *out, size_t outlen)
{
	size_t tl = strlen(tag), i = 0;

	while (i < len) {
		/* start of a tag-spec: skip white space */
		while (i < len && is_ws(value[i]))
			i++;
		size_t name = i;
		while (i < len && value[i] != '=' && value[i] != ';')
			i++;
		size_t name_end = i;
		while (name_end > name && is_ws(value[name_end - 1]))
			name_end--;
		if (i >= len || value[i] == ';') {
			i++;
			continue;
		}
		i++; /* '=' */
		size_t v = i;
		while (i < len && value[i] != ';')
			i++;
		if (name_end - name == tl && memcmp(value + name, tag, tl) == 0) {
			size_t n = 0;
			for (size_t k = v; k < i; k++) {
				if (is_ws(value[k]))
					continue;
				if (n + 1 >= outlen)
					return -1;
				out[n++] = value[k];
			}
			out[n] = '\0';
			return 0;
		}
		i++;
	}
	return -1;
}
