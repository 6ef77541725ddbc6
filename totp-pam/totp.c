#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "totp.h"

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

int tp_alg_parse(const char *s, size_t n, enum tp_alg *alg_r)
{
	static const struct { const char *name; enum tp_alg alg; } names[] = {
		{ "sha1", TP_SHA1 }, { "sha256", TP_SHA256 }, { "sha512", TP_SHA512 },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == n && OPENSSL_strncasecmp(s, names[i].name, n) == 0) {
			*alg_r = names[i].alg;
			return 0;
		}
	}
	return -1;
}

const char *tp_alg_name(enum tp_alg alg)
{
	switch (alg) {
	case TP_SHA256:
		return "sha256";
	case TP_SHA512:
		return "sha512";
	case TP_SHA1:
	default:
		return "sha1";
	}
}

static const EVP_MD *alg_md(enum tp_alg alg)
{
	switch (alg) {
	case TP_SHA1:
		return EVP_sha1();
	case TP_SHA256:
		return EVP_sha256();
	case TP_SHA512:
		return EVP_sha512();
	}
	return NULL;
}

void tp_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

int tp_hotp(enum tp_alg alg, const unsigned char *key, size_t keylen, uint64_t counter, int digits,
	    uint32_t *code_r)
{
	static const uint32_t mod[] = { 1000000, 10000000, 100000000 };
	const EVP_MD *md = alg_md(alg);
	if (md == NULL || digits < 6 || digits > 8 || keylen == 0 || keylen > TP_SECRET_MAX)
		return -1;
	unsigned char msg[8];
	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	if (HMAC(md, key, (int)keylen, msg, sizeof(msg), mac, &maclen) == NULL || maclen < 20)
		return -1;
	/* RFC 4226 section 5.3: dynamic truncation */
	unsigned off = mac[maclen - 1] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
		       ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
	*code_r = bin % mod[digits - 6];
	tp_wipe(mac, sizeof(mac));
	return 0;
}

uint64_t tp_time_step(int64_t t, unsigned step)
{
	if (t < 0 || step == 0)
		return 0;
	return (uint64_t)t / step;
}

void tp_code_format(uint32_t code, int digits, char out[9])
{
	if (digits < 1 || digits > 8)
		digits = 8;
	out[digits] = '\0';
	for (int i = digits - 1; i >= 0; i--) {
		out[i] = (char)('0' + code % 10);
		code /= 10;
	}
}

int tp_code_syntax_ok(const char *s, size_t n, int digits)
{
	if (digits < 6 || digits > 8 || n != (size_t)digits)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int tp_totp_find(enum tp_alg alg, const unsigned char *key, size_t keylen, int digits,
		 uint64_t from, uint64_t to, const char *code, size_t n, uint64_t *step_r)
{
	if (!tp_code_syntax_ok(code, n, digits) || from > to || to - from > 4096)
		return -1;
	int found = 0;
	for (uint64_t s = from;; s++) {
		uint32_t v;
		char want[9];
		if (tp_hotp(alg, key, keylen, s, digits, &v) < 0)
			return -1;
		tp_code_format(v, digits, want);
		/* every step is computed and compared: the time taken does
		   not depend on which one (if any) matches */
		int eq = CRYPTO_memcmp(want, code, n) == 0;
		if (eq && !found) {
			found = 1;
			*step_r = s;
		}
		tp_wipe(want, sizeof(want));
		if (s == to)
			break;
	}
	return found;
}

static int b32_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

int tp_base32_decode(const char *s, size_t n, struct mw_buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t pad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '-')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return -1; /* data after padding */
		int v = b32_value(c);
		if (v < 0)
			return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (mw_buf_putc(out, (int)((acc >> bits) & 0xff)) < 0)
				return -1;
		}
	}
	/* leftover bits must be fewer than a byte and all zero */
	if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0 || pad > 6)
		return -1;
	acc = 0;
	return 0;
}

int tp_base32_encode(const unsigned char *p, size_t n, struct mw_buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			if (mw_buf_putc(out, b32_alphabet[(acc >> bits) & 0x1f]) < 0)
				return -1;
		}
	}
	if (bits > 0 && mw_buf_putc(out, b32_alphabet[(acc << (5 - bits)) & 0x1f]) < 0)
		return -1;
	return 0;
}
