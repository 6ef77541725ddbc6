/*
 * secret: slow salted hashes of backup codes and app passwords, and the
 * random generation of secrets, codes and passwords.
 *
 * A hash is kept as text in the state file, self-describing so that its
 * cost can be raised later without breaking old entries:
 *
 *   pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX
 *   scrypt:LOG2_N:R:P:SALT_HEX:HASH_HEX
 *
 * Both from OpenSSL (PKCS5_PBKDF2_HMAC, EVP_PBE_scrypt); checked with
 * CRYPTO_memcmp. Nothing here does I/O; randomness is RAND_bytes().
 * All memory is the caller's (fixed-size structs, no allocation).
 */
#ifndef TP_SECRET_H
#define TP_SECRET_H

#include <stddef.h>

#include "buf.h"

enum tp_kdf { TP_KDF_PBKDF2_SHA256, TP_KDF_SCRYPT };

#define TP_SALT_MAX 32
#define TP_DK_MAX 64
#define TP_HASH_TEXT_MAX 256

struct tp_hash {
	enum tp_kdf kdf;
	unsigned iterations;           /* pbkdf2 */
	unsigned log2_n, r, p;         /* scrypt */
	unsigned char salt[TP_SALT_MAX];
	size_t saltlen;
	unsigned char dk[TP_DK_MAX];
	size_t dklen;
};

/* Limits accepted from a file (a hostile file must not make a login run
   for minutes or allocate gigabytes). */
#define TP_PBKDF2_ITER_MIN 1000
#define TP_PBKDF2_ITER_MAX 10000000
#define TP_SCRYPT_LOG2N_MAX 20

/* The defaults totp-admin writes (see README: why these costs). */
#define TP_PBKDF2_ITER_DEFAULT 20000

/* Parses the text form (exactly n bytes); 0 or -1. */
int tp_hash_parse(const char *s, size_t n, struct tp_hash *h);
/* Appends the text form. */
int tp_hash_format(const struct tp_hash *h, struct mw_buf *out);

/*
 * Hashes secret[0..n) into *h with h's kdf and cost and h->salt (saltlen
 * bytes; the caller fills them, e.g. with tp_random_bytes). 0 or -1.
 */
int tp_hash_compute(const char *secret, size_t n, struct tp_hash *h);

/*
 * A cache of one derived key: backup codes and app passwords of one batch
 * share a salt and cost, so checking a candidate against all of them
 * costs one derivation, not one per entry.
 */
struct tp_hash_cache {
	int valid;
	struct tp_hash key;            /* kdf, cost, salt; dk = derived */
};

/* 1 if secret hashes to h, 0 if not, -1 on error. cache may be NULL;
   it must only ever see one candidate secret. */
int tp_hash_verify(const char *secret, size_t n, const struct tp_hash *h, struct tp_hash_cache *cache);
void tp_hash_cache_wipe(struct tp_hash_cache *cache);

/* A new pbkdf2 hash of secret with a fresh random salt (or salt_from's). */
int tp_hash_new(const char *secret, size_t n, const struct tp_hash *salt_from, struct tp_hash *h);

int tp_random_bytes(unsigned char *p, size_t n);

/*
 * Backup codes: 10 characters from an alphabet without look-alikes
 * (50 bits), shown as "xxxxx-xxxxx". App passwords: 16 lower-case letters
 * (75 bits), shown in groups of four. Both are normalised before hashing:
 * case folded, spaces and dashes dropped.
 */
#define TP_BACKUP_LEN 10
#define TP_APPPASS_LEN 16
#define TP_GA_SCRATCH_LEN 8 /* google-authenticator's scratch codes, imported */
/* out gets the display form, NUL-terminated (12 and 20 bytes suffice). */
int tp_backup_code_new(char *out, size_t outlen);
int tp_app_password_new(char *out, size_t outlen);
/*
 * Normalises s[0..n) into out (at most outlen-1 chars, NUL-terminated):
 * lower case, spaces and dashes dropped. Returns the length, or -1 unless
 * the result is a whole code: a backup code is TP_BACKUP_LEN characters of
 * its alphabet, or TP_GA_SCRATCH_LEN digits (an imported scratch code); an
 * app password is TP_APPPASS_LEN letters. A typed password that is not of
 * this shape costs no key derivation at all.
 */
int tp_backup_code_normalise(const char *s, size_t n, char *out, size_t outlen);
int tp_app_password_normalise(const char *s, size_t n, char *out, size_t outlen);

#endif
