#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atrest.h"
#include "acmsg.h"
#include "acpeer.h"
#include "gpg.h"
#include "inject.h"
#include "keysrc.h"
#include "log.h"
#include "sock.h"
#include "mime.h"
#include "msg.h"
#include "pem.h"
#include "prothdr.h"
#include "pwmode.h"

#define MAX_HEADERS 10000
#define MAX_RCPTS 1000
#define ADDR_MAX 512

struct header {
	char *name;
	char *value;
};

struct rcpt {
	char *addr;   /* bare */
	char *raw;    /* as the MTA gave it (for smfi_delrcpt) */
	int has_key;  /* after eom */
	int atrest;   /* inbound: opted in to encryption at rest (atrest.h) */
	enum mp_rcpt_state state;
};

struct mp_msg {
	struct mp_conf *conf;
	char client_ip[64];
	/* per message */
	struct mw_buf sender;
	struct mw_buf auth_user;
	struct mp_gpg *gpg;      /* created when first needed */
	struct header *headers;
	int nheaders;
	int too_many_headers;
	struct rcpt *rcpts;
	int nrcpts;
	int body_fd;
	unsigned long long body_len;
	int body_error;          /* errno of a failed spool write */
	int tls;                 /* came over TLS */
	char *password;          /* the password header's value (wiped), never kept in headers */
	int npassword;           /* password header fields seen */
	char *untagged_subject;  /* the first Subject without password_subject_tag */
};

void mp_reply_init(struct mp_reply *r)
{
	memset(r, 0, sizeof(*r));
	mw_buf_init(&r->text, 4096);
}

void mp_reply_free(struct mp_reply *r)
{
	mw_buf_free(&r->text);
}

static void set_reply(struct mp_reply *r, enum mp_action a, const char *rcode, const char *xcode,
		      const char *fmt, ...) MW_PRINTF(5, 6);
static void set_reply(struct mp_reply *r, enum mp_action a, const char *rcode, const char *xcode,
		      const char *fmt, ...)
{
	va_list ap;
	r->action = a;
	snprintf(r->rcode, sizeof(r->rcode), "%s", rcode);
	snprintf(r->xcode, sizeof(r->xcode), "%s", xcode);
	mw_buf_reset(&r->text);
	va_start(ap, fmt);
	mw_buf_vprintf(&r->text, fmt, ap);
	va_end(ap);
}

void mp_outcome_init(struct mp_outcome *o)
{
	memset(o, 0, sizeof(*o));
	mp_reply_init(&o->reply);
	o->body_fd = -1;
	o->reinject_fd = -1;
	mw_buf_init(&o->log, 8192);
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void mp_outcome_clear(struct mp_outcome *o)
{
	for (int i = 0; i < o->nchanges; i++) {
		free(o->changes[i].name);
		free(o->changes[i].value);
	}
	free(o->changes);
	o->changes = NULL;
	o->nchanges = 0;
	if (o->body_fd >= 0)
		close(o->body_fd);
	o->body_fd = -1;
	free_list(o->delrcpts, o->ndelrcpts);
	o->delrcpts = NULL;
	o->ndelrcpts = 0;
	free_list(o->reinject_rcpts, o->nreinject);
	o->reinject_rcpts = NULL;
	o->nreinject = 0;
	free(o->reinject_sender);
	o->reinject_sender = NULL;
	if (o->reinject_fd >= 0)
		close(o->reinject_fd);
	o->reinject_fd = -1;
}

void mp_outcome_free(struct mp_outcome *o)
{
	mp_outcome_clear(o);
	mp_reply_free(&o->reply);
	mw_buf_free(&o->log);
}

static void add_change(struct mp_outcome *o, int add, const char *name, const char *value, int index)
{
	o->changes = mw_xrealloc(o->changes, sizeof(*o->changes) * (size_t)(o->nchanges + 1));
	struct mp_change *c = &o->changes[o->nchanges++];
	c->add = add;
	c->name = mw_xstrdup(name);
	c->value = value != NULL ? mw_xstrdup(value) : NULL;
	c->index = index;
}

struct mp_msg *mp_msg_new(struct mp_conf *conf)
{
	struct mp_msg *m = mw_xcalloc(1, sizeof(*m));
	m->conf = mp_conf_ref(conf);
	m->body_fd = -1;
	mw_buf_init(&m->sender, ADDR_MAX);
	mw_buf_init(&m->auth_user, ADDR_MAX);
	return m;
}

void mp_msg_next(struct mp_msg *m)
{
	mw_buf_reset(&m->sender);
	mw_buf_reset(&m->auth_user);
	mp_gpg_free(m->gpg);
	m->gpg = NULL;
	for (int i = 0; i < m->nheaders; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
	m->headers = NULL;
	m->nheaders = 0;
	m->too_many_headers = 0;
	for (int i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].raw);
	}
	free(m->rcpts);
	m->rcpts = NULL;
	m->nrcpts = 0;
	if (m->body_fd >= 0)
		close(m->body_fd);
	m->body_fd = -1;
	m->body_len = 0;
	m->body_error = 0;
	m->tls = 0;
	mp_pw_free(m->password);
	m->password = NULL;
	m->npassword = 0;
	free(m->untagged_subject);
	m->untagged_subject = NULL;
}

void mp_msg_free(struct mp_msg *m)
{
	if (m == NULL)
		return;
	mp_msg_next(m);
	mw_buf_free(&m->sender);
	mw_buf_free(&m->auth_user);
	mp_conf_unref(m->conf);
	free(m);
}

void mp_msg_connect(struct mp_msg *m, const char *client_ip)
{
	snprintf(m->client_ip, sizeof(m->client_ip), "%s", client_ip != NULL ? client_ip : "");
}

void mp_msg_mail(struct mp_msg *m, const char *sender, const char *auth_user)
{
	mp_msg_next(m);
	mw_buf_puts(&m->sender, sender != NULL ? sender : "");
	mw_buf_puts(&m->auth_user, auth_user != NULL ? auth_user : "");
}

void mp_msg_tls(struct mp_msg *m, const char *tls_version)
{
	m->tls = tls_version != NULL && tls_version[0] != '\0';
}

static int outbound(const struct mp_msg *m)
{
	const struct mp_settings *s = &m->conf->s;
	if (s->outbound_authenticated && mw_buf_len(&m->auth_user) > 0)
		return 1;
	return m->client_ip[0] != '\0' && mw_cidr_list_match_text(&s->trusted, m->client_ip) == 1;
}

static struct mp_gpg *gpg_of(struct mp_msg *m, struct mw_buf *err)
{
	if (m->gpg == NULL)
		m->gpg = mp_gpg_new(m->conf->home, err);
	return m->gpg;
}

/*
 * A key for addr beyond the keyring (key_trust tofu or any): 1 found (and
 * added to g's recipients when g is given), 0 none, -1 the lookup failed
 * (err says why; the caller decides between tempfail and plaintext).
 */
static int discovered(struct mp_msg *m, const char *addr, struct mp_gpg *g, struct mw_buf *err)
{
	struct mp_key_found f;
	int r = mp_ac_recipient(m->conf, g, addr, err); /* Autocrypt before WKD and OPENPGPKEY */
	if (r != 0 || m->conf->keysrc == NULL)
		return r;
	mp_key_found_init(&f);
	mp_keysrc_get(m->conf->keysrc, addr, &f);
	if (f.state == MP_KEY_FOUND)
		r = g != NULL ? mp_gpg_recipient_file(g, mw_buf_str(&f.path), f.fpr, err) : 1;
	else if (f.state == MP_KEY_NONE)
		r = 0;
	else {
		mw_buf_setf(err, "<%s>: %s", addr, mw_buf_str(&f.detail));
		r = -1;
	}
	mp_key_found_free(&f);
	return r;
}

