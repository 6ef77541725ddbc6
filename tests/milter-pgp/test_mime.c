/*
 * Unit tests for milter-pgp's MIME walker (mime.h): Content-Type parsing and
 * "is this message already protected?", in tables of rows.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mime.h"

static void test_ctype(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		int ok;
		const char *type, *subtype, *boundary, *protocol;
	} rows[] = {
		{ " text/plain; charset=utf-8", 0, "text", "plain", "", "" },
		{ " Multipart/Mixed; Boundary=\"a b;c\"", 0, "multipart", "mixed", "a b;c", "" },
		{ " multipart/encrypted;\r\n\tprotocol=\"application/PGP-encrypted\"; boundary=xyz", 0,
		  "multipart", "encrypted", "xyz", "application/pgp-encrypted" },
		{ " multipart/signed (comment) ; micalg=pgp-sha256; protocol=\"application/pgp-signature\";"
		  " boundary=\"=-x\\\"y\"", 0, "multipart", "signed", "=-x\"y", "application/pgp-signature" },
		{ " text", -1, "text", "", "", "" },
		{ "", -1, "", "", "", "" },
		{ " /plain", -1, "", "", "", "" },
		{ " text/plain; charset", 0, "text", "plain", "", "" },
		{ " text/plain; =; ;;boundary=\"unterminated", 0, "text", "plain", "unterminated", "" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mp_ctype ct;
		int r = mp_ctype_parse(rows[i].value, strlen(rows[i].value), &ct);
		assert_int_equal(r, rows[i].ok);
		if (r == 0) {
			assert_string_equal(ct.type, rows[i].type);
			assert_string_equal(ct.subtype, rows[i].subtype);
			assert_string_equal(ct.boundary, rows[i].boundary);
			assert_string_equal(ct.protocol, rows[i].protocol);
		}
	}
}

static void test_classify(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *ctype;
		const char *body;
		enum mp_protection want;
		int malformed;
	} rows[] = {
		{ "plain text", " text/plain", "hello\r\n", MP_PLAIN, 0 },
		{ "no Content-Type", NULL, "hello\r\n", MP_PLAIN, 0 },
		{ "PGP/MIME", " multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b",
		  "--b\r\n\r\nVersion: 1\r\n--b--\r\n", MP_PGP_MIME, 0 },
		{ "multipart/encrypted of another protocol is not PGP/MIME",
		  " multipart/encrypted; protocol=\"application/x-other\"; boundary=b",
		  "--b\r\n\r\nx\r\n--b--\r\n", MP_PLAIN, 0 },
		{ "inline PGP", " text/plain", "\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\n",
		  MP_PGP_INLINE, 0 },
		{ "inline PGP without Content-Type, LF", NULL, "-----BEGIN PGP MESSAGE-----\nhQ==\n", MP_PGP_INLINE, 0 },
		{ "the armor line quoted in prose is not inline PGP", " text/plain",
		  "Look:\r\n-----BEGIN PGP MESSAGE-----\r\n", MP_PLAIN, 0 },
		{ "a signed inline message is not encrypted", " text/plain",
		  "-----BEGIN PGP SIGNED MESSAGE-----\r\n", MP_PLAIN, 0 },
		{ "the armor in an attachment (not text) does not count", " application/octet-stream",
		  "-----BEGIN PGP MESSAGE-----\r\n", MP_PLAIN, 0 },
		{ "S/MIME enveloped", " application/pkcs7-mime; smime-type=enveloped-data", "MIAG\r\n", MP_SMIME, 0 },
		{ "S/MIME old type", " application/x-pkcs7-mime", "MIAG\r\n", MP_SMIME, 0 },
		{ "S/MIME signed", " multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b",
		  "--b\r\n\r\nx\r\n--b--\r\n", MP_SMIME, 0 },
		{ "PGP/MIME signed is to be encrypted",
		  " multipart/signed; protocol=\"application/pgp-signature\"; boundary=b",
		  "--b\r\n\r\nx\r\n--b\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--b--\r\n", MP_PLAIN, 0 },
		{ "all parts inline PGP", " multipart/mixed; boundary=b",
		  "--b\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--b\r\n"
		  "Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--b--\r\n", MP_PGP_INLINE, 0 },
		{ "one part in clear beside inline PGP: plain", " multipart/mixed; boundary=b",
		  "--b\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--b\r\n"
		  "Content-Type: text/plain\r\n\r\nsecret in clear\r\n--b--\r\n", MP_PLAIN, 0 },
		{ "nested PGP/MIME as the only part", " multipart/mixed; boundary=o",
		  "--o\r\nContent-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\"; boundary=i\r\n\r\n"
		  "--i\r\n\r\nVersion: 1\r\n--i--\r\n--o--\r\n", MP_PGP_MIME, 0 },
		{ "an encrypted part beside a clear one: plain", " multipart/mixed; boundary=o",
		  "--o\r\n\r\nclear text\r\n--o\r\nContent-Type: application/pkcs7-mime\r\n\r\nMIAG\r\n--o--\r\n",
		  MP_PLAIN, 0 },
		{ "a boundary that never closes", " multipart/mixed; boundary=b",
		  "--b\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", MP_PLAIN, 1 },
		{ "multipart without a boundary", " multipart/mixed", "x\r\n", MP_PLAIN, 1 },
		{ "a boundary prefix is not a delimiter", " multipart/mixed; boundary=b",
		  "--bb\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", MP_PLAIN, 1 },
		{ "empty body", " text/plain", "", MP_PLAIN, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mp_result r;
		const char *ct = rows[i].ctype;
		mp_classify(ct, ct != NULL ? strlen(ct) : 0, rows[i].body, strlen(rows[i].body), &r);
		if (r.protection != rows[i].want || r.malformed != rows[i].malformed)
			fail_msg("%s: got %s malformed=%d", rows[i].name, mp_protection_name(r.protection), r.malformed);
	}
}

/* Nesting past MP_MAX_DEPTH: malformed, hence plain (to be encrypted). */
static void test_depth_limit(void **state)
{
	(void)state;
	static char body[64 * 1024];
	size_t n = 0;
	for (int d = 0; d < MP_MAX_DEPTH + 5; d++)
		n += (size_t)snprintf(body + n, sizeof(body) - n,
				      "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", d, d + 1);
	n += (size_t)snprintf(body + n, sizeof(body) - n, "-----BEGIN PGP MESSAGE-----\r\n");
	struct mp_result r;
	const char *ct = " multipart/mixed; boundary=b0";
	mp_classify(ct, strlen(ct), body, n, &r);
	assert_int_equal(r.protection, MP_PLAIN);
	assert_int_equal(r.malformed, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctype),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_depth_limit),
	};
	return cmocka_run_group_tests_name("milter-pgp mime", tests, NULL, NULL);
}
