#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keytable.h"
#include "log.h"
#include "dksign.h"
#include "masign.h"

#define MAX_TABLE_BYTES (16 * 1024 * 1024)
#define MAX_KEY_BYTES (64 * 1024)
#define MAX_SIGS_PER_MSG 8
#define MAX_HEADER_BYTES (4 * 1024 * 1024)

struct loaded_key {
	EVP_PKEY *pkey;  /* parsed once, shared read-only by every thread */
	int ed25519;
	int bits;
};

struct ma_signer {
	struct ma_keytable kt;
	char **sign_headers, **oversign_headers; /* the configuration's */
	unsigned long long ttl_s;
	struct ma_signtable st;
	struct ma_loginmap lm;
	int have_lm;
	struct loaded_key *keys; /* one per key table row */
	int hrelaxed, brelaxed;
};

/* ------------------------------------------------------------ loading */

/* Reads a whole table file (up to MAX_TABLE_BYTES); NULL with err. */
static char *read_table(const char *path, size_t *len, struct mw_buf *err)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct mw_buf b = MW_BUF_INIT;
	mw_buf_init(&b, MAX_TABLE_BYTES);
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (mw_buf_append(&b, chunk, n) < 0)
			break;
	int bad = ferror(f);
	fclose(f);
	if (bad || mw_buf_failed(&b)) {
		mw_buf_printf(err, "%s: %s", path, bad ? "read error" : "larger than 16 MB");
		mw_buf_free(&b);
		return NULL;
	}
	*len = mw_buf_len(&b);
	mw_buf_str(&b);
	char *text = mw_buf_steal(&b);
	mw_buf_free(&b);
	return text != NULL ? text : mw_xstrdup("");
}

static int no_password(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return -1;
}

/* A key that is not PEM: base64 of DER, or of a raw 32-byte Ed25519
   private key (what dkimpy's dknewkey and rspamd write). */
static EVP_PKEY *parse_base64_key(const char *text, size_t len)
{
	unsigned char *clean = malloc(len + 1), *der = malloc(len + 1);
	EVP_PKEY *k = NULL;
	size_t n = 0;
	if (clean == NULL || der == NULL)
		goto out;
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
			clean[n++] = (unsigned char)text[i];
	if (n == 0 || n % 4 != 0)
		goto out;
	int dl = EVP_DecodeBlock(der, clean, (int)n);
	if (dl < 0)
		goto out;
	if (n >= 1 && clean[n - 1] == '=')
		dl--;
	if (n >= 2 && clean[n - 2] == '=')
		dl--;
	if (dl == 32) {
		k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, der, 32);
	} else {
		const unsigned char *p = der;
		k = d2i_AutoPrivateKey(NULL, &p, dl);
	}
out:
	if (clean != NULL)
		OPENSSL_cleanse(clean, len + 1);
	if (der != NULL)
		OPENSSL_cleanse(der, len + 1);
	free(clean);
	free(der);
	return k;
}

/* A private key as text: PEM (PKCS#1 or PKCS#8), base64 DER, or a base64
   raw Ed25519 key. NULL if none. */
static EVP_PKEY *parse_key(const char *text, size_t len)
{
	EVP_PKEY *k = NULL;
	if (len > MAX_KEY_BYTES)
		return NULL;
	if (memmem(text, len, "-----BEGIN", 10) != NULL) {
		BIO *bio = BIO_new_mem_buf(text, (int)len);
		if (bio != NULL)
			k = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
		BIO_free(bio);
	} else {
		k = parse_base64_key(text, len);
	}
	return k;
}

int ma_sign_key_public(const char *text, size_t len, struct mw_buf *p, int *ed25519, int *bits)
{
	EVP_PKEY *k = parse_key(text, len);
	if (k == NULL)
		return -1;
	int type = EVP_PKEY_get_base_id(k), r = -1;
	unsigned char *der = NULL;
	int dl = 0;
	unsigned char raw[32];
	size_t rl = sizeof(raw);
	*bits = EVP_PKEY_get_bits(k);
	if (type == EVP_PKEY_RSA) {
		*ed25519 = 0;
		dl = i2d_PUBKEY(k, &der); /* SubjectPublicKeyInfo, as RFC 6376 3.6.1 asks */
	} else if (type == EVP_PKEY_ED25519 && EVP_PKEY_get_raw_public_key(k, raw, &rl) == 1) {
		*ed25519 = 1;
		der = OPENSSL_malloc(rl);
		if (der != NULL) {
			memcpy(der, raw, rl);
			dl = (int)rl; /* RFC 8463 3: the raw 32 bytes */
		}
	}
	if (dl > 0 && der != NULL) {
		unsigned char *b64 = malloc((size_t)dl * 2 + 4);
		if (b64 != NULL) {
			int n = EVP_EncodeBlock(b64, der, dl);
			mw_buf_append(p, b64, (size_t)n);
			free(b64);
			r = 0;
		}
	}
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return r;
}

