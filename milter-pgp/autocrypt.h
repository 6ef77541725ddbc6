/*
 * autocrypt: the pure parts of Autocrypt Level 1 (https://autocrypt.org/level1.html)
 * in milter-pgp, no I/O and fuzzed (tests/fuzz/fuzz_milter_pgp_autocrypt.c):
 *
 *   - the Autocrypt header's value (addr=, prefer-encrypt=, keydata=; an
 *     unknown attribute not starting with "_" makes the header invalid, as
 *     the specification says);
 *   - what our own Authentication-Results field says of the From domain:
 *     dmarc=pass with header.from= that domain, or dkim=pass with a
 *     header.d= aligned with it (the caller says what aligned means);
 *   - an RFC 5322 date-time (the Date field), for the effective date;
 *   - the header we add, folded (RFC 5322 2.2.3) as libmilter takes it.
 *
 * Every input is untrusted: lengths are checked, nothing is read past len.
 * Memory: mp_ac_parse() allocates the decoded key (mp_ac_header_free()).
 */
#ifndef MP_AUTOCRYPT_H
#define MP_AUTOCRYPT_H

#include <stddef.h>

#include "buf.h"

#define MP_AC_ADDR_MAX 320
#define MP_AC_VALUE_MAX (128 * 1024) /* a longer header is invalid */
#define MP_AC_ID_MAX 256

struct mp_ac_header {
	char addr[MP_AC_ADDR_MAX];  /* lower-cased */
	int mutual;                 /* prefer-encrypt=mutual */
	unsigned char *keydata;     /* decoded (malloc) */
	size_t keylen;
};

/* 0, or -1 with why (static text) when the header is invalid. */
int mp_ac_parse(const char *value, size_t len, struct mp_ac_header *out, const char **why);
void mp_ac_header_free(struct mp_ac_header *h);

enum mp_ac_ar {
	MP_AC_AR_OTHER = -1, /* another authserv-id (or none): not ours */
	MP_AC_AR_NONE = 0,   /* ours, no pass for the From domain */
	MP_AC_AR_DMARC = 1,  /* ours, dmarc=pass header.from=FROM */
	MP_AC_AR_DKIM = 2,   /* ours, dkim=pass with an aligned header.d */
};

/* aligned(d, from_domain): 1 when the DKIM domain d is aligned (relaxed)
   with from_domain. Both lower-cased. */
typedef int (*mp_ac_aligned_fn)(const char *d, const char *from_domain);

/* What an Authentication-Results value says (authserv_id compared without
   case; from_domain lower-cased). */
enum mp_ac_ar mp_ac_ar_verdict(const char *value, size_t len, const char *authserv_id, const char *from_domain,
			       mp_ac_aligned_fn aligned);

/* An RFC 5322 date-time (obsolete zones too) as seconds since the epoch;
   0, or -1 when it is not one. */
int mp_ac_date(const char *value, size_t len, long long *out);

/* The value of our Autocrypt header (starting with a space): addr,
   prefer-encrypt=mutual when asked, keydata in base64, folded in lines of
   at most 78 characters with "\n\t". Appends to out. */
void mp_ac_header_value(const char *addr, int mutual, const unsigned char *key, size_t len, struct mw_buf *out);

#endif
