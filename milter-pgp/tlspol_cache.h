/*
 * tlspol_cache: the MTA-STS policies tlspolicyd has fetched, per domain,
 * in memory for every connection and in one file so that they survive a
 * restart (RFC 8461 5: a cached policy protects against an attacker who
 * blocks the next fetch).
 *
 * File (cache_file = FILE), rewritten as a whole, atomically (a temporary
 * file in the same directory, fsync, rename):
 *
 *   # tlspolicyd MTA-STS cache 1
 *   DOMAIN ID FETCHED EXPIRES MODE MAX_AGE MX[,MX...]|-
 *
 * FETCHED and EXPIRES are Unix times. A line that does not parse is
 * skipped and counted, never trusted.
 *
 * Thread-safe (one mutex). Memory: the cache owns its entries; lookups
 * copy into the caller's struct tlspol_cache_entry
 * (tlspol_cache_entry_free()).
 */
#ifndef TLSPOL_CACHE_H
#define TLSPOL_CACHE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "tlspol_sts.h"

#define TLSPOL_CACHE_MAX_LINE 8192

struct tlspol_cache_entry {
	char domain[256];
	char id[TLSPOL_STS_ID_MAX + 1];
	time_t fetched, expires;
	time_t attempted; /* last background refresh started (memory only, not in the file) */
	struct tlspol_sts_policy policy;
};

struct tlspol_cache;

/* max_entries: beyond it expired entries are dropped, then new ones refused. */
struct tlspol_cache *tlspol_cache_new(size_t max_entries);
void tlspol_cache_free(struct tlspol_cache *c);

/* 1 and a copy in *out, or 0 when the domain has no entry (expired or not). */
int tlspol_cache_get(struct tlspol_cache *c, const char *domain, struct tlspol_cache_entry *out);
/* Adds or replaces (the entry is copied). 0, or -1 when full. */
int tlspol_cache_put(struct tlspol_cache *c, const struct tlspol_cache_entry *e);
size_t tlspol_cache_count(struct tlspol_cache *c);

/*
 * Background refresh (RFC 8461 10.2): the domains whose policy is due
 * (tlspol_sts_refresh_due()), up to max of them copied to out; each is
 * marked as tried now, so it is not handed out again before retry_s.
 * Returns how many.
 */
size_t tlspol_cache_take_due(struct tlspol_cache *c, time_t now, time_t refresh_s, time_t retry_s,
			     char (*out)[256], size_t max);
/* 1 and marks domain as tried now when it has an entry not tried in the
   last retry_s seconds; 0 otherwise (a refresh runs or failed lately). */
int tlspol_cache_claim_refresh(struct tlspol_cache *c, const char *domain, time_t now, time_t retry_s);
void tlspol_cache_entry_free(struct tlspol_cache_entry *e);

/* The file format, for the daemon and the fuzz target. Lines that do not
   parse are counted in *bad (may be NULL). */
int tlspol_cache_parse(struct tlspol_cache *c, const char *text, size_t len, size_t *bad);
void tlspol_cache_format(struct tlspol_cache *c, struct mw_buf *out);

/* Loads path; a missing file is an empty cache (0). -1 with err otherwise. */
int tlspol_cache_load(struct tlspol_cache *c, const char *path, size_t *bad, struct mw_buf *err);
/* Writes the whole cache to path atomically. 0 or -1 with err. */
int tlspol_cache_save(struct tlspol_cache *c, const char *path, struct mw_buf *err);

#endif
