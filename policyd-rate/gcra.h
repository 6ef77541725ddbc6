/*
 * gcra: the rate arithmetic (Generic Cell Rate Algorithm) and the
 * in-memory store.
 *
 * For a limit of N per period T each unit of cost moves a window's
 * "theoretical arrival time" (TAT) forward by T/N; a request is allowed
 * when the TAT it would leave is at most T ahead of now. This is exact -
 * never more than N in any window of length T, the (N+1)th is refused -
 * and smooth: capacity returns continuously, there is no window boundary
 * at which 2N could pass. The Redis store runs the same arithmetic in Lua
 * (store_redis.c); both use microseconds, as doubles, so they agree.
 *
 * Memory: struct pr_memstore owns its entries; keys are copied. Not
 * thread-safe (the daemon has one event loop).
 */
#ifndef PR_GCRA_H
#define PR_GCRA_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct pr_gcra_result {
	int allowed;
	int denied_window;            /* which window refused, when not allowed */
	long long retry_ms;           /* when the request would fit again */
	unsigned long long used[PR_MAX_WINDOWS]; /* units counted in each window after this request */
};

/*
 * One check over nw windows with state tat[] (microseconds; 0 = none):
 * allowed only when every window allows; with commit, the TATs advance
 * (only when allowed). now_us: the clock.
 */
void pr_gcra_apply(double now_us, unsigned long long cost, const struct pr_window *w, int nw, double *tat,
		   int commit, struct pr_gcra_result *out);

struct pr_memstore;

struct pr_memstore *pr_memstore_new(size_t max_entries);
void pr_memstore_free(struct pr_memstore *s);
/* Check (and with commit, count) key under windows w. */
void pr_memstore_check(struct pr_memstore *s, const char *key, const struct pr_window *w, int nw,
		       unsigned long long cost, int commit, double now_us, struct pr_gcra_result *out);
/* Gives back cost (a request counted under one rule but refused by another). */
void pr_memstore_refund(struct pr_memstore *s, const char *key, const struct pr_window *w, int nw,
			unsigned long long cost);
/* Forgets keys equal to key or, with prefix, starting with it; returns how many. */
size_t pr_memstore_reset(struct pr_memstore *s, const char *key, int prefix);
/* Every live entry, with its windows and TATs (for usage listings). */
void pr_memstore_each(struct pr_memstore *s, double now_us,
		      void (*fn)(const char *key, const double *tat, const struct pr_window *w, int nw, void *ctx),
		      void *ctx);
/* Units counted in one window now (from its TAT). */
unsigned long long pr_gcra_used(double now_us, double tat, const struct pr_window *w);
size_t pr_memstore_size(const struct pr_memstore *s);

#endif
