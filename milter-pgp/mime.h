/*
 * mime: the MIME walker of milter-pgp. Pure: no I/O, no allocation, works
 * on bytes the caller holds (a mapped temporary file), so it is unit tested
 * and fuzzed alone (tests/fuzz/fuzz_milter_pgp_mime.c).
 *
 * It answers one question: is this message already protected (PGP/MIME,
 * inline PGP, S/MIME), so that milter-pgp must leave it alone? It decides
 * from the MIME structure, never from a substring anywhere in the body.
 *
 * Limits: nesting depth MP_MAX_DEPTH, MP_MAX_PARTS parts; past a limit or on
 * malformed MIME the message counts as not protected, which makes it
 * encrypted (opaquely, byte for byte): a limit never lets a message out in
 * clear that should have been encrypted.
 *
 * mp_mime_boundary draws the boundaries of the multiparts milter-pgp writes
 * (the only function here that is not pure: getrandom).
 */
#ifndef MP_MIME_H
#define MP_MIME_H

#include <stddef.h>

#define MP_MAX_DEPTH 32
#define MP_MAX_PARTS 10000

/* A parsed Content-Type value; names lowercased, values as given. */
struct mp_ctype {
	char type[64];
	char subtype[128];
	char boundary[128];   /* RFC 2046: at most 70 characters */
	char protocol[128];   /* lowercased */
	char smime_type[64];  /* lowercased */
};

/* 0, or -1 when the value has no type/subtype (the caller then applies the
   RFC 2045 default, text/plain). Over-long values are cut, never overrun. */
int mp_ctype_parse(const char *value, size_t len, struct mp_ctype *ct);

enum mp_protection {
	MP_PLAIN = 0,       /* encrypt it */
	MP_PGP_MIME,        /* multipart/encrypted; protocol=application/pgp-encrypted */
	MP_PGP_INLINE,      /* a text part that is an ASCII-armored PGP message */
	MP_SMIME,           /* application/pkcs7-mime or S/MIME multipart/signed */
};

struct mp_result {
	enum mp_protection protection;
	int pgp_signed;     /* the top level is PGP/MIME multipart/signed */
	int malformed;      /* a boundary never closed, a limit was reached... */
	unsigned parts;     /* leaves seen */
	unsigned max_depth;
};

/*
 * ctype_value: the message's Content-Type header value (NULL if none);
 * body: the message body (after the blank line), CRLF or LF line ends.
 */
void mp_classify(const char *ctype_value, size_t ctype_len, const char *body, size_t len,
		 struct mp_result *r);

const char *mp_protection_name(enum mp_protection p);

/* A fresh boundary into out (size bytes, cut to fit): prefix, then 24 random
   hex digits. Panics if the kernel gives no random bytes. */
void mp_mime_boundary(const char *prefix, char *out, size_t size);

#endif
