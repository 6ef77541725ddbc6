#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gcra.h"

void pr_gcra_apply(double now_us, unsigned long long cost, const struct pr_window *w, int nw, double *tat,
		   int commit, struct pr_gcra_result *out)
{
	double next[PR_MAX_WINDOWS];
	memset(out, 0, sizeof(*out));
	out->allowed = 1;
	for (int i = 0; i < nw; i++) {
		double period = (double)w[i].period_ms * 1000.0;
		double e = period / (double)w[i].limit;
		double t = tat[i] > now_us ? tat[i] : now_us;
		next[i] = t + (double)cost * e;
		if (next[i] - now_us > period + 0.5) { /* half a microsecond of float slack */
			double retry = next[i] - period - now_us;
			long long ms = (long long)ceil(retry / 1000.0);
			if (!out->allowed ? ms > out->retry_ms : 1)
				out->retry_ms = ms, out->denied_window = i;
			out->allowed = 0;
		}
		double after = out->allowed ? next[i] : t;
		out->used[i] = (unsigned long long)ceil((after - now_us) / e - 1e-9);
	}
	if (out->allowed && commit)
		for (int i = 0; i < nw; i++)
			tat[i] = next[i];
	if (!out->allowed)
		for (int i = 0; i < nw; i++) {
			double t = tat[i] > now_us ? tat[i] : now_us;
			double e = (double)w[i].period_ms * 1000.0 / (double)w[i].limit;
			out->used[i] = (unsigned long long)ceil((t - now_us) / e - 1e-9);
		}
}

/* ------------------------------------------------------------ memory store */

struct entry {
	struct entry *next;
	double tat[PR_MAX_WINDOWS];
	struct pr_window w[PR_MAX_WINDOWS];
	double expires;    /* microseconds: when all windows are back to empty */
	int nw;
	char key[];
};

struct pr_memstore {
	struct entry **buckets;
	size_t nbuckets;
	size_t count;
	size_t max;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct pr_memstore *pr_memstore_new(size_t max_entries)
{
	struct pr_memstore *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->nbuckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	s->max = max_entries;
	if (s->buckets == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void pr_memstore_free(struct pr_memstore *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i];
		while (e != NULL) {
			struct entry *n = e->next;
			free(e);
			e = n;
		}
	}
	free(s->buckets);
	free(s);
}

size_t pr_memstore_size(const struct pr_memstore *s)
{
	return s->count;
}

/* Drops expired entries from one chain. */
static void sweep_chain(struct pr_memstore *s, size_t b, double now_us)
{
	struct entry **pp = &s->buckets[b];
	while (*pp != NULL) {
		if ((*pp)->expires <= now_us) {
			struct entry *dead = *pp;
			*pp = dead->next;
			free(dead);
			s->count--;
		} else {
			pp = &(*pp)->next;
		}
	}
}

static void grow(struct pr_memstore *s)
{
	size_t nb = s->nbuckets * 2;
	struct entry **b = calloc(nb, sizeof(*b));
	if (b == NULL)
		return; /* keep the longer chains */
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct entry *e = s->buckets[i];
		while (e != NULL) {
			struct entry *n = e->next;
			size_t k = hash(e->key) % nb;
			e->next = b[k];
			b[k] = e;
			e = n;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
}

static struct entry *lookup(struct pr_memstore *s, const char *key, int create, double now_us)
{
	size_t b = hash(key) % s->nbuckets;
	sweep_chain(s, b, now_us);
	for (struct entry *e = s->buckets[b]; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (!create)
		return NULL;
	if (s->count >= s->max) {
		/* Full: make room from expired entries everywhere, else refuse
		   to track (the request is allowed, and the daemon logs it). */
		for (size_t i = 0; i < s->nbuckets && s->count >= s->max; i++)
			sweep_chain(s, i, now_us);
		if (s->count >= s->max)
			return NULL;
	}
	size_t kl = strlen(key);
	struct entry *e = calloc(1, sizeof(*e) + kl + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, kl + 1);
	e->next = s->buckets[b];
	s->buckets[b] = e;
	if (++s->count > s->nbuckets * 2)
		grow(s);
	return e;
}

static void set_expiry(struct entry *e, const struct pr_window *w, int nw, double now_us)
{
	memcpy(e->w, w, (size_t)nw * sizeof(*w));
	double latest = now_us;
	for (int i = 0; i < nw; i++)
		if (e->tat[i] > latest)
			latest = e->tat[i];
	e->expires = latest + 1000000.0;
	e->nw = nw;
}

/* Lines the entry's TATs up with windows w: matched by period, and when a
   limit changed (override, reload) rescaled so that what was counted is
   kept, as the Redis script does. */
static void carry_over(struct entry *e, const struct pr_window *w, int nw, double now_us)
{
	double tat[PR_MAX_WINDOWS] = { 0 };
	for (int i = 0; i < nw; i++)
		for (int j = 0; j < e->nw; j++) {
			if (e->w[j].period_ms != w[i].period_ms)
				continue;
			tat[i] = e->tat[j];
			if (e->w[j].limit != w[i].limit && w[i].limit > 0 && tat[i] > now_us)
				tat[i] = now_us + (tat[i] - now_us) * (double)e->w[j].limit / (double)w[i].limit;
			break;
		}
	memcpy(e->tat, tat, sizeof(tat));
}

void pr_memstore_check(struct pr_memstore *s, const char *key, const struct pr_window *w, int nw,
		       unsigned long long cost, int commit, double now_us, struct pr_gcra_result *out)
{
	struct entry *e = lookup(s, key, commit, now_us);
	if (e == NULL) {
		double fresh[PR_MAX_WINDOWS] = { 0 };
		pr_gcra_apply(now_us, cost, w, nw, fresh, 0, out);
		return;
	}
	carry_over(e, w, nw, now_us);
	pr_gcra_apply(now_us, cost, w, nw, e->tat, commit, out);
	set_expiry(e, w, nw, now_us);
}

void pr_memstore_refund(struct pr_memstore *s, const char *key, const struct pr_window *w, int nw,
			unsigned long long cost)
{
	struct entry *e = lookup(s, key, 0, 0);
	if (e == NULL)
		return;
	for (int i = 0; i < nw; i++)
		e->tat[i] -= (double)cost * (double)w[i].period_ms * 1000.0 / (double)w[i].limit;
}

size_t pr_memstore_reset(struct pr_memstore *s, const char *key, int prefix)
{
	size_t n = 0, kl = strlen(key);
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct entry **pp = &s->buckets[b];
		while (*pp != NULL) {
			int match = prefix ? strncmp((*pp)->key, key, kl) == 0 : strcmp((*pp)->key, key) == 0;
			if (match) {
				struct entry *dead = *pp;
				*pp = dead->next;
				free(dead);
				s->count--;
				n++;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	return n;
}

void pr_memstore_each(struct pr_memstore *s, double now_us,
		      void (*fn)(const char *key, const double *tat, const struct pr_window *w, int nw, void *ctx),
		      void *ctx)
{
	for (size_t b = 0; b < s->nbuckets; b++) {
		sweep_chain(s, b, now_us);
		for (struct entry *e = s->buckets[b]; e != NULL; e = e->next)
			fn(e->key, e->tat, e->w, e->nw, ctx);
	}
}

unsigned long long pr_gcra_used(double now_us, double tat, const struct pr_window *w)
{
	if (tat <= now_us)
		return 0;
	double e = (double)w->period_ms * 1000.0 / (double)w->limit;
	return (unsigned long long)ceil((tat - now_us) / e - 1e-9);
}
