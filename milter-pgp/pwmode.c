#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "pwmode.h"
#include "sock.h"

/* the prefix of the boundaries of the envelope and of the notice's Message-ID */
#define PW_BOUNDARY "=-mailward-pw-"

/* ------------------------------------------------------------ templates */

static char *read_template(const char *dir, const char *lang, const char *name, struct mw_buf *err)
{
	struct mw_buf path = MW_BUF_INIT;
	mw_buf_printf(&path, "%s/%s/%s", dir, lang, name);
	int fd = open(path.data, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text = NULL;
	if (fd < 0 || fstat(fd, &st) < 0) {
		mw_buf_printf(err, "%s: %s", path.data, strerror(errno));
	} else if (!S_ISREG(st.st_mode) || st.st_size > MP_PW_MAX_TEMPLATE) {
		mw_buf_printf(err, "%s: not a file of at most %d bytes", path.data, MP_PW_MAX_TEMPLATE);
	} else {
		text = mw_xmalloc((size_t)st.st_size + 1);
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		text[got] = '\0';
		if (got != (size_t)st.st_size || strlen(text) != got) {
			mw_buf_printf(err, "%s: cannot read it whole (or it holds a NUL byte)", path.data);
			free(text);
			text = NULL;
		}
	}
	if (fd >= 0)
		close(fd);
	mw_buf_free(&path);
	return text;
}

int mp_pw_templates_load(const char *dir, const char *lang, struct mp_pw_templates *t, struct mw_buf *err)
{
	memset(t, 0, sizeof(*t));
	if (strchr(lang, '/') != NULL || strcmp(lang, "..") == 0 || lang[0] == '\0') {
		mw_buf_printf(err, "%s: not a language name", lang);
		return -1;
	}
	if ((t->body_txt = read_template(dir, lang, "body.txt", err)) == NULL ||
	    (t->body_html = read_template(dir, lang, "body.html", err)) == NULL ||
	    (t->password_txt = read_template(dir, lang, "password.txt", err)) == NULL) {
		mp_pw_templates_free(t);
		return -1;
	}
	if (strncmp(t->password_txt, "Subject:", 8) != 0) {
		mw_buf_printf(err, "%s/%s/password.txt: its first line must be \"Subject: ...\"", dir, lang);
		mp_pw_templates_free(t);
		return -1;
	}
	return 0;
}

void mp_pw_templates_free(struct mp_pw_templates *t)
{
	free(t->body_txt);
	free(t->body_html);
	free(t->password_txt);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------ passwords */

static const char b64chars_dec[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int b64val(int c)
{
	const char *p = c != '\0' ? strchr(b64chars_dec, c) : NULL;
	return p != NULL ? (int)(p - b64chars_dec) : -1;
}

/* One RFC 2047 encoded word "=?charset?B|Q?text?=" of UTF-8 or US-ASCII at
   *pp (up to end) appended to out (decoded); 0, or -1 when it is not one. */
static int encoded_word(const char **pp, const char *end, char *out, size_t *o, size_t max)
{
	const char *p = *pp;
	if (end - p < 8 || p[0] != '=' || p[1] != '?')
		return -1;
	const char *cs = p + 2, *q = memchr(cs, '?', (size_t)(end - cs));
	if (q == NULL || end - q < 4 || q[2] != '?')
		return -1;
	size_t cl = (size_t)(q - cs);
	const char *star = memchr(cs, '*', cl); /* RFC 2231 language */
	if (star != NULL)
		cl = (size_t)(star - cs);
	if (!((cl == 5 && strncasecmp(cs, "utf-8", 5) == 0) || (cl == 8 && strncasecmp(cs, "us-ascii", 8) == 0)))
		return -1;
	int enc = q[1] == 'B' || q[1] == 'b' ? 'B' : q[1] == 'Q' || q[1] == 'q' ? 'Q' : 0;
	const char *t = q + 3, *te = NULL;
	for (const char *x = t; x + 1 < end; x++)
		if (x[0] == '?' && x[1] == '=') {
			te = x;
			break;
		}
	if (enc == 0 || te == NULL)
		return -1;
	unsigned acc = 0;
	int bits = 0;
	for (const char *x = t; x < te; x++) {
		int c;
		if (enc == 'Q') {
			if (*x == '_') {
				c = ' ';
			} else if (*x == '=') {
				if (te - x < 3 || hexval(x[1]) < 0 || hexval(x[2]) < 0)
					return -1;
				c = hexval(x[1]) * 16 + hexval(x[2]);
				x += 2;
			} else {
				c = (unsigned char)*x;
			}
		} else {
			if (*x == '=')
				break;
			int v = b64val(*x);
			if (v < 0)
				return -1;
			acc = (acc << 6) | (unsigned)v;
			bits += 6;
			if (bits < 8)
				continue;
			bits -= 8;
			c = (int)((acc >> bits) & 0xff);
		}
		if (*o + 1 >= max)
			return -1;
		out[(*o)++] = (char)c;
	}
	*pp = te + 2;
	return 0;
}

char *mp_pw_from_header(const char *value)
{
	const char *b = value, *e = value + strlen(value);
	while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	if (e == b || e - b > MP_PW_MAX_PASSWORD)
		return NULL;
	/* a mail program may send a non-ASCII password as RFC 2047 encoded
	   words (UTF-8): the password is what they encode. A value that is
	   not made of encoded words alone is taken as it is. */
	if (e - b >= 8 && b[0] == '=' && b[1] == '?') {
		char *out = mw_xmalloc((size_t)(e - b) + 1);
		size_t o = 0;
		const char *p = b;
		int ok = 1;
		while (ok && p < e) {
			ok = encoded_word(&p, e, out, &o, (size_t)(e - b) + 1) == 0;
			while (ok && p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
				p++; /* blanks between encoded words do not count */
		}
		out[o] = '\0';
		if (ok && o > 0 && strlen(out) == o)
			return out;
		explicit_bzero(out, (size_t)(e - b) + 1);
		free(out);
	}
	return mw_xstrndup(b, (size_t)(e - b));
}

void mp_pw_free(char *password)
{
	if (password == NULL)
		return;
	explicit_bzero(password, strlen(password));
	free(password);
}

int mp_pw_subject_untag(const char *subject, const char *tag, struct mw_buf *out)
{
	size_t tl = strlen(tag);
	const char *p = NULL;
	if (tl == 0)
		return 0;
	for (const char *q = subject; *q != '\0' && p == NULL; q++)
		if (strncasecmp(q, tag, tl) == 0)
			p = q;
	if (p == NULL)
		return 0;
	/* "[secure] Hello" and "Re: [secure] Hello" lose the tag and one blank */
	const char *lb = subject, *le = p, *rb = p + tl;
	while (lb < le && (*lb == ' ' || *lb == '\t'))
		lb++;
	while (le > lb && (le[-1] == ' ' || le[-1] == '\t'))
		le--;
	while (*rb == ' ' || *rb == '\t')
		rb++;
	const char *re = rb + strlen(rb);
	while (re > rb && (re[-1] == ' ' || re[-1] == '\t' || re[-1] == '\r' || re[-1] == '\n'))
		re--;
	if (subject[0] == ' ' || subject[0] == '\t')
		mw_buf_putc(out, ' '); /* the blank after the colon, as the field had it */
	mw_buf_append(out, lb, (size_t)(le - lb));
	if (le > lb && re > rb)
		mw_buf_putc(out, ' ');
	mw_buf_append(out, rb, (size_t)(re - rb));
	return 1;
}

/* ------------------------------------------------------------ filling */

static void put_value(struct mw_buf *out, const char *v, int html)
{
	for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			continue; /* unfold */
		if (!html) {
			mw_buf_putc(out, *p);
			continue;
		}
		switch (*p) {
		case '<': mw_buf_puts(out, "&lt;"); break;
		case '>': mw_buf_puts(out, "&gt;"); break;
		case '&': mw_buf_puts(out, "&amp;"); break;
		case '"': mw_buf_puts(out, "&quot;"); break;
		case '\'': mw_buf_puts(out, "&#39;"); break;
		default: mw_buf_putc(out, *p);
		}
	}
}

void mp_pw_fill_template(const char *tpl, const struct mp_pw_fill *f, int html, struct mw_buf *out)
{
	int has_hint = f->hint != NULL && f->hint[0] != '\0';
	const char *line = tpl;
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		size_t n = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
		if (!has_hint && memmem(line, n, "{{hint}}", 8) != NULL) {
			line += n;
			continue;
		}
		for (size_t i = 0; i < n;) {
			static const char *const names[] = { "sender", "subject", "recipients", "hint", "password" };
			const char *values[] = { f->sender, f->subject, f->recipients, f->hint, f->password };
			size_t k;
			for (k = 0; k < 5; k++) {
				size_t l = strlen(names[k]);
				if (i + l + 4 <= n && strncmp(line + i, "{{", 2) == 0 &&
				    strncmp(line + i + 2, names[k], l) == 0 && strncmp(line + i + 2 + l, "}}", 2) == 0) {
					put_value(out, values[k], html);
					i += l + 4;
					break;
				}
			}
			if (k == 5)
				mw_buf_putc(out, line[i++]);
		}
		line += n;
	}
}

/* ------------------------------------------------------------ MIME */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 in lines of 76 with CRLF; state carries up to 2 bytes and the
   column between calls. */
struct b64 {
	unsigned char rest[3];
	int nrest;
	int col;
};

static void b64_quad(struct b64 *s, const unsigned char *in, int n, struct mw_buf *out)
{
	char q[4];
	q[0] = b64chars[in[0] >> 2];
	q[1] = b64chars[((in[0] & 3) << 4) | (n > 1 ? in[1] >> 4 : 0)];
	q[2] = n > 1 ? b64chars[((in[1] & 15) << 2) | (n > 2 ? in[2] >> 6 : 0)] : '=';
	q[3] = n > 2 ? b64chars[in[2] & 63] : '=';
	mw_buf_append(out, q, 4);
	s->col += 4;
	if (s->col >= 76) {
		mw_buf_puts(out, "\r\n");
		s->col = 0;
	}
}

static void b64_update(struct b64 *s, const void *data, size_t len, struct mw_buf *out)
{
	const unsigned char *p = data;
	while (len > 0) {
		s->rest[s->nrest++] = *p++;
		len--;
		if (s->nrest == 3) {
			b64_quad(s, s->rest, 3, out);
			s->nrest = 0;
		}
	}
}

static void b64_final(struct b64 *s, struct mw_buf *out)
{
	if (s->nrest > 0)
		b64_quad(s, s->rest, s->nrest, out);
	if (s->col > 0)
		mw_buf_puts(out, "\r\n");
	s->nrest = 0;
	s->col = 0;
}

struct fd_b64 {
	struct b64 st;
	struct mw_buf chunk;
	int out_fd;
};

static int put_b64_fd(struct fd_b64 *c, const void *data, size_t len)
{
	mw_buf_reset(&c->chunk);
	b64_update(&c->st, data, len, &c->chunk);
	return mw_sock_write_all(c->out_fd, c->chunk.data != NULL ? c->chunk.data : "", mw_buf_len(&c->chunk));
}

/* Reads fd from offset 0, base64 to out_fd; crlf: turn bare LF into CRLF
   (armor), base64: encode. */
static int copy_fd(int in_fd, int out_fd, int base64)
{
	char buf[65536];
	struct fd_b64 c = { { { 0 }, 0, 0 }, MW_BUF_INIT, out_fd };
	int prev_cr = 0, r = 0;
	if (lseek(in_fd, 0, SEEK_SET) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(in_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -1;
			break;
		}
		if (n == 0)
			break;
		if (base64) {
			if (put_b64_fd(&c, buf, (size_t)n) < 0) {
				r = -1;
				break;
			}
			continue;
		}
		char out[2 * sizeof(buf)];
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && !prev_cr)
				out[o++] = '\r';
			out[o++] = buf[i];
			prev_cr = buf[i] == '\r';
		}
		if (mw_sock_write_all(out_fd, out, o) < 0) {
			r = -1;
			break;
		}
	}
	if (r == 0 && base64) {
		mw_buf_reset(&c.chunk);
		b64_final(&c.st, &c.chunk);
		r = mw_sock_write_all(out_fd, c.chunk.data != NULL ? c.chunk.data : "", mw_buf_len(&c.chunk));
	}
	mw_buf_free(&c.chunk);
	return r;
}

