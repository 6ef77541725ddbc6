/*
 * pem: password-encrypted messages for recipients who have no OpenPGP key.
 *
 * The whole MIME message is sealed under a password into an envelope:
 *
 *   -----BEGIN MAILWARD PEM-----
 *   v=1;kind=message;kdf=pbkdf2-sha256;iter=600000;salt=B64;iv=B64
 *   base64 of AES-256-GCM ciphertext || 16-byte tag, in lines
 *   -----END MAILWARD PEM-----
 *
 * The key is PBKDF2-HMAC-SHA256(NFC password, salt, iter) (32 bytes), the
 * 12-byte IV and 16-byte salt are random, and the exact parameter line is
 * the GCM additional data, so no parameter can be changed without the tag
 * failing. The parameters live in the file so the cost can be raised later.
 *
 * mp_pem_seal_html() embeds the envelope in the self-decrypting page
 * (milter-pgp/pem/page.*, built into the program): the browser decrypts it
 * with WebCrypto. A reply made in that page is the same envelope with
 * kind=reply (in reply.html or in a mailto: body). mp_pem_open() finds the
 * envelope in any of those (page, reply.html, mail text) and decrypts it.
 * mp_pem_seal_asc() makes an OpenPGP password-encrypted message (RFC 4880
 * SKESK, through GPGME and a private, throw-away GnuPG home).
 *
 * Memory: the caller owns every argument and every mw_buf; results are
 * appended to the caller's buffers. Passwords and keys held inside are wiped
 * (OPENSSL_cleanse) before being freed; nothing here logs. The caller should
 * give secrets in buffers it wipes itself (mw_buf_wipe()).
 *
 * Threads: every function is safe to call from several threads at once
 * (no static state) once mp_pem_global_init() has run.
 *
 * Every int function returns 0 on success or -1 with the reason in err
 * (never containing the password or the plaintext).
 */
#ifndef MP_PEM_H
#define MP_PEM_H

#include <stddef.h>
#include <stdio.h>

#include "buf.h"

#define MP_PEM_DEFAULT_ITERATIONS 600000u
/* Accepted when sealing (tests use the low end) and when opening: the high
   end bounds the work a hostile file can ask of mp_pem_open(). */
#define MP_PEM_MIN_ITERATIONS 1000u
#define MP_PEM_MAX_ITERATIONS 20000000u
/* Bytes of a password after NFC normalisation. */
#define MP_PEM_MAX_PASSWORD 4096
/* What mp_pem_password_generate() needs: 6 groups of 5 and 5 dashes, NUL. */
#define MP_PEM_GENERATED_SIZE 36

struct mp_pem_opts {
	unsigned iterations;   /* 0: MP_PEM_DEFAULT_ITERATIONS */
	const char *lang;      /* page language: "en" (NULL) or "fr" */
	const char *sender;    /* shown on the page and the reply's mailto: target; NULL: none */
	const char *date;      /* shown on the page as given; NULL: none */
	const char *hint;      /* password hint shown in clear; NULL: none */
	const char *tmpdir;    /* seal_asc: where its private GnuPG home goes; NULL: $TMPDIR or /tmp */
};

/* Once per process before threads start (GPGME's own init). */
int mp_pem_global_init(struct mw_buf *err);

/* The self-decrypting page: message.html. */
int mp_pem_seal_html(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		     FILE *out, struct mw_buf *err);
/* The bare envelope (the armored block above), e.g. for tests and replies. */
int mp_pem_seal_envelope(const struct mp_pem_opts *o, const char *kind, const char *password,
			 const unsigned char *mime, size_t mime_len, struct mw_buf *out, struct mw_buf *err);
/* message.asc: OpenPGP symmetric encryption, armored (gpg --symmetric). */
int mp_pem_seal_asc(const struct mp_pem_opts *o, const char *password, const unsigned char *mime, size_t mime_len,
		    FILE *out, struct mw_buf *err);

/*
 * Parsed envelope parameters. mp_pem_parse() finds the first envelope in
 * file (a page, reply.html, a mail body; CR, LF and spaces tolerated in the
 * base64) and decodes it into p, whose buffers the caller frees with
 * mp_pem_params_free(). Untrusted input: every field is length-checked.
 */
struct mp_pem_params {
	unsigned version;
	char kind[16];             /* "message" or "reply" */
	unsigned iterations;
	unsigned char salt[16];
	unsigned char iv[12];
	struct mw_buf aad;         /* the parameter line, exactly */
	struct mw_buf ct;          /* ciphertext followed by the 16-byte tag */
};
int mp_pem_parse(const unsigned char *file, size_t len, struct mp_pem_params *p, struct mw_buf *err);
void mp_pem_params_free(struct mp_pem_params *p);

/* Decrypts message.html, reply.html or a bare envelope. A wrong password
   and a tampered file both fail the tag: err says so, mime_out is left as
   it was (no partial plaintext). The password is normalised here (NFC). */
int mp_pem_open(const char *password, const unsigned char *file, size_t len, struct mw_buf *mime_out,
		struct mw_buf *err);

/* A strong readable password: 6 groups of 5 characters from a 32-symbol
   alphabet without look-alikes (150 bits), from RAND_bytes. outlen must be
   >= MP_PEM_GENERATED_SIZE. */
int mp_pem_password_generate(char *out, size_t outlen);

/* NFC (libunistring), as the page's password.normalize('NFC'). Refuses
   invalid UTF-8, an empty password, a NUL byte or more than
   MP_PEM_MAX_PASSWORD bytes. out is appended to; wipe it after use. */
int mp_pem_password_normalize(const char *in, size_t len, struct mw_buf *out, struct mw_buf *err);

#endif
