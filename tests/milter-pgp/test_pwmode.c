/*
 * Unit tests for milter-pgp's password modes' pure parts (pwmode.h): the
 * Subject tag, the password header's value, template filling, the notice,
 * in tables of rows.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pwmode.h"

static void test_untag(void **state)
{
	(void)state;
	static const struct {
		const char *subject, *tag;
		int found;
		const char *want;
	} rows[] = {
		{ " [secure] Contract draft", "[secure]", 1, " Contract draft" },
		{ " Contract draft [secure]", "[secure]", 1, " Contract draft" },
		{ " Re: [SECURE] figures", "[secure]", 1, " Re: figures" },
		{ " [secure]", "[secure]", 1, " " },
		{ "[secure]x", "[secure]", 1, "x" },
		{ " a[secure]b", "[secure]", 1, " a b" },
		{ " nothing here", "[secure]", 0, "" },
		{ " [secur", "[secure]", 0, "" },
		{ " [secure] x", "", 0, "" },
		{ " Grüße [secure]\r\n\tfolded", "[secure]", 1, " Grüße \r\n\tfolded" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		int r = mp_pw_subject_untag(rows[i].subject, rows[i].tag, &b);
		if (r != rows[i].found || (r && strcmp(mw_buf_str(&b), rows[i].want) != 0))
			fail_msg("row %zu %s: got %d \"%s\"", i, rows[i].subject, r, mw_buf_str(&b));
		mw_buf_free(&b);
	}
}

static void test_from_header(void **state)
{
	(void)state;
	char big[MP_PW_MAX_PASSWORD + 3];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	static const struct {
		const char *value, *want;
	} rows[] = {
		{ " secret", "secret" },
		{ "  two words \t", "two words" },
		{ " p\xc3\xa4ss\r\n", "p\xc3\xa4ss" },
		{ " ", NULL },
		{ "", NULL },
		{ " x", "x" },
		/* RFC 2047: what mail programs send for a non-ASCII value */
		{ " =?UTF-8?B?cMOkc3M=?=", "p\xc3\xa4ss" },
		{ " =?utf-8?q?p=C3=A4ss_w?= =?UTF-8?Q?ord?=", "p\xc3\xa4ss word" },
		{ " =?UTF-8*fr?B?w6l0w6k=?=", "\xc3\xa9t\xc3\xa9" },
		{ " =?iso-8859-1?q?p=E4ss?=", "=?iso-8859-1?q?p=E4ss?=" }, /* not UTF-8: as it is */
		{ " =?UTF-8?B?cMOkc3M=?= tail", "=?UTF-8?B?cMOkc3M=?= tail" },
		{ " =?UTF-8?Q?=ZZ?=", "=?UTF-8?Q?=ZZ?=" },
		{ " =?UTF-8?B?AA==?=", "=?UTF-8?B?AA==?=" }, /* a NUL byte: as it is */
		{ " =?UTF-8?B?" "?=", "=?UTF-8?B?" "?=" }, /* split: "??=" is a trigraph */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *p = mp_pw_from_header(rows[i].value);
		if ((p == NULL) != (rows[i].want == NULL) || (p != NULL && strcmp(p, rows[i].want) != 0))
			fail_msg("row %zu: got %s", i, p != NULL ? p : "NULL");
		mp_pw_free(p);
	}
	assert_null(mp_pw_from_header(big)); /* over MP_PW_MAX_PASSWORD */
	big[MP_PW_MAX_PASSWORD] = '\0';
	char *p = mp_pw_from_header(big);
	assert_non_null(p);
	mp_pw_free(p);
}

static void test_fill(void **state)
{
	(void)state;
	static const char tpl[] = "From {{sender}} about {{subject}}\nHint: {{hint}}\nTo {{recipients}} {{unknown}}\n";
	struct mp_pw_fill f = { "a@example.org", "<b>&\"x'", "d@example.com", "blue\r\n\tsky", NULL };
	struct mw_buf out = MW_BUF_INIT;
	mp_pw_fill_template(tpl, &f, 0, &out);
	assert_string_equal(mw_buf_str(&out),
			    "From a@example.org about <b>&\"x'\nHint: blue\tsky\nTo d@example.com {{unknown}}\n");
	mw_buf_reset(&out);
	mp_pw_fill_template(tpl, &f, 1, &out);
	assert_string_equal(mw_buf_str(&out), "From a@example.org about &lt;b&gt;&amp;&quot;x&#39;\n"
			    "Hint: blue\tsky\nTo d@example.com {{unknown}}\n");
	/* no hint: its line is left out */
	f.hint = "";
	mw_buf_reset(&out);
	mp_pw_fill_template(tpl, &f, 0, &out);
	assert_string_equal(mw_buf_str(&out), "From a@example.org about <b>&\"x'\nTo d@example.com {{unknown}}\n");
	mw_buf_free(&out);
}

static void test_notice(void **state)
{
	(void)state;
	struct mp_pw_templates t = { NULL, NULL, (char *)"Subject: Password: {{subject}}\n\nIt is {{password}}\n" };
	struct mp_pw_fill f = { "alice@example.org", "Grüße", "d@example.com", NULL, "K7Q2M-ABCDE" };
	struct mw_buf out = MW_BUF_INIT;
	mp_pw_notice(&t, &f, &out);
	const char *s = mw_buf_str(&out);
	assert_non_null(strstr(s, "From: <alice@example.org>\r\nTo: <alice@example.org>\r\nSubject: =?UTF-8?B?"));
	assert_non_null(strstr(s, "Auto-Submitted: auto-generated\r\n"));
	assert_non_null(strstr(s, "Content-Transfer-Encoding: base64\r\n\r\n"));
	/* the password only inside the base64 body: "It is K7Q2M-ABCDE\r\n" */
	assert_null(strstr(s, "K7Q2M"));
	assert_non_null(strstr(s, "SXQgaXMgSzdRMk0tQUJDREUNCg=="));
	mw_buf_wipe(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untag),
		cmocka_unit_test(test_from_header),
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_notice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
