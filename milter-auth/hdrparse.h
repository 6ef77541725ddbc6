/*
 * hdrparse: the parts of message headers milter-auth reads itself, parsed
 * with length checks and no allocation:
 *   - the From field as an RFC 5322 3.4 mailbox-list (with RFC 6854
 *     groups, comments, quoted strings, display names with RFC 2047
 *     encoded words, the obsolete syntax of 4.4): DMARC needs exactly one
 *     mailbox with a domain it can look up, anything else is an error;
 *   - the authserv-id at the start of an Authentication-Results field
 *     (RFC 8601 2.2), to remove forgeries of our own.
 * Every input is untrusted; the results are always NUL-terminated and
 * lower-cased. Fuzzed by tests/fuzz/fuzz_milter_auth_hdr.c.
 */
#ifndef MA_HDRPARSE_H
#define MA_HDRPARSE_H

#include <stddef.h>

#define MA_DOMAIN_MAX 254 /* 253 characters and the NUL */
#define MA_LOCAL_MAX 256

struct ma_from {
	int mailboxes;               /* mailboxes found (before any syntax error) */
	char local[MA_LOCAL_MAX];    /* the mailbox's local part, unquoted (cut to fit) */
	char domain[MA_DOMAIN_MAX];  /* its domain, lower-cased, no trailing dot */
	const char *error;           /* NULL, or why the field is unusable (static text) */
};

/*
 * Parses a From field's value (without "From:"). 0 when it is exactly one
 * mailbox whose domain is a plausible host name with at least two labels;
 * otherwise -1 with out->error (and out->mailboxes as far as it got):
 * several or no mailboxes, a syntax error anywhere, a domain literal, a
 * single-label domain, a NUL or other control character.
 */
int ma_from_parse(const char *value, size_t len, struct ma_from *out);

/* Copies the authserv-id of an Authentication-Results value into id
   (lower-cased); 0, or -1 when there is none or it does not fit. */
int ma_ar_authserv_id(const char *value, size_t len, char *id, size_t idlen);

/* The value of one tag (e.g. "d") of a DKIM-Signature field, white space
   removed; 0, or -1 when absent or too long. For signatures libopendkim
   could not parse at all. */
int ma_dkim_tag(const char *value, size_t len, const char *tag, char *out, size_t outlen);

/* Lower-cases a domain, drops one trailing dot, and checks it is a
   plausible host name (LDH labels of 1..63, total <= 253, at least one dot
   unless allow_single_label); 0 or -1. */
int ma_domain_normalize(const char *in, size_t len, char *out, size_t outlen);

#endif
