/*
 * Unit tests for milter-pgp's key discovery names and packet framing
 * (wkd.h), with the published examples of the WKD draft and RFC 7929.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wkd.h"

static void test_urls(void **state)
{
	(void)state;
	static const struct {
		const char *addr;
		int ok;
		const char *adv_host, *adv_path, *direct_path;
	} rows[] = {
		/* draft-koch-openpgp-webkey-service 3.1 */
		{ "Joe.Doe@Example.ORG", 0, "openpgpkey.example.org",
		  "/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe",
		  "/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe" },
		{ "a+b/c@x.example", 0, "openpgpkey.x.example", NULL, NULL },
		{ "nodomain", -1, NULL, NULL, NULL },
		{ "@x.example", -1, NULL, NULL, NULL },
		{ "a@x.example/evil", -1, NULL, NULL, NULL },
		{ "a@x..example", -1, NULL, NULL, NULL },
		{ "a b@x.example", -1, NULL, NULL, NULL },
		{ "a@.x", -1, NULL, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf ah = MW_BUF_INIT, ap = MW_BUF_INIT, dh = MW_BUF_INIT, dp = MW_BUF_INIT;
		const char *why = "";
		int r = mp_wkd_urls(rows[i].addr, &ah, &ap, &dh, &dp, &why);
		assert_int_equal(r, rows[i].ok);
		if (r == 0) {
			assert_string_equal(mw_buf_str(&ah), rows[i].adv_host);
			if (rows[i].adv_path != NULL)
				assert_string_equal(mw_buf_str(&ap), rows[i].adv_path);
			if (rows[i].direct_path != NULL)
				assert_string_equal(mw_buf_str(&dp), rows[i].direct_path);
			assert_string_equal(mw_buf_str(&dh), rows[i].adv_host + strlen("openpgpkey."));
		}
		mw_buf_free(&ah);
		mw_buf_free(&ap);
		mw_buf_free(&dh);
		mw_buf_free(&dp);
	}
	struct mw_buf ah = MW_BUF_INIT, ap = MW_BUF_INIT, dh = MW_BUF_INIT, dp = MW_BUF_INIT;
	const char *why;
	assert_int_equal(mp_wkd_urls("a+b/c@x.example", &ah, &ap, &dh, &dp, &why), 0);
	assert_non_null(strstr(mw_buf_str(&ap), "?l=a%2Bb%2Fc"));
	mw_buf_free(&ah);
	mw_buf_free(&ap);
	mw_buf_free(&dh);
	mw_buf_free(&dp);
}

static void test_openpgpkey_name(void **state)
{
	(void)state;
	struct mw_buf n = MW_BUF_INIT;
	const char *why;
	/* RFC 7929 3 */
	assert_int_equal(mp_openpgpkey_name("hugh@example.com", &n, &why), 0);
	assert_string_equal(mw_buf_str(&n), "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com");
	assert_int_equal(mp_openpgpkey_name("Hugh@EXAMPLE.com", &n, &why), 0);
	assert_true(strncmp(mw_buf_str(&n), "c93f1e40", 8) != 0); /* the local part is not folded */
	assert_int_equal(mp_openpgpkey_name("hugh", &n, &why), -1);
	mw_buf_free(&n);
}

static void test_keyblocks(void **state)
{
	(void)state;
	/* new-format public key (tag 6), uid (13), sig (2), then a second key
	   in old format (tag 6: 0x98 one-octet length) */
	static const unsigned char two[] = { 0xc6, 0x01, 'k', 0xcd, 0x02, 'u', 'u', 0xc2, 0x01, 's',
					     0x98, 0x01, 'k', 0xb4, 0x01, 'u' };
	struct mp_keyblock kb[MP_MAX_KEYBLOCKS];
	const char *why = "";
	assert_int_equal(mp_pgp_keyblocks(two, sizeof(two), kb, MP_MAX_KEYBLOCKS, &why), 2);
	assert_int_equal(kb[0].off, 0);
	assert_int_equal(kb[0].len, 10);
	assert_int_equal(kb[1].off, 10);
	assert_int_equal(kb[1].len, 6);
	assert_int_equal(mp_pgp_keyblocks(two, sizeof(two), kb, 1, &why), -1);
	static const struct {
		const char *name;
		unsigned char data[8];
		size_t len;
	} bad[] = {
		{ "empty", { 0 }, 0 },
		{ "not a packet", { 'h', 'i' }, 2 },
		{ "starts with a user id", { 0xcd, 0x01, 'u' }, 3 },
		{ "truncated body", { 0xc6, 0x05, 'k' }, 3 },
		{ "partial length", { 0xc6, 0xe1, 'k', 'k' }, 4 },
		{ "literal data inside", { 0xc6, 0x01, 'k', 0xcb, 0x01, 'x' }, 6 },
		{ "indeterminate old length", { 0x9b, 'k' }, 2 },
		{ "truncated five-octet length", { 0xc6, 0xff, 0, 0 }, 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = mp_pgp_keyblocks(bad[i].data, bad[i].len, kb, MP_MAX_KEYBLOCKS, &why);
		if (r != -1)
			fail_msg("%s: %d", bad[i].name, r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_openpgpkey_name),
		cmocka_unit_test(test_keyblocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
