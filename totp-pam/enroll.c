#include "config.h"

#include <stdio.h>
#include <string.h>

#include <qrencode.h>

#include "enroll.h"

/* RFC 3986 unreserved characters pass; everything else is %XX. */
static void pct_encode(struct mw_buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~')
			mw_buf_putc(out, c);
		else
			mw_buf_printf(out, "%%%02X", c);
	}
}

int tp_otpauth_uri(const char *issuer, const char *user, const struct tp_state *st, struct mw_buf *out)
{
	static const char *const algs[] = { "SHA1", "SHA256", "SHA512" };
	mw_buf_puts(out, "otpauth://totp/");
	pct_encode(out, issuer);
	mw_buf_putc(out, ':');
	pct_encode(out, user);
	mw_buf_puts(out, "?secret=");
	tp_base32_encode(st->secret, st->secret_len, out);
	mw_buf_puts(out, "&issuer=");
	pct_encode(out, issuer);
	mw_buf_printf(out, "&algorithm=%s&digits=%d&period=%u", algs[st->alg], st->digits, st->step);
	return mw_buf_failed(out) ? -1 : 0;
}

int tp_qr_render(const char *text, int ansi, struct mw_buf *out)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (qr == NULL)
		return -1;
	const int quiet = 4, w = qr->width, total = w + 2 * quiet;
	/* dark(x, y): a module of the code; the quiet zone is light */
#define DARK(x, y)                                                                                  \
	((x) >= quiet && (x) < quiet + w && (y) >= quiet && (y) < quiet + w &&                      \
	 (qr->data[((y) - quiet) * w + ((x) - quiet)] & 1))
	for (int y = 0; y < total; y += 2) {
		if (ansi)
			mw_buf_puts(out, "\033[30;47m");
		for (int x = 0; x < total; x++) {
			int top, bottom;
			if (ansi) {
				/* foreground black: draw the dark modules */
				top = DARK(x, y);
				bottom = y + 1 < total && DARK(x, y + 1);
			} else {
				/* draw the light modules (light text on a dark terminal) */
				top = !DARK(x, y);
				bottom = y + 1 < total ? !DARK(x, y + 1) : 0;
			}
			mw_buf_puts(out, top ? (bottom ? "\u2588" : "\u2580") : (bottom ? "\u2584" : " "));
		}
		if (ansi)
			mw_buf_puts(out, "\033[0m");
		mw_buf_putc(out, '\n');
	}
#undef DARK
	QRcode_free(qr);
	return mw_buf_failed(out) ? -1 : 0;
}
