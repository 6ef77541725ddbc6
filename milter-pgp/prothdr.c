#include "config.h"

#include <string.h>
#include <strings.h>

#include "prothdr.h"

/* What the writer composed (RFC 5322 3.6.2-3.6.5), the fields RFC 9788's
   examples protect; Bcc never (it would show the blind recipients to
   every reader), trace and transport fields are not the writer's. */
static const char *const copied[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Message-ID", "In-Reply-To", "References",
	"Subject", "Comments", "Keywords",
};

int mp_prothdr_copied(const char *name)
{
	for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
		if (strcasecmp(name, copied[i]) == 0)
			return 1;
	return 0;
}

static int is_content(const char *name)
{
	return strncasecmp(name, "Content-", 8) == 0;
}

/* Past blanks, folds and (nested) comments from i; never past len (a
   backslash as the last byte of a comment escapes nothing). */
static size_t skip_cfws(const char *s, size_t len, size_t i)
{
	int depth = 0;
	for (; i < len; i++) {
		char c = s[i];
		if (depth > 0 && c == '\\') {
			if (i + 1 < len)
				i++;
		} else if (c == '(') {
			depth++;
		} else if (c == ')' && depth > 0) {
			depth--;
		} else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			break;
		}
	}
	return i;
}

int mp_prothdr_has_hp(const char *s, size_t len)
{
	int quoted = 0, depth = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if ((quoted || depth > 0) && c == '\\') {
			i++;
			continue;
		}
		if (quoted) {
			quoted = c != '"';
			continue;
		}
		if (c == '(') {
			depth++;
			continue;
		}
		if (depth > 0) {
			depth -= c == ')';
			continue;
		}
		if (c == '"') {
			quoted = 1;
			continue;
		}
		if (c != ';')
			continue;
		size_t j = skip_cfws(s, len, i + 1);
		if (j <= len && len - j >= 2 && strncasecmp(s + j, "hp", 2) == 0) {
			size_t k = skip_cfws(s, len, j + 2);
			if (k < len && s[k] == '=')
				return 1;
		}
	}
	return 0;
}

/* "Name:value" with every line end of the value CRLF (its folds kept), no
   line end after it. */
static void put_name_value(struct mw_buf *b, const char *name, const char *value)
{
	mw_buf_puts(b, name);
	mw_buf_putc(b, ':');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			mw_buf_putc(b, '\r');
		mw_buf_putc(b, *p);
	}
}

/* prefix, "Name:value" and CRLF. */
static void put_field(struct mw_buf *b, const char *prefix, const char *name, const char *value)
{
	mw_buf_puts(b, prefix);
	put_name_value(b, name, value);
	mw_buf_puts(b, "\r\n");
}

/* The value, the hp parameter on a line of its own (so no line grows past
   a limit), a semicolon before it unless the value ends with one. */
static void put_ctype(struct mw_buf *b, const char *name, const char *value, const char *hp)
{
	size_t n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' || value[n - 1] == '\n'))
		n--;
	put_name_value(b, name, value);
	mw_buf_printf(b, "%s\r\n hp=\"%s\"\r\n", n > 0 && value[n - 1] == ';' ? "" : ";", hp);
}

enum mp_hp mp_prothdr_entity(struct mw_buf *head, const struct mp_field *f, int n, enum mp_hp hp,
			     const char *subject, int obscure_subject)
{
	const struct mp_field *ct = NULL;
	for (int i = 0; i < n && ct == NULL; i++)
		if (strcasecmp(f[i].name, "Content-Type") == 0)
			ct = &f[i];
	if (ct != NULL && mp_prothdr_has_hp(ct->value, strlen(ct->value)))
		hp = MP_HP_NONE;
	const char *hpv = hp == MP_HP_CIPHER ? "cipher" : "clear";

	if (hp != MP_HP_NONE && ct == NULL)
		put_ctype(head, "Content-Type", " text/plain; charset=us-ascii", hpv);
	for (int i = 0; i < n; i++) {
		if (!is_content(f[i].name))
			continue;
		if (hp != MP_HP_NONE && &f[i] == ct)
			put_ctype(head, f[i].name, f[i].value, hpv);
		else
			put_field(head, "", f[i].name, f[i].value);
	}
	if (hp != MP_HP_NONE) {
		/* the copies, then (encrypted) what the outside shows of them */
		for (int pass = 0; pass < (hp == MP_HP_CIPHER ? 2 : 1); pass++) {
			int subjects = 0;
			for (int i = 0; i < n; i++) {
				if (!mp_prothdr_copied(f[i].name))
					continue;
				const char *v = f[i].value;
				if (strcasecmp(f[i].name, "Subject") == 0) {
					if (subjects++ == 0 && subject != NULL)
						v = subject;
					if (pass == 1 && obscure_subject)
						v = " " MP_PROTHDR_OBSCURED_SUBJECT;
				}
				put_field(head, pass == 0 ? "" : "HP-Outer: ", f[i].name, v);
			}
		}
	}
	mw_buf_puts(head, "\r\n");
	return hp;
}
