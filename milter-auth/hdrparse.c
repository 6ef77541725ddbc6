#include "config.h"

#include <ctype.h>
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

/* ------------------------------------------------------------ From */

/*
 * The From field as RFC 5322 3.4 defines it (address-list, for RFC 6854
 * groups), obsolete forms of 4.4 included: a lexer that skips CFWS and
 * yields words and specials, and a recursive-descent parser over it that
 * stops at the first error. Nothing is guessed: a field is either exactly
 * one mailbox or an error, so no two readers (we and the recipient's mail
 * program) can disagree about whose domain it names.
 */

enum tok_type {
	T_END, T_ERR, T_ATOM, T_QSTR, T_EWORD, T_DLIT,
	T_LT = '<', T_GT = '>', T_AT = '@', T_COMMA = ',', T_SEMI = ';', T_COLON = ':', T_DOT = '.',
};

struct lexer {
	const char *s;
	size_t len, i;
	int type;            /* the current token */
	size_t start, end;   /* its text (a quoted string with its quotes) */
	const char *error;
};

static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Control characters other than folding white space (NUL among them) are
   refused everywhere. */
static int is_bad_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

/* An RFC 2047 encoded word at s[i] ("=?charset?Q?text?=" or ...?B?...),
   held to a form every reader ends at the same place (valid =XX escapes,
   whole base64 quanta): its end, or 0 when there is none (then the "=?"
   is refused). */
static size_t encoded_word_end(const char *s, size_t len, size_t i)
{
	size_t j = i + 2, k;
	if (len - i < 2 || s[i] != '=' || s[i + 1] != '?')
		return 0;
	for (k = j; k < len && is_atext((unsigned char)s[k]) && (unsigned char)s[k] < 0x80 &&
		    s[k] != '?' && s[k] != '=' && s[k] != '/'; k++)
		;
	if (k == j || k + 3 >= len || s[k] != '?' || s[k + 2] != '?')
		return 0;
	char enc = s[k + 1];
	if (enc != 'q' && enc != 'Q' && enc != 'b' && enc != 'B')
		return 0;
	j = k + 3;
	size_t pad = 0;
	for (k = j; k < len; k++) {
		char c = s[k];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (enc == 'q' || enc == 'Q') {
			if (c == '=' && !(k + 2 < len && isxdigit((unsigned char)s[k + 1]) &&
					  isxdigit((unsigned char)s[k + 2])))
				return 0; /* readers disagree on where such a word ends */
			if (c <= ' ' || c >= 0x7f || c == '?')
				break;
		} else if (c == '=') {
			pad++;
		} else if (pad > 0 || (!alnum && c != '+' && c != '/')) {
			break;
		}
	}
	if ((enc == 'b' || enc == 'B') && ((k - j) % 4 != 0 || pad > 2))
		return 0;
	if (k + 1 >= len || s[k] != '?' || s[k + 1] != '=')
		return 0;
	k += 2;
	if (k < len && is_atext((unsigned char)s[k]))
		return 0; /* "=?a?q?b?=c" is not an encoded word */
	return k;
}

/* A line break is only allowed as part of a fold: CR LF (or the bare LF
   MTAs pass) followed by white space, or at the very end. */
static int fold_ok(const char *s, size_t len, size_t i)
{
	if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
		return 0;
	if (s[i] == '\r')
		i++;
	return i + 1 >= len || s[i + 1] == ' ' || s[i + 1] == '\t';
}

/* Some readers (Python's email package) decode an encoded word inside a
   quoted string too, from "=?" to the next "?=" wherever it is: 1 when
   such a "?=" lies past the string's closing quote (at end - 1). */
static int quoted_ew_escapes(const char *s, size_t len, size_t start, size_t end)
{
	for (size_t k = start + 1; k + 1 < end - 1; k++) {
		if (s[k] != '=' || s[k + 1] != '?')
			continue;
		const char *q = memmem(s + k + 2, len - (k + 2), "?=", 2);
		if (q != NULL && (size_t)(q - s) + 2 > end - 1)
			return 1;
	}
	return 0;
}

