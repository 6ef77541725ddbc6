/*
 * totp: RFC 4226 HOTP and RFC 6238 TOTP codes, and RFC 4648 base32.
 *
 * Pure computation: no I/O, no allocation except into a caller's struct
 * mw_buf. The HMAC is OpenSSL's (SHA-1, SHA-256, SHA-512). Codes are
 * compared in constant time (CRYPTO_memcmp) by tp_totp_find().
 */
#ifndef TP_TOTP_H
#define TP_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum tp_alg { TP_SHA1, TP_SHA256, TP_SHA512 };

#define TP_SECRET_MIN 10   /* 80 bits, RFC 4226's floor */
#define TP_SECRET_MAX 64   /* 512 bits, the SHA-512 block's worth */
#define TP_STEP_MAX 300
#define TP_WINDOW_MAX 10

/* "sha1", "sha256", "sha512" (case-insensitive on input); 0 or -1. */
int tp_alg_parse(const char *s, size_t n, enum tp_alg *alg_r);
const char *tp_alg_name(enum tp_alg alg);

/* The HOTP value of counter, reduced to digits (6..8); 0 or -1. */
int tp_hotp(enum tp_alg alg, const unsigned char *key, size_t keylen, uint64_t counter, int digits,
	    uint32_t *code_r);

/* The time step of unix time t (step seconds, t0 = 0); t < 0 gives 0. */
uint64_t tp_time_step(int64_t t, unsigned step);

/* code as exactly digits decimal digits with leading zeros, NUL-terminated. */
void tp_code_format(uint32_t code, int digits, char out[9]);

/* Whether s[0..n) is exactly digits ASCII digits. */
int tp_code_syntax_ok(const char *s, size_t n, int digits);

/*
 * Looks for the step in [from, to] whose code equals the digits in
 * code[0..n) (compared in constant time, every step computed). Steps are
 * tried in order; the first match is returned in *step_r. 1 found, 0 not,
 * -1 on bad arguments (or a code that is not digits long).
 */
int tp_totp_find(enum tp_alg alg, const unsigned char *key, size_t keylen, int digits,
		 uint64_t from, uint64_t to, const char *code, size_t n, uint64_t *step_r);

/*
 * Base32 (RFC 4648 alphabet). Decoding accepts either case, ignores spaces
 * and dashes (as users copy them) and trailing '=' padding; any other byte,
 * or stray bits that are not zero, is an error. Appends to out; 0 or -1.
 */
int tp_base32_decode(const char *s, size_t n, struct mw_buf *out);
/* Upper case, no padding (as otpauth:// URIs carry it). */
int tp_base32_encode(const unsigned char *p, size_t n, struct mw_buf *out);

/* Overwrites n bytes in a way the compiler keeps. */
void tp_wipe(void *p, size_t n);

#endif
