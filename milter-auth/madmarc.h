/*
 * madmarc: DMARC policy discovery and evaluation, in one of two standards
 * (dmarc_standard in milter-auth.conf):
 *
 * rfc9989 (the default): RFC 9989's DNS Tree Walk for the policy and the
 * Organizational Domains, psd=, np=, t=; the logic is dmarc_walk.c (pure),
 * the record parser dmarc_record.c (ours); this file only answers the
 * walk's DNS questions: _dmarc TXT lookups through the common resolver,
 * within the message's DNS budget, memoized for the message (the resolver
 * caches them across messages), and whether the Author Domain exists.
 *
 * rfc7489: as milter-auth did before RFC 9989 and as OpenDMARC-based
 * receivers still do, so an admin can compare: _dmarc.<From domain>, then
 * the organizational domain from the public suffix list (libpsl), the
 * record parsed by libopendmarc (opendmarc_policy_store_dmarc), pct=
 * sampled (RFC 7489 6.6.4). More than one record means no policy; DNS
 * trouble is temperror.
 *
 * Evaluation in both is our own: libopendmarc 1.4.2's own evaluation has
 * known bugs (strict alignment falling through to the suffix lookup, #268;
 * no fallback to the organizational domain's record, #54).
 *
 * One struct ma_dmarc per process (thread-safe after ma_dmarc_new, which
 * initializes libopendmarc's global state once).
 */
#ifndef MA_MADMARC_H
#define MA_MADMARC_H

#include "dmarc_record.h"
#include "dns.h"
#include "hdrparse.h"
#include "madkim.h"
#include "spf.h"

enum ma_dmarc_result {
	MA_DMARC_NONE,      /* no policy: no record, or not evaluable */
	MA_DMARC_PASS,
	MA_DMARC_FAIL,
	MA_DMARC_TEMPERROR,
	MA_DMARC_PERMERROR, /* the From field is unusable, or (rfc9989) the record is */
};

enum ma_dmarc_standard {
	MA_DMARC_RFC9989,
	MA_DMARC_RFC7489,
};

enum ma_dmarc_lookup {
	MA_DMARC_FOUND,
	MA_DMARC_NOTFOUND,
	MA_DMARC_LOOKUP_TEMPERROR,
};

struct ma_dmarc_verdict {
	enum ma_dmarc_result result;
	enum ma_dmarc_standard standard;
	char from_domain[MA_DOMAIN_MAX];
	char org_domain[MA_DOMAIN_MAX];   /* of the From domain ("" if unknown) */
	int have_record;
	struct ma_dmarc_record record;    /* the one that applies; .domain: the policy domain */
	enum ma_dmarc_policy policy;      /* the one that applies (p, sp or np) */
	const char *policy_tag;           /* "p", "sp" or "np" */
	enum ma_dmarc_policy disposition; /* after t=y (rfc9989) or pct sampling (rfc7489) */
	int sampled_out;                  /* rfc7489: pct made a reject a quarantine, etc. */
	int testing;                      /* rfc9989: t=y made the policy one step less strict */
	int psd_policy;                   /* rfc9989: the policy of a public suffix (psd=y) */
	int author_exists;                /* -1 not asked, 0 NXDOMAIN, 1 exists (for np=) */
	int queries;                      /* _dmarc (and existence) DNS questions asked */
	int spf_aligned, dkim_aligned;
	char reason[160];
};

struct ma_dmarc;

struct ma_dmarc *ma_dmarc_new(struct mw_dns *dns, const char *public_suffix_list, struct mw_buf *err);
void ma_dmarc_free(struct ma_dmarc *d);

/* The organizational domain of a (lower-case) domain. */
void ma_dmarc_org_domain(const struct ma_dmarc *d, const char *domain, char *out, size_t outlen);

/* Finds and parses the record that applies to from_domain. */
enum ma_dmarc_lookup ma_dmarc_fetch(struct ma_dmarc *d, struct mw_dns_budget *budget,
				    const char *from_domain, struct ma_dmarc_record *rec);

/* Parses one record's text (libopendmarc); 0, or -1 with rec->problem. */
int ma_dmarc_parse(const char *text, const char *domain, struct ma_dmarc_record *rec);

/*
 * The verdict. lookup/rec: what ma_dmarc_fetch returned; spf_result and
 * spf_domain: the SPF check of MAIL FROM (or HELO for the null sender);
 * sigs: the DKIM results; dice: a number in 0..99 for pct sampling.
 */
void ma_dmarc_evaluate(const struct ma_dmarc *d, const char *from_domain, enum ma_dmarc_lookup lookup,
		       const struct ma_dmarc_record *rec, enum ma_spf_result spf_result,
		       const char *spf_domain, const struct ma_dkim_sig *sigs, int nsigs, int dice,
		       struct ma_dmarc_verdict *out);

/*
 * Discovery and verdict in the given standard: what the pipeline calls.
 * spf_result and spf_domain: the SPF check of MAIL FROM (or HELO for the
 * null sender); sigs: the DKIM results; dice: 0..99 for rfc7489's pct.
 */
void ma_dmarc_check(struct ma_dmarc *d, struct mw_dns_budget *budget, enum ma_dmarc_standard standard,
		    const char *from_domain, enum ma_spf_result spf_result, const char *spf_domain,
		    const struct ma_dkim_sig *sigs, int nsigs, int dice, struct ma_dmarc_verdict *out);

/* The Authentication-Results comment for a verdict with a record
   ("p=reject dis=quarantine, t=y: ..."); override: a local decision not to
   enforce. Appended to out without parentheses. */
void ma_dmarc_ar_comment(const struct ma_dmarc_verdict *v, int override, struct mw_buf *out);
/* The policy.dmarc property (RFC 9989 9.1): the evaluated policy after
   t=, or NULL when no record applies. */
const char *ma_dmarc_ar_policy(const struct ma_dmarc_verdict *v);
/* What the log line says about DMARC beyond the result, e.g.
   " org=example.com policy=sp@example.com testing note=pct,ri ignored". */
void ma_dmarc_log_detail(const struct ma_dmarc_verdict *v, struct mw_buf *out);

const char *ma_dmarc_result_name(enum ma_dmarc_result r);

#endif
