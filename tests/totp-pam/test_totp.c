/*
 * Unit tests for totp-pam's TOTP math: RFC 6238 Appendix B for all three
 * hashes, RFC 4226 Appendix D, base32 (RFC 4648 section 10), code syntax
 * and the constant-time search over a window of steps.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "totp.h"

/* RFC 6238 Appendix B: the seed is "1234567890" repeated to the hash size */
static const char seed20[] = "12345678901234567890";
static const char seed32[] = "12345678901234567890123456789012";
static const char seed64[] = "1234567890123456789012345678901234567890123456789012345678901234";

static void test_rfc6238_vectors(void **state)
{
	(void)state;
	static const struct {
		int64_t t;
		const char *sha1, *sha256, *sha512;
	} rows[] = {
		{ 59, "94287082", "46119246", "90693936" },
		{ 1111111109, "07081804", "68084774", "25091201" },
		{ 1111111111, "14050471", "67062674", "99943326" },
		{ 1234567890, "89005924", "91819424", "93441116" },
		{ 2000000000, "69279037", "90698825", "38618901" },
		{ 20000000000LL, "65353130", "77737706", "47863826" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t step = tp_time_step(rows[i].t, 30);
		const struct { enum tp_alg alg; const char *key; const char *want; } c[] = {
			{ TP_SHA1, seed20, rows[i].sha1 },
			{ TP_SHA256, seed32, rows[i].sha256 },
			{ TP_SHA512, seed64, rows[i].sha512 },
		};
		for (size_t j = 0; j < 3; j++) {
			uint32_t code;
			char got[9];
			assert_int_equal(tp_hotp(c[j].alg, (const unsigned char *)c[j].key, strlen(c[j].key), step, 8,
						 &code), 0);
			tp_code_format(code, 8, got);
			if (strcmp(got, c[j].want) != 0)
				fail_msg("t=%lld %s: got %s, want %s", (long long)rows[i].t, tp_alg_name(c[j].alg), got,
					 c[j].want);
			/* 6 digits are the last 6 of the 8 */
			assert_int_equal(tp_hotp(c[j].alg, (const unsigned char *)c[j].key, strlen(c[j].key), step, 6,
						 &code), 0);
			tp_code_format(code, 6, got);
			assert_string_equal(got, c[j].want + 2);
			/* and the search finds that step */
			uint64_t found = 0;
			assert_int_equal(tp_totp_find(c[j].alg, (const unsigned char *)c[j].key, strlen(c[j].key), 8,
						      step >= 2 ? step - 2 : 0, step + 2, c[j].want, 8, &found), 1);
			assert_int_equal(found, step);
		}
	}
}

static void test_rfc4226_vectors(void **state)
{
	(void)state;
	static const char *const want[] = { "755224", "287082", "359152", "969429", "338314",
					    "254676", "287922", "162583", "399871", "520489" };
	for (uint64_t i = 0; i < 10; i++) {
		uint32_t code;
		char got[9];
		assert_int_equal(tp_hotp(TP_SHA1, (const unsigned char *)seed20, 20, i, 6, &code), 0);
		tp_code_format(code, 6, got);
		assert_string_equal(got, want[i]);
	}
}

static void test_hotp_bad_args(void **state)
{
	(void)state;
	uint32_t code;
	const unsigned char k[1] = { 1 };
	unsigned char big[TP_SECRET_MAX + 1] = { 0 };
	assert_int_equal(tp_hotp(TP_SHA1, k, 1, 0, 5, &code), -1);
	assert_int_equal(tp_hotp(TP_SHA1, k, 1, 0, 9, &code), -1);
	assert_int_equal(tp_hotp(TP_SHA1, k, 0, 0, 6, &code), -1);
	assert_int_equal(tp_hotp(TP_SHA1, big, sizeof(big), 0, 6, &code), -1);
	assert_int_equal(tp_hotp((enum tp_alg)7, k, 1, 0, 6, &code), -1);
}

static void test_time_step(void **state)
{
	(void)state;
	assert_int_equal(tp_time_step(0, 30), 0);
	assert_int_equal(tp_time_step(29, 30), 0);
	assert_int_equal(tp_time_step(30, 30), 1);
	assert_int_equal(tp_time_step(-5, 30), 0);
	assert_int_equal(tp_time_step(59, 60), 0);
	assert_int_equal(tp_time_step(100, 0), 0);
}

static void test_code_syntax(void **state)
{
	(void)state;
	static const struct { const char *s; int digits, ok; } rows[] = {
		{ "123456", 6, 1 }, { "12345", 6, 0 }, { "1234567", 6, 0 }, { "12345a", 6, 0 },
		{ "12345678", 8, 1 }, { "1234567", 7, 1 }, { " 23456", 6, 0 }, { "123456", 5, 0 },
		{ "", 6, 0 }, { "123456789", 9, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (tp_code_syntax_ok(rows[i].s, strlen(rows[i].s), rows[i].digits) != rows[i].ok)
			fail_msg("row %zu \"%s\"", i, rows[i].s);
	char out[9];
	tp_code_format(42, 6, out);
	assert_string_equal(out, "000042");
	tp_code_format(12345678, 8, out);
	assert_string_equal(out, "12345678");
}

static void test_find_window(void **state)
{
	(void)state;
	const unsigned char *k = (const unsigned char *)seed20;
	uint32_t v;
	char code[9];
	assert_int_equal(tp_hotp(TP_SHA1, k, 20, 1000, 6, &v), 0);
	tp_code_format(v, 6, code);
	uint64_t step = 0;
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 999, 1001, code, 6, &step), 1);
	assert_int_equal(step, 1000);
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 1000, 1000, code, 6, &step), 1);
	/* the neighbouring windows do not have it (this code is unique near 1000) */
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 1001, 1003, code, 6, &step), 0);
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 997, 999, code, 6, &step), 0);
	/* bad arguments */
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 1001, 1000, code, 6, &step), -1);
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 0, 100000, code, 6, &step), -1);
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 999, 1001, code, 5, &step), -1);
	assert_int_equal(tp_totp_find(TP_SHA1, k, 20, 6, 999, 1001, "12a456", 6, &step), -1);
}