/* A text part, base64 (the templates may hold any UTF-8, lines of any length). */
static void text_part(struct mw_buf *b, const char *boundary, const char *type, const char *text)
{
	struct b64 st = { { 0 }, 0, 0 };
	mw_buf_printf(b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		      boundary, type);
	/* the template's line ends as CRLF */
	struct mw_buf crlf = MW_BUF_INIT;
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\n' && (p == text || p[-1] != '\r'))
			mw_buf_putc(&crlf, '\r');
		mw_buf_putc(&crlf, *p);
	}
	b64_update(&st, mw_buf_str(&crlf), mw_buf_len(&crlf), b);
	b64_final(&st, b);
	mw_buf_free(&crlf);
}

int mp_pw_envelope_write(const struct mp_pw_templates *tpl, const struct mp_pw_fill *f, int html_fd, int asc_fd,
			 int out_fd, struct mw_buf *ctype)
{
	char outer[64], alt[64];
	mp_mime_boundary(PW_BOUNDARY, outer, sizeof(outer));
	mp_mime_boundary(PW_BOUNDARY, alt, sizeof(alt));
	struct mw_buf b = MW_BUF_INIT, text = MW_BUF_INIT;
	mw_buf_printf(&b, "This is a password-encrypted message in MIME format.\r\n\r\n"
		      "--%s\r\nContent-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", outer, alt);
	mp_pw_fill_template(tpl->body_txt, f, 0, &text);
	text_part(&b, alt, "text/plain", mw_buf_str(&text));
	mw_buf_reset(&text);
	mp_pw_fill_template(tpl->body_html, f, 1, &text);
	text_part(&b, alt, "text/html", mw_buf_str(&text));
	mw_buf_printf(&b, "--%s--\r\n\r\n--%s\r\nContent-Type: text/html; charset=utf-8; name=\"message.html\"\r\n"
		      "Content-Disposition: attachment; filename=\"message.html\"\r\n"
		      "Content-Transfer-Encoding: base64\r\n\r\n", alt, outer);
	int ok = !mw_buf_failed(&b) && mw_sock_write_all(out_fd, b.data, mw_buf_len(&b)) == 0 &&
		 copy_fd(html_fd, out_fd, 1) == 0;
	mw_buf_reset(&b);
	mw_buf_printf(&b, "\r\n--%s\r\nContent-Type: application/octet-stream; name=\"message.asc\"\r\n"
		      "Content-Description: OpenPGP password-encrypted message\r\n"
		      "Content-Disposition: attachment; filename=\"message.asc\"\r\n"
		      "Content-Transfer-Encoding: 7bit\r\n\r\n", outer);
	ok = ok && mw_sock_write_all(out_fd, b.data, mw_buf_len(&b)) == 0 && copy_fd(asc_fd, out_fd, 0) == 0;
	mw_buf_reset(&b);
	mw_buf_printf(&b, "\r\n--%s--\r\n", outer);
	ok = ok && mw_sock_write_all(out_fd, b.data, mw_buf_len(&b)) == 0;
	mw_buf_printf(ctype, " multipart/mixed;\n\tboundary=\"%s\"", outer);
	mw_buf_free(&b);
	mw_buf_free(&text);
	return ok ? 0 : -1;
}