/* An address without angle brackets, at most ADDR_MAX. */
static char *bare(const char *addr)
{
	size_t n = strlen(addr);
	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	if (n >= ADDR_MAX)
		n = ADDR_MAX - 1;
	return mw_xstrndup(addr, n);
}

void mp_msg_rcpt(struct mp_msg *m, const char *rcpt, struct mp_reply *r)
{
	struct mw_buf err = MW_BUF_INIT;
	char *addr = bare(rcpt);
	r->action = MP_ACCEPT;
	if (m->nrcpts >= MAX_RCPTS) {
		set_reply(r, MP_TEMPFAIL, "452", "4.5.3", "Too many recipients");
		free(addr);
		return;
	}
	if (outbound(m) && mp_conf_mixed_for(m->conf, mw_buf_str(&m->sender)) == MP_MIXED_REJECT) {
		struct mp_gpg *g = gpg_of(m, &err);
		int k = g != NULL ? mp_gpg_recipient(g, addr, 0, &err) : -1;
		int local = k;
		if (k == 0)
			k = discovered(m, addr, NULL, &err); /* a failed lookup is 451, never 550 */
		if (k < 0) {
			if (local < 0)
				mw_msg_error("keyring %s: %s", m->conf->s.keyring, mw_buf_str(&err));
			else
				mw_msg_warn("key lookup failed: %s", mw_buf_str(&err));
			set_reply(r, MP_TEMPFAIL, "451", "4.7.0", "Cannot look up the OpenPGP key of %s, try again later",
				  addr);
		} else if (k == 0) {
			set_reply(r, MP_REJECT, "550", "5.7.1",
				  "No OpenPGP key for %s: mail from this sender is sent encrypted only", addr);
		}
	} else if (outbound(m) && m->conf->keysrc != NULL) {
		/* the lookup runs while the message comes in */
		struct mp_gpg *g = gpg_of(m, &err);
		if (g != NULL && mp_gpg_recipient(g, addr, 0, &err) == 0 && mp_ac_recipient(m->conf, NULL, addr, &err) == 0)
			mp_keysrc_prefetch(m->conf->keysrc, addr);
	}
	m->rcpts = mw_xrealloc(m->rcpts, sizeof(*m->rcpts) * (size_t)(m->nrcpts + 1));
	m->rcpts[m->nrcpts].addr = addr;
	m->rcpts[m->nrcpts].raw = mw_xstrndup(rcpt, ADDR_MAX);
	m->rcpts[m->nrcpts].has_key = 0;
	m->rcpts[m->nrcpts].atrest = 0;
	m->rcpts[m->nrcpts].state = r->action == MP_ACCEPT ? MP_RCPT_PLAINTEXT : MP_RCPT_REJECTED;
	m->nrcpts++;
	mw_buf_free(&err);
}

void mp_msg_header(struct mp_msg *m, const char *name, const char *value)
{
	if (m->nheaders >= MAX_HEADERS) {
		m->too_many_headers = 1;
		return;
	}
	if (strcasecmp(name, m->conf->s.password_header) == 0) {
		/* the password is kept in one place only, wiped at the end */
		if (m->npassword++ == 0)
			m->password = mp_pw_from_header(value);
		value = "";
	}
	if ((m->nheaders & 63) == 0)
		m->headers = mw_xrealloc(m->headers, sizeof(*m->headers) * (size_t)(m->nheaders + 64));
	m->headers[m->nheaders].name = mw_xstrdup(name);
	m->headers[m->nheaders].value = mw_xstrdup(value);
	m->nheaders++;
}

void mp_msg_eoh(struct mp_msg *m)
{
	(void)m;
}

static int spool_open(struct mp_msg *m)
{
	const char *dir = m->conf->s.tmpdir;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	struct mw_buf path = MW_BUF_INIT;
	mw_buf_printf(&path, "%s/milter-pgp.XXXXXX", dir);
	fd = mkostemp(path.data, O_CLOEXEC);
	if (fd >= 0)
		(void)unlink(path.data);
	mw_buf_free(&path);
	return fd;
}

void mp_msg_body(struct mp_msg *m, const unsigned char *data, size_t len)
{
	if (m->body_error != 0)
		return;
	if (m->body_fd < 0 && (m->body_fd = spool_open(m)) < 0) {
		m->body_error = errno;
		return;
	}
	m->body_len += len;
	if (m->body_len > m->conf->s.max_message_size)
		return; /* refused at the end; nothing more to keep */
	if (mw_sock_write_all(m->body_fd, data, len) < 0)
		m->body_error = errno;
}

int mp_msg_nrcpts(const struct mp_msg *m) { return m->nrcpts; }
const char *mp_msg_rcpt_addr(const struct mp_msg *m, int i) { return m->rcpts[i].addr; }
enum mp_rcpt_state mp_msg_rcpt_state(const struct mp_msg *m, int i) { return m->rcpts[i].state; }
int mp_msg_body_fd(const struct mp_msg *m) { return m->body_fd; }
int mp_msg_nheaders(const struct mp_msg *m) { return m->nheaders; }
const char *mp_msg_header_name(const struct mp_msg *m, int i) { return m->headers[i].name; }
const char *mp_msg_header_value(const struct mp_msg *m, int i) { return m->headers[i].value; }
const char *mp_msg_sender(const struct mp_msg *m) { return mw_buf_str(&m->sender); }

/* ------------------------------------------------------------ end of message */

static int is_content_header(const char *name)
{
	return strncasecmp(name, "Content-", 8) == 0;
}

/* "Name:value" with every line end CRLF, as in the original entity. */
static void put_header(struct mw_buf *b, const struct header *h)
{
	mw_buf_puts(b, h->name);
	mw_buf_putc(b, ':');
	for (const char *p = h->value; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			mw_buf_putc(b, '\r');
		mw_buf_putc(b, *p);
	}
	mw_buf_puts(b, "\r\n");
}

int mp_fd_chunks(int fd, int (*fn)(void *ctx, const void *data, size_t len), void *ctx)
{
	char buf[65536];
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (fn(ctx, buf, (size_t)n) < 0)
			return -1;
	}
}

struct crlf_copy {
	int dst;
	int prev_cr;
};

static int put_crlf(void *ctx, const void *data, size_t len)
{
	struct crlf_copy *c = ctx;
	const char *in = data;
	char out[2 * 65536];
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && !c->prev_cr)
			out[o++] = '\r';
		out[o++] = in[i];
		c->prev_cr = in[i] == '\r';
	}
	return mw_sock_write_all(c->dst, out, o);
}

/* Copies src (from offset 0) to dst turning bare LF into CRLF (gpg's armor). */
static int copy_crlf(int src, int dst)
{
	struct crlf_copy c = { dst, 0 };
	return mp_fd_chunks(src, put_crlf, &c);
}

/* Deletes every control header, password header and loop mark (and the
   Content-* fields with content_too), last first so the indexes of the
   others stay valid; the Subject loses its password tag. */
