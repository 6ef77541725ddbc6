#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secret.h"
#include "strnum.h"
#include "totp.h"

#define DK_LEN 32

static const char backup_alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz"; /* no 0 1 i l o */

/* Splits s[0..n) at ':' into at most max fields; the count, or -1. */
static int split_fields(const char *s, size_t n, const char **f, size_t *flen, int max)
{
	int k = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == ':') {
			if (k == max)
				return -1;
			f[k] = s + start;
			flen[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* lower case only: one spelling per value */
}

static int hex_decode(const char *s, size_t n, unsigned char *out, size_t max, size_t *len_r)
{
	if (n == 0 || n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	*len_r = n / 2;
	return 0;
}

static int hex_append(struct mw_buf *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		char two[2] = { digits[p[i] >> 4], digits[p[i] & 15] };
		if (mw_buf_append(out, two, 2) < 0)
			return -1;
	}
	return 0;
}

static int uint_field(const char *s, size_t n, unsigned long long min, unsigned long long max, unsigned *v)
{
	unsigned long long x;
	if (n == 0 || (n > 1 && s[0] == '0') || mw_parse_uint_n(s, n, max, &x) < 0 || x < min)
		return -1;
	*v = (unsigned)x;
	return 0;
}

int tp_hash_parse(const char *s, size_t n, struct tp_hash *h)
{
	const char *f[7];
	size_t fl[7];
	memset(h, 0, sizeof(*h));
	int k = split_fields(s, n, f, fl, 7);
	if (k == 4 && fl[0] == 13 && memcmp(f[0], "pbkdf2-sha256", 13) == 0) {
		h->kdf = TP_KDF_PBKDF2_SHA256;
		if (uint_field(f[1], fl[1], TP_PBKDF2_ITER_MIN, TP_PBKDF2_ITER_MAX, &h->iterations) < 0)
			return -1;
	} else if (k == 6 && fl[0] == 6 && memcmp(f[0], "scrypt", 6) == 0) {
		h->kdf = TP_KDF_SCRYPT;
		/* N <= 2^20, r <= 16, p <= 4: at most 128 * r * N = 2 GiB is
		   refused by the memory cap in tp_hash_compute */
		if (uint_field(f[1], fl[1], 1, TP_SCRYPT_LOG2N_MAX, &h->log2_n) < 0 ||
		    uint_field(f[2], fl[2], 1, 16, &h->r) < 0 || uint_field(f[3], fl[3], 1, 4, &h->p) < 0)
			return -1;
	} else {
		return -1;
	}
	if (hex_decode(f[k - 2], fl[k - 2], h->salt, sizeof(h->salt), &h->saltlen) < 0 || h->saltlen < 8 ||
	    hex_decode(f[k - 1], fl[k - 1], h->dk, sizeof(h->dk), &h->dklen) < 0 || h->dklen < 16)
		return -1;
	return 0;
}

int tp_hash_format(const struct tp_hash *h, struct mw_buf *out)
{
	if (h->kdf == TP_KDF_SCRYPT)
		mw_buf_printf(out, "scrypt:%u:%u:%u:", h->log2_n, h->r, h->p);
	else
		mw_buf_printf(out, "pbkdf2-sha256:%u:", h->iterations);
	hex_append(out, h->salt, h->saltlen);
	mw_buf_putc(out, ':');
	hex_append(out, h->dk, h->dklen);
	return mw_buf_failed(out) ? -1 : 0;
}

static int derive(const char *secret, size_t n, const struct tp_hash *h, unsigned char *dk, size_t dklen)
{
	if (h->kdf == TP_KDF_SCRYPT) {
		uint64_t N = (uint64_t)1 << h->log2_n;
		/* 128 * r * N bytes plus a margin, at most 256 MiB */
		uint64_t maxmem = 256u * 1024 * 1024;
		return EVP_PBE_scrypt(secret, n, h->salt, h->saltlen, N, h->r, h->p, maxmem, dk, dklen) == 1 ? 0 : -1;
	}
	return PKCS5_PBKDF2_HMAC(secret, (int)n, h->salt, (int)h->saltlen, (int)h->iterations, EVP_sha256(),
				 (int)dklen, dk) == 1 ? 0 : -1;
}

int tp_hash_compute(const char *secret, size_t n, struct tp_hash *h)
{
	if (h->dklen == 0)
		h->dklen = DK_LEN;
	if (h->dklen > sizeof(h->dk) || h->saltlen == 0)
		return -1;
	return derive(secret, n, h, h->dk, h->dklen);
}

static int same_params(const struct tp_hash *a, const struct tp_hash *b)
{
	return a->kdf == b->kdf && a->iterations == b->iterations && a->log2_n == b->log2_n && a->r == b->r &&
	       a->p == b->p && a->saltlen == b->saltlen && a->dklen == b->dklen &&
	       memcmp(a->salt, b->salt, a->saltlen) == 0;
}

int tp_hash_verify(const char *secret, size_t n, const struct tp_hash *h, struct tp_hash_cache *cache)
{
	unsigned char dk[TP_DK_MAX];
	const unsigned char *got;
	if (h->dklen == 0 || h->dklen > sizeof(dk))
		return -1;
	if (cache != NULL && cache->valid && same_params(&cache->key, h)) {
		got = cache->key.dk;
	} else {
		if (derive(secret, n, h, dk, h->dklen) < 0)
			return -1;
		if (cache != NULL) {
			cache->key = *h;
			memcpy(cache->key.dk, dk, h->dklen);
			cache->valid = 1;
		}
		got = dk;
	}
	int eq = CRYPTO_memcmp(got, h->dk, h->dklen) == 0;
	tp_wipe(dk, sizeof(dk));
	return eq;
}

void tp_hash_cache_wipe(struct tp_hash_cache *cache)
{
	tp_wipe(cache, sizeof(*cache));
}

int tp_random_bytes(unsigned char *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

int tp_hash_new(const char *secret, size_t n, const struct tp_hash *salt_from, struct tp_hash *h)
{
	memset(h, 0, sizeof(*h));
	if (salt_from != NULL) {
		*h = *salt_from;
	} else {
		h->kdf = TP_KDF_PBKDF2_SHA256;
		h->iterations = TP_PBKDF2_ITER_DEFAULT;
		h->saltlen = 16;
		h->dklen = DK_LEN;
		if (tp_random_bytes(h->salt, h->saltlen) < 0)
			return -1;
	}
	return tp_hash_compute(secret, n, h);
}

/* n characters drawn uniformly from alphabet (rejection sampling). */
static int random_chars(const char *alphabet, char *out, size_t n)
{
	size_t k = strlen(alphabet);
	unsigned limit = 256 - 256 % (unsigned)k;
	size_t got = 0;
	while (got < n) {
		unsigned char r[32];
		if (tp_random_bytes(r, sizeof(r)) < 0)
			return -1;
		for (size_t i = 0; i < sizeof(r) && got < n; i++)
			if (r[i] < limit)
				out[got++] = alphabet[r[i] % k];
		tp_wipe(r, sizeof(r));
	}
	return 0;
}

int tp_backup_code_new(char *out, size_t outlen)
{
	char c[TP_BACKUP_LEN];
	if (outlen < TP_BACKUP_LEN + 2 || random_chars(backup_alphabet, c, sizeof(c)) < 0)
		return -1;
	memcpy(out, c, 5);
	out[5] = '-';
	memcpy(out + 6, c + 5, 5);
	out[11] = '\0';
	tp_wipe(c, sizeof(c));
	return 0;
}

int tp_app_password_new(char *out, size_t outlen)
{
	char c[TP_APPPASS_LEN];
	if (outlen < TP_APPPASS_LEN + 4 || random_chars("abcdefghijklmnopqrstuvwxyz", c, sizeof(c)) < 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < sizeof(c); i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = c[i];
	}
	out[o] = '\0';
	tp_wipe(c, sizeof(c));
	return 0;
}

static int normalise(const char *s, size_t n, const char *alphabet, size_t want, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen < want + 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '-')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '\0' || strchr(alphabet, c) == NULL || o == want) {
			tp_wipe(out, o);
			return -1;
		}
		out[o++] = c;
	}
	if (o != want) {
		tp_wipe(out, o);
		return -1;
	}
	out[o] = '\0';
	return (int)o;
}

int tp_backup_code_normalise(const char *s, size_t n, char *out, size_t outlen)
{
	int r = normalise(s, n, backup_alphabet, TP_BACKUP_LEN, out, outlen);
	if (r < 0) /* 8 digits: a scratch code imported from google-authenticator */
		r = normalise(s, n, "0123456789", TP_GA_SCRATCH_LEN, out, outlen);
	return r;
}

int tp_app_password_normalise(const char *s, size_t n, char *out, size_t outlen)
{
	return normalise(s, n, "abcdefghijklmnopqrstuvwxyz", TP_APPPASS_LEN, out, outlen);
}
