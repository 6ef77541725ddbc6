/*
 * madkim: DKIM verification (RFC 6376, RFC 8463 Ed25519) with libopendkim,
 * its key lookups answered by the common resolver within the message's DNS
 * budget.
 *
 * On top of libopendkim's verdict we apply RFC 8301 and our own policy: an
 * rsa-sha1 signature, an RSA key shorter than dkim_min_key_bits, or an l=
 * body length that leaves part of the body unsigned never passes (result
 * "policy", with the reason).
 *
 * One struct ma_dkim per process (thread-safe); one struct ma_dkim_msg per
 * message, fed headers and body and then finished with ma_dkim_msg_eom().
 * Results are copied into the caller's array; nothing returned needs
 * freeing besides the two handles.
 */
#ifndef MA_MADKIM_H
#define MA_MADKIM_H

#include <stddef.h>

#include "buf.h"
#include "dns.h"
#include "hdrparse.h"

enum ma_dkim_result {
	MA_DKIM_NONE,
	MA_DKIM_PASS,
	MA_DKIM_FAIL,
	MA_DKIM_NEUTRAL,
	MA_DKIM_POLICY,
	MA_DKIM_TEMPERROR,
	MA_DKIM_PERMERROR,
};

struct ma_dkim_sig {
	enum ma_dkim_result result;
	char domain[MA_DOMAIN_MAX]; /* d= (lower-cased) */
	char selector[64];          /* s= */
	char b[16];                 /* the first 8 characters of b= (RFC 6008) */
	char algorithm[24];         /* a= */
	char reason[128];           /* why, when not pass */
};

struct ma_dkim;
struct ma_dkim_msg;

struct ma_dkim *ma_dkim_new(struct mw_dns *dns, unsigned min_key_bits, struct mw_buf *err);
void ma_dkim_free(struct ma_dkim *d);

/* id names the message in libopendkim's messages (the queue id). */
struct ma_dkim_msg *ma_dkim_msg_new(struct ma_dkim *d, const char *id);
/* One header as received: value with its leading space and folds. */
void ma_dkim_msg_header(struct ma_dkim_msg *m, const char *name, const char *value);
/* At most this many different body hashes (body canonicalization, hash,
   l=) are computed per message, whatever its signatures ask for. */
#define MA_DKIM_MAX_BODY_HASHES 4

/* End of headers: chooses the signatures to verify, at most max_sigs, those
   of from_domain (may be NULL) and its parents or children first; the
   others are skipped before any DNS lookup or hashing. Returns 1 when no
   signature is left (the body need not be fed). */
int ma_dkim_msg_eoh(struct ma_dkim_msg *m, const char *from_domain, int max_sigs);
/* How many signatures ma_dkim_msg_eoh() skipped. */
int ma_dkim_msg_skipped(const struct ma_dkim_msg *m);
void ma_dkim_msg_body(struct ma_dkim_msg *m, const unsigned char *data, size_t len);
/* Verifies; fills up to max results, returns how many signatures there
   were (0: none). budget may be NULL. */
int ma_dkim_msg_eom(struct ma_dkim_msg *m, struct mw_dns_budget *budget, struct ma_dkim_sig *sigs,
		    int max);
void ma_dkim_msg_free(struct ma_dkim_msg *m);

/*
 * The length of a body after DKIM canonicalization (RFC 6376 3.4.3 simple,
 * 3.4.4 relaxed), counted as it streams by, to tell whether an l= tag
 * leaves part of the body unsigned.
 */
struct ma_dkim_canon {
	int relaxed;
	unsigned long long committed; /* through the last line with content */
	unsigned long long line_len;  /* the current line so far */
	unsigned long long empty_lines; /* empty lines not yet followed by content */
	int pending_ws;
	int held_cr;
};
void ma_dkim_canon_init(struct ma_dkim_canon *c, int relaxed);
void ma_dkim_canon_feed(struct ma_dkim_canon *c, const unsigned char *data, size_t len);
unsigned long long ma_dkim_canon_length(const struct ma_dkim_canon *c);

/* "pass", "fail", ... (RFC 8601 names). */
const char *ma_dkim_result_name(enum ma_dkim_result r);

#endif
