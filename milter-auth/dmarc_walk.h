/*
 * dmarc_walk: DMARC as RFC 9989 evaluates it (the text of
 * draft-ietf-dmarc-dmarcbis-41, whose section numbers RFC 9989 keeps):
 *
 *   - the DNS Tree Walk (4.10): _dmarc.<domain>, then its parents one
 *     label at a time, at most 8 queries; a name of 8 or more labels
 *     jumps from itself to its last 7 labels; a record with psd=y or
 *     psd=n stops the walk;
 *   - policy discovery (4.10.1): the Author Domain's record, else the
 *     Organizational Domain's, else the public suffix's (psd=y); p for the
 *     Author Domain itself, sp for an existing subdomain, np for one that
 *     does not exist (NXDOMAIN, 3.2.13);
 *   - the Organizational Domain (4.10.2): psd=n marks it, psd=y marks the
 *     name one label below, otherwise the record with the fewest labels;
 *     relaxed alignment compares Organizational Domains found that way;
 *   - t=y (4.7): the policy applied one step less strict; pct, rf and ri
 *     are ignored (A.6).
 *
 * Pure: no I/O of its own. The caller answers each DNS question through
 * struct ma_dmarc_io (madmarc.c asks the common resolver within the
 * message's DNS budget, with a per-message memo; the unit tests answer
 * from a table), so every query is one the caller sees, counts and caches.
 * A temporary DNS failure anywhere it matters gives temperror, never
 * "no policy" (5.3.6).
 */
#ifndef MA_DMARC_WALK_H
#define MA_DMARC_WALK_H

#include "dmarc_record.h"
#include "madmarc.h"

#define MA_DMARC_WALK_MAX 8 /* queries per walk (RFC 9989 4.10) */

enum ma_dmarc_answer {
	MA_DMARC_ANS_NONE,      /* no DMARC record (or several: discarded) */
	MA_DMARC_ANS_RECORD,    /* exactly one; rec filled, possibly rec->unusable */
	MA_DMARC_ANS_TEMPERROR, /* rec->problem says why */
};

struct ma_dmarc_io {
	/* The DMARC record at _dmarc.<name> (name without "_dmarc."). */
	enum ma_dmarc_answer (*query)(void *ctx, const char *name, struct ma_dmarc_record *rec);
	/* Whether name exists (not NXDOMAIN): 1, 0, or -1 for a temporary failure. */
	int (*exists)(void *ctx, const char *name);
	void *ctx;
};

/* The names a walk from domain queries, in order; returns how many (<= 8). */
int ma_dmarc_walk_targets(const char *domain, char out[MA_DMARC_WALK_MAX][MA_DOMAIN_MAX]);

struct ma_dmarc_walk {
	int temperror;
	int complete;      /* org is known (not stopped early by first_only) */
	int nfound;
	struct ma_dmarc_record found[MA_DMARC_WALK_MAX]; /* longest name first, .domain set */
	char org[MA_DOMAIN_MAX];
	char problem[160]; /* the temporary failure, or why a record was discarded */
};

/* Walks from start (lower case, no trailing dot). first_only: stop after
   the first query when it finds a record (policy discovery needs no more). */
void ma_dmarc_walk(const struct ma_dmarc_io *io, const char *start, int first_only, struct ma_dmarc_walk *w);

/* Relaxed or strict alignment of identifier with the author domain whose
   Organizational Domain is author_org: 1, 0, or -1 when DNS failed. */
int ma_dmarc_aligned_9989(const struct ma_dmarc_io *io, const char *author, const char *author_org,
			  const char *identifier, char mode);

/* The whole RFC 9989 verdict (the caller sets nothing in out). */
void ma_dmarc_evaluate_9989(const struct ma_dmarc_io *io, const char *from_domain,
			    enum ma_spf_result spf_result, const char *spf_domain,
			    const struct ma_dkim_sig *sigs, int nsigs, struct ma_dmarc_verdict *out);

#endif
