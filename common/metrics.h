/*
 * metrics: Prometheus text exposition (format 0.0.4) and its HTTP answer,
 * for the daemons with a metrics_listen endpoint (policyd-rate,
 * milter-auth).
 *
 *   metrics_listen = inet:9101@127.0.0.1     off when empty (the default)
 *
 * A histogram's counters are C11 atomics, so threaded daemons (libmilter)
 * observe from any thread; policyd-rate's single event loop pays one
 * uncontended atomic add. mw_metrics_serve() answers scrapes from its own
 * thread for daemons without an event loop of ours (libmilter owns the
 * main loop); an event-loop daemon uses mw_metrics_request_complete() and
 * mw_metrics_http_answer() from its own callbacks.
 *
 * Memory: every function appends to a caller-owned mw_buf; the histogram
 * is the caller's (static or embedded), its bounds array too.
 */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

#define MW_HISTOGRAM_MAX_BUCKETS 16

struct mw_histogram {
	const unsigned long long *bounds_us; /* ascending upper bounds, microseconds */
	size_t nbounds;                      /* at most MW_HISTOGRAM_MAX_BUCKETS */
	atomic_ullong count, sum_us;
	atomic_ullong bucket[MW_HISTOGRAM_MAX_BUCKETS]; /* cumulative: observations <= bound */
};

void mw_histogram_observe(struct mw_histogram *h, unsigned long long us);

/* "# HELP name help" and "# TYPE name type" lines. */
void mw_metrics_head(struct mw_buf *out, const char *name, const char *type, const char *help);
/* A histogram in seconds: head, _bucket{le=...}, +Inf, _sum, _count. */
void mw_metrics_histogram(struct mw_buf *out, const char *name, const char *help, struct mw_histogram *h);

/* metrics_listen must be an inet socket (HTTP); 0, or -1 with err. */
int mw_metrics_check_listen(const char *spec, struct mw_buf *err);
/* The same from a conf.h validate callback: 0, or mw_conf_fail()'s value
   naming key. An empty value (off) is fine. */
struct mw_conf;
int mw_metrics_validate_listen(struct mw_conf *cfg, const char *key, const char *value);
/* Has the HTTP request in data ended (its empty line)? */
int mw_metrics_request_complete(const char *data, size_t len);
/* The HTTP/1.0 response carrying body, appended to out. */
void mw_metrics_http_answer(const struct mw_buf *body, struct mw_buf *out);

/*
 * Serves scrapes on the listening socket fd from a thread of its own (one
 * connection at a time, 5 s to send the request, any request answered
 * with the metrics that fill() appends). 0, or -1 with err.
 */
typedef void mw_metrics_fill_fn(struct mw_buf *out, void *ctx);
int mw_metrics_serve(int fd, mw_metrics_fill_fn *fill, void *ctx, struct mw_buf *err);

#endif