static int load_key(const char *table, const struct ma_key_row *row, uid_t daemon_uid,
		    struct loaded_key *out, struct mw_buf *err)
{
	int fd = open(row->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			mw_buf_printf(err, "%s:%d: key file %s does not exist", table, row->line, row->path);
		else
			mw_buf_printf(err, "%s:%d: cannot open key file %s: %s (milter-auth runs as uid %u)",
				      table, row->line, row->path, strerror(errno), (unsigned)geteuid());
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_buf_printf(err, "%s:%d: key file %s is not a regular file", table, row->line, row->path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		mw_buf_printf(err, "%s:%d: key file %s is accessible to its group or others (mode %04o): "
			      "chmod 600 %s", table, row->line, row->path, (unsigned)(st.st_mode & 07777),
			      row->path);
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0 && st.st_uid != daemon_uid) {
		mw_buf_printf(err, "%s:%d: key file %s is owned by uid %u, neither root nor the daemon's "
			      "user (uid %u)", table, row->line, row->path, (unsigned)st.st_uid,
			      (unsigned)(daemon_uid != (uid_t)-1 ? daemon_uid : geteuid()));
		close(fd);
		return -1;
	}
	if (st.st_size <= 0 || st.st_size > MAX_KEY_BYTES) {
		mw_buf_printf(err, "%s:%d: key file %s is %s", table, row->line, row->path,
			      st.st_size <= 0 ? "empty" : "larger than 64 KB: not a key");
		close(fd);
		return -1;
	}
	char *text = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (text != NULL && got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (text == NULL || got != (size_t)st.st_size) {
		mw_buf_printf(err, "%s:%d: cannot read key file %s", table, row->line, row->path);
		free(text);
		return -1;
	}
	text[got] = '\0';

	EVP_PKEY *k = parse_key(text, got);
	OPENSSL_cleanse(text, got);
	free(text);
	if (k == NULL) {
		mw_buf_printf(err, "%s:%d: %s holds no usable private key (PEM, base64 DER or a base64 "
			      "Ed25519 key; encrypted keys are not supported)", table, row->line, row->path);
		return -1;
	}
	int type = EVP_PKEY_get_base_id(k);
	if (type == EVP_PKEY_RSA) {
		out->bits = EVP_PKEY_get_bits(k);
		if (out->bits < 2048) {
			mw_buf_printf(err, "%s:%d: %s is a %d-bit RSA key: at least 2048 bits are needed "
				      "(RFC 8301 lets receivers ignore shorter ones); make one with "
				      "milter-auth-keygen", table, row->line, row->path, out->bits);
			EVP_PKEY_free(k);
			return -1;
		}
	} else if (type == EVP_PKEY_ED25519) {
		out->ed25519 = 1;
		out->bits = 256;
	} else {
		mw_buf_printf(err, "%s:%d: %s is neither an RSA nor an Ed25519 key", table, row->line,
			      row->path);
		EVP_PKEY_free(k);
		return -1;
	}
	out->pkey = k;
	return 0;
}

struct ma_signer *ma_signer_new(const struct ma_signer_conf *c, struct mw_buf *err)
{
	struct ma_signer *s = mw_xcalloc(1, sizeof(*s));
	size_t len;
	char *text;
	int r;

	if (c->key_table != NULL && c->key_table[0] != '\0') {
		if ((text = read_table(c->key_table, &len, err)) == NULL)
			goto fail;
		r = ma_keytable_parse(text, len, c->key_table, &s->kt, err);
		free(text);
		if (r < 0)
			goto fail;
		const char *spath;
		int refile = ma_signtable_kind(c->signing_table, &spath);
		if ((text = read_table(spath, &len, err)) == NULL)
			goto fail;
		r = ma_signtable_parse(text, len, spath, refile, &s->kt, &s->st, err);
		free(text);
		if (r < 0)
			goto fail;
	}
	if (c->login_maps != NULL && c->login_maps[0] != '\0') {
		if ((text = read_table(c->login_maps, &len, err)) == NULL)
			goto fail;
		r = ma_loginmap_parse(text, len, c->login_maps, &s->lm, err);
		free(text);
		if (r < 0)
			goto fail;
		s->have_lm = 1;
	}
	s->keys = mw_xcalloc((size_t)s->kt.n + 1, sizeof(*s->keys));
	uid_t daemon_uid = (uid_t)-1;
	if (c->daemon_user != NULL && c->daemon_user[0] != '\0') {
		struct passwd pw, *found = NULL;
		char pwbuf[4096];
		if (getpwnam_r(c->daemon_user, &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found != NULL)
			daemon_uid = found->pw_uid;
	}
	for (int i = 0; i < s->kt.n; i++)
		if (load_key(c->key_table, &s->kt.rows[i], daemon_uid, &s->keys[i], err) < 0)
			goto fail;

	s->hrelaxed = c->header_relaxed;
	s->brelaxed = c->body_relaxed;
	s->sign_headers = c->sign_headers;
	s->oversign_headers = c->oversign_headers;
	s->ttl_s = c->ttl_s;
	return s;
fail:
	ma_signer_free(s);
	return NULL;
}

void ma_signer_free(struct ma_signer *s)
{
	if (s == NULL)
		return;
	if (s->keys != NULL) {
		for (int i = 0; i < s->kt.n; i++) {
			EVP_PKEY_free(s->keys[i].pkey);
		}
		free(s->keys);
	}
	ma_keytable_free(&s->kt);
	ma_signtable_free(&s->st);
	ma_loginmap_free(&s->lm);
	free(s);
}

int ma_signer_nkeys(const struct ma_signer *s)
{
	return s != NULL ? s->kt.n : 0;
}

int ma_signer_login_allowed(const struct ma_signer *s, const char *login, const char *local,
			    const char *domain, struct mw_buf *reason)
{
	if (s != NULL && s->have_lm) {
		int r = ma_loginmap_check(&s->lm, login, local, domain);
		if (r == 1)
			return 1;
		mw_buf_printf(reason, r == 0 ? "%s@%s belongs to another user" :
				      "%s@%s has no owner in the sender login map", local, domain);
		return 0;
	}
	/* no map: the login is an address of the same domain */
	const char *at = strrchr(login, '@');
	if (at != NULL && strcasecmp(at + 1, domain) == 0)
		return 1;
	mw_buf_printf(reason, "login %s may not send as a user of %s", login, domain);
	return 0;
}

/* ------------------------------------------------------------ message */

struct sig {
	struct ma_dksign *dk;
	char signer[MA_DOMAIN_MAX + MA_LOCAL_MAX + 1];
	int row;               /* signing table row */
	char domain[MA_DOMAIN_MAX];
};

struct ma_sign_msg {
	struct ma_signer *s;
	char **headers;        /* "Name:value" with CRLF folds */
	int nheaders, cap;
	size_t header_bytes;
	int too_big;
	struct ma_sign_from from;
	struct mw_buf first_from;
	struct sig sigs[MAX_SIGS_PER_MSG];
	int nsigs;
};

struct ma_sign_msg *ma_sign_msg_new(struct ma_signer *s, const char *id)
{
	(void)id;
	if (s == NULL)
		return NULL;
	struct ma_sign_msg *m = mw_xcalloc(1, sizeof(*m));
	m->s = s;
	mw_buf_init(&m->first_from, 64 * 1024);
	return m;
}

static void drop_headers(struct ma_sign_msg *m)
{
	for (int i = 0; i < m->nheaders; i++)
		free(m->headers[i]);
	free(m->headers);
	m->headers = NULL;
	m->nheaders = m->cap = 0;
}

void ma_sign_msg_free(struct ma_sign_msg *m)
{
	if (m == NULL)
		return;
	drop_headers(m);
	for (int i = 0; i < m->nsigs; i++)
		ma_dksign_free(m->sigs[i].dk);
	mw_buf_free(&m->first_from);
	free(m);
}

void ma_sign_msg_header(struct ma_sign_msg *m, const char *name, const char *value)
{
	if (strcasecmp(name, "From") == 0 && m->from.count++ == 0)
		mw_buf_set(&m->first_from, value);
	if (m->too_big)
		return;
	struct mw_buf line = MW_BUF_INIT;
	mw_buf_printf(&line, "%s:", name);
	/* folds as CRLF, as DKIM signs them (RFC 6376 3.4.2) */
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\n' && (p == value || p[-1] != '\r'))
			mw_buf_putc(&line, '\r');
		mw_buf_putc(&line, *p);
	}
	m->header_bytes += mw_buf_len(&line);
	if (mw_buf_failed(&line) || m->header_bytes > MAX_HEADER_BYTES) {
		m->too_big = 1;
		mw_buf_free(&line);
		return;
	}
	if (m->nheaders == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->headers = mw_xrealloc(m->headers, (size_t)m->cap * sizeof(char *));
	}
	m->headers[m->nheaders++] = mw_buf_steal(&line);
	mw_buf_free(&line);
}

const struct ma_sign_from *ma_sign_msg_from(const struct ma_sign_msg *m)
{
	return &m->from;
}

static void expand(char *out, size_t outlen, const char *tmpl, const char *domain)
{
	struct mw_buf b = MW_BUF_INIT;
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p == '%')
			mw_buf_puts(&b, domain);
		else
			mw_buf_putc(&b, *p);
	}
	snprintf(out, outlen, "%s", mw_buf_str(&b));
	mw_buf_free(&b);
}