/* Grows b to hold at least n bytes without moving later, so that no copy
   of a secret is left behind in freed memory by a realloc. */
static void reserve_secret(struct mw_buf *b, size_t n)
{
	char *z = mw_xcalloc(1, n);
	mw_buf_append(b, z, n);
	mw_buf_truncate(b, 0);
	free(z);
}

void mp_pw_notice(const struct mp_pw_templates *tpl, const struct mp_pw_fill *f, struct mw_buf *out)
{
	size_t bound = 2 * (strlen(tpl->password_txt) + 8 * (strlen(f->password) + strlen(f->sender) + 1) +
			    strlen(f->subject != NULL ? f->subject : "") + strlen(f->recipients != NULL ? f->recipients : "") +
			    strlen(f->hint != NULL ? f->hint : "")) + 4096;
	struct mw_buf text;
	mw_buf_init(&text, 0);
	reserve_secret(&text, bound);
	reserve_secret(out, 2 * bound);
	mp_pw_fill_template(tpl->password_txt, f, 0, &text);
	/* the first line is the Subject */
	const char *t = mw_buf_str(&text);
	const char *nl = strchr(t, '\n');
	size_t subj_len = nl != NULL ? (size_t)(nl - t) : strlen(t);
	if (subj_len > 0 && t[subj_len - 1] == '\r')
		subj_len--;
	const char *body = nl != NULL ? nl + 1 : "";
	if (*body == '\r')
		body++;
	if (*body == '\n')
		body++;

	char date[64], id[64];
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	mp_mime_boundary(PW_BOUNDARY, id, sizeof(id));
	const char *at = strrchr(f->sender, '@');
	mw_buf_puts(out, "From: <");
	put_value(out, f->sender, 0);
	mw_buf_puts(out, ">\r\nTo: <");
	put_value(out, f->sender, 0);
	mw_buf_puts(out, ">\r\n");
	/* the template's Subject line is UTF-8: RFC 2047, one encoded word per 45 bytes */
	mw_buf_puts(out, "Subject:");
	const char *sv = t + 8;
	size_t sl = subj_len - 8;
	while (sl > 0 && *sv == ' ') {
		sv++;
		sl--;
	}
	for (size_t i = 0; i < sl; i += 45) {
		struct b64 st = { { 0 }, 0, 0 };
		mw_buf_puts(out, i == 0 ? " =?UTF-8?B?" : "\r\n =?UTF-8?B?");
		b64_update(&st, sv + i, sl - i < 45 ? sl - i : 45, out);
		if (st.nrest > 0)
			b64_quad(&st, st.rest, st.nrest, out);
		mw_buf_puts(out, "?=");
	}
	mw_buf_printf(out, "\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-generated\r\n"
		      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		      "Content-Transfer-Encoding: base64\r\n\r\n", date, id + 2, at != NULL ? at + 1 : "localhost");
	struct mw_buf crlf;
	mw_buf_init(&crlf, 0);
	reserve_secret(&crlf, 2 * strlen(body) + 16);
	for (const char *p = body; *p != '\0'; p++) {
		if (*p == '\n' && (p == body || p[-1] != '\r'))
			mw_buf_putc(&crlf, '\r');
		mw_buf_putc(&crlf, *p);
	}
	struct b64 st = { { 0 }, 0, 0 };
	b64_update(&st, mw_buf_str(&crlf), mw_buf_len(&crlf), out);
	b64_final(&st, out);
	explicit_bzero(&st, sizeof(st));
	mw_buf_wipe(&crlf);
	mw_buf_wipe(&text);
}