static void delete_headers(struct mp_msg *m, struct mp_outcome *o, int content_too)
{
	int *index = mw_xcalloc((size_t)m->nheaders + 1, sizeof(int));
	for (int i = 0; i < m->nheaders; i++) {
		int n = 0;
		for (int j = 0; j <= i; j++)
			if (strcasecmp(m->headers[j].name, m->headers[i].name) == 0)
				n++;
		index[i] = n;
	}
	for (int i = m->nheaders - 1; i >= 0; i--) {
		const char *name = m->headers[i].name;
		if (strcasecmp(name, m->conf->s.control_header) == 0 || strcasecmp(name, MP_INJECT_HEADER) == 0 ||
		    strcasecmp(name, m->conf->s.password_header) == 0 || (content_too && is_content_header(name)))
			add_change(o, 0, name, NULL, index[i]);
	}
	free(index);
	if (m->untagged_subject != NULL)
		add_change(o, 0, "Subject", m->untagged_subject, 1);
}

static const struct header *find_header(const struct mp_msg *m, const char *name)
{
	for (int i = 0; i < m->nheaders; i++)
		if (strcasecmp(m->headers[i].name, name) == 0)
			return &m->headers[i];
	return NULL;
}

enum control { CONTROL_DEFAULT, CONTROL_REQUIRE, CONTROL_NONE };

static enum control control_of(const struct mp_msg *m)
{
	enum control c = CONTROL_DEFAULT;
	for (int i = 0; i < m->nheaders; i++) {
		if (strcasecmp(m->headers[i].name, m->conf->s.control_header) != 0)
			continue;
		char v[32];
		const char *p = m->headers[i].value;
		while (*p == ' ' || *p == '\t')
			p++;
		snprintf(v, sizeof(v), "%s", p);
		v[strcspn(v, " \t\r\n;")] = '\0';
		if (strcasecmp(v, "require") == 0)
			c = CONTROL_REQUIRE; /* require wins over none: never in clear by mistake */
		else if (strcasecmp(v, "none") == 0 && c == CONTROL_DEFAULT)
			c = CONTROL_NONE;
	}
	return c;
}

/* The boundary must not occur in the entity it encloses. */
static int boundary_in(const char *map, size_t len, const struct mw_buf *head, const char *b)
{
	return (map != NULL && memmem(map, len, b, strlen(b)) != NULL) || strstr(mw_buf_str(head), b) != NULL;
}

static void tempfail(struct mp_outcome *o, const char *what, const char *detail)
{
	set_reply(&o->reply, MP_TEMPFAIL, "451", "4.7.0", "milter-pgp: %s, try again later", what);
	mw_buf_printf(&o->log, " tempfail=\"%s: %s\"", what, detail);
}

/* The PGP/MIME body (encrypted, or signed when !encrypt) of the original
   entity head + map into a new spool file *out_fd; its Content-Type value
   into ctype. 0, or -1 with what failed in *what and the reason in err. */
static int protect(struct mp_msg *m, struct mp_gpg *g, int encrypt, const char *map, size_t len,
		   const struct mw_buf *head, int *out_fd, struct mw_buf *ctype, const char **what, struct mw_buf *err)
{
	char boundary[64];
	int armor_fd = -1, ok = 0;
	struct mw_buf part = MW_BUF_INIT;
	do
		mp_mime_boundary("=-mailward-", boundary, sizeof(boundary));
	while (boundary_in(map, len, head, boundary));
	*out_fd = -1;
	*what = "cannot spool the message";
	if ((armor_fd = spool_open(m)) < 0 || (*out_fd = spool_open(m)) < 0) {
		mw_buf_puts(err, strerror(errno));
		goto out;
	}
	int r;
	if (encrypt) {
		int opts = (m->conf->s.hide_recipients ? MP_GPG_HIDE : 0) | (m->conf->s.compress ? MP_GPG_COMPRESS : 0);
		r = mp_gpg_encrypt(g, opts, head->data, mw_buf_len(head), m->body_fd, armor_fd,
				   err);
		mw_buf_printf(&part, "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
			      "--%s\r\nContent-Type: application/pgp-encrypted\r\n"
			      "Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n"
			      "--%s\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
			      "Content-Description: OpenPGP encrypted message\r\n"
			      "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n",
			      boundary, boundary);
		mw_buf_printf(ctype, " multipart/encrypted; protocol=\"application/pgp-encrypted\";\n"
			      "\tboundary=\"%s\"", boundary);
	} else {
		char micalg[32];
		r = mp_gpg_sign(g, head->data, mw_buf_len(head), m->body_fd, armor_fd, micalg, sizeof(micalg), err);
		mw_buf_printf(&part, "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--%s\r\n",
			      boundary);
		mw_buf_printf(ctype, " multipart/signed; micalg=\"%s\";\n"
			      "\tprotocol=\"application/pgp-signature\"; boundary=\"%s\"", micalg, boundary);
	}
	if (r < 0) {
		*what = encrypt ? "encryption failed" : "signing failed";
		goto out;
	}
	ok = mw_sock_write_all(*out_fd, part.data, mw_buf_len(&part)) == 0;
	if (!encrypt) {
		/* the signed entity exactly as signed, then the signature part */
		ok = ok && mw_sock_write_all(*out_fd, head->data, mw_buf_len(head)) == 0 &&
		     (len == 0 || mw_sock_write_all(*out_fd, map, len) == 0);
		mw_buf_reset(&part);
		mw_buf_printf(&part, "\r\n--%s\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
			      "Content-Description: OpenPGP digital signature\r\n"
			      "Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n", boundary);
		ok = ok && mw_sock_write_all(*out_fd, part.data, mw_buf_len(&part)) == 0;
	}
	ok = ok && copy_crlf(armor_fd, *out_fd) == 0;
	mw_buf_reset(&part);
	mw_buf_printf(&part, "\r\n--%s--\r\n", boundary);
	ok = ok && mw_sock_write_all(*out_fd, part.data, mw_buf_len(&part)) == 0;
	if (!ok)
		mw_buf_puts(err, strerror(errno));
out:
	mw_buf_free(&part);
	if (armor_fd >= 0)
		close(armor_fd);
	if (!ok && *out_fd >= 0) {
		close(*out_fd);
		*out_fd = -1;
	}
	return ok ? 0 : -1;
}

/* Whether the header is left out of the re-injected copy: the control
   header, any loop mark, Bcc (never shown to anyone), and the Content-*
   fields when the copy gets a new body. */
static int left_out_of_copy(const struct mp_msg *m, const char *name, int new_body)
{
	return strcasecmp(name, m->conf->s.control_header) == 0 || strcasecmp(name, MP_INJECT_HEADER) == 0 ||
	       strcasecmp(name, m->conf->s.password_header) == 0 || strcasecmp(name, "Bcc") == 0 || strcasecmp(name, "Resent-Bcc") == 0 ||
	       (new_body && is_content_header(name));
}

/*
 * The plaintext copy for the recipients without a key (split): a complete
 * message in a new spool file, as plaintext mode would send it (signed,
 * multipart/signed, when the sender has a key pair). 0 or -1 (*what, err).
 */
