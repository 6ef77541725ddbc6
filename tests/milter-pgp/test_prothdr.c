/*
 * Unit tests for milter-pgp's protected headers (prothdr.h): the hp
 * parameter scanner and the entity's header section, in tables of rows.
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

#include "prothdr.h"

static void test_has_hp(void **state)
{
	(void)state;
	static const struct {
		const char *ctype;
		int want;
	} rows[] = {
		{ " text/plain; hp=\"cipher\"", 1 },
		{ " text/plain;hp=clear", 1 },
		{ " text/plain; HP = \"clear\"", 1 },
		{ " multipart/mixed;\r\n\thp=\"clear\"; boundary=x", 1 },
		{ " text/plain; (comment) hp=clear", 1 },
		{ " text/plain; charset=utf-8", 0 },
		{ " text/plain; hpx=1", 0 },
		{ " text/plain; xhp=1", 0 },
		{ " multipart/mixed; boundary=\"a; hp=1\"", 0 },
		{ " text/plain (; hp=1)", 0 },
		{ " text/plain; charset=\"a\\\"; hp=1\"", 0 },
		{ " text/plain; hp", 0 },
		{ "", 0 },
		/* a backslash ending a comment at the very end (fuzzer: read past the value) */
		{ " text/plain; (x\\", 0 },
		{ " text/plain;(\\", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		/* an exact-length copy without a NUL, as the milter passes values:
		   ASan sees any read past it */
		size_t n = strlen(rows[i].ctype);
		char *v = malloc(n > 0 ? n : 1);
		memcpy(v, rows[i].ctype, n);
		int got = mp_prothdr_has_hp(v, n);
		free(v);
		if (got != rows[i].want)
			fail_msg("row %zu (%s): got %d", i, rows[i].ctype, got);
	}
}

static const struct mp_field msg[] = {
	{ "Received", " from x by y" },
	{ "From", " Alice <alice@example.org>" },
	{ "To", " bob@example.net" },
	{ "Bcc", " carol@example.net" },
	{ "Subject", " =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n folded" },
	{ "Content-Type", " text/plain; charset=utf-8" },
	{ "MIME-Version", " 1.0" },
	{ "Content-Transfer-Encoding", " 8bit" },
	{ "Message-ID", " <1@example.org>" },
};

static void test_entity(void **state)
{
	(void)state;
	static const struct {
		enum mp_hp hp;
		const char *subject;
		int obscure;
		const char *want;
	} rows[] = {
		{ MP_HP_NONE, NULL, 1,
		  "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" },
		{ MP_HP_CLEAR, NULL, 1,
		  "Content-Type: text/plain; charset=utf-8;\r\n hp=\"clear\"\r\nContent-Transfer-Encoding: 8bit\r\n"
		  "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
		  "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n folded\r\nMessage-ID: <1@example.org>\r\n\r\n" },
		{ MP_HP_CIPHER, NULL, 0,
		  "Content-Type: text/plain; charset=utf-8;\r\n hp=\"cipher\"\r\nContent-Transfer-Encoding: 8bit\r\n"
		  "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
		  "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n folded\r\nMessage-ID: <1@example.org>\r\n"
		  "HP-Outer: From: Alice <alice@example.org>\r\nHP-Outer: To: bob@example.net\r\n"
		  "HP-Outer: Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n folded\r\n"
		  "HP-Outer: Message-ID: <1@example.org>\r\n\r\n" },
		{ MP_HP_CIPHER, " untagged", 1,
		  "Content-Type: text/plain; charset=utf-8;\r\n hp=\"cipher\"\r\nContent-Transfer-Encoding: 8bit\r\n"
		  "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"
		  "Subject: untagged\r\nMessage-ID: <1@example.org>\r\n"
		  "HP-Outer: From: Alice <alice@example.org>\r\nHP-Outer: To: bob@example.net\r\n"
		  "HP-Outer: Subject: [...]\r\n"
		  "HP-Outer: Message-ID: <1@example.org>\r\n\r\n" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		enum mp_hp got = mp_prothdr_entity(&b, msg, sizeof(msg) / sizeof(msg[0]), rows[i].hp, rows[i].subject,
						   rows[i].obscure);
		assert_int_equal(got, rows[i].hp);
		if (strcmp(mw_buf_str(&b), rows[i].want) != 0)
			fail_msg("row %zu:\n%s\nwant:\n%s", i, mw_buf_str(&b), rows[i].want);
		mw_buf_free(&b);
	}
}

static void test_entity_edges(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	/* no Content-Type: RFC 2045's default, with the parameter */
	const struct mp_field none[] = { { "Subject", " hi" } };
	mp_prothdr_entity(&b, none, 1, MP_HP_CLEAR, NULL, 0);
	assert_string_equal(mw_buf_str(&b),
			    "Content-Type: text/plain; charset=us-ascii;\r\n hp=\"clear\"\r\nSubject: hi\r\n\r\n");
	/* a trailing semicolon gets no second one; folds stay */
	mw_buf_reset(&b);
	const struct mp_field semi[] = { { "Content-Type", " multipart/mixed;\n\tboundary=x; " } };
	mp_prothdr_entity(&b, semi, 1, MP_HP_CIPHER, NULL, 0);
	assert_string_equal(mw_buf_str(&b), "Content-Type: multipart/mixed;\r\n\tboundary=x; \r\n hp=\"cipher\"\r\n\r\n");
	/* an hp parameter already there: the entity is left as it is */
	mw_buf_reset(&b);
	const struct mp_field has[] = { { "Content-Type", " text/plain; hp=\"clear\"" }, { "Subject", " hi" } };
	assert_int_equal(mp_prothdr_entity(&b, has, 2, MP_HP_CIPHER, NULL, 1), MP_HP_NONE);
	assert_string_equal(mw_buf_str(&b), "Content-Type: text/plain; hp=\"clear\"\r\n\r\n");
	mw_buf_free(&b);
	assert_true(mp_prothdr_copied("cc"));
	assert_false(mp_prothdr_copied("Bcc"));
	assert_false(mp_prothdr_copied("Resent-Bcc"));
	assert_false(mp_prothdr_copied("Received"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_has_hp),
		cmocka_unit_test(test_entity),
		cmocka_unit_test(test_entity_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
