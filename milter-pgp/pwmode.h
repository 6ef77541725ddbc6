/*
 * pwmode: password-encrypted envelopes for recipients without a key (the
 * milter side; the crypto is pem.h). What a message asks for (a password
 * header, a Subject tag), and the messages built around it: the envelope
 * (an explanation in text and HTML from templates, message.html and
 * message.asc attached) and the notice that carries a generated password
 * to the sender.
 *
 * Templates are files read once at configuration load (mp_pw_templates_load)
 * and kept in memory: a message costs no template I/O, and a missing file
 * stops startup. Placeholders: {{sender}}, {{subject}}, {{recipients}},
 * {{password}} (notice only) and {{hint}}; a line holding {{hint}} is left
 * out when the message has no hint. In the HTML template every value is
 * escaped.
 *
 * Passwords: the caller owns them; mp_pw_free() wipes before freeing. No
 * function here logs or stores a password; buffers that held one are wiped.
 */
#ifndef MP_PWMODE_H
#define MP_PWMODE_H

#include <stddef.h>

#include "buf.h"

#define MP_PW_MAX_TEMPLATE (64 * 1024)
#define MP_PW_MAX_PASSWORD 4096

enum mp_pw_source { MP_PW_NONE, MP_PW_HEADER, MP_PW_GENERATED };

struct mp_pw_templates {
	char *body_txt;     /* body.txt: the envelope's text part */
	char *body_html;    /* body.html: its HTML part */
	char *password_txt; /* password.txt: "Subject: ..." line, blank line, the notice */
};

/* dir/lang/{body.txt,body.html,password.txt}: 0, or -1 with err. */
int mp_pw_templates_load(const char *dir, const char *lang, struct mp_pw_templates *t, struct mw_buf *err);
void mp_pw_templates_free(struct mp_pw_templates *t);

/* The password in a header value: without the leading and trailing blanks
   and line ends, RFC 2047 encoded words (UTF-8, US-ASCII) decoded when the
   value is made of them alone; NULL when empty or longer than
   MP_PW_MAX_PASSWORD. */
char *mp_pw_from_header(const char *value);
/* Wipes and frees (NULL is fine). */
void mp_pw_free(char *password);

/* 1 when subject holds tag (ASCII case ignored): out gets the subject
   without it (and without the blank after it); 0 when not. */
int mp_pw_subject_untag(const char *subject, const char *tag, struct mw_buf *out);

/* What the templates are filled with (values as in the message, unfolded). */
struct mp_pw_fill {
	const char *sender;
	const char *subject;
	const char *recipients; /* ", " between them */
	const char *hint;       /* NULL or "": none */
	const char *password;   /* the notice only */
};

/* tpl with the placeholders filled, html: escaped for HTML. */
void mp_pw_fill_template(const char *tpl, const struct mp_pw_fill *f, int html, struct mw_buf *out);

/*
 * The envelope's body (what follows the header): multipart/mixed with the
 * explanation (multipart/alternative, text and HTML) then message.html
 * (html_fd) and message.asc (asc_fd, armored), both from offset 0, written
 * to out_fd. ctype gets the value of its Content-Type field (leading blank,
 * folded). 0, or -1 with errno.
 */
int mp_pw_envelope_write(const struct mp_pw_templates *tpl, const struct mp_pw_fill *f, int html_fd, int asc_fd,
			 int out_fd, struct mw_buf *ctype);

/*
 * The whole notice message to the sender (header and body, CRLF) into out,
 * which the caller wipes (mw_buf_wipe): it holds the password.
 */
void mp_pw_notice(const struct mp_pw_templates *tpl, const struct mp_pw_fill *f, struct mw_buf *out);

#endif