static int split_copy(struct mp_msg *m, struct mp_gpg *g, int sign, const char *map, size_t len,
		      const struct mw_buf *head, int *copy_fd, const char **what, struct mw_buf *err)
{
	int body_fd = -1, ok;
	struct mw_buf ctype = MW_BUF_INIT, fields = MW_BUF_INIT;
	*copy_fd = -1;
	if (sign && protect(m, g, 0, map, len, head, &body_fd, &ctype, what, err) < 0) {
		mw_buf_free(&ctype);
		return -1;
	}
	for (int i = 0; i < m->nheaders; i++)
		if (!left_out_of_copy(m, m->headers[i].name, sign))
			put_header(&fields, &m->headers[i]);
	if (sign) {
		struct header h = { "Content-Type", ctype.data };
		put_header(&fields, &h);
		if (find_header(m, "MIME-Version") == NULL)
			mw_buf_puts(&fields, "MIME-Version: 1.0\r\n");
	}
	mw_buf_puts(&fields, "\r\n");
	*what = "cannot spool the message";
	ok = (*copy_fd = spool_open(m)) >= 0 && mw_sock_write_all(*copy_fd, fields.data, mw_buf_len(&fields)) == 0;
	if (ok && sign)
		ok = copy_crlf(body_fd, *copy_fd) == 0;
	else if (ok)
		ok = len == 0 || mw_sock_write_all(*copy_fd, map, len) == 0;
	if (!ok) {
		mw_buf_puts(err, strerror(errno));
		if (*copy_fd >= 0)
			close(*copy_fd);
		*copy_fd = -1;
	}
	if (body_fd >= 0)
		close(body_fd);
	mw_buf_free(&ctype);
	mw_buf_free(&fields);
	return ok ? 0 : -1;
}

/* 1 when a loop mark of the message is ours and fits its envelope and body. */
static int reinjected(struct mp_msg *m, const char *map, size_t len, struct mp_outcome *o)
{
	int found = 0, valid = 0;
	struct mw_buf why = MW_BUF_INIT;
	const char **rcpts = mw_xcalloc((size_t)m->nrcpts + 1, sizeof(char *));
	int n = 0;
	for (int i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state != MP_RCPT_REJECTED)
			rcpts[n++] = m->rcpts[i].addr;
	for (int i = 0; i < m->nheaders && !valid; i++) {
		if (strcasecmp(m->headers[i].name, MP_INJECT_HEADER) != 0)
			continue;
		found = 1;
		mw_buf_reset(&why);
		valid = m->conf->inject != NULL &&
			mp_inject_check(m->conf->inject, m->headers[i].value, mw_buf_str(&m->sender), rcpts, (size_t)n,
					map != NULL ? map : "", len, time(NULL), &why) == 1;
	}
	if (found && !valid)
		mw_buf_printf(&o->log, " reinject_mark=invalid(%s)", mw_buf_str(&why));
	free(rcpts);
	mw_buf_free(&why);
	return valid;
}

/* ------------------------------------------------------------ passwords */

/* A header value unfolded, without its outer blanks; the caller frees it. */
static char *clean_value(const char *v)
{
	struct mw_buf b = MW_BUF_INIT;
	for (const char *p = v; *p != '\0'; p++)
		if (*p != '\r' && *p != '\n')
			mw_buf_putc(&b, *p == '\t' ? ' ' : *p);
	const char *t = mw_buf_str(&b);
	while (*t == ' ')
		t++;
	size_t n = strlen(t);
	while (n > 0 && t[n - 1] == ' ')
		n--;
	char *r = mw_xstrndup(t, n);
	mw_buf_free(&b);
	return r;
}

/* Which password the message asks for; refuses (o->reply) a password header
   from anyone but a user authenticated over TLS, never sending it on. */
static enum mp_pw_source password_request(struct mp_msg *m, struct mp_outcome *o)
{
	const struct mp_settings *s = &m->conf->s;
	if (m->npassword > 0 && (mw_buf_len(&m->auth_user) == 0 || !m->tls)) {
		set_reply(&o->reply, MP_REJECT, "550", "5.7.1",
			  "%s is accepted only from a user authenticated (SMTP AUTH) over TLS: message not sent",
			  s->password_header);
		mw_buf_printf(&o->log, " mode=password rejected=password-header-%s",
			      mw_buf_len(&m->auth_user) == 0 ? "without-auth" : "without-tls");
		return MP_PW_NONE;
	}
	if (m->npassword > 1 || (m->npassword == 1 && m->password == NULL)) {
		set_reply(&o->reply, MP_REJECT, "550", "5.7.1", "%s: %s: message not sent", s->password_header,
			  m->npassword > 1 ? "more than one field" : "empty or longer than 4096 bytes");
		mw_buf_puts(&o->log, " mode=password rejected=password-header-invalid");
		return MP_PW_NONE;
	}
	const struct header *subj = find_header(m, "Subject");
	if (s->password_subject_tag[0] != '\0' && subj != NULL) {
		struct mw_buf b = MW_BUF_INIT;
		if (mp_pw_subject_untag(subj->value, s->password_subject_tag, &b))
			m->untagged_subject = mw_xstrdup(mw_buf_str(&b));
		mw_buf_free(&b);
	}
	if (m->password != NULL)
		return MP_PW_HEADER;
	if (m->untagged_subject != NULL || mp_conf_password_generated_for(m->conf, mw_buf_str(&m->sender)))
		return MP_PW_GENERATED;
	return MP_PW_NONE;
}

/* Grows b so that appending up to n bytes moves nothing: no copy of a
   secret is left in freed memory. */
static void reserve_secret(struct mw_buf *b, size_t n)
{
	char *z = mw_xcalloc(1, n);
	mw_buf_append(b, z, n);
	mw_buf_truncate(b, 0);
	free(z);
}

static int seal_to(int fd, int html, const struct mp_pem_opts *po, const char *password, const unsigned char *inner,
		   size_t ilen, struct mw_buf *err)
{
	int d = dup(fd);
	FILE *f = d >= 0 ? fdopen(d, "w") : NULL;
	if (f == NULL) {
		if (d >= 0)
			close(d);
		mw_buf_printf(err, "%s", strerror(errno));
		return -1;
	}
	int r = html ? mp_pem_seal_html(po, password, inner, ilen, f, err)
		     : mp_pem_seal_asc(po, password, inner, ilen, f, err);
	if (fclose(f) != 0 && r == 0) {
		mw_buf_printf(err, "%s", strerror(errno));
		r = -1;
	}
	return r;
}

/*
 * The password-encrypted envelope's body into a new spool file *body_fd,
 * its Content-Type value into ctype: the whole original (without our
 * headers) sealed into message.html and message.asc. A generated password
 * goes to the sender alone, re-injected. For the recipients not refused
 * (keyless_only: those without a key). 0, or -1 with o's reply set.
 */
static int seal_envelope(struct mp_msg *m, struct mp_outcome *o, const char *map, size_t len,
			 enum mp_pw_source src, int keyless_only, int *body_fd, struct mw_buf *ctype)
{
	const struct mp_settings *s = &m->conf->s;
	const char *sender = mw_buf_str(&m->sender);
	struct mw_buf pw, notice, err = MW_BUF_INIT, head = MW_BUF_INIT, rcpts = MW_BUF_INIT;
	int inner_fd = -1, html_fd = -1, asc_fd = -1, out_fd = -1, nrcpts = 0, ok = 0;
	unsigned char *inner = NULL;
	size_t ilen = 0;
	char *hint = NULL, *date = NULL;

