/*
 * tlspol_lookup: one decision, with its lookups: the policy file, then DNS
 * (MX, TLSA) for DANE, then the _mta-sts TXT record, the cache and the
 * HTTPS fetch for MTA-STS, then default_policy (tlspol_decide.h says why
 * in that order). Blocking: the server runs it in a worker thread, -t in
 * main. Logs warnings about failed fetches and cache writes.
 */
#ifndef TLSPOL_LOOKUP_H
#define TLSPOL_LOOKUP_H

#include "dns.h"
#include "tlspol_cache.h"
#include "tlspol_conf.h"
#include "tlspol_decide.h"

#define TLSPOL_MAX_MX_HOSTS 16

struct tlspol_env {
	struct mw_dns *dns;
	struct tlspol_cache *cache;
	int save_cache; /* write cache_file after a fetch (the daemon; not -t) */
	/* the daemon: a cached policy due for a fetch (new id, refresh age) is
	   applied and v->refresh set, the fetch runs later (tlspol_refresh());
	   -t fetches at once */
	int background_refresh;
};

/* What needs no lookup (the policy file, parent-domain keys, [host] next
   hops): 1 with v set, or 0. No I/O: the server calls it in its loop. */
int tlspol_lookup_local(const struct tlspol_conf *conf, const char *dest, struct tlspol_verdict *v);

/* dest as Postfix sent it, normalized (tlspol_dest_normalize). */
void tlspol_lookup(struct tlspol_env *env, const struct tlspol_conf *conf, const char *dest,
		   struct tlspol_verdict *v);

/*
 * The background refresh of domain's cached MTA-STS policy: the TXT record,
 * then the policy, kept when it parses. A failure leaves the cached policy
 * in force (logged). v: OK with what was done in v->reason, or TEMP.
 */
void tlspol_refresh(struct tlspol_env *env, const struct tlspol_conf *conf, const char *domain,
		    struct tlspol_verdict *v);

/* How long after a background refresh started it may be tried again:
   mta_sts_refresh up to 5 minutes, and longer than mta_sts_timeout. */
time_t tlspol_refresh_retry(const struct tlspol_conf *conf);

#endif