static void lex_fail(struct lexer *x, const char *why)
{
	x->type = T_ERR;
	if (x->error == NULL)
		x->error = why;
}

/* Skips white space and (nested) comments; 0, or -1 on an error. */
static int skip_cfws(struct lexer *x)
{
	while (x->i < x->len) {
		unsigned char c = (unsigned char)x->s[x->i];
		if ((c == '\r' || c == '\n') && !fold_ok(x->s, x->len, x->i)) {
			lex_fail(x, "line break in the From field");
			return -1;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			x->i++;
			continue;
		}
		if (c != '(')
			return 0;
		int depth = 0;
		do {
			c = (unsigned char)x->s[x->i];
			if (is_bad_ctl(c) || ((c == '\r' || c == '\n') && !fold_ok(x->s, x->len, x->i))) {
				lex_fail(x, "control character in a comment");
				return -1;
			}
			if (c == '\\') {
				if (x->i + 1 >= x->len || x->s[x->i + 1] == '\0') {
					lex_fail(x, "unterminated comment");
					return -1;
				}
				x->i++;
			} else if (c == '(') {
				depth++;
			} else if (c == ')') {
				depth--;
			}
			x->i++;
		} while (depth > 0 && x->i < x->len);
		if (depth > 0) {
			lex_fail(x, "unterminated comment");
			return -1;
		}
	}
	return 0;
}

/* Reads the next token into x->type, start, end. */
static void lex(struct lexer *x)
{
	if (x->type == T_ERR || skip_cfws(x) < 0)
		return;
	x->start = x->i;
	if (x->i >= x->len) {
		x->type = T_END;
		return;
	}
	unsigned char c = (unsigned char)x->s[x->i];
	size_t ew;
	if ((ew = encoded_word_end(x->s, x->len, x->i)) != 0) {
		x->type = T_EWORD;
		x->i = ew;
	} else if (is_atext(c)) {
		while (x->i < x->len && is_atext((unsigned char)x->s[x->i]))
			x->i++;
		x->type = T_ATOM;
		/* Mail readers decode "=?" up to the next "?=", across white space
		   and specials: a broken encoded word could hide a different
		   address from them than the one we see. */
		if (memmem(x->s + x->start, x->i - x->start, "=?", 2) != NULL) {
			lex_fail(x, "malformed encoded word");
			return;
		}
	} else if (c == '"' || c == '[') {
		unsigned char close = c == '"' ? '"' : ']';
		x->type = c == '"' ? T_QSTR : T_DLIT;
		for (x->i++;; x->i++) {
			if (x->i >= x->len) {
				lex_fail(x, c == '"' ? "unterminated quoted string" : "unterminated domain literal");
				return;
			}
			c = (unsigned char)x->s[x->i];
			if (is_bad_ctl(c) || ((c == '\r' || c == '\n') && !fold_ok(x->s, x->len, x->i))) {
				lex_fail(x, "control character in a quoted string");
				return;
			}
			if (c == '\\') {
				if (x->i + 1 >= x->len || is_bad_ctl((unsigned char)x->s[x->i + 1])) {
					lex_fail(x, "bad quoted pair");
					return;
				}
				x->i++;
			} else if (c == close) {
				x->i++;
				if (close == '"' && quoted_ew_escapes(x->s, x->len, x->start, x->i)) {
					lex_fail(x, "encoded word running out of a quoted string");
					return;
				}
				break;
			} else if (close == ']' && c == '[') {
				lex_fail(x, "'[' inside a domain literal");
				return;
			}
		}
	} else if (strchr("<>@,;:.", c) != NULL && c != '\0') {
		x->type = c;
		x->i++;
	} else {
		lex_fail(x, c == '\0' ? "NUL in the From field" :
			    is_bad_ctl(c) ? "control character in the From field" :
			    "unexpected character in the From field");
		return;
	}
	x->end = x->i;
}

