/*
 * spf_record: the RFC 7208 rules milter-auth checks itself, around
 * libspf2, where libspf2 is more lenient than the RFC or wrong:
 *   - record syntax (4.6, 12): any error anywhere is a permerror;
 *   - domain name validity (4.3);
 *   - macro expansion (7) for explanations (6.2), which libspf2 mangles.
 * Pure functions; the only allocation is in the caller's buffers.
 * Fuzzed by tests/fuzz/fuzz_milter_auth_spf.c.
 */
#ifndef MA_SPF_RECORD_H
#define MA_SPF_RECORD_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

/* 1 if domain is a valid multi-label domain name (RFC 7208 4.3), else 0. */
int ma_spf_domain_is_valid(const char *domain);

/* 1 if text is an SPF record ("v=spf1" then a space or the end), else 0. */
int ma_spf_is_record(const char *text, size_t len);

/* 0 if the record's syntax is valid, else -1 with the problem in why. */
int ma_spf_record_check(const char *record, size_t len, struct mw_buf *why);

/*
 * Rewrites a valid record (checked with ma_spf_record_check) into one that
 * libspf2 evaluates as RFC 7208 says, for a client of the given family:
 * unknown modifiers dropped (6: ignored), redirect= moved after the
 * mechanisms (6.1: it applies only when none matched), and a CIDR length
 * of 0, which libspf2 refuses, expressed without it: ip4/ip6 as two /1
 * halves, a/mx as an include of a name ending in MA_SPF_ANY_SUFFIX_* that
 * our DNS layer answers with "v=spf1 +all" when the name has any address
 * (or MX host address) of that family, "v=spf1 -all" otherwise.
 */
#define MA_SPF_ANY_A4 "._mw-any-a4.invalid"
#define MA_SPF_ANY_A6 "._mw-any-a6.invalid"
#define MA_SPF_ANY_MX4 "._mw-any-mx4.invalid"
#define MA_SPF_ANY_MX6 "._mw-any-mx6.invalid"
int ma_spf_record_normalize(const char *record, size_t len, int client_v6, struct mw_buf *out);

/* What the macros of RFC 7208 7.3 stand for in one check. */
struct ma_spf_macros {
	const char *sender;        /* s */
	const char *local;         /* l */
	const char *sender_domain; /* o */
	const char *domain;        /* d: the current domain */
	int v6;                    /* the client is IPv6 (v) */
	unsigned char addr[16];    /* i (first 4 bytes for IPv4) */
	int upper_hex;             /* IPv6 i in upper-case hex (as the address was written) */
	const char *ptr;           /* p: validated name, or "unknown" */
	const char *helo;          /* h */
	const char *receiver;      /* r */
	time_t now;                /* t */
};

/*
 * Expands a macro-string (or, with explanation set, an explain-string,
 * where spaces and the c, r and t macros are allowed) into out. -1 on a
 * syntax error (out then holds nothing useful).
 */
int ma_spf_expand(const char *text, size_t len, int explanation, const struct ma_spf_macros *m,
		  struct mw_buf *out);

#endif
