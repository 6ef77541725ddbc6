/*
 * edsign: our own DKIM signer (RFC 6376 canonicalization, RFC 8463
 * ed25519-sha256), used for Ed25519 only. Debian's libopendkim 2.11.0~beta2
 * does sign Ed25519, but loses the parsed key and a block of its own for
 * every signature (about 1.2 KB per message: unbounded growth in a
 * daemon), and refuses the DER form that would leak less. RSA stays with
 * libopendkim (masign.c); python3-dkim and OpenDKIM verify both in the
 * tests, on the same messages.
 *
 * Pure: no I/O; OpenSSL for SHA-256 and the signature. A struct
 * ma_edsign is one signature of one message, owned by the caller (one
 * thread). The canonicalizers are exported for the unit tests.
 */
#ifndef MA_EDSIGN_H
#define MA_EDSIGN_H

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

struct ma_edsign;
/* key: an EVP_PKEY (Ed25519), shared read-only; not freed here. */
struct ma_edsign *ma_edsign_new(void *key, int header_relaxed, int body_relaxed);
void ma_edsign_free(struct ma_edsign *e);
void ma_edsign_body(struct ma_edsign *e, const unsigned char *data, size_t len);
/*
 * Signs: headers are the message's fields in order ("Name:value", CRLF
 * folds); sign_names are signed in every instance, oversign_names once
 * more. Appends the DKIM-Signature value (leading space, "\n\t" folds) to
 * out; 0, or -1 with err.
 */
int ma_edsign_finish(struct ma_edsign *e, const char *domain, const char *selector, const char *signer,
		     time_t now, unsigned long long ttl, char *const *headers, int nheaders,
		     char *const *sign_names, char *const *oversign_names, struct mw_buf *out,
		     struct mw_buf *err);

#endif