static int is_word(int type)
{
	return type == T_ATOM || type == T_QSTR || type == T_EWORD;
}

struct from_parser {
	struct lexer x;
	struct ma_from *out;
	char local[MA_LOCAL_MAX];  /* the local part being read */
	size_t local_len;
	char domain[MA_DOMAIN_MAX + 1];
	size_t domain_len;
};

static int fail(struct from_parser *p, const char *why)
{
	lex_fail(&p->x, why);
	return -1;
}

/* Appends the current word (unquoted) to the local part being read. */
static void local_append(struct from_parser *p, int dot)
{
	const struct lexer *x = &p->x;
	if (dot) {
		if (p->local_len + 1 < sizeof(p->local))
			p->local[p->local_len++] = '.';
		return;
	}
	size_t a = x->start, b = x->end;
	if (x->type == T_QSTR) {
		a++;
		b--;
	}
	for (size_t k = a; k < b; k++) {
		char c = x->s[k];
		if (c == '\r' || c == '\n')
			continue; /* a fold */
		if (c == '\\' && x->type == T_QSTR)
			c = x->s[++k];
		if (p->local_len + 1 < sizeof(p->local))
			p->local[p->local_len++] = c;
	}
}

/* domain = dot-atom / obs-domain, after the '@'. */
static int parse_domain(struct from_parser *p)
{
	struct lexer *x = &p->x;
	p->domain_len = 0;
	if (x->type == T_DLIT)
		return fail(p, "domain literal instead of a domain name");
	for (;;) {
		if (x->type != T_ATOM)
			return fail(p, "bad domain");
		size_t n = x->end - x->start;
		if (p->domain_len + n + 1 > MA_DOMAIN_MAX)
			return fail(p, "domain too long");
		memcpy(p->domain + p->domain_len, x->s + x->start, n);
		p->domain_len += n;
		lex(x);
		if (x->type != T_DOT)
			return 0;
		p->domain[p->domain_len++] = '.';
		lex(x);
	}
}

/* The mailbox is complete: count it, and keep it if it is the first. */
static int take_mailbox(struct from_parser *p)
{
	struct ma_from *o = p->out;
	if (o->mailboxes++ > 0)
		return 0;
	p->local[p->local_len] = '\0';
	memcpy(o->local, p->local, p->local_len + 1);
	/* ma_domain_normalize would drop a trailing dot: the grammar has none */
	int hyphen_edge = 0;
	for (size_t k = 0; k < p->domain_len; k++)
		if (p->domain[k] == '-' && (k == 0 || k + 1 == p->domain_len || p->domain[k - 1] == '.' ||
					    p->domain[k + 1] == '.'))
			hyphen_edge = 1;
	if (hyphen_edge || ma_domain_normalize(p->domain, p->domain_len, o->domain, sizeof(o->domain)) < 0 ||
	    memchr(p->domain, '.', p->domain_len) == NULL) {
		o->domain[0] = '\0';
		if (memchr(p->domain, '.', p->domain_len) == NULL && p->domain_len > 0)
			return fail(p, "single-label domain");
		return fail(p, "bad domain");
	}
	return 0;
}

/* addr-spec after a run of words and dots (already in p->local) and the
   current token '@'. */
static int finish_addr_spec(struct from_parser *p)
{
	lex(&p->x);
	return parse_domain(p);
}

/*
 * Reads a run of words and dots (a phrase, or a local part: which one the
 * token after it tells). Returns the run's shape: 0 for an empty run, else
 * 4, plus 1 when it is a valid local part (word *("." word)), plus 2 when
 * a valid phrase (starts with a word).
 */
