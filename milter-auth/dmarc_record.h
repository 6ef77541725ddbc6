/*
 * dmarc_record: the DMARC Policy Record parser of RFC 9989 (sections 4.7
 * and 4.8; the text of draft-ietf-dmarc-dmarcbis-41), our own, pure (no
 * I/O, no allocation) and fuzzed (tests/fuzz/fuzz_milter_auth_dmarc.c).
 *
 *   - "v=DMARC1" must be the first tag (case-sensitive value), else the
 *     text is not a DMARC record at all and is discarded;
 *   - the other tags come in any order; unknown tags and tags with a
 *     malformed value are ignored (defaults apply), a repeated tag keeps
 *     its first value;
 *   - p, sp, np, adkim, aspf, psd and t are kept; pct, rf and ri were
 *     removed by RFC 9989 and are only noted (pct's value is kept for the
 *     rfc7489 mode and the log);
 *   - a record without a valid p=, or with an invalid sp= or np=, acts as
 *     p=none when rua= holds at least one syntactically valid URI, and is
 *     unusable otherwise (RFC 9989 4.10.1).
 *
 * libopendmarc 1.4.2's parser is not used for RFC 9989: it has no psd=,
 * np= or t=, refuses a record without p= even with rua=, and refuses a
 * whole record for pct=150 or sp=bogus.
 */
#ifndef MA_DMARC_RECORD_H
#define MA_DMARC_RECORD_H

#include <stddef.h>

#include "hdrparse.h"

enum ma_dmarc_policy {
	MA_DMARC_P_UNSPECIFIED,
	MA_DMARC_P_NONE,
	MA_DMARC_P_QUARANTINE,
	MA_DMARC_P_REJECT,
};

/* ma_dmarc_record_parse's verdict on one TXT record. */
enum ma_dmarc_parse {
	MA_DMARC_REC_OK,        /* a usable record */
	MA_DMARC_REC_UNUSABLE,  /* a DMARC record, but no policy can be taken from it */
	MA_DMARC_REC_NOT_DMARC, /* does not start with v=DMARC1: discarded */
};

#define MA_DMARC_RUA_MAX 512

struct ma_dmarc_record {
	char domain[MA_DOMAIN_MAX];   /* where it was found (set by the caller) */
	enum ma_dmarc_policy p, sp, np; /* sp, np: MA_DMARC_P_UNSPECIFIED when absent */
	int pct;                      /* 0..100; 100 when absent or invalid */
	char adkim, aspf;             /* 'r' or 's' */
	char psd;                     /* 'y', 'n' or 'u' */
	int testing;                  /* t=y */
	int p_from_rua;               /* no valid p= (or bad sp=/np=): p=none because of rua= */
	int has_pct, has_rf, has_ri;  /* tags RFC 9989 removed: present (and ignored) */
	int unknown_tags;             /* ignored: unknown, malformed or repeated */
	int unusable;                 /* MA_DMARC_REC_UNUSABLE: counts in the tree walk, applies no policy */
	char problem[160];            /* why a record was ignored / lookup failed */
	char rua[MA_DMARC_RUA_MAX];   /* rua= as published (trimmed), for aggregate reports;
					 "" when absent or longer than fits */
};

/* Parses the text of one TXT record (character-strings concatenated) of
   len bytes; always fills rec (domain left empty). */
enum ma_dmarc_parse ma_dmarc_record_parse(const char *text, size_t len, struct ma_dmarc_record *rec);

const char *ma_dmarc_policy_name(enum ma_dmarc_policy p);

#endif
