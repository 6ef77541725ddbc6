/*
 * enroll: what a user sees when two-factor is turned on: the otpauth://
 * URI that authenticator apps read (Key Uri Format: otpauth://totp/
 * ISSUER:USER?secret=...&issuer=...&algorithm=...&digits=...&period=...)
 * and that URI as a QR code drawn with Unicode half blocks, two module
 * rows per text line, with a 4-module quiet zone.
 *
 * Pure: output is appended to a caller's struct mw_buf; the QR matrix is
 * libqrencode's.
 */
#ifndef TP_ENROLL_H
#define TP_ENROLL_H

#include "buf.h"
#include "statefile.h"

int tp_otpauth_uri(const char *issuer, const char *user, const struct tp_state *st, struct mw_buf *out);

/*
 * Draws text as a QR code (error correction M). ansi: wrap each line in
 * black-on-white colour escapes (a terminal of any colour scheme shows it
 * right); otherwise light modules are drawn as blocks, which suits the
 * usual light-on-dark terminal. 0, or -1 if libqrencode fails.
 */
int tp_qr_render(const char *text, int ansi, struct mw_buf *out);

#endif
