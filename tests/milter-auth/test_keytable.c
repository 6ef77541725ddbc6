/* Unit tests of the signing tables (keytable.c), of the From local part
   the signing table is matched with (hdrparse.c), and of the DKIM
   canonicalization of our Ed25519 signer (dksign.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dksign.h"
#include "hdrparse.h"
#include "keytable.h"

static const char KEYS[] =
	"# name   domain:selector:path\n"
	"rsa      example.org:rsa2026:/etc/keys/rsa.private\n"
	"ed       example.org:ed2026:/etc/keys/ed.private   # Ed25519\n"
	"\n"
	"any      %:mail:/etc/keys/%.private\n"
	"sub      Sub.Example.ORG.:s1:/etc/keys/sub\r\n"
	"bob      example.org:bob:/etc/keys/bob\n";

static void load_keys(struct ma_keytable *kt)
{
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(ma_keytable_parse(KEYS, strlen(KEYS), "keys", kt, &err), 0);
	mw_buf_free(&err);
}

static void test_keytable(void **state)
{
	(void)state;
	struct ma_keytable kt;
	load_keys(&kt);
	assert_int_equal(kt.n, 5);
	assert_string_equal(kt.rows[0].name, "rsa");
	assert_string_equal(kt.rows[0].selector, "rsa2026");
	assert_string_equal(kt.rows[0].path, "/etc/keys/rsa.private");
	assert_int_equal(kt.rows[1].line, 3);
	assert_string_equal(kt.rows[2].domain, "%");
	assert_string_equal(kt.rows[3].domain, "sub.example.org");
	ma_keytable_free(&kt);

	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "a example.org:s:/k\nb example.org:s\n", "keys:2: \"example.org:s\" is not DOMAIN:SELECTOR" },
		{ "a example.org:s:/k extra\n", "keys:1: expected \"NAME DOMAIN:SELECTOR:/path/to/key\"" },
		{ "a\n", "keys:1: expected" },
		{ "a exa_mple..org:s:/k\n", "keys:1: \"exa_mple..org\" is not a domain" },
		{ "a example.org:s/1:/k\n", "keys:1: \"s/1\" is not a selector" },
		{ "a example.org:s:relative/k\n", "keys:1: the key must be an absolute file path" },
		{ "a example.org:s:/k\n\n#\na example.org:t:/k2\n", "keys:4: key name \"a\" already defined at line 1" },
		{ "a example.org:s:/k\0x\n", "keys:1: NUL byte" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mw_buf err = MW_BUF_INIT;
		size_t len = strlen(bad[i].text);
		if (strstr(bad[i].error, "NUL") != NULL)
			len += 3;
		assert_int_equal(ma_keytable_parse(bad[i].text, len, "keys", &kt, &err), -1);
		if (strstr(mw_buf_str(&err), bad[i].error) == NULL)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, mw_buf_str(&err), bad[i].error);
		assert_int_equal(kt.n, 0);
		mw_buf_free(&err);
	}
	/* a line too long is refused, not cut */
	char big[MA_KT_MAX_LINE + 64];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(ma_keytable_parse(big, strlen(big), "keys", &kt, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "keys:1: line longer than"));
	mw_buf_free(&err);
}