	mw_buf_init(&pw, 0);
	mw_buf_init(&notice, 0);
	reserve_secret(&pw, 4 * MP_PEM_MAX_PASSWORD + 16);
	if (s->pw.body_txt == NULL) {
		tempfail(o, "password-encrypted messages are not set up", "no templates (password_templates)");
		goto done;
	}
	if (src == MP_PW_HEADER) {
		if (mp_pem_password_normalize(m->password, strlen(m->password), &pw, &err) < 0) {
			set_reply(&o->reply, MP_REJECT, "550", "5.7.1", "%s: not a usable password (%s): message not sent",
				  s->password_header, mw_buf_str(&err));
			mw_buf_puts(&o->log, " mode=password rejected=password-header-invalid");
			goto done;
		}
	} else {
		char gen[MP_PEM_GENERATED_SIZE];
		if (sender[0] == '\0') {
			set_reply(&o->reply, MP_REJECT, "550", "5.7.1",
				  "A generated password is sent to the sender: the null sender <> has no address");
			mw_buf_puts(&o->log, " mode=password rejected=generated-without-sender");
			goto done;
		}
		if (m->conf->inject == NULL) {
			tempfail(o, "a generated password cannot be sent", "reinject is not configured");
			goto done;
		}
		if (mp_pem_password_generate(gen, sizeof(gen)) < 0) {
			tempfail(o, "cannot generate a password", "mp_pem_password_generate failed");
			goto done;
		}
		mw_buf_puts(&pw, gen);
		explicit_bzero(gen, sizeof(gen));
	}

	/* the sealed message: every field but ours (Subject untagged), the body */
	int subject_seen = 0;
	for (int i = 0; i < m->nheaders; i++) {
		const char *name = m->headers[i].name;
		/* ours, loop marks and Bcc stay out; so does the hint (it is in clear) */
		if (left_out_of_copy(m, name, 0) || strcasecmp(name, s->password_hint_header) == 0)
			continue;
		if (strcasecmp(name, "Subject") == 0 && subject_seen++ == 0 && m->untagged_subject != NULL) {
			struct header h = { m->headers[i].name, m->untagged_subject };
			put_header(&head, &h);
			continue;
		}
		put_header(&head, &m->headers[i]);
	}
	mw_buf_puts(&head, "\r\n");
	ilen = mw_buf_len(&head) + len;
	if ((inner_fd = spool_open(m)) < 0 || mw_sock_write_all(inner_fd, head.data, mw_buf_len(&head)) < 0 ||
	    (len > 0 && mw_sock_write_all(inner_fd, map, len) < 0) || (html_fd = spool_open(m)) < 0 ||
	    (asc_fd = spool_open(m)) < 0 || (out_fd = spool_open(m)) < 0) {
		tempfail(o, "cannot spool the message", strerror(errno));
		goto done;
	}
	inner = mmap(NULL, ilen, PROT_READ, MAP_PRIVATE, inner_fd, 0);
	if (inner == MAP_FAILED) {
		inner = NULL;
		tempfail(o, "cannot read the spooled message", strerror(errno));
		goto done;
	}
	const struct header *h = find_header(m, s->password_hint_header);
	hint = h != NULL ? clean_value(h->value) : NULL;
	h = find_header(m, "Date");
	date = h != NULL ? clean_value(h->value) : NULL;
	struct mp_pem_opts po = {
		.iterations = (unsigned)s->password_kdf_iterations,
		.lang = strcmp(s->password_language, "fr") == 0 ? "fr" : "en",
		.sender = sender[0] != '\0' ? sender : NULL,
		.date = date,
		.hint = hint != NULL && hint[0] != '\0' ? hint : NULL,
		.tmpdir = s->tmpdir,
	};
	if (seal_to(html_fd, 1, &po, mw_buf_str(&pw), inner, ilen, &err) < 0 ||
	    seal_to(asc_fd, 0, &po, mw_buf_str(&pw), inner, ilen, &err) < 0) {
		tempfail(o, "password encryption failed", mw_buf_str(&err));
		goto done;
	}
	for (int i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].state == MP_RCPT_REJECTED || (keyless_only && m->rcpts[i].has_key))
			continue;
		if (nrcpts++ > 0)
			mw_buf_puts(&rcpts, ", ");
		mw_buf_puts(&rcpts, m->rcpts[i].addr);
	}
	const struct header *subj = find_header(m, "Subject");
	char *subject = m->untagged_subject != NULL ? clean_value(m->untagged_subject)
						     : clean_value(subj != NULL ? subj->value : "");
	struct mp_pw_fill fill = { sender, subject, mw_buf_str(&rcpts), hint, NULL };
	if (mp_pw_envelope_write(&s->pw, &fill, html_fd, asc_fd, out_fd, ctype) < 0) {
		free(subject);
		tempfail(o, "cannot spool the message", strerror(errno));
		goto done;
	}
	if (src == MP_PW_GENERATED) {
		fill.password = mw_buf_str(&pw);
		mp_pw_notice(&s->pw, &fill, &notice);
		const char *to[1] = { sender };
		/* the null sender: a bounce of the notice goes nowhere */
		if (mp_inject_buf(m->conf->inject, "", to, 1, notice.data, mw_buf_len(&notice), &err) < 0) {
			free(subject);
			tempfail(o, "cannot send the generated password to the sender", mw_buf_str(&err));
			goto done;
		}
	}
	free(subject);
	*body_fd = out_fd;
	out_fd = -1;
	ok = 1;
	mw_buf_printf(&o->log, " mode=password source=%s envelopes=%d%s", src == MP_PW_HEADER ? "header" : "generated",
		      nrcpts, src == MP_PW_GENERATED ? " password_to=sender" : "");
done:
	if (inner != NULL)
		munmap(inner, ilen);
	const int fds[] = { inner_fd, html_fd, asc_fd, out_fd };
	for (size_t k = 0; k < sizeof(fds) / sizeof(fds[0]); k++)
		if (fds[k] >= 0)
			close(fds[k]);
	mw_buf_wipe(&pw);
	mw_buf_wipe(&notice);
	mw_buf_free(&err);
	mw_buf_free(&head);
	mw_buf_free(&rcpts);
	free(hint);
	free(date);
	return ok ? 0 : -1;
}

/* The envelope replaces the message, for every recipient. */
static void password_envelope(struct mp_msg *m, struct mp_outcome *o, const char *map, size_t len,
			      enum mp_pw_source src)
{
	struct mw_buf ctype = MW_BUF_INIT;
	int fd;
	if (seal_envelope(m, o, map, len, src, 0, &fd, &ctype) == 0) {
		delete_headers(m, o, 1);
		add_change(o, 1, "Content-Type", mw_buf_str(&ctype), 0);
		if (find_header(m, "MIME-Version") == NULL)
			add_change(o, 1, "MIME-Version", " 1.0", 0);
		o->body_fd = fd;
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state != MP_RCPT_REJECTED)
				m->rcpts[i].state = MP_RCPT_PASSWORD;
		mw_buf_puts(&o->log, " action=password-envelope");
	}
	mw_buf_free(&ctype);
}

/* The envelope as a complete message for the keyless recipients
   (o->reinject_fd), split from the key holders'. 0, or -1 (o's reply). */
