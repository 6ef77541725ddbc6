/*
 * hdrparse: the parts of message headers milter-auth reads itself, parsed
 * with length checks and no allocation:
 *   - the domains of the mailboxes in a From field (RFC 5322 3.4, with
 *     comments, quoted strings, display names, groups, obsolete routes);
 *   - the authserv-id at the start of an Authentication-Results field
 *     (RFC 8601 2.2), to remove forgeries of our own.
 * Every input is untrusted; the results are always NUL-terminated and
 * lower-cased. Fuzzed by tests/fuzz/fuzz_milter_auth_hdr.c.
 */
#ifndef MA_HDRPARSE_H
#define MA_HDRPARSE_H

#include <stddef.h>

#define MA_FROM_MAX_MAILBOXES 16
#define MA_DOMAIN_MAX 254 /* 253 characters and the NUL */
#define MA_LOCAL_MAX 65   /* RFC 5321 4.5.3.1.1: 64 octets and the NUL */

struct ma_from {
	int mailboxes;         /* mailboxes found (may exceed what is stored) */
	int without_domain;    /* mailboxes with no usable domain */
	int ndomains;          /* distinct domains stored below */
	char domains[MA_FROM_MAX_MAILBOXES][MA_DOMAIN_MAX];
	/* the local part of the first mailbox (quotes, comments and white
	   space removed, lower-cased; "" when too long): for DKIM signing */
	char first_local[MA_LOCAL_MAX];
};

/* Parses a From field's value (without "From:"); always fills out. */
void ma_from_parse(const char *value, size_t len, struct ma_from *out);

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
