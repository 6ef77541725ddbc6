/* Unit tests for common/buf. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void test_empty_is_empty_string(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	assert_string_equal(mw_buf_str(&b), "");
	assert_int_equal(mw_buf_len(&b), 0);
	char *s = mw_buf_steal(&b);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
}

static void test_append_grows_and_terminates(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(mw_buf_puts(&b, "abc"), 0);
	assert_int_equal(mw_buf_len(&b), 3000);
	assert_int_equal(strlen(mw_buf_str(&b)), 3000);
	assert_memory_equal(mw_buf_str(&b) + 2997, "abc", 4);
	mw_buf_free(&b);
}

static void test_binary_data_kept(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	assert_int_equal(mw_buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(mw_buf_len(&b), 3);
	assert_memory_equal(b.data, "a\0b\0", 4);
	mw_buf_free(&b);
}

static void test_printf_small_and_large(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	mw_buf_printf(&b, "%d-%s", 42, "x");
	assert_string_equal(mw_buf_str(&b), "42-x");
	char big[1000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mw_buf_printf(&b, "[%s]", big);
	assert_int_equal(mw_buf_len(&b), 4 + 2 + 999);
	assert_int_equal(mw_buf_str(&b)[mw_buf_len(&b) - 1], ']');
	mw_buf_setf(&b, "%s", "reset");
	assert_string_equal(mw_buf_str(&b), "reset");
	mw_buf_free(&b);
}

static void test_max_refuses_and_is_sticky(void **state)
{
	(void)state;
	struct mw_buf b;
	mw_buf_init(&b, 5);
	assert_int_equal(mw_buf_puts(&b, "12345"), 0);
	assert_int_equal(mw_buf_putc(&b, '6'), -1);
	assert_true(mw_buf_failed(&b));
	/* refused append left the contents alone */
	assert_string_equal(mw_buf_str(&b), "12345");
	/* sticky: later appends fail too, even small ones */
	mw_buf_truncate(&b, 1);
	assert_int_equal(mw_buf_putc(&b, 'x'), -1);
	assert_null(mw_buf_steal(&b));
	mw_buf_reset(&b);
	assert_false(mw_buf_failed(&b));
	assert_int_equal(mw_buf_puts(&b, "ok"), 0);
	mw_buf_free(&b);
}

static void test_overflow_size_refused(void **state)
{
	(void)state;
	struct mw_buf b;
	mw_buf_init(&b, SIZE_MAX);
	assert_int_equal(mw_buf_puts(&b, "ab"), 0);
	/* len + n would wrap around */
	assert_int_equal(mw_buf_append(&b, "x", SIZE_MAX - 1), -1);
	assert_true(mw_buf_failed(&b));
	mw_buf_free(&b);
}

static void test_printable(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len, max;
		const char *out;
	} rows[] = {
		{ "plain text", 10, 100, "plain text" },
		{ "a\r\nb", 4, 100, "a\\x0d\\x0ab" },
		{ "back\\slash", 10, 100, "back\\\\slash" },
		{ "\xff\x00z", 3, 100, "\\xff\\x00z" },
		{ "abcdefgh", 8, 4, "abcd..." },
		{ "ab\x01", 3, 4, "ab..." },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		mw_buf_append_printable(&b, rows[i].in, rows[i].len, rows[i].max);
		assert_string_equal(mw_buf_str(&b), rows[i].out);
		mw_buf_free(&b);
	}
}

static void test_wipe(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	mw_buf_puts(&b, "secret");
	mw_buf_wipe(&b);
	assert_null(b.data);
	assert_int_equal(mw_buf_len(&b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_is_empty_string),
		cmocka_unit_test(test_append_grows_and_terminates),
		cmocka_unit_test(test_binary_data_kept),
		cmocka_unit_test(test_printf_small_and_large),
		cmocka_unit_test(test_max_refuses_and_is_sticky),
		cmocka_unit_test(test_overflow_size_refused),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_wipe),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
