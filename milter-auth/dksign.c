#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "dksign.h"
#include "log.h"

/* ------------------------------------------------------------ body */

void ma_body_canon_init(struct ma_body_canon *c, int relaxed)
{
	memset(c, 0, sizeof(*c));
	c->relaxed = relaxed;
	mw_buf_init(&c->out, 0);
}

void ma_body_canon_free(struct ma_body_canon *c)
{
	mw_buf_free(&c->out);
}

/* A content byte of the current line: first the empty lines held back
   (they were not at the end after all), then relaxed's one space. */
static void content(struct ma_body_canon *c, unsigned char ch)
{
	if (!c->content) {
		for (; c->empty > 0; c->empty--)
			mw_buf_puts(&c->out, "\r\n");
		c->content = 1;
		c->any = 1;
	}
	if (c->ws) {
		mw_buf_putc(&c->out, ' ');
		c->ws = 0;
	}
	mw_buf_putc(&c->out, ch);
}

static void line_end(struct ma_body_canon *c)
{
	c->ws = 0; /* relaxed: white space at the end of a line goes */
	if (c->content)
		mw_buf_puts(&c->out, "\r\n");
	else
		c->empty++;
	c->content = 0;
}

void ma_body_canon_feed(struct ma_body_canon *c, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = p[i];
		if (c->cr) {
			c->cr = 0;
			if (ch == '\n') {
				line_end(c);
				continue;
			}
			content(c, '\r'); /* a bare CR is data */
		}
		if (ch == '\r') {
			c->cr = 1;
		} else if (ch == '\n') {
			line_end(c); /* bare LF: the MTA's line end */
		} else if (c->relaxed && (ch == ' ' || ch == '\t')) {
			c->ws = 1;
		} else {
			content(c, ch);
		}
	}
}

void ma_body_canon_end(struct ma_body_canon *c)
{
	if (c->cr) {
		c->cr = 0;
		content(c, '\r');
	}
	if (c->content)
		line_end(c); /* a last line without its CRLF gets one */
	/* trailing empty lines are dropped; an empty body is CRLF in simple,
	   nothing in relaxed (RFC 6376 3.4.3, 3.4.4 and erratum 1384) */
	if (!c->any && !c->relaxed)
		mw_buf_puts(&c->out, "\r\n");
	c->empty = 0;
}

/* ------------------------------------------------------------ headers */