static void test_wildcard(void **state)
{
	(void)state;
	static const struct {
		const char *pattern, *text;
		int match;
	} rows[] = {
		{ "*@example.org", "alice@example.org", 1 },
		{ "*@example.org", "alice@EXAMPLE.org", 1 },
		{ "*@example.org", "alice@sub.example.org", 0 },
		{ "*@*.example.org", "alice@sub.example.org", 1 },
		{ "*@*.example.org", "alice@example.org", 0 },
		{ "*", "x@y.z", 1 },
		{ "bob@example.org", "bob@example.org", 1 },
		{ "bob@example.org", "bobby@example.org", 0 },
		{ "b*b@example.org", "bob@example.org", 1 },
		{ "b*b@example.org", "bb@example.org", 1 },
		{ "**@*", "a@b", 1 },
		{ "*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
		{ "", "", 1 },
		{ "", "a", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (ma_wildcard_match(rows[i].pattern, rows[i].text) != rows[i].match)
			fail_msg("%s vs %s: want %d", rows[i].pattern, rows[i].text, rows[i].match);
}

static int match(const struct ma_signtable *st, const struct ma_keytable *kt, const char *local,
		 const char *domain, char *names, size_t len)
{
	int rows[8];
	int n = ma_signtable_match(st, local, domain, rows, 8);
	names[0] = '\0';
	for (int i = 0; i < n; i++) {
		strncat(names, kt->rows[st->rows[rows[i]].key].name, len - strlen(names) - 1);
		if (i + 1 < n)
			strncat(names, ",", len - strlen(names) - 1);
	}
	return n;
}

static void test_signtable_refile(void **state)
{
	(void)state;
	struct ma_keytable kt;
	struct ma_signtable st;
	struct mw_buf err = MW_BUF_INIT;
	load_keys(&kt);
	static const char table[] =
		"bob@example.org     bob\n"
		"*@example.org       rsa\n"
		"*@example.org       ed     # dual: both rows sign\n"
		"*@*.example.org     sub    %\n"
		"*                   any\n";
	assert_int_equal(ma_signtable_parse(table, strlen(table), "signing", 1, &kt, &st, &err), 0);
	char names[128];
	assert_int_equal(match(&st, &kt, "alice", "example.org", names, sizeof(names)), 2);
	assert_string_equal(names, "rsa,ed");
	assert_int_equal(match(&st, &kt, "bob", "example.org", names, sizeof(names)), 1);
	assert_string_equal(names, "bob");
	assert_int_equal(match(&st, &kt, "x", "deep.sub.example.org", names, sizeof(names)), 1);
	assert_string_equal(names, "sub");
	assert_string_equal(st.rows[3].signer, "%");
	assert_int_equal(match(&st, &kt, "x", "other.net", names, sizeof(names)), 1);
	assert_string_equal(names, "any");
	ma_signtable_free(&st);

	/* no catch-all: nothing for a domain with no key */
	static const char narrow[] = "*@example.org rsa\n";
	assert_int_equal(ma_signtable_parse(narrow, strlen(narrow), "signing", 1, &kt, &st, &err), 0);
	assert_int_equal(match(&st, &kt, "x", "example.org.evil.net", names, sizeof(names)), 0);
	assert_int_equal(match(&st, &kt, "x", "evilexample.org", names, sizeof(names)), 0);
	ma_signtable_free(&st);

	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "*@example.org nokey\n", "signing:1: key name \"nokey\" is not in the key table" },
		{ "*@example.org\n", "signing:1: expected \"PATTERN KEYNAME [SIGNER]\"" },
		{ "*@example.org rsa\n*@example.org rsa\n", "signing:2: \"*@example.org rsa\" repeats line 1" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(ma_signtable_parse(bad[i].text, strlen(bad[i].text), "signing", 1, &kt, &st,
						    &err), -1);
		if (strstr(mw_buf_str(&err), bad[i].error) == NULL)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, mw_buf_str(&err), bad[i].error);
	}
	mw_buf_free(&err);
	ma_keytable_free(&kt);
}

static void test_signtable_file(void **state)
{
	(void)state;
	struct ma_keytable kt;
	struct ma_signtable st;
	struct mw_buf err = MW_BUF_INIT;
	load_keys(&kt);
	/* OpenDKIM's order: user@host, host, user@.parent, .parent, user@*, * */
	static const char table[] =
		"example.org          rsa\n"
		"example.org          ed\n"
		"bob@example.org      bob\n"
		".example.org         sub\n"
		"postmaster@*         any\n";
	assert_int_equal(ma_signtable_parse(table, strlen(table), "signing", 0, &kt, &st, &err), 0);
	char names[128];
	assert_int_equal(match(&st, &kt, "bob", "example.org", names, sizeof(names)), 1);
	assert_string_equal(names, "bob");
	assert_int_equal(match(&st, &kt, "alice", "example.org", names, sizeof(names)), 2);
	assert_string_equal(names, "rsa,ed");
	assert_int_equal(match(&st, &kt, "alice", "a.b.example.org", names, sizeof(names)), 1);
	assert_string_equal(names, "sub");
	assert_int_equal(match(&st, &kt, "postmaster", "else.net", names, sizeof(names)), 1);
	assert_int_equal(match(&st, &kt, "alice", "else.net", names, sizeof(names)), 0);
	ma_signtable_free(&st);

	const char *path;
	assert_int_equal(ma_signtable_kind("refile:/etc/x", &path), 1);
	assert_string_equal(path, "/etc/x");
	assert_int_equal(ma_signtable_kind("file:/etc/x", &path), 0);
	assert_string_equal(path, "/etc/x");
	assert_int_equal(ma_signtable_kind("/etc/x", &path), 0);

	/* a pattern in a flat table says which setting to write */
	static const char wild[] = "*@example.org rsa\n";
	assert_int_equal(ma_signtable_parse(wild, strlen(wild), "signing", 0, &kt, &st, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "signing:1: wildcard pattern \"*@example.org\" in a file: table"));
	assert_non_null(strstr(mw_buf_str(&err), "refile:signing"));
	mw_buf_free(&err);
	ma_keytable_free(&kt);
}

static void test_loginmap(void **state)
{
	(void)state;
	struct ma_loginmap lm;
	struct mw_buf err = MW_BUF_INIT;
	static const char map[] =
		"# Postfix smtpd_sender_login_maps\n"
		"alice@example.org    alice\n"
		"info@example.org     alice, bob\n"
		"@example.org         admin\n"
		"@Other.NET           carol,dave\tearl\n";
	assert_int_equal(ma_loginmap_parse(map, strlen(map), "logins", &lm, &err), 0);
	assert_int_equal(ma_loginmap_check(&lm, "alice", "alice", "example.org"), 1);
	assert_int_equal(ma_loginmap_check(&lm, "bob", "alice", "example.org"), 0);
	assert_int_equal(ma_loginmap_check(&lm, "bob", "info", "example.org"), 1);
	/* the full address wins over the domain row, as in Postfix */
	assert_int_equal(ma_loginmap_check(&lm, "admin", "alice", "example.org"), 0);
	assert_int_equal(ma_loginmap_check(&lm, "admin", "zed", "example.org"), 1);
	assert_int_equal(ma_loginmap_check(&lm, "DAVE", "x", "other.net"), 1);
	assert_int_equal(ma_loginmap_check(&lm, "earl", "x", "other.net"), 1);
	assert_int_equal(ma_loginmap_check(&lm, "alice", "x", "nobody.net"), -1);
	ma_loginmap_free(&lm);

	static const char *const bad[] = { "alice alice\n", "@ x\n", "@example.org\n", "a@b@c.org x\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(ma_loginmap_parse(bad[i], strlen(bad[i]), "logins", &lm, &err), -1);
		assert_non_null(strstr(mw_buf_str(&err), "logins:1:"));
	}
	mw_buf_free(&err);
}

static void test_from_local(void **state)
{
	(void)state;
	static const struct {
		const char *from, *local, *domain;
	} rows[] = {
		{ " Alice <Alice@Example.org>", "Alice", "example.org" },
		{ " alice@example.org", "alice", "example.org" },
		{ " \"A. Person\" <\"a.person\"@example.org>", "a.person", "example.org" },
		{ " (comment) bob (c) @ example.org", "bob", "example.org" },
		{ " <@route.example:carol@example.org>", "carol", "example.org" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ma_from f;
		assert_int_equal(ma_from_parse(rows[i].from, strlen(rows[i].from), &f), 0);
		assert_string_equal(f.domain, rows[i].domain);
		assert_string_equal(f.local, rows[i].local);
	}
}

static void body(const char *in, int relaxed, const char *want, size_t split)
{
	struct ma_body_canon c;
	ma_body_canon_init(&c, relaxed);
	size_t n = strlen(in);
	if (split > n)
		split = n;
	ma_body_canon_feed(&c, (const unsigned char *)in, split);
	ma_body_canon_feed(&c, (const unsigned char *)in + split, n - split);
	ma_body_canon_end(&c);
	if (strcmp(mw_buf_str(&c.out), want) != 0)
		fail_msg("%s body [%s] split %zu: got [%s], want [%s]", relaxed ? "relaxed" : "simple", in, split,
			 mw_buf_str(&c.out), want);
	ma_body_canon_free(&c);
}

static void test_canon(void **state)
{
	(void)state;
	/* RFC 6376 3.4.5 */
	static const char rfc[] = " C \r\nD \t E\r\n\r\n\r\n";
	for (size_t split = 0; split <= sizeof(rfc); split++) {
		body(rfc, 1, " C\r\nD E\r\n", split);
		body(rfc, 0, " C \r\nD \t E\r\n", split);
	}
	struct mw_buf h = MW_BUF_INIT;
	ma_header_canon("A: X", 4, 1, &h);
	ma_header_canon("B : Y\t\r\n\tZ  ", 12, 1, &h);
	assert_string_equal(mw_buf_str(&h), "a:X\r\nb:Y Z\r\n");
	mw_buf_reset(&h);
	ma_header_canon("B : Y\t\r\n\tZ  ", 12, 0, &h);
	assert_string_equal(mw_buf_str(&h), "B : Y\t\r\n\tZ  \r\n");
	mw_buf_free(&h);
	static const struct {
		const char *in, *relaxed, *simple;
	} rows[] = {
		{ "", "", "\r\n" },                          /* empty body (erratum 1384) */
		{ "\n\n\n", "", "\r\n" },                    /* only empty lines */
		{ "a", "a\r\n", "a\r\n" },                    /* no final line end */
		{ "a\n", "a\r\n", "a\r\n" },                 /* LF from the MTA */
		{ "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n" }, /* inner empty lines stay */
		{ "  \t \n", "", "  \t \r\n" },              /* a line of blanks */
		{ "a\rb\n", "a\rb\r\n", "a\rb\r\n" },         /* a bare CR is data */
		{ "x\r", "x\r\r\n", "x\r\r\n" },
		{ "\xe9t\xe9  \xc3\xa9\n", "\xe9t\xe9 \xc3\xa9\r\n", "\xe9t\xe9  \xc3\xa9\r\n" }, /* 8-bit */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (size_t split = 0; split <= strlen(rows[i].in); split++) {
			body(rows[i].in, 1, rows[i].relaxed, split);
			body(rows[i].in, 0, rows[i].simple, split);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keytable),
		cmocka_unit_test(test_wildcard),
		cmocka_unit_test(test_signtable_refile),
		cmocka_unit_test(test_signtable_file),
		cmocka_unit_test(test_loginmap),
		cmocka_unit_test(test_from_local),
		cmocka_unit_test(test_canon),
	};
	return cmocka_run_group_tests_name("milter-auth keytable", tests, NULL, NULL);
}
