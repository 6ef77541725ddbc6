/*
 * Unit tests for totp-pam's enrollment output: the otpauth:// URI and the
 * QR code drawn with half blocks (read back into modules: the three finder
 * patterns, the quiet zone, and the size libqrencode chose).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <qrencode.h>

#include "enroll.h"

static void test_uri(void **state)
{
	(void)state;
	struct tp_state st;
	struct mw_buf b = MW_BUF_INIT;
	tp_state_init(&st);
	memcpy(st.secret, "Hello!\xde\xad\xbe\xef", 10);
	st.secret_len = 10;
	assert_int_equal(tp_otpauth_uri("Example Mail", "alice@example.org", &st, &b), 0);
	assert_string_equal(mw_buf_str(&b), "otpauth://totp/Example%20Mail:alice%40example.org"
					    "?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Mail"
					    "&algorithm=SHA1&digits=6&period=30");
	mw_buf_reset(&b);
	st.alg = TP_SHA512;
	st.digits = 8;
	st.step = 60;
	assert_int_equal(tp_otpauth_uri("a&b=c", "bob", &st, &b), 0);
	assert_string_equal(mw_buf_str(&b), "otpauth://totp/a%26b%3Dc:bob?secret=JBSWY3DPEHPK3PXP"
					    "&issuer=a%26b%3Dc&algorithm=SHA512&digits=8&period=60");
	mw_buf_free(&b);
}

/* Reads the drawing back: modules[y][x], 1 = dark. */
static int read_back(const char *text, int ansi, unsigned char m[200][200], int *w_r, int *h_r)
{
	int y = 0, w = -1;
	const char *p = text;
	while (*p) {
		int x = 0;
		if (ansi) {
			if (strncmp(p, "\033[30;47m", 8) != 0)
				return -1;
			p += 8;
		}
		while (*p && *p != '\n' && *p != '\033') {
			int top, bottom;
			if (strncmp(p, "\u2588", 3) == 0) {
				top = bottom = 1;
				p += 3;
			} else if (strncmp(p, "\u2580", 3) == 0) {
				top = 1, bottom = 0;
				p += 3;
			} else if (strncmp(p, "\u2584", 3) == 0) {
				top = 0, bottom = 1;
				p += 3;
			} else if (*p == ' ') {
				top = bottom = 0;
				p++;
			} else {
				return -1;
			}
			if (x >= 200 || y + 1 >= 200)
				return -1;
			/* drawn blocks are dark modules with ansi, light ones without */
			m[y][x] = (unsigned char)(ansi ? top : !top);
			m[y + 1][x] = (unsigned char)(ansi ? bottom : !bottom);
			x++;
		}
		if (ansi) {
			if (strncmp(p, "\033[0m", 4) != 0)
				return -1;
			p += 4;
		}
		if (*p != '\n')
			return -1;
		p++;
		if (w >= 0 && x != w)
			return -1;
		w = x;
		y += 2;
	}
	*w_r = w;
	*h_r = y;
	return 0;
}

static void check_finder(unsigned char m[200][200], int x0, int y0)
{
	/* 7x7: dark ring, light ring, dark 3x3 core */
	for (int y = 0; y < 7; y++)
		for (int x = 0; x < 7; x++) {
			int ring = x == 0 || y == 0 || x == 6 || y == 6;
			int core = x >= 2 && x <= 4 && y >= 2 && y <= 4;
			if (m[y0 + y][x0 + x] != (ring || core))
				fail_msg("finder at %d,%d: module %d,%d", x0, y0, x, y);
		}
}

static void test_qr(void **state)
{
	(void)state;
	static const char uri[] = "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example";
	QRcode *qr = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	assert_non_null(qr);
	int width = qr->width;
	for (int ansi = 0; ansi <= 1; ansi++) {
		static unsigned char m[200][200];
		struct mw_buf b = MW_BUF_INIT;
		memset(m, 0, sizeof(m));
		assert_int_equal(tp_qr_render(uri, ansi, &b), 0);
		int w, h;
		assert_int_equal(read_back(mw_buf_str(&b), ansi, m, &w, &h), 0);
		assert_int_equal(w, width + 8);
		assert_int_equal(h, width + 8 + 1); /* odd height: the last half row is padding */
		/* the quiet zone is light */
		for (int i = 0; i < w; i++)
			for (int j = 0; j < 4; j++)
				assert_false(m[j][i] || m[i][j] || m[width + 4 + j][i] || m[i][width + 4 + j]);
		check_finder(m, 4, 4);
		check_finder(m, 4 + width - 7, 4);
		check_finder(m, 4, 4 + width - 7);
		/* and every module is libqrencode's */
		for (int y = 0; y < width; y++)
			for (int x = 0; x < width; x++)
				assert_int_equal(m[4 + y][4 + x], qr->data[y * width + x] & 1);
		mw_buf_free(&b);
	}
	QRcode_free(qr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_qr),
	};
	return cmocka_run_group_tests_name("enroll", tests, NULL, NULL);
}
