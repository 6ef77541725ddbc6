/*
 * wkd: the pure parts of recipient key discovery (no I/O, no allocation
 * beyond the caller's buffers), unit-tested and fuzzed:
 *
 *  - where a key is published: the Web Key Directory URLs
 *    (draft-koch-openpgp-webkey-service: the z-base-32 SHA-1 of the
 *    lowercased local part, advanced and direct method, "?l=" with the
 *    local part) and the DNS OPENPGPKEY name (RFC 7929: SHA2-256 of the
 *    local part truncated to 28 octets, "._openpgpkey." and the domain);
 *  - what came back: mp_pgp_keyblocks() walks the OpenPGP packets of a
 *    WKD reply or an OPENPGPKEY rdata (binary, RFC 4880 framing) and splits
 *    it into transferable public keys, refusing anything else, so junk never
 *    reaches gpg. Whether a key is usable is gpg's verdict (keysrc.c).
 *
 * Every function returns 0 (or a count) or -1 with a static reason in *why.
 */
#ifndef MP_WKD_H
#define MP_WKD_H

#include <stddef.h>

#include "buf.h"

#define MP_WKD_HASH_LEN 32 /* z-base-32 of 160 bits */

/* addr = local@domain: host and path (with the query) of both methods. The
   domain must be a plain LDH name (lowercased here). */
int mp_wkd_urls(const char *addr, struct mw_buf *adv_host, struct mw_buf *adv_path, struct mw_buf *direct_host,
		struct mw_buf *direct_path, const char **why);
/* The hash part alone (for milter-pgp-keys publish-wkd); out gets 33 bytes. */
int mp_wkd_hash(const char *local, size_t len, char out[MP_WKD_HASH_LEN + 1]);
/* The RFC 7929 owner name of addr's OPENPGPKEY record. */
int mp_openpgpkey_name(const char *addr, struct mw_buf *name, const char **why);
/* The domain of addr, lowercased, checked as for mp_wkd_urls(). */
int mp_wkd_domain(const char *addr, struct mw_buf *domain, const char **why);

struct mp_keyblock {
	size_t off, len;
};

#define MP_MAX_KEYBLOCKS 16
#define MP_MAX_KEYPACKETS 4096

/* Splits data into at most max transferable public keys: a count >= 1,
   or -1 (not OpenPGP public keys, truncated, more than max keys). */
int mp_pgp_keyblocks(const unsigned char *data, size_t len, struct mp_keyblock *out, int max, const char **why);

#endif
