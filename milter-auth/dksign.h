/*
 * dksign: our DKIM signer (RFC 6376 canonicalization and signature,
 * rsa-sha256 and RFC 8463 ed25519-sha256). Not libopendkim's dkim_sign():
 * Debian's libopendkim 2.11.0~beta2 loses the parsed key and a block of
 * its own for every Ed25519 signature (about 470 bytes per message,
 * unbounded growth in a daemon) and refuses the DER key form that would
 * lose less; and it takes the key as text, parsing it again for every
 * message, which costs several times the RSA signature itself (OpenSSL 3's
 * decoders). Here a key is parsed once at load and shared read-only.
 * python3-dkim and OpenDKIM's opendkim-testmsg verify what it makes in the
 * tests.
 *
 * Pure: no I/O; OpenSSL for SHA-256 and the signatures. A struct
 * ma_dksign is one signature of one message, owned by the caller (one
 * thread). The canonicalizers are exported for the unit tests.
 */
#ifndef MA_DKSIGN_H
#define MA_DKSIGN_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

/* Body canonicalization (RFC 6376 3.4.3 simple, 3.4.4 relaxed), fed in
   chunks with LF or CRLF line ends; the canonical bytes accumulate in
   out (the caller may consume and reset it between feeds). */
struct ma_body_canon {
	int relaxed;
	unsigned long long empty; /* empty lines held back (dropped at the end) */
	int ws;                   /* relaxed: white space held back */
	int cr;                   /* a CR held back (CRLF split across chunks) */
	int content;              /* the current line has content */
	int any;                  /* any line with content at all */
	struct mw_buf out;
};
void ma_body_canon_init(struct ma_body_canon *c, int relaxed);
void ma_body_canon_feed(struct ma_body_canon *c, const unsigned char *data, size_t len);
void ma_body_canon_end(struct ma_body_canon *c);
void ma_body_canon_free(struct ma_body_canon *c);

/* One header field "Name:value" (folds as CRLF) canonicalized, with the
   trailing CRLF, appended to out (RFC 6376 3.4.1 simple, 3.4.2 relaxed). */
void ma_header_canon(const char *field, size_t len, int relaxed, struct mw_buf *out);

struct ma_dksign;
/* key: an EVP_PKEY (RSA or Ed25519), shared read-only; not freed here. */
struct ma_dksign *ma_dksign_new(void *key, int header_relaxed, int body_relaxed);
void ma_dksign_free(struct ma_dksign *e);
void ma_dksign_body(struct ma_dksign *e, const unsigned char *data, size_t len);
/*
 * Signs: headers are the message's fields in order ("Name:value", CRLF
 * folds); sign_names are signed in every instance, oversign_names once
 * more. Appends the DKIM-Signature value (leading space, "\n\t" folds) to
 * out; 0, or -1 with err.
 */
int ma_dksign_finish(struct ma_dksign *e, const char *domain, const char *selector, const char *signer,
		     time_t now, unsigned long long ttl, char *const *headers, int nheaders,
		     char *const *sign_names, char *const *oversign_names, struct mw_buf *out,
		     struct mw_buf *err);

#endif