static int password_copy(struct mp_msg *m, struct mp_outcome *o, const char *map, size_t len, enum mp_pw_source src)
{
	struct mw_buf ctype = MW_BUF_INIT, fields = MW_BUF_INIT;
	int body_fd = -1, subject_seen = 0;
	if (seal_envelope(m, o, map, len, src, 1, &body_fd, &ctype) < 0) {
		mw_buf_free(&ctype);
		return -1;
	}
	for (int i = 0; i < m->nheaders; i++) {
		const struct header *h = &m->headers[i];
		if (left_out_of_copy(m, h->name, 1))
			continue;
		if (strcasecmp(h->name, "Subject") == 0 && subject_seen++ == 0 && m->untagged_subject != NULL) {
			struct header u = { h->name, m->untagged_subject };
			put_header(&fields, &u);
		} else {
			put_header(&fields, h);
		}
	}
	struct header cth = { "Content-Type", ctype.data };
	put_header(&fields, &cth);
	if (find_header(m, "MIME-Version") == NULL)
		mw_buf_puts(&fields, "MIME-Version: 1.0\r\n");
	mw_buf_puts(&fields, "\r\n");
	int ok = (o->reinject_fd = spool_open(m)) >= 0 && mw_sock_write_all(o->reinject_fd, fields.data, mw_buf_len(&fields)) == 0 &&
		 copy_crlf(body_fd, o->reinject_fd) == 0;
	if (!ok)
		tempfail(o, "cannot spool the message", strerror(errno));
	close(body_fd);
	mw_buf_free(&ctype);
	mw_buf_free(&fields);
	return ok ? 0 : -1;
}


/* The original entity's header section (prothdr.h), with protected
   headers unless protected_headers = no; the hp written. */
static enum mp_hp entity_head(const struct mp_msg *m, struct mw_buf *head, enum mp_hp hp)
{
	struct mp_field *f = mw_xcalloc((size_t)m->nheaders + 1, sizeof(*f));
	for (int i = 0; i < m->nheaders; i++)
		f[i] = (struct mp_field){ m->headers[i].name, m->headers[i].value };
	hp = mp_prothdr_entity(head, f, m->nheaders, m->conf->s.protected_headers ? hp : MP_HP_NONE,
			       m->untagged_subject, m->conf->s.protect_subject);
	free(f);
	return hp;
}

/* protect_subject: every outer Subject becomes the obscured literal (the
   real one is inside, encrypted). */
static void obscure_subject(const struct mp_msg *m, struct mp_outcome *o)
{
	int n = 0;
	for (int i = 0; i < m->nheaders; i++)
		if (strcasecmp(m->headers[i].name, "Subject") == 0)
			add_change(o, 0, "Subject", " " MP_PROTHDR_OBSCURED_SUBJECT, ++n);
}

static size_t headers_size(const struct mp_msg *m)
{
	size_t n = 0;
	for (int i = 0; i < m->nheaders; i++)
		n += strlen(m->headers[i].name) + strlen(m->headers[i].value) + 4;
	return n;
}

/* The message's size once encrypted to nkeys keys, from above: base64
   armor, 4/3 and 66 bytes a line for 64; a session key packet per key; the
   PGP/MIME frame; gpg's compression is not counted on. */
static unsigned long long encrypted_estimate(const struct mp_msg *m, size_t len, int nkeys)
{
	return (unsigned long long)headers_size(m) + ((unsigned long long)len + 600ULL * (unsigned)nkeys + 1024) *
							     137 / 100 + 2048;
}

/*
 * Inbound mail: encryption at rest (atrest.h) for the recipients who opted
 * in and have a usable key in the keyring; PGP/MIME encrypted to their keys
 * only (not signed), the original entity inside byte for byte, the other
 * header fields kept outside for filtering. The others get the message as
 * it came: when both kinds are in the transaction, the others are removed
 * and get one copy re-injected (as a split, inject.h). In clear for an
 * opted-in recipient: no usable key, or too big once encrypted (logged as
 * a warning: mail is never refused or held for that). Already protected
 * mail passes unchanged.
 */
static void inbound(struct mp_msg *m, struct mp_outcome *o)
{
	const struct mp_settings *s = &m->conf->s;
	struct mw_buf err = MW_BUF_INIT, head = MW_BUF_INIT, ctype = MW_BUF_INIT;
	struct mp_atrest optin;
	char *map = NULL;
	size_t len = (size_t)m->body_len;
	int opted = 0, holders = 0, clear = 0, out_fd = -1;
	const char *what, *first_nokey = NULL;

	mw_buf_puts(&o->log, " direction=inbound");
	if (mp_atrest_load(s->keyring, &optin, &err) < 0) {
		mp_atrest_free(&optin);
		tempfail(o, "cannot read the encryption at rest opt-ins", mw_buf_str(&err));
		goto done;
	}
	for (int i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state != MP_RCPT_REJECTED && (m->rcpts[i].atrest = mp_atrest_has(&optin, m->rcpts[i].addr)))
			opted++;
	mp_atrest_free(&optin);
	if (opted == 0) {
		mw_buf_puts(&o->log, " action=none");
		goto done;
	}
	if (m->body_len > s->max_message_size) {
		/* larger than the MTA takes at all: nothing spooled to encrypt */
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].atrest)
				m->rcpts[i].state = MP_RCPT_ATREST_OVERSIZE;
		mw_buf_printf(&o->log, " action=none atrest=oversize size=%llu", m->body_len);
		mw_msg_warn("encryption at rest: message over max_message_size (%llu bytes), delivered in clear",
			    s->max_message_size);
		goto done;
	}
	if (m->body_fd < 0 && (m->body_fd = spool_open(m)) < 0) {
		tempfail(o, "cannot spool the message", strerror(errno));
		goto done;
	}
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, m->body_fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			tempfail(o, "cannot read the spooled message", strerror(errno));
			goto done;
		}
	}
	const struct header *ct = find_header(m, "Content-Type");
	struct mp_result mr;
	mp_classify(ct != NULL ? ct->value : NULL, ct != NULL ? strlen(ct->value) : 0, map, len, &mr);
	if (mr.protection != MP_PLAIN) {
		mw_buf_printf(&o->log, " action=none atrest=already already=%s", mp_protection_name(mr.protection));
		goto done;
	}
	struct mp_gpg *g = gpg_of(m, &err);
	if (g == NULL) {
		tempfail(o, "OpenPGP is not available", mw_buf_str(&err));
		goto done;
	}
	for (int i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].state == MP_RCPT_REJECTED)
			continue;
		int k = m->rcpts[i].atrest ? mp_gpg_recipient(g, m->rcpts[i].addr, 1, &err) : 0;
		if (k < 0) {
			tempfail(o, "cannot look up the recipients' keys", mw_buf_str(&err));
			goto done;
		}
		m->rcpts[i].has_key = k;
		holders += k;
		clear += !k;
		if (m->rcpts[i].atrest && !k) {
			m->rcpts[i].state = MP_RCPT_ATREST_NOKEY;
			if (first_nokey == NULL)
				first_nokey = m->rcpts[i].addr;
			/* loud: the user expects ciphertext only in the mailbox */
			mw_msg_warn("encryption at rest: <%s> opted in but has no usable key (expired, revoked or "
				    "deleted?), delivered in clear", m->rcpts[i].addr);
		}
	}
	if (holders == 0) {
		mw_buf_printf(&o->log, " action=none atrest=no-usable-key first_without_key=<%s>", first_nokey);
		goto done;
	}
	unsigned long long est = encrypted_estimate(m, len, mp_gpg_nrecipients(g));
	if (est > s->max_message_size) {
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].has_key)
				m->rcpts[i].state = MP_RCPT_ATREST_OVERSIZE;
		mw_buf_printf(&o->log, " action=none atrest=oversize estimate=%llu", est);
		mw_msg_warn("encryption at rest: about %llu bytes once encrypted, over max_message_size (%llu), "
			    "delivered in clear", est, s->max_message_size);
		goto done;
	}
	for (int i = 0; i < m->nheaders; i++)
		if (is_content_header(m->headers[i].name))
			put_header(&head, &m->headers[i]);
	mw_buf_puts(&head, "\r\n");
	if (clear > 0) {
		/* the others' copy, as it came (without Bcc and our fields) */
		if (m->conf->inject == NULL) {
			tempfail(o, "cannot pass on the copy for the others", "reinject is not configured");
			goto done;
		}
		if (split_copy(m, g, 0, map, len, &head, &o->reinject_fd, &what, &err) < 0) {
			tempfail(o, what, mw_buf_str(&err));
			goto done;
		}
		o->reinject_sender = mw_xstrdup(mw_buf_str(&m->sender));
		o->reinject_rcpts = mw_xcalloc((size_t)clear + 1, sizeof(char *));
		o->delrcpts = mw_xcalloc((size_t)clear + 1, sizeof(char *));
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state != MP_RCPT_REJECTED && !m->rcpts[i].has_key) {
				o->reinject_rcpts[o->nreinject++] = mw_xstrdup(m->rcpts[i].addr);
				o->delrcpts[o->ndelrcpts++] = mw_xstrdup(m->rcpts[i].raw);
				if (m->rcpts[i].state == MP_RCPT_PLAINTEXT)
					m->rcpts[i].state = MP_RCPT_SPLIT;
			}
	}
	if (protect(m, g, 1, map, len, &head, &out_fd, &ctype, &what, &err) < 0) {
		tempfail(o, what, mw_buf_str(&err));
		goto done;
	}
	delete_headers(m, o, 1);
	add_change(o, 1, "Content-Type", mw_buf_str(&ctype), 0);
	if (find_header(m, "MIME-Version") == NULL)
		add_change(o, 1, "MIME-Version", " 1.0", 0);
	o->body_fd = out_fd;
	for (int i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].has_key)
			m->rcpts[i].state = MP_RCPT_ATREST;
	mw_buf_printf(&o->log, " action=encrypt atrest=encrypted keys=%d%s", mp_gpg_nrecipients(g),
		      s->hide_recipients ? " hidden" : "");
	if (clear > 0)
		mw_buf_printf(&o->log, " split=%d", clear);
	if (first_nokey != NULL)
		mw_buf_printf(&o->log, " atrest_without_key=<%s>", first_nokey);
