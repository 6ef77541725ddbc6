/*
 * Unit tests for password-encrypted messages (pem.h): round trips of the
 * envelope and the page, wrong passwords, tampering (ciphertext, tag and
 * every parameter, which are GCM additional data), hostile envelopes in a
 * table, NFC normalisation and generated passwords.
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

#include "pem.h"

#define ITER 1000 /* the minimum: these tests are about format, not cost */

static const char mime[] = "From: a@example.org\r\nSubject: t\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
			   "caf\xc3\xa9 \xe2\x9c\x93\r\n";

static void seal(const char *kind, const char *pw, const void *m, size_t n, struct mw_buf *env)
{
	struct mp_pem_opts o = { .iterations = ITER };
	struct mw_buf err = MW_BUF_INIT;
	int r = mp_pem_seal_envelope(&o, kind, pw, m, n, env, &err);
	if (r != 0)
		fail_msg("seal: %s", mw_buf_str(&err));
	mw_buf_free(&err);
}

static int open_env(const char *pw, const struct mw_buf *env, struct mw_buf *out, struct mw_buf *err)
{
	return mp_pem_open(pw, (const unsigned char *)env->data, env->len, out, err);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct mw_buf env = MW_BUF_INIT, out = MW_BUF_INIT, err = MW_BUF_INIT;
	seal("message", "secret", mime, sizeof(mime) - 1, &env);
	assert_int_equal(open_env("secret", &env, &out, &err), 0);
	assert_int_equal(out.len, sizeof(mime) - 1);
	assert_memory_equal(out.data, mime, out.len);
	/* Nothing of the plaintext in the envelope. */
	assert_null(strstr(mw_buf_str(&env), "Subject"));

	/* Empty message, binary with NULs, and a reply, in CRLF with the
	   envelope quoted in a mail body. */
	mw_buf_reset(&env);
	mw_buf_reset(&out);
	seal("message", "x", "", 0, &env);
	assert_int_equal(open_env("x", &env, &out, &err), 0);
	assert_int_equal(out.len, 0);
	unsigned char bin[3000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7);
	mw_buf_reset(&env);
	seal("reply", "pw", bin, sizeof(bin), &env);
	struct mw_buf mail = MW_BUF_INIT;
	mw_buf_puts(&mail, "Subject: Encrypted reply\r\n\r\nHello,\r\n");
	for (size_t i = 0; i < env.len; i++) {
		if (env.data[i] == '\n')
			mw_buf_putc(&mail, '\r');
		mw_buf_putc(&mail, env.data[i]);
	}
	mw_buf_puts(&mail, "-- \r\nsig\r\n");
	assert_int_equal(open_env("pw", &mail, &out, &err), 0);
	assert_int_equal(out.len, sizeof(bin));
	assert_memory_equal(out.data, bin, sizeof(bin));
	struct mp_pem_params p;
	assert_int_equal(mp_pem_parse((const unsigned char *)mail.data, mail.len, &p, &err), 0);
	assert_string_equal(p.kind, "reply");
	assert_int_equal(p.iterations, ITER);
	mp_pem_params_free(&p);
	mw_buf_free(&mail);
	mw_buf_free(&env);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

static void test_wrong_password(void **state)
{
	(void)state;
	struct mw_buf env = MW_BUF_INIT, out = MW_BUF_INIT, err = MW_BUF_INIT;
	seal("message", "secret", mime, sizeof(mime) - 1, &env);
	mw_buf_puts(&out, "kept");
	static const char *const wrong[] = { "Secret", "secret ", "secre", "x" };
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(open_env(wrong[i], &env, &out, &err), -1);
		assert_string_equal(mw_buf_str(&out), "kept"); /* no partial plaintext */
		assert_string_equal(mw_buf_str(&err), "wrong password, or the file was changed");
	}
	mw_buf_free(&env);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

/* Every byte of the body and every parameter is covered by the tag. */
static void test_tamper(void **state)
{
	(void)state;
	struct mw_buf env = MW_BUF_INIT, bad = MW_BUF_INIT, out = MW_BUF_INIT, err = MW_BUF_INIT;
	seal("message", "secret", mime, sizeof(mime) - 1, &env);
	const char *body = strstr(env.data, "\n\n") + 2;
	size_t body_off = (size_t)(body - env.data);
	size_t body_len = (size_t)(strstr(env.data, "-----END") - body);
	int refused = 0, tried = 0;
	/* Not the last group: changing its unused low bits changes no byte. */
	for (size_t i = body_off; i + 8 < body_off + body_len; i += 3) {
		char c = env.data[i];
		if (c == '\n' || c == '=')
			continue;
		mw_buf_set(&bad, env.data);
		bad.data[i] = c == 'A' ? 'B' : 'A';
		mw_buf_reset(&out);
		tried++;
		refused += open_env("secret", &bad, &out, &err) == -1 && out.len == 0;
	}
	assert_int_equal(refused, tried);

	/* Parameters: each changed to another valid value. */
	static const char *const edits[][2] = {
		{ "Kind: message", "Kind: reply" },
		{ "Iterations: 1000", "Iterations: 1001" },
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char *at = strstr(env.data, edits[i][0]);
		assert_non_null(at);
		mw_buf_reset(&bad);
		mw_buf_append(&bad, env.data, (size_t)(at - env.data));
		mw_buf_puts(&bad, edits[i][1]);
		mw_buf_puts(&bad, at + strlen(edits[i][0]));
		mw_buf_reset(&err);
		assert_int_equal(open_env("secret", &bad, &out, &err), -1);
		assert_string_equal(mw_buf_str(&err), "wrong password, or the file was changed");
	}
	/* Salt and IV: one character of each changed. */
	static const char *const fields[] = { "Salt: ", "IV: " };
	for (size_t i = 0; i < 2; i++) {
		mw_buf_set(&bad, env.data);
		char *v = strstr(bad.data, fields[i]) + strlen(fields[i]);
		v[1] = v[1] == 'A' ? 'B' : 'A';
		assert_int_equal(open_env("secret", &bad, &out, &err), -1);
	}
	/* Truncated body: the tag is gone. */
	mw_buf_set(&bad, env.data);
	char *end = strstr(bad.data, "-----END");
	memmove(end - 9, end, strlen(end) + 1);
	bad.len = strlen(bad.data);
	assert_int_equal(open_env("secret", &bad, &out, &err), -1);
	mw_buf_free(&env);
	mw_buf_free(&bad);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

/* Hostile envelopes: each refused with its reason, nothing allocated past
   the limits, no crash (the fuzz target goes further). */
static void test_parse_hostile(void **state)
{
	(void)state;
#define HEAD "-----BEGIN MAILWARD PEM-----\n"
#define TAIL "\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END MAILWARD PEM-----\n"
#define OKH "Version: 1\nKind: message\nKDF: pbkdf2-sha256\nIterations: 600000\n"
#define SALT "Salt: AAAAAAAAAAAAAAAAAAAAAA==\n"
#define IV "IV: AAAAAAAAAAAAAAAA\n"
	static const struct {
		const char *in, *err;
	} rows[] = {
		{ "", "no encrypted envelope in this file" },
		{ HEAD OKH SALT IV, "envelope: no end line (file cut short?)" },
		{ HEAD OKH SALT IV TAIL, NULL },
		{ "junk before -----BEGIN MAILWARD PEM-----\r\n" OKH SALT IV TAIL, NULL },
		{ HEAD "Version: 2\n" SALT IV TAIL, "envelope: unsupported version (this program reads version 1)" },
		{ HEAD "Version: 01\n" TAIL, "envelope: unsupported version (this program reads version 1)" },
		{ HEAD "Version: 1\nVersion: 1\n" TAIL, "envelope: repeated header" },
		{ HEAD "Version: 1\nKind: message\nKDF: argon2id\n" TAIL, "envelope: unsupported KDF" },
		{ HEAD "Kind: other\n" TAIL, "envelope: unknown kind" },
		{ HEAD "Iterations: 999\n" TAIL, "envelope: iterations out of range" },
		{ HEAD "Iterations: 20000001\n" TAIL, "envelope: iterations out of range" },
		{ HEAD "Iterations: 4294967296000\n" TAIL, "envelope: iterations out of range" },
		{ HEAD "Iterations: -1\n" TAIL, "envelope: iterations out of range" },
		{ HEAD "Salt: AAAA\n" TAIL, "envelope: bad salt" },
		{ HEAD "Salt: AAAAAAAAAAAAAAAAAAAAAAAA\n" TAIL, "envelope: bad salt" },
		{ HEAD "Salt: AAAAAAAAAAAAAAAAAAAAA*==\n" TAIL, "envelope: bad salt" },
		{ HEAD "IV: AAAAAAAAAAAAAAA=\n" TAIL, "envelope: bad IV" },
		{ HEAD "Extra: 1\n" TAIL, "envelope: unknown header" },
		{ HEAD "no colon\n" TAIL, "envelope: header line without a colon" },
		{ HEAD OKH SALT TAIL, "envelope: a header is missing" },
		{ HEAD OKH SALT IV "-----END MAILWARD PEM-----", "envelope: no empty line after the headers" },
		{ HEAD OKH SALT IV "\nAAAA\n-----END MAILWARD PEM-----", "envelope: too short" },
		{ HEAD OKH SALT IV "\n!!!!\n-----END MAILWARD PEM-----", "envelope: bad base64" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mp_pem_params p;
		struct mw_buf err = MW_BUF_INIT;
		int r = mp_pem_parse((const unsigned char *)rows[i].in, strlen(rows[i].in), &p, &err);
		if (rows[i].err == NULL) {
			if (r != 0)
				fail_msg("row %zu: %s", i, mw_buf_str(&err));
			assert_int_equal(p.ct.len, 16);
			assert_int_equal(p.iterations, 600000);
		} else {
			if (r != -1 || strcmp(mw_buf_str(&err), rows[i].err) != 0)
				fail_msg("row %zu: got %d \"%s\", want \"%s\"", i, r, mw_buf_str(&err), rows[i].err);
		}
		mp_pem_params_free(&p);
		mw_buf_free(&err);
	}
	/* A header line too long to be ours. */
	struct mw_buf big = MW_BUF_INIT, err = MW_BUF_INIT;
	struct mp_pem_params p;
	mw_buf_puts(&big, HEAD "Kind: ");
	for (int i = 0; i < 300; i++)
		mw_buf_putc(&big, 'x');
	mw_buf_puts(&big, "\n" TAIL);
	assert_int_equal(mp_pem_parse((const unsigned char *)big.data, big.len, &p, &err), -1);
	assert_string_equal(mw_buf_str(&err), "envelope: header line too long");
	mp_pem_params_free(&p);
	mw_buf_free(&big);
	mw_buf_free(&err);
}

static void test_normalize(void **state)
{
	(void)state;
	/* "Ça coûte 5 €" composed and decomposed: one password. */
	static const char nfc[] = "\xc3\x87" "a co\xc3\xbb" "te 5 \xe2\x82\xac";
	static const char nfd[] = "C\xcc\xa7" "a cou\xcc\x82" "te 5 \xe2\x82\xac";
	struct mw_buf a = MW_BUF_INIT, b = MW_BUF_INIT, err = MW_BUF_INIT;
	assert_int_equal(mp_pem_password_normalize(nfc, strlen(nfc), &a, &err), 0);
	assert_int_equal(mp_pem_password_normalize(nfd, strlen(nfd), &b, &err), 0);
	assert_string_equal(mw_buf_str(&a), nfc);
	assert_string_equal(mw_buf_str(&b), nfc);
	struct mw_buf env = MW_BUF_INIT, out = MW_BUF_INIT;
	seal("message", nfd, mime, sizeof(mime) - 1, &env);
	assert_int_equal(open_env(nfc, &env, &out, &err), 0);

	static const struct {
		const char *in;
		size_t len;
		const char *err;
	} bad[] = {
		{ "", 0, "empty password" },
		{ "a\0b", 3, "password holds a NUL byte" },
		{ "\xc3", 1, "password is not valid UTF-8" },
		{ "\xed\xa0\x80", 3, "password is not valid UTF-8" }, /* a surrogate */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(mp_pem_password_normalize(bad[i].in, bad[i].len, &a, &err), -1);
		assert_string_equal(mw_buf_str(&err), bad[i].err);
	}
	char *longpw = malloc(MP_PEM_MAX_PASSWORD + 2);
	memset(longpw, 'x', MP_PEM_MAX_PASSWORD + 1);
	longpw[MP_PEM_MAX_PASSWORD + 1] = '\0';
	mw_buf_reset(&err);
	assert_int_equal(mp_pem_password_normalize(longpw, MP_PEM_MAX_PASSWORD + 1, &a, &err), -1);
	longpw[MP_PEM_MAX_PASSWORD] = '\0';
	assert_int_equal(mp_pem_password_normalize(longpw, MP_PEM_MAX_PASSWORD, &a, &err), 0);
	free(longpw);
	mw_buf_wipe(&a);
	mw_buf_wipe(&b);
	mw_buf_free(&env);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

static void test_generate(void **state)
{
	(void)state;
	char a[MP_PEM_GENERATED_SIZE], b[MP_PEM_GENERATED_SIZE];
	assert_int_equal(mp_pem_password_generate(a, sizeof(a) - 1), -1);
	assert_int_equal(mp_pem_password_generate(a, sizeof(a)), 0);
	assert_int_equal(mp_pem_password_generate(b, sizeof(b)), 0);
	assert_int_equal(strlen(a), 35);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < 35; i++) {
		if (i % 6 == 5)
			assert_int_equal(a[i], '-');
		else
			assert_non_null(strchr("0123456789abcdefghjkmnpqrstvwxyz", a[i]));
	}
	/* Every symbol turns up: all 32 are used (5 bits each). */
	int seen[256] = { 0 };
	for (int n = 0; n < 200; n++) {
		assert_int_equal(mp_pem_password_generate(a, sizeof(a)), 0);
		for (size_t i = 0; i < 35; i++)
			seen[(unsigned char)a[i]] = 1;
	}
	int distinct = 0;
	for (int c = 0; c < 256; c++)
		distinct += seen[c];
	assert_int_equal(distinct, 33); /* 32 symbols and the dash */
}

static void test_page(void **state)
{
	(void)state;
	struct mp_pem_opts o = { .iterations = ITER, .lang = "fr", .sender = "a&b@example.org",
				 .hint = "<script>alert(1)</script>", .date = "1 d\xc3\xa9" "c" };
	char *page = NULL;
	size_t plen = 0;
	FILE *f = open_memstream(&page, &plen);
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;
	assert_int_equal(mp_pem_seal_html(&o, "secret", (const unsigned char *)mime, sizeof(mime) - 1, f, &err), 0);
	fclose(f);
	assert_non_null(strstr(page, "<html lang=\"fr\">"));
	assert_non_null(strstr(page, "Mot de passe"));
	assert_non_null(strstr(page, "a&amp;b@example.org"));
	assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_null(strstr(page, "<script>alert"));
	assert_non_null(strstr(page, "default-src 'none'; script-src 'sha256-"));
	assert_null(strstr(page, "@title@"));
	assert_int_equal(mp_pem_open("secret", (unsigned char *)page, plen, &out, &err), 0);
	assert_memory_equal(out.data, mime, sizeof(mime) - 1);
	/* A line break in a shown field is dropped, not written. */
	o.hint = "a\r\nb";
	free(page);
	f = open_memstream(&page, &plen);
	assert_int_equal(mp_pem_seal_html(&o, "secret", (const unsigned char *)mime, sizeof(mime) - 1, f, &err), 0);
	fclose(f);
	assert_null(strstr(page, "a\r\nb"));
	free(page);
	o.iterations = 999;
	f = open_memstream(&page, &plen);
	assert_int_equal(mp_pem_seal_html(&o, "secret", (const unsigned char *)mime, sizeof(mime) - 1, f, &err), -1);
	fclose(f);
	free(page);
	mw_buf_free(&err);
	mw_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_tamper),        cmocka_unit_test(test_parse_hostile),
		cmocka_unit_test(test_normalize),     cmocka_unit_test(test_generate),
		cmocka_unit_test(test_page),
	};
	return cmocka_run_group_tests_name("milter-pgp pem", tests, NULL, NULL);
}