static int read_run(struct from_parser *p, int *words)
{
	struct lexer *x = &p->x;
	int local_ok = 1, last_dot = 1, n = 0, first = T_END;
	p->local_len = 0;
	*words = 0;
	while (is_word(x->type) || x->type == T_DOT) {
		if (x->type == T_DOT) {
			if (last_dot)
				local_ok = 0; /* leading or doubled dot */
			last_dot = 1;
			local_append(p, 1);
		} else {
			if (!last_dot || x->type == T_EWORD)
				local_ok = 0; /* two words without a dot, or an encoded word */
			last_dot = 0;
			local_append(p, 0);
			(*words)++;
		}
		if (n++ == 0)
			first = x->type;
		lex(x);
	}
	if (n == 0)
		return 0;
	if (last_dot)
		local_ok = 0;
	return 4 | (local_ok ? 1 : 0) | (is_word(first) ? 2 : 0);
}

/* angle-addr after '<': [obs-route] addr-spec '>'. */
static int parse_angle(struct from_parser *p)
{
	struct lexer *x = &p->x;
	lex(x);
	if (x->type == T_COMMA || x->type == T_AT) {
		/* obs-route: *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]) ":" */
		while (x->type == T_COMMA)
			lex(x);
		if (x->type != T_AT)
			return fail(p, "bad route");
		lex(x);
		if (parse_domain(p) < 0)
			return -1;
		while (x->type == T_COMMA) {
			lex(x);
			if (x->type == T_AT) {
				lex(x);
				if (parse_domain(p) < 0)
					return -1;
			}
		}
		if (x->type != T_COLON)
			return fail(p, "bad route");
		lex(x);
	}
	int words;
	if (!(read_run(p, &words) & 1) || x->type != T_AT)
		return fail(p, x->type == T_GT ? "no address between < and >" : "bad address");
	if (finish_addr_spec(p) < 0)
		return -1;
	if (x->type != T_GT)
		return fail(p, "bad address");
	lex(x);
	return take_mailbox(p);
}

/* One mailbox, or a group when allowed (not inside another group). */
static int parse_item(struct from_parser *p, int in_group)
{
	struct lexer *x = &p->x;
	int words, shape = read_run(p, &words);
	if (x->type == T_LT)
		return (shape == 0 || (shape & 2)) ? parse_angle(p) : fail(p, "bad display name");
	if (x->type == T_AT) {
		if (!(shape & 1))
			return fail(p, shape == 0 ? "no local part" : "bad local part");
		if (finish_addr_spec(p) < 0)
			return -1;
		return take_mailbox(p);
	}
	if (x->type == T_COLON && !in_group && (shape & 2)) {
		/* group = display-name ":" [group-list] ";" [CFWS] */
		lex(x);
		for (;;) {
			while (x->type == T_COMMA)
				lex(x);
			if (x->type == T_SEMI)
				break;
			if (parse_item(p, 1) < 0)
				return -1;
			if (x->type != T_COMMA && x->type != T_SEMI)
				return fail(p, "bad group");
		}
		lex(x);
		return 0;
	}
	return fail(p, x->type == T_END && shape == 0 ? "no mailbox" : "not a mailbox");
}

int ma_from_parse(const char *value, size_t len, struct ma_from *out)
{
	struct from_parser p;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	p.x.s = value;
	p.x.len = len;
	p.out = out;
	lex(&p.x);
	/* mailbox-list, with the obsolete empty elements (", ,") */
	while (p.x.type != T_END && p.x.type != T_ERR) {
		if (p.x.type == T_COMMA) {
			lex(&p.x);
			continue;
		}
		if (parse_item(&p, 0) < 0)
			break;
		if (p.x.type != T_COMMA && p.x.type != T_END)
			fail(&p, "text after the mailbox");
	}
	if (p.x.type == T_ERR) {
		out->error = p.x.error;
	} else if (out->mailboxes == 0) {
		out->error = "no mailbox";
	} else if (out->mailboxes > 1) {
		out->error = "several mailboxes";
	}
	if (out->error != NULL) {
		out->domain[0] = '\0';
		out->local[0] = '\0';
		return -1;
	}
	return 0;
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
