/*
 * Unit tests for Autocrypt's pure parsers (autocrypt.h): the header, what
 * an Authentication-Results field says of the From domain, the Date field,
 * and the header we write.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "autocrypt.h"

static void test_header(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		int ok;
		const char *addr;
		int mutual;
		size_t keylen;
	} rows[] = {
		{ "addr=Alice@Example.ORG; prefer-encrypt=mutual; keydata=\n\tAAEC\n\tAwQF", 0, "alice@example.org", 1, 6 },
		{ " addr = bob@x.example ; keydata = AAEC ;", 0, "bob@x.example", 0, 3 },
		{ "addr=bob@x.example; prefer-encrypt=nopreference; keydata=AAE=", 0, "bob@x.example", 0, 2 },
		{ "addr=bob@x.example; _ignored=whatever; keydata=AAEC", 0, "bob@x.example", 0, 3 },
		{ "addr=bob@x.example; critical=1; keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=bob@x.example", -1, NULL, 0, 0 },
		{ "keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; addr=eve@x.example; keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; keydata=AAEC; keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=bob; keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=<bob@x.example>; keydata=AAEC", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; keydata=AA!C", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; keydata=AA=C", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; keydata=", -1, NULL, 0, 0 },
		{ "addr=bob@x.example; keydata", -1, NULL, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mp_ac_header h;
		const char *why = NULL;
		int r = mp_ac_parse(rows[i].value, strlen(rows[i].value), &h, &why);
		assert_int_equal(r, rows[i].ok);
		if (r == 0) {
			assert_string_equal(h.addr, rows[i].addr);
			assert_int_equal(h.mutual, rows[i].mutual);
			assert_int_equal(h.keylen, rows[i].keylen);
		} else {
			assert_non_null(why);
		}
		mp_ac_header_free(&h);
	}
}

static int same_org(const char *d, const char *from)
{
	size_t dn = strlen(d), fn = strlen(from);
	return strcmp(d, from) == 0 || (dn > fn && d[dn - fn - 1] == '.' && strcmp(d + dn - fn, from) == 0);
}

static void test_ar(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		enum mp_ac_ar verdict;
	} rows[] = {
		{ "mx.test; spf=pass smtp.mailfrom=a@x.example;\n\tdkim=none;\n\tdmarc=pass (p=reject) header.from=x.example",
		  MP_AC_AR_DMARC },
		{ "MX.Test 1; dmarc=pass header.from=\"X.Example\"", MP_AC_AR_DMARC },
		{ "mx.test; dkim=pass (good) header.d=mail.x.example header.s=s; dmarc=none header.from=x.example",
		  MP_AC_AR_DKIM },
		{ "mx.test; dkim = pass header.d = x.example", MP_AC_AR_DKIM },
		{ "mx.test; dkim=pass header.d=other.example; dmarc=fail header.from=x.example", MP_AC_AR_NONE },
		{ "mx.test; dmarc=pass header.from=other.example", MP_AC_AR_NONE },
		{ "mx.test; dmarc=fail (dmarc=pass header.from=x.example) header.from=x.example", MP_AC_AR_NONE },
		{ "mx.test; none", MP_AC_AR_NONE },
		{ "mx.test.evil; dmarc=pass header.from=x.example", MP_AC_AR_OTHER },
		{ "(mx.test) other; dmarc=pass header.from=x.example", MP_AC_AR_OTHER },
		{ "other; dmarc=pass header.from=x.example", MP_AC_AR_OTHER },
		{ "", MP_AC_AR_OTHER },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(mp_ac_ar_verdict(rows[i].value, strlen(rows[i].value), "mx.test", "x.example", same_org),
				 rows[i].verdict);
}

static void test_date(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		int ok;
		long long t;
	} rows[] = {
		{ "Tue, 01 Dec 2026 10:00:00 +0000", 0, 1796119200LL },
		{ "Tue, 1 Dec 2026 11:00:00 +0100 (CET)", 0, 1796119200LL },
		{ "1 Dec 2026 05:00 EST", 0, 1796119200LL },
		{ " Tue ,  01  Dec  26 10:00:00 GMT", 0, 1796119200LL },
		{ "Tue, 01 Foo 2026 10:00:00 +0000", -1, 0 },
		{ "Tue, 01 Dec 2026 25:00:00 +0000", -1, 0 },
		{ "Tue, 01 Dec 2026 10:00:00 +00", -1, 0 },
		{ "yesterday", -1, 0 },
		{ "", -1, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		long long t = 0;
		assert_int_equal(mp_ac_date(rows[i].value, strlen(rows[i].value), &t), rows[i].ok);
		if (rows[i].ok == 0)
			assert_int_equal(t, rows[i].t);
	}
}

static void test_written(void **state)
{
	(void)state;
	unsigned char key[300];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7);
	struct mw_buf v = MW_BUF_INIT;
	mp_ac_header_value("alice@example.org", 1, key, sizeof(key), &v);
	const char *s = mw_buf_str(&v);
	assert_true(strncmp(s, " addr=alice@example.org; prefer-encrypt=mutual; keydata=\n\t", 58) == 0);
	/* "Autocrypt:" + each line within 78 characters */
	size_t line = strlen("Autocrypt:");
	for (const char *p = s; *p != '\0'; p++) {
		line = *p == '\n' ? 0 : line + 1;
		assert_true(line <= 78);
	}
	struct mp_ac_header h;
	const char *why;
	assert_int_equal(mp_ac_parse(s, strlen(s), &h, &why), 0);
	assert_int_equal(h.keylen, sizeof(key));
	assert_memory_equal(h.keydata, key, sizeof(key));
	assert_int_equal(h.mutual, 1);
	mp_ac_header_free(&h);
	mw_buf_free(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_ar),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_written),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
