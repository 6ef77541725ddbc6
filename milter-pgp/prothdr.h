/*
 * prothdr: protected headers (RFC 9788, "Header Protection for
 * Cryptographically Protected Email", the final form of
 * draft-ietf-lamps-header-protection), "Injected Headers" scheme.
 *
 * The header section of the entity milter-pgp signs or encrypts (the
 * Cryptographic Payload's root, which is the original MIME entity):
 *
 *   the original Content-* fields, byte for byte, in order, the
 *   Content-Type with one parameter added, hp="cipher" (encrypted) or
 *   hp="clear" (signed only); no Content-Type: text/plain;
 *   charset=us-ascii (RFC 2045's default) with that parameter;
 *   then a copy of each protected field (MP_PROTHDR_FIELDS: what the
 *   writer composed, RFC 5322 3.6.2-3.6.5, never Bcc), verbatim (RFC 2047
 *   encoded-words and raw UTF-8 as they came);
 *   encrypted only: one "HP-Outer: Name: value" per protected field with
 *   the value the outer header section carries (Subject "[...]" when it
 *   is obscured), so that a reader sees which fields were confidential;
 *   a blank line; then the body, untouched.
 *
 * No Legacy Display Element is added (it would change the body), so no
 * hp-legacy-display parameter. An entity whose Content-Type already has an
 * hp parameter (made by a mail program that protects headers itself) gets
 * none of this: its header section is the Content-* fields as they are.
 *
 * Pure: no I/O, no allocation but the caller's buffer; fuzzed
 * (tests/fuzz/fuzz_milter_pgp_prothdr.c).
 */
#ifndef MP_PROTHDR_H
#define MP_PROTHDR_H

#include <stddef.h>

#include "buf.h"

/* RFC 9788's baseline Header Confidentiality Policy (hcp_baseline): the
   outer Subject of an encrypted message becomes this literal */
#define MP_PROTHDR_OBSCURED_SUBJECT "[...]"

enum mp_hp { MP_HP_NONE, MP_HP_CLEAR, MP_HP_CIPHER };

/* One header field as the MTA gave it: the value is what follows the
   colon (leading space included), folds as "\n" or "\r\n". */
struct mp_field {
	const char *name;
	const char *value;
};

/* 1 when a field of that name is copied into the protected section. */
int mp_prothdr_copied(const char *name);

/* 1 when a Content-Type value carries an hp parameter already (quoted
   strings and comments skipped). */
int mp_prothdr_has_hp(const char *ctype, size_t len);

/*
 * Appends the entity's header section and its blank line to head, every
 * line ending CRLF. hp MP_HP_NONE: the Content-* fields alone (what
 * milter-pgp sent before protected headers). subject: the first Subject's
 * value in place of the message's (its password tag removed), or NULL.
 * obscure_subject (MP_HP_CIPHER): the outer Subject is
 * MP_PROTHDR_OBSCURED_SUBJECT. Returns the hp written (MP_HP_NONE when the
 * Content-Type had one already).
 */
enum mp_hp mp_prothdr_entity(struct mw_buf *head, const struct mp_field *f, int n, enum mp_hp hp,
			     const char *subject, int obscure_subject);

#endif