done:
	if (o->body_fd < 0 && o->reply.action == MP_ACCEPT)
		delete_headers(m, o, 0); /* unchanged but for our fields */
	if (map != NULL)
		munmap(map, len);
	mw_buf_free(&head);
	mw_buf_free(&ctype);
	mw_buf_free(&err);
}

void mp_msg_eom(struct mp_msg *m, const char *qid, struct mp_outcome *o)
{
	const struct mp_settings *s = &m->conf->s;
	struct mw_buf err = MW_BUF_INIT, head = MW_BUF_INIT;
	const char *sender = mw_buf_str(&m->sender);
	char *map = NULL;
	size_t len = (size_t)m->body_len;
	int out_fd = -1;
	const char *what;

	mw_buf_printf(&o->log, "%s: from=<", qid != NULL && qid[0] ? qid : "NOQUEUE");
	mw_buf_append_printable(&o->log, sender, strlen(sender), 256);
	mw_buf_printf(&o->log, "> rcpts=%d", m->nrcpts);
	o->reply.action = MP_ACCEPT;

	if (m->body_error != 0) {
		tempfail(o, "cannot spool the message", strerror(m->body_error));
		goto out;
	}
	if (m->too_many_headers) {
		set_reply(&o->reply, MP_REJECT, "552", "5.3.4", "Too many header fields (over %d)", MAX_HEADERS);
		mw_buf_puts(&o->log, " rejected=too-many-headers");
		goto out;
	}
	enum control control = control_of(m);
	int is_out = outbound(m);
	if (!is_out) {
		inbound(m, o);
		if (o->reply.action == MP_ACCEPT)
			mp_ac_inbound(m->conf, m, &o->log);
		goto out;
	}
	enum mp_pw_source pw = password_request(m, o);
	if (o->reply.action != MP_ACCEPT)
		goto out;
	if (pw != MP_PW_NONE && control == CONTROL_NONE)
		control = CONTROL_DEFAULT; /* asking for a password is asking for encryption */
	if (m->body_len > s->max_message_size) {
		/* larger than the MTA takes at all: nothing spooled to encrypt */
		if (s->oversize == MP_OVERSIZE_PLAINTEXT && control != CONTROL_REQUIRE) {
			delete_headers(m, o, 0);
			mw_buf_printf(&o->log, " action=plaintext reason=oversize size=%llu", m->body_len);
			goto out;
		}
		set_reply(&o->reply, MP_REJECT, "552", "5.3.4",
			  "Message too big to send encrypted (over the limit of %llu bytes)", s->max_message_size);
		mw_buf_puts(&o->log, " rejected=too-big");
		goto out;
	}
	if (m->body_fd < 0 && (m->body_fd = spool_open(m)) < 0) {
		tempfail(o, "cannot spool the message", strerror(errno));
		goto out;
	}
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, m->body_fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			tempfail(o, "cannot read the spooled message", strerror(errno));
			goto out;
		}
	}
	if (reinjected(m, map, len, o)) {
		delete_headers(m, o, 0);
		mw_buf_puts(&o->log, " action=none reinjected");
		goto out;
	}
	const struct header *ct = find_header(m, "Content-Type");
	struct mp_result mr;
	mp_classify(ct != NULL ? ct->value : NULL, ct != NULL ? strlen(ct->value) : 0, map, len, &mr);
	if (mr.protection != MP_PLAIN) {
		delete_headers(m, o, 0);
		mw_buf_printf(&o->log, " action=none already=%s", mp_protection_name(mr.protection));
		goto out;
	}
	struct mp_gpg *g = gpg_of(m, &err);
	if (g == NULL) {
		tempfail(o, "OpenPGP is not available", mw_buf_str(&err));
		goto out;
	}
	int missing = 0, holders = 0;
	const char *first_missing = NULL;
	for (int i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].state == MP_RCPT_REJECTED)
			continue;
		int k = mp_gpg_recipient(g, m->rcpts[i].addr, 1, &err);
		if (k < 0) {
			tempfail(o, "cannot look up the recipients' keys", mw_buf_str(&err));
			goto out;
		}
		if (k == 0 && control != CONTROL_NONE && (k = discovered(m, m->rcpts[i].addr, g, &err)) < 0) {
			if (s->key_lookup_failure == 0) {
				tempfail(o, "cannot look up the recipients' keys", mw_buf_str(&err));
				goto out;
			}
			mw_buf_printf(&o->log, " key_lookup_failed=<%s>", m->rcpts[i].addr);
			mw_msg_warn("key lookup failed, sent as without a key (key_lookup_failure = plaintext): %s",
				    mw_buf_str(&err));
			mw_buf_reset(&err);
			k = 0;
		}
		m->rcpts[i].has_key = k;
		holders += k;
		if (k == 0 && missing++ == 0)
			first_missing = m->rcpts[i].addr;
	}
	int sign = 0;
	if (s->sign && sender[0] != '\0') {
		int k = mp_gpg_signer(g, sender, &err);
		if (k < 0) {
			tempfail(o, "cannot look up the sender's key", mw_buf_str(&err));
			goto out;
		}
		sign = k;
	}
	/* split: only with someone to encrypt for and someone to copy to */
	int split = missing > 0 && holders > 0 && (control == CONTROL_DEFAULT || pw != MP_PW_NONE) &&
		    mp_conf_mixed_for(m->conf, sender) == MP_MIXED_SPLIT;
	if (pw != MP_PW_NONE && missing > 0 && !split) {
		/* every recipient gets the envelope, key holders too: one
		   message, nothing re-injected but a generated password */
		password_envelope(m, o, map, len, pw);
		goto out;
	}
	int encrypt = (missing == 0 || split) && control != CONTROL_NONE && mp_gpg_nrecipients(g) > 0;
	if (!encrypt && control == CONTROL_REQUIRE) {
		set_reply(&o->reply, MP_REJECT, "550", "5.7.1",
			  "No OpenPGP key for %s, and %s: require forbids sending it in clear",
			  first_missing != NULL ? first_missing : "the recipients", s->control_header);
		mw_buf_puts(&o->log, " rejected=require-without-keys");
		goto out;
	}
	int oversize = 0;
	if (encrypt) {
		unsigned long long est = encrypted_estimate(m, len, mp_gpg_nrecipients(g));
		if (est > s->max_message_size) {
			if (s->oversize == MP_OVERSIZE_REJECT || control == CONTROL_REQUIRE) {
				set_reply(&o->reply, MP_REJECT, "552", "5.3.4",
					  "Message too big to send encrypted: about %llu bytes once encrypted, over the "
					  "limit of %llu bytes", est, s->max_message_size);
				mw_buf_printf(&o->log, " rejected=too-big-encrypted estimate=%llu", est);
				goto out;
			}
			oversize = 1;
			encrypt = split = 0;
		}
	}
	if (!encrypt && !sign) {
		delete_headers(m, o, 0);
		mw_buf_printf(&o->log, " action=plaintext%s", oversize ? " reason=oversize" :
				   missing ? " reason=recipient-without-key" :
				   control == CONTROL_NONE ? " reason=header-none" : "");
		if (first_missing != NULL && !oversize)
			mw_buf_printf(&o->log, " first_without_key=<%s>", first_missing);
		goto out;
	}
	if (encrypt && s->encrypt_to_sender && sender[0] != '\0' && mp_gpg_recipient(g, sender, 1, &err) < 0) {
		tempfail(o, "cannot look up the sender's key", mw_buf_str(&err));
		goto out;
	}

	/* The original entity: its Content-* fields (and protected headers), a blank line, the body. */
	int obscured = entity_head(m, &head, encrypt ? MP_HP_CIPHER : MP_HP_CLEAR) == MP_HP_CIPHER &&
		       s->protect_subject;

	if (split) {
		/* the keyless recipients' copy: the password envelope, or plaintext */
		struct mw_buf shead = MW_BUF_INIT;
		int r = 0;
		if (pw != MP_PW_NONE) {
			r = password_copy(m, o, map, len, pw);
		} else {
			entity_head(m, &shead, MP_HP_CLEAR); /* signed only: hp="clear" */
			if ((r = split_copy(m, g, sign, map, len, &shead, &o->reinject_fd, &what, &err)) < 0)
				tempfail(o, what, mw_buf_str(&err));
		}
		mw_buf_free(&shead);
		if (r < 0)
			goto out;
		o->reinject_sender = mw_xstrdup(sender);
		o->reinject_rcpts = mw_xcalloc((size_t)missing + 1, sizeof(char *));
		o->delrcpts = mw_xcalloc((size_t)missing + 1, sizeof(char *));
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state != MP_RCPT_REJECTED && !m->rcpts[i].has_key) {
				o->reinject_rcpts[o->nreinject++] = mw_xstrdup(m->rcpts[i].addr);
				o->delrcpts[o->ndelrcpts++] = mw_xstrdup(m->rcpts[i].raw);
			}
	}
	struct mw_buf ctype = MW_BUF_INIT;
	if (protect(m, g, encrypt, map, len, &head, &out_fd, &ctype, &what, &err) < 0) {
		tempfail(o, what, mw_buf_str(&err));
		mw_buf_free(&ctype);
		goto out;
	}
	delete_headers(m, o, 1);
	if (obscured)
		obscure_subject(m, o);
	add_change(o, 1, "Content-Type", mw_buf_str(&ctype), 0);
	if (find_header(m, "MIME-Version") == NULL)
		add_change(o, 1, "MIME-Version", " 1.0", 0);
	mw_buf_free(&ctype);
	o->body_fd = out_fd;
	out_fd = -1;
	if (encrypt)
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state == MP_RCPT_PLAINTEXT)
				m->rcpts[i].state = !split || m->rcpts[i].has_key ? MP_RCPT_ENCRYPTED :
						    pw != MP_PW_NONE ? MP_RCPT_PASSWORD : MP_RCPT_SPLIT;
	mw_buf_printf(&o->log, " action=%s keys=%d%s", encrypt ? (sign ? "sign+encrypt" : "encrypt") : "sign",
		      encrypt ? mp_gpg_nrecipients(g) : 0, s->hide_recipients && encrypt ? " hidden" : "");
	if (split)
		mw_buf_printf(&o->log, " split=%d%s first_without_key=<%s>", missing, sign ? " split_signed" : "",
			      first_missing);
	else if (oversize)
		mw_buf_puts(&o->log, " reason=oversize");
	else if (!encrypt && missing)
		mw_buf_printf(&o->log, " reason=recipient-without-key first_without_key=<%s>", first_missing);
	else if (!encrypt && control == CONTROL_NONE)
		mw_buf_puts(&o->log, " reason=header-none");

