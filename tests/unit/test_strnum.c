/* Unit tests for common/strnum: one row per input. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "strnum.h"

static void test_uint(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		unsigned long long max;
		int ok;
		unsigned long long want;
	} rows[] = {
		{ "0", 10, 1, 0 },
		{ "10", 10, 1, 10 },
		{ "11", 10, 0, 0 },
		{ "9", 5, 0, 0 },  /* digit larger than max */
		{ "", 10, 0, 0 },
		{ "-1", 10, 0, 0 },
		{ "+1", 10, 0, 0 },
		{ " 1", 10, 0, 0 },
		{ "1 ", 10, 0, 0 },
		{ "1x", 10, 0, 0 },
		{ "18446744073709551615", UINT64_MAX, 1, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, 0, 0 },
		{ "99999999999999999999999", UINT64_MAX, 0, 0 },
		{ "0007", 10, 1, 7 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned long long v = 12345;
		int r = mw_parse_uint(rows[i].in, rows[i].max, &v);
		assert_int_equal(r, rows[i].ok ? 0 : -1);
		assert_true(rows[i].ok ? v == rows[i].want : v == 12345);
	}
}

static void test_duration(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int ok;
		unsigned long long ms;
	} rows[] = {
		{ "5", 1, 5000 }, { "5s", 1, 5000 }, { "500ms", 1, 500 },
		{ "2m", 1, 120000 }, { "1h", 1, 3600000 }, { "1d", 1, 86400000 },
		{ "1w", 1, 604800000 }, { "0", 1, 0 },
		{ "1H", 0, 0 }, { "h", 0, 0 }, { "1.5h", 0, 0 }, { "1 h", 0, 0 },
		{ "1hour", 0, 0 }, { "99999999999999999w", 0, 0 }, { "", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned long long v = 0;
		int r = mw_parse_duration_ms(rows[i].in, UINT64_MAX, &v);
		assert_int_equal(r, rows[i].ok ? 0 : -1);
		if (rows[i].ok)
			assert_int_equal(v, rows[i].ms);
	}
}

static void test_size(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int ok;
		unsigned long long bytes;
	} rows[] = {
		{ "100", 1, 100 }, { "64k", 1, 65536 }, { "64K", 1, 65536 },
		{ "10m", 1, 10485760 }, { "1g", 1, 1073741824 }, { "1gb", 1, 1073741824 },
		{ "512b", 1, 512 }, { "1t", 0, 0 }, { "k", 0, 0 }, { "1kk", 0, 0 },
		{ "99999999999999999999g", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned long long v = 0;
		int r = mw_parse_size(rows[i].in, UINT64_MAX, &v);
		assert_int_equal(r, rows[i].ok ? 0 : -1);
		if (rows[i].ok)
			assert_int_equal(v, rows[i].bytes);
	}
}

static void test_bool(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int ok, value;
	} rows[] = {
		{ "yes", 1, 1 }, { "YES", 1, 1 }, { "true", 1, 1 }, { "on", 1, 1 }, { "1", 1, 1 },
		{ "no", 1, 0 }, { "false", 1, 0 }, { "off", 1, 0 }, { "0", 1, 0 },
		{ "y", 0, 0 }, { "", 0, 0 }, { "yes ", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int v = -1;
		assert_int_equal(mw_parse_bool(rows[i].in, &v), rows[i].ok ? 0 : -1);
		if (rows[i].ok)
			assert_int_equal(v, rows[i].value);
	}
}

static void test_format_duration_round_trips(void **state)
{
	(void)state;
	static const unsigned long long values[] = { 0, 1, 999, 1000, 90000, 3600000, 86400000,
						     604800000, 3601000 };
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char text[32];
		unsigned long long back;
		mw_format_duration_ms(values[i], text, sizeof(text));
		assert_int_equal(mw_parse_duration_ms(text, UINT64_MAX, &back), 0);
		assert_int_equal(back, values[i]);
	}
	char text[32];
	mw_format_duration_ms(3600000, text, sizeof(text));
	assert_string_equal(text, "1h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_format_duration_round_trips),
	};
	return cmocka_run_group_tests_name("strnum", tests, NULL, NULL);
}