void ma_header_canon(const char *f, size_t len, int relaxed, struct mw_buf *out)
{
	if (!relaxed) {
		mw_buf_append(out, f, len);
		mw_buf_puts(out, "\r\n");
		return;
	}
	const char *colon = memchr(f, ':', len);
	size_t nl = colon != NULL ? (size_t)(colon - f) : len;
	while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t'))
		nl--;
	for (size_t i = 0; i < nl; i++) {
		char ch = f[i];
		mw_buf_putc(out, ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	mw_buf_putc(out, ':');
	if (colon != NULL) {
		int ws = 0, started = 0;
		for (const char *p = colon + 1; p < f + len; p++) {
			if (*p == '\r' || *p == '\n' || *p == ' ' || *p == '\t') {
				ws = 1; /* unfolded, and runs become one space */
				continue;
			}
			if (ws && started)
				mw_buf_putc(out, ' ');
			ws = 0;
			started = 1;
			mw_buf_putc(out, *p);
		}
	}
	mw_buf_puts(out, "\r\n");
}

/* ------------------------------------------------------------ signing */

struct ma_dksign {
	EVP_PKEY *key;
	int rsa;
	int hrelaxed;
	struct ma_body_canon body;
	EVP_MD_CTX *bh;
	int failed;
};

struct ma_dksign *ma_dksign_new(void *key, int header_relaxed, int body_relaxed)
{
	struct ma_dksign *e = mw_xcalloc(1, sizeof(*e));
	e->key = key;
	e->rsa = EVP_PKEY_get_base_id(e->key) == EVP_PKEY_RSA;
	e->hrelaxed = header_relaxed;
	ma_body_canon_init(&e->body, body_relaxed);
	e->bh = EVP_MD_CTX_new();
	if (e->bh == NULL || EVP_DigestInit_ex(e->bh, EVP_sha256(), NULL) != 1)
		e->failed = 1;
	return e;
}

void ma_dksign_free(struct ma_dksign *e)
{
	if (e == NULL)
		return;
	EVP_MD_CTX_free(e->bh);
	ma_body_canon_free(&e->body);
	free(e);
}

static void hash_out(struct ma_dksign *e)
{
	if (!e->failed && mw_buf_len(&e->body.out) > 0 &&
	    EVP_DigestUpdate(e->bh, e->body.out.data, mw_buf_len(&e->body.out)) != 1)
		e->failed = 1;
	mw_buf_reset(&e->body.out);
}

void ma_dksign_body(struct ma_dksign *e, const unsigned char *data, size_t len)
{
	/* in slices, so a huge chunk never builds a huge buffer */
	while (len > 0) {
		size_t n = len < 65536 ? len : 65536;
		ma_body_canon_feed(&e->body, data, n);
		hash_out(e);
		data += n;
		len -= n;
	}
}

static size_t name_len(const char *field)
{
	const char *colon = strchr(field, ':');
	size_t n = colon != NULL ? (size_t)(colon - field) : strlen(field);
	while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\t'))
		n--;
	return n;
}

static int listed(char *const *names, const char *name, size_t len)
{
	for (; names != NULL && *names != NULL; names++)
		if (strlen(*names) == len && strncasecmp(*names, name, len) == 0)
			return 1;
	return 0;
}

#define MAX_SIG 1024 /* RSA 8192 */

static void b64(const unsigned char *data, size_t len, struct mw_buf *out)
{
	unsigned char enc[4 * ((MAX_SIG + 2) / 3) + 1];
	if (len > MAX_SIG)
		return;
	int n = EVP_EncodeBlock(enc, data, (int)len);
	mw_buf_append(out, enc, (size_t)n);
}

int ma_dksign_finish(struct ma_dksign *e, const char *domain, const char *selector, const char *signer,
		     time_t now, unsigned long long ttl, char *const *headers, int nheaders,
		     char *const *sign_names, char *const *oversign_names, struct mw_buf *out,
		     struct mw_buf *err)
{
	unsigned char bh[32], hh[32], sig[MAX_SIG];
	unsigned int bhl = 0, hhl = 0;
	size_t sl = sizeof(sig);
	int *used = mw_xcalloc((size_t)nheaders + 1, sizeof(int));
	struct mw_buf h = MW_BUF_INIT, v = MW_BUF_INIT, canon = MW_BUF_INIT;
	EVP_MD_CTX *hc = EVP_MD_CTX_new(), *sc = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	int r = -1;

	ma_body_canon_end(&e->body);
	hash_out(e);
	if (e->failed || hc == NULL || sc == NULL || EVP_DigestFinal_ex(e->bh, bh, &bhl) != 1 ||
	    EVP_DigestInit_ex(hc, EVP_sha256(), NULL) != 1) {
		mw_buf_puts(err, "SHA-256 failed");
		goto out;
	}
	/* h=: every instance of a signed field, top down (each name once per
	   instance), then each over-signed name once more */
	int nh = 0;
	for (int i = 0; i < nheaders; i++) {
		size_t nl = name_len(headers[i]);
		if (listed(sign_names, headers[i], nl)) {
			mw_buf_printf(&h, "%s%.*s", nh++ ? ":" : "", (int)nl, headers[i]);
		}
	}
	for (char *const *o = oversign_names; o != NULL && *o != NULL; o++)
		mw_buf_printf(&h, "%s%s", nh++ ? ":" : "", *o);

	/* hash the fields in h= order, each name taking its instances from
	   the bottom up, as verifiers do (RFC 6376 5.4.2); a name with no
	   instance left adds nothing (that is what over-signing relies on) */
	const char *hp = mw_buf_str(&h);
	while (*hp != '\0') {
		const char *end = strchr(hp, ':');
		size_t len = end != NULL ? (size_t)(end - hp) : strlen(hp);
		for (int i = nheaders - 1; i >= 0; i--) {
			if (!used[i] && name_len(headers[i]) == len && strncasecmp(headers[i], hp, len) == 0) {
				used[i] = 1;
				mw_buf_reset(&canon);
				ma_header_canon(headers[i], strlen(headers[i]), e->hrelaxed, &canon);
				EVP_DigestUpdate(hc, canon.data, mw_buf_len(&canon));
				break;
			}
		}
		hp += len + (end != NULL);
	}

	/* the signature field, b= empty, as it will be written; folded only
	   at "; " in relaxed (where unfolding gives the same bytes back) */
	mw_buf_printf(&v, " v=1; a=%s; c=%s/%s; d=%s; s=%s; t=%llu;",
		      e->rsa ? "rsa-sha256" : "ed25519-sha256", e->hrelaxed ? "relaxed" : "simple", e->body.relaxed ? "relaxed" : "simple", domain,
		      selector, (unsigned long long)now);
	if (ttl > 0)
		mw_buf_printf(&v, " x=%llu;", (unsigned long long)now + ttl);
	if (signer != NULL && signer[0] != '\0')
		mw_buf_printf(&v, " i=%s;", signer);
	mw_buf_printf(&v, " h=%s; bh=", mw_buf_str(&h));
	b64(bh, bhl, &v);
	mw_buf_puts(&v, "; b=");
	if (mw_buf_failed(&v) || mw_buf_failed(&h)) {
		mw_buf_puts(err, "signature field too large");
		goto out;
	}
	struct mw_buf folded = MW_BUF_INIT;
	size_t col = strlen("DKIM-Signature:");
	for (const char *p = mw_buf_str(&v); *p != '\0'; p++) {
		if (e->hrelaxed && *p == ' ' && p > v.data && p[-1] == ';' && col > 60) {
			mw_buf_puts(&folded, "\n\t");
			col = 8;
			continue;
		}
		mw_buf_putc(&folded, *p);
		col++;
	}
	/* hashed as the verifier will see it: CRLF folds, no CRLF at the end */
	struct mw_buf field = MW_BUF_INIT;
	mw_buf_puts(&field, "DKIM-Signature:");
	for (const char *p = mw_buf_str(&folded); *p != '\0'; p++) {
		if (*p == '\n')
			mw_buf_putc(&field, '\r');
		mw_buf_putc(&field, *p);
	}
	mw_buf_reset(&canon);
	ma_header_canon(field.data, mw_buf_len(&field), e->hrelaxed, &canon);
	mw_buf_truncate(&canon, mw_buf_len(&canon) - 2);
	mw_buf_free(&field);
	EVP_DigestUpdate(hc, canon.data, mw_buf_len(&canon));
	int signed_ok = EVP_DigestFinal_ex(hc, hh, &hhl) == 1;
	if (signed_ok && e->rsa) {
		/* RFC 6376 3.3.1: RSASSA-PKCS1-v1_5 over the SHA-256 hash */
		pc = EVP_PKEY_CTX_new(e->key, NULL);
		signed_ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
			    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
			    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
			    EVP_PKEY_sign(pc, NULL, &sl, hh, hhl) == 1 && sl <= sizeof(sig) &&
			    EVP_PKEY_sign(pc, sig, &sl, hh, hhl) == 1;
	} else if (signed_ok) {
		/* RFC 8463 3: Ed25519 (pure) over the SHA-256 hash */
		signed_ok = EVP_DigestSignInit_ex(sc, NULL, NULL, NULL, NULL, e->key, NULL) == 1 &&
			    EVP_DigestSign(sc, sig, &sl, hh, hhl) == 1;
	}
	if (!signed_ok) {
		mw_buf_puts(err, "signing failed (OpenSSL)");
		mw_buf_free(&folded);
		goto out;
	}
	mw_buf_append(out, folded.data, mw_buf_len(&folded));
	mw_buf_free(&folded);
	struct mw_buf b = MW_BUF_INIT;
	b64(sig, sl, &b);
	/* b= folded every 64 characters: white space in b= is ignored */
	for (size_t i = 0; i < mw_buf_len(&b); i += 64) {
		if (i > 0 || col > 40)
			mw_buf_puts(out, "\n\t ");
		mw_buf_append(out, b.data + i, mw_buf_len(&b) - i < 64 ? mw_buf_len(&b) - i : 64);
	}
	mw_buf_free(&b);
	r = mw_buf_failed(out) ? -1 : 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(hc);
	EVP_MD_CTX_free(sc);
	mw_buf_free(&h);
	mw_buf_free(&v);
	mw_buf_free(&canon);
	free(used);
	return r;
}
