/*
 * Unit tests for the encryption at rest opt-in list (atrest.h): reading it
 * (comments, blanks, CRLF, case), editing it (on twice is one line, off
 * removes every line of the address and keeps the rest), refusals.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "atrest.h"

static char dir[] = "/tmp/test_atrest.XXXXXX";

static void put(const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/mailward-atrest", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *contents(void)
{
	struct mp_atrest a;
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(mp_atrest_load(dir, &a, &err), 0);
	char *s = strdup(mw_buf_str(&a.text));
	mp_atrest_free(&a);
	mw_buf_free(&err);
	return s;
}

static void test_read(void **state)
{
	(void)state;
	struct mp_atrest a;
	struct mw_buf err = MW_BUF_INIT;
	char path[128];
	snprintf(path, sizeof(path), "%s/mailward-atrest", dir);
	unlink(path);
	assert_int_equal(mp_atrest_load(dir, &a, &err), 0); /* no file: nobody */
	assert_int_equal(mp_atrest_has(&a, "bob@example.net"), 0);
	mp_atrest_free(&a);

	put("# who wants mail stored encrypted\n  Bob@Example.NET  \r\ncarol@example.net # since May\n\n"
	    "dave@example.com.evil\nxdave@example.com\nlast@example.org");
	assert_int_equal(mp_atrest_load(dir, &a, &err), 0);
	static const struct {
		const char *addr;
		int want;
	} rows[] = {
		{ "bob@example.net", 1 }, { "BOB@example.net", 1 }, { "carol@example.net", 1 },
		{ "last@example.org", 1 }, { "dave@example.com", 0 }, { "ob@example.net", 0 },
		{ "bob@example.ne", 0 }, { "", 0 }, { "#", 0 }, { "since May", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(mp_atrest_has(&a, rows[i].addr), rows[i].want);
	const char *want[] = { "Bob@Example.NET", "carol@example.net", "dave@example.com.evil", "xdave@example.com",
			       "last@example.org" };
	char addr[512];
	size_t pos = 0;
	int n = 0;
	while (mp_atrest_next(&a, &pos, addr, sizeof(addr))) {
		assert_true(n < 5);
		assert_string_equal(addr, want[n++]);
	}
	assert_int_equal(n, 5);
	mp_atrest_free(&a);
	mw_buf_free(&err);
}

static void test_edit(void **state)
{
	(void)state;
	struct mw_buf err = MW_BUF_INIT;
	put("# kept\nbob@example.net\nBOB@example.net\ncarol@example.net\n");
	assert_int_equal(mp_atrest_set(dir, "dave@Example.com", 1, &err), 0);
	assert_int_equal(mp_atrest_set(dir, "dave@example.com", 1, &err), 0);
	char *s = contents();
	assert_string_equal(s, "# kept\nbob@example.net\nBOB@example.net\ncarol@example.net\ndave@example.com\n");
	free(s);
	assert_int_equal(mp_atrest_set(dir, "Bob@example.net", 0, &err), 0);
	s = contents();
	assert_string_equal(s, "# kept\ncarol@example.net\ndave@example.com\n");
	free(s);
	assert_int_equal(mp_atrest_set(dir, "nobody@example.net", 0, &err), 0);
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mailward-atrest", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	static const char *const bad[] = { "", "bob", "@example.net", "bob@", "bob @example.net", "a@b\nc@d",
					   "<bob@example.net>", "bob@example.net#x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(mp_atrest_set(dir, bad[i], 1, &err), -1);
		assert_non_null(strstr(mw_buf_str(&err), "not an address"));
	}
	s = contents();
	assert_string_equal(s, "# kept\ncarol@example.net\ndave@example.com\n");
	free(s);
	/* a directory that is not there: an error, not a crash */
	mw_buf_reset(&err);
	assert_int_equal(mp_atrest_set("/nonexistent/dir", "a@b.example", 1, &err), -1);
	assert_true(mw_buf_len(&err) > 0);
	mw_buf_free(&err);
}

static int cleanup(void **state)
{
	(void)state;
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_edit),
	};
	return cmocka_run_group_tests(tests, NULL, cleanup);
}