int ma_sign_msg_eoh(struct ma_sign_msg *m, struct mw_buf *note)
{
	struct ma_signer *s = m->s;
	m->from.ok = m->from.count == 1 &&
		     ma_from_parse(mw_buf_str(&m->first_from), mw_buf_len(&m->first_from), &m->from.from) == 0;
	if (m->from.ok) {
		size_t n = strlen(m->from.from.local);
		if (n >= sizeof(m->from.local))
			n = 0;
		for (size_t i = 0; i < n; i++) {
			char c = m->from.from.local[i];
			m->from.local[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		}
		m->from.local[n] = '\0';
	}
	if (!m->from.ok) {
		mw_buf_puts(note, "not signed: the message needs exactly one From address");
		drop_headers(m);
		return 0;
	}
	if (m->too_big) {
		mw_buf_puts(note, "not signed: headers larger than 4 MB");
		drop_headers(m);
		return 0;
	}
	if (s->kt.n == 0) {
		drop_headers(m);
		return 0; /* only here for sender_login_check */
	}
	const char *domain = m->from.from.domain;
	const char *local = m->from.local;
	int rows[MAX_SIGS_PER_MSG];
	int n = ma_signtable_match(&s->st, local, domain, rows, MAX_SIGS_PER_MSG);
	if (n == 0) {
		mw_buf_printf(note, "not signed: no signing table row for %s@%s", local, domain);
		drop_headers(m);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		const struct ma_sign_row *row = &s->st.rows[rows[i]];
		const struct ma_key_row *kr = &s->kt.rows[row->key];
		const struct loaded_key *key = &s->keys[row->key];
		struct sig *g = &m->sigs[m->nsigs];
		expand(g->domain, sizeof(g->domain), kr->domain, domain);
		g->row = rows[i];
		g->signer[0] = '\0';
		if (row->signer != NULL)
			expand(g->signer, sizeof(g->signer), row->signer, domain);
		g->dk = ma_dksign_new(key->pkey, s->hrelaxed, s->brelaxed);
		m->nsigs++;
	}
	return m->nsigs;
}

void ma_sign_msg_body(struct ma_sign_msg *m, const unsigned char *data, size_t len)
{
	for (int i = 0; i < m->nsigs; i++)
		ma_dksign_body(m->sigs[i].dk, data, len);
}

int ma_sign_msg_eom(struct ma_sign_msg *m, char **values, int max, struct mw_buf *note)
{
	int n = 0;
	for (int i = 0; i < m->nsigs && n < max; i++) {
		struct sig *g = &m->sigs[i];
		const struct ma_key_row *kr = &m->s->kt.rows[m->s->st.rows[g->row].key];
		const struct loaded_key *key = &m->s->keys[m->s->st.rows[g->row].key];
		struct mw_buf v = MW_BUF_INIT, err = MW_BUF_INIT;
		/* the headers are hashed now, so they are kept until here */
		if (ma_dksign_finish(g->dk, g->domain, kr->selector, g->signer, time(NULL), m->s->ttl_s,
				     m->headers, m->nheaders, m->s->sign_headers, m->s->oversign_headers, &v,
				     &err) == 0) {
			values[n++] = mw_buf_steal(&v);
			mw_buf_printf(note, "%sdkim-signed(d=%s s=%s a=%s)", mw_buf_len(note) ? " " : "", g->domain,
				      kr->selector, key->ed25519 ? "ed25519-sha256" : "rsa-sha256");
		} else {
			mw_buf_printf(note, "%ssigning as d=%s s=%s failed: %s", mw_buf_len(note) ? " " : "",
				      g->domain, kr->selector, mw_buf_str(&err));
		}
		mw_buf_free(&v);
		mw_buf_free(&err);
	}
	return n;
}