static void test_alg_names(void **state)
{
	(void)state;
	enum tp_alg a;
	assert_int_equal(tp_alg_parse("SHA256", 6, &a), 0);
	assert_int_equal(a, TP_SHA256);
	assert_int_equal(tp_alg_parse("sha512", 6, &a), 0);
	assert_int_equal(a, TP_SHA512);
	assert_int_equal(tp_alg_parse("sha1", 4, &a), 0);
	assert_int_equal(a, TP_SHA1);
	assert_int_equal(tp_alg_parse("sha", 3, &a), -1);
	assert_int_equal(tp_alg_parse("md5", 3, &a), -1);
	assert_int_equal(tp_alg_parse("sha1x", 5, &a), -1);
	assert_string_equal(tp_alg_name(TP_SHA512), "sha512");
}

static void test_base32(void **state)
{
	(void)state;
	/* RFC 4648 section 10, without padding on output */
	static const struct { const char *plain, *enc; } rows[] = {
		{ "", "" }, { "f", "MY" }, { "fo", "MZXQ" }, { "foo", "MZXW6" }, { "foob", "MZXW6YQ" },
		{ "fooba", "MZXW6YTB" }, { "foobar", "MZXW6YTBOI" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		assert_int_equal(tp_base32_encode((const unsigned char *)rows[i].plain, strlen(rows[i].plain), &b), 0);
		assert_string_equal(mw_buf_str(&b), rows[i].enc);
		mw_buf_reset(&b);
		assert_int_equal(tp_base32_decode(rows[i].enc, strlen(rows[i].enc), &b), 0);
		assert_int_equal(b.len, strlen(rows[i].plain));
		assert_memory_equal(mw_buf_str(&b), rows[i].plain, b.len);
		mw_buf_free(&b);
	}
	static const struct { const char *in; int ok; const char *plain; } dec[] = {
		{ "MZXW6YQ=", 1, "foob" },
		{ "mzxw 6ytb-oi", 1, "foobar" },       /* as users copy it */
		{ "MZXW6YTBOI======", 1, "foobar" },
		{ "MZXW6YQ=A", 0, NULL },              /* data after padding */
		{ "MZXW1", 0, NULL },                  /* 1 is not base32 */
		{ "MZXW6YR", 0, NULL },                /* stray bits not zero */
		{ "M", 0, NULL },                      /* 5 bits: not a byte */
		{ "MZX", 0, NULL },                    /* 15 bits: a byte and 7 stray */
		{ "MZ\x00W", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(dec) / sizeof(dec[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		size_t n = i == sizeof(dec) / sizeof(dec[0]) - 1 ? 4 : strlen(dec[i].in);
		int r = tp_base32_decode(dec[i].in, n, &b);
		if ((r == 0) != dec[i].ok)
			fail_msg("row %zu \"%s\": %d", i, dec[i].in, r);
		if (dec[i].ok)
			assert_string_equal(mw_buf_str(&b), dec[i].plain);
		mw_buf_free(&b);
	}
	/* round trip of every length up to 64 bytes */
	unsigned char raw[64];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(raw); n++) {
		struct mw_buf e = MW_BUF_INIT, d = MW_BUF_INIT;
		assert_int_equal(tp_base32_encode(raw, n, &e), 0);
		assert_int_equal(tp_base32_decode(e.data ? e.data : "", e.len, &d), 0);
		assert_int_equal(d.len, n);
		if (n)
			assert_memory_equal(d.data, raw, n);
		mw_buf_free(&e);
		mw_buf_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors), cmocka_unit_test(test_rfc4226_vectors),
		cmocka_unit_test(test_hotp_bad_args),   cmocka_unit_test(test_time_step),
		cmocka_unit_test(test_code_syntax),     cmocka_unit_test(test_find_window),
		cmocka_unit_test(test_alg_names),       cmocka_unit_test(test_base32),
	};
	return cmocka_run_group_tests_name("totp", tests, NULL, NULL);
}
