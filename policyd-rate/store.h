/*
 * store: where policyd-rate keeps its counters, behind one asynchronous
 * interface: the in-memory store (one host) answers at once; the Redis
 * store (shared by several MTAs) answers from the event loop when Redis
 * does, running the GCRA check-and-count as one Lua script (EVALSHA) per
 * rule, on the Redis server's clock, with all keys of one check in one
 * hash slot.
 *
 * When Redis cannot answer (down, timeout, failover in progress) the
 * callback gets PR_STORE_UNAVAILABLE and the caller applies
 * on_store_error. The Redis store reconnects by itself (and asks the
 * Sentinels again), trying every reconnect_interval.
 *
 * Redis Cluster (redis_mode = cluster): one pipelined connection per
 * master; each check goes to the master of its key's slot (the slot map
 * from common/redis_cluster, loaded on a thread like the Sentinel query);
 * MOVED updates the slot, asks for the whole map again and sends the check
 * on; ASK sends ASKING and the check once; NOSCRIPT is answered per node.
 * The checks of one request may go to several masters: the callback runs
 * once all have answered, so a client's replies keep their order. A master
 * that is down fails the checks of its slots (on_store_error) until the map
 * names a promoted replica.
 *
 * Memory: checks are copied; the callback gets results that live until it
 * returns.
 */
#ifndef PR_STORE_H
#define PR_STORE_H

#include <event2/event.h>

#include "gcra.h"
#include "redis.h"

#define PR_MAX_CHECKS 16

struct pr_check {
	char key[512];                 /* "rule:value", the counter's name */
	struct pr_window windows[PR_MAX_WINDOWS];
	int nwindows;
	unsigned long long cost;
	int commit;
};

enum pr_store_status { PR_STORE_OK, PR_STORE_UNAVAILABLE };

typedef void pr_store_cb(void *ctx, enum pr_store_status st, const struct pr_gcra_result *results, int n);

struct pr_store;

/* Per Redis server (a cluster: per master). */
struct pr_store_node_stats {
	unsigned long long requests, redirections, errors, reconnects;
};

struct pr_store_stats {
	unsigned long long queries, errors, reconnects;
	int connected;            /* Redis: connections up */
};

/* In-memory store. */
struct pr_store *pr_store_memory(size_t max_entries);
/* Redis store on this event base: connections to the master of conf
   (Sentinel-discovered when conf says so). */
struct pr_store *pr_store_redis(struct event_base *base, const struct mw_redis_conf *conf, int connections,
				const char *prefix, struct mw_buf *err);
void pr_store_free(struct pr_store *s);

/* Runs n checks (all together: one round trip), then cb. */
void pr_store_run(struct pr_store *s, const struct pr_check *checks, int n, pr_store_cb *cb, void *ctx);
/* Gives cost back for a check that was counted (fire and forget). */
void pr_store_refund(struct pr_store *s, const struct pr_check *check);
int pr_store_is_redis(const struct pr_store *s);
void pr_store_get_stats(const struct pr_store *s, struct pr_store_stats *out);

/* Calls fn for each Redis node: "host:port", the slots it serves (16384
   for a single server), whether connected, its counters. */
typedef void pr_store_node_cb(void *ctx, const char *node, int slots, int up, const struct pr_store_node_stats *st);
void pr_store_nodes(const struct pr_store *s, pr_store_node_cb *fn, void *ctx);
/* "prefix{key} slot N node host:port" for the counter key (RULE:KIND:VALUE). */
int pr_store_where(struct pr_store *s, const char *key, struct mw_buf *out, struct mw_buf *err);

/*
 * Admin operations for the control socket, synchronous (Redis: SCAN on a
 * blocking connection of its own, bounded; they are rare and small):
 *   reset: forget the counters of "rule:value" (a trailing '*' matches a
 *          prefix); *count gets how many were removed;
 *   usage: "rule:value" lines with the units counted in each window;
 *   top:   the n busiest counters.
 * 0, or -1 with err.
 */
int pr_store_reset(struct pr_store *s, const char *key, size_t *count, struct mw_buf *err);
int pr_store_usage(struct pr_store *s, const char *key, const struct pr_window *w, int nw,
		   struct mw_buf *out, struct mw_buf *err);
int pr_store_top(struct pr_store *s, int n, struct mw_buf *out, struct mw_buf *err);

/* The clock the memory store uses (microseconds). */
double pr_now_us(void);

#endif
