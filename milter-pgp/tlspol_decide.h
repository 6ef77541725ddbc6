/*
 * tlspol_decide: what tlspolicyd answers for one next hop, from what the
 * lookups found; pure (no I/O, time passed in), so every rule is unit-tested.
 *
 * Order, first match wins: the admin's policy file; DANE (a DNSSEC-secure
 * MX set whose hosts publish secure TLSA records: dane-only, and DANE
 * wins over MTA-STS as RFC 8461 section 2 says); MTA-STS enforce
 * ("secure match=..."); default_policy. A lookup that failed (DNS timeout,
 * SERVFAIL, DNSSEC bogus, HTTPS fetch failed without a cached policy in
 * force) answers TEMP: Postfix retries, and never gets a weaker policy.
 *
 * Memory: struct tlspol_verdict holds two buffers the caller frees with
 * tlspol_verdict_free().
 */
#ifndef TLSPOL_DECIDE_H
#define TLSPOL_DECIDE_H

#include <time.h>

#include "buf.h"
#include "tlspol_cache.h"
#include "tlspol_sts.h"

enum tlspol_answer { TLSPOL_ANSWER_OK, TLSPOL_ANSWER_NOTFOUND, TLSPOL_ANSWER_TEMP };

struct tlspol_verdict {
	enum tlspol_answer answer;
	struct mw_buf policy; /* OK: what Postfix gets; TEMP: the reason Postfix logs */
	struct mw_buf reason; /* which rule, which records (the log line, -t) */
	int refresh;          /* a cached MTA-STS policy was applied: fetch it again in the background */
};

void tlspol_verdict_init(struct tlspol_verdict *v);
void tlspol_verdict_free(struct tlspol_verdict *v);
/* The socketmap reply payload: "OK policy", "NOTFOUND " or "TEMP reason". */
void tlspol_verdict_reply(const struct tlspol_verdict *v, struct mw_buf *out);
void tlspol_verdict_set(struct tlspol_verdict *v, enum tlspol_answer a, const char *policy,
			const char *fmt, ...) MW_PRINTF(4, 5);

/* What DANE found for the domain's MX hosts. */
enum tlspol_dane_status {
	TLSPOL_DANE_NONE,     /* MX set not secure, or no MX host has TLSA records */
	TLSPOL_DANE_USABLE,   /* secure TLSA records (usage 2 or 3) on at least one MX host */
	TLSPOL_DANE_UNUSABLE, /* secure TLSA records, none usable: mandatory TLS (RFC 7672 2.2) */
	TLSPOL_DANE_TEMP,     /* a lookup failed or was bogus */
};

/* What the _mta-sts TXT lookup found. */
enum tlspol_txt_status {
	TLSPOL_TXT_NONE,  /* no name, no record, or no single valid STSv1 record */
	TLSPOL_TXT_FOUND, /* one valid record, its id */
	TLSPOL_TXT_TEMP,  /* lookup failed */
};

enum tlspol_sts_step {
	TLSPOL_STEP_NONE,   /* no MTA-STS: go on to default_policy */
	TLSPOL_STEP_CACHED, /* apply the cached policy */
	TLSPOL_STEP_FETCH,  /* fetch the policy (new id, none cached, or due for refresh) */
	TLSPOL_STEP_TEMP,   /* answer TEMP */
};

/*
 * RFC 8461 5.1 with the cache: cached may be NULL. A cached policy still in
 * force is applied when the TXT lookup fails or the record is gone; a new
 * id, none in force, or one fetched refresh_s seconds ago or more means fetch
 * (a failed refresh falls back to the cached policy while it is in force).
 */
enum tlspol_sts_step tlspol_sts_plan(enum tlspol_txt_status txt, const char *txt_id,
				     const struct tlspol_cache_entry *cached, time_t now, time_t refresh_s);

/*
 * Proactive refresh (RFC 8461 10.2), so that no lookup waits on HTTPS: a
 * policy in force is fetched again in the background once it is
 * refresh_s old or past half its max_age, and, after a failed try, not
 * again before retry_s.
 */
int tlspol_sts_refresh_due(const struct tlspol_cache_entry *e, time_t now, time_t refresh_s, time_t retry_s);

/* A cached policy is in force until it expires. */
int tlspol_cache_entry_valid(const struct tlspol_cache_entry *cached, time_t now);

/*
 * The verdict for an MTA-STS policy being applied (fetched or cached):
 * enforce -> "secure match=...", testing or none -> default_policy.
 * how says where it came from ("fetched", "cached").
 */
void tlspol_decide_sts(const struct tlspol_cache_entry *e, const char *how, const char *default_policy,
		       struct tlspol_verdict *v);

#endif