out:
	if (o->reply.action == MP_ACCEPT && outbound(m) && mp_ac_wanted(m->conf, sender)) {
		mw_buf_reset(&err);
		mp_ac_outbound(m->conf, m, gpg_of(m, &err), o);
	}
	if (o->reply.action != MP_ACCEPT) {
		/* refused: nothing goes out, no change counts */
		mp_outcome_clear(o);
		for (int i = 0; i < m->nrcpts; i++)
			m->rcpts[i].state = MP_RCPT_REJECTED;
	}
	if (map != NULL)
		munmap(map, len);
	if (out_fd >= 0)
		close(out_fd);
	mw_buf_free(&head);
	mw_buf_free(&err);
}

int mp_msg_reinject(struct mp_msg *m, struct mp_outcome *o)
{
	struct mw_buf err = MW_BUF_INIT;
	int r = 0;
	if (mp_inject_fd(m->conf->inject, o->reinject_sender, (const char *const *)o->reinject_rcpts,
			 (size_t)o->nreinject, o->reinject_fd, &err) < 0) {
		set_reply(&o->reply, MP_TEMPFAIL, "451", "4.3.0",
			  "milter-pgp: cannot pass on the copy for the recipients without a key, try again later");
		mw_buf_printf(&o->log, " tempfail=\"re-injection: %s\"", mw_buf_str(&err));
		mp_outcome_clear(o);
		for (int i = 0; i < m->nrcpts; i++)
			m->rcpts[i].state = MP_RCPT_REJECTED;
		r = -1;
	} else {
		mw_buf_printf(&o->log, " reinjected=%d via=%s", o->nreinject, mp_inject_describe(m->conf->inject));
	}
	mw_buf_free(&err);
	return r;
}
