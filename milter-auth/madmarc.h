/*
 * madmarc: DMARC (RFC 7489) policy discovery and evaluation.
 *
 * Discovery (ma_dmarc_fetch) asks the common resolver for _dmarc.<From
 * domain>, then for the organizational domain's record (public suffix list,
 * libpsl), keeps only records that start with v=DMARC1, and hands the one
 * record to libopendmarc's parser (opendmarc_policy_store_dmarc). More than
 * one record means no policy (RFC 7489 6.6.3); DNS trouble is temperror.
 *
 * Evaluation (ma_dmarc_evaluate) is our own, pure, and unit-tested:
 * alignment (strict and relaxed) of the SPF and DKIM identifiers with the
 * From domain, the p/sp choice, and pct sampling with the fallback of
 * RFC 7489 6.6.4. libopendmarc 1.4.2's own evaluation has known bugs
 * (strict alignment falling through to the suffix lookup, #268; no fallback
 * to the organizational domain's record, #54), so we do not use it.
 *
 * One struct ma_dmarc per process (thread-safe after ma_dmarc_new, which
 * initializes libopendmarc's global state once).
 */
#ifndef MA_MADMARC_H
#define MA_MADMARC_H

#include "dns.h"
#include "hdrparse.h"
#include "madkim.h"
#include "spf.h"

enum ma_dmarc_result {
	MA_DMARC_NONE,      /* no policy: no record, or not evaluable */
	MA_DMARC_PASS,
	MA_DMARC_FAIL,
	MA_DMARC_TEMPERROR,
	MA_DMARC_PERMERROR, /* the From field is unusable */
};

enum ma_dmarc_policy {
	MA_DMARC_P_UNSPECIFIED,
	MA_DMARC_P_NONE,
	MA_DMARC_P_QUARANTINE,
	MA_DMARC_P_REJECT,
};

enum ma_dmarc_lookup {
	MA_DMARC_FOUND,
	MA_DMARC_NOTFOUND,
	MA_DMARC_LOOKUP_TEMPERROR,
};

struct ma_dmarc_record {
	char domain[MA_DOMAIN_MAX];   /* where it was found (From or org domain) */
	enum ma_dmarc_policy p, sp;   /* sp: MA_DMARC_P_UNSPECIFIED when absent */
	int pct;                      /* 0..100 */
	char adkim, aspf;             /* 'r' or 's' */
	char problem[160];            /* why a record was ignored / lookup failed */
};

struct ma_dmarc_verdict {
	enum ma_dmarc_result result;
	char from_domain[MA_DOMAIN_MAX];
	char org_domain[MA_DOMAIN_MAX];
	int have_record;
	struct ma_dmarc_record record;
	enum ma_dmarc_policy policy;      /* the one that applies (p or sp) */
	enum ma_dmarc_policy disposition; /* after pct sampling */
	int sampled_out;                  /* pct made a reject a quarantine, etc. */
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

const char *ma_dmarc_result_name(enum ma_dmarc_result r);
const char *ma_dmarc_policy_name(enum ma_dmarc_policy p);

#endif
