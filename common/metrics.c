#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "sock.h"

/* A scrape request larger than this is not one. */
#define MAX_REQUEST 8192
#define REQUEST_TIMEOUT_MS 5000

void mw_histogram_observe(struct mw_histogram *h, unsigned long long us)
{
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
	for (size_t i = 0; i < h->nbounds && i < MW_HISTOGRAM_MAX_BUCKETS; i++)
		if (us <= h->bounds_us[i])
			atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
}

void mw_metrics_head(struct mw_buf *out, const char *name, const char *type, const char *help)
{
	mw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void mw_metrics_histogram(struct mw_buf *out, const char *name, const char *help, struct mw_histogram *h)
{
	/* count read first: a concurrent observation may show in a bucket
	   but not yet in _count, never the other way round in +Inf */
	unsigned long long count = atomic_load(&h->count);
	mw_metrics_head(out, name, "histogram", help);
	for (size_t i = 0; i < h->nbounds && i < MW_HISTOGRAM_MAX_BUCKETS; i++) {
		unsigned long long b = atomic_load(&h->bucket[i]);
		mw_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, (double)h->bounds_us[i] / 1e6,
			      b < count ? b : count);
	}
	mw_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, count, name,
		      (double)atomic_load(&h->sum_us) / 1e6, name, count);
}

int mw_metrics_check_listen(const char *spec_text, struct mw_buf *err)
{
	struct mw_sockspec spec;
	if (mw_sock_parse(spec_text, &spec, err) < 0)
		return -1;
	if (spec.kind == MW_SOCK_UNIX) {
		mw_buf_puts(err, "expected inet:port@host");
		return -1;
	}
	return 0;
}

int mw_metrics_validate_listen(struct mw_conf *cfg, const char *key, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return 0;
	struct mw_buf err = MW_BUF_INIT;
	int r = 0;
	if (mw_metrics_check_listen(value, &err) < 0)
		r = mw_conf_fail(cfg, key, "%s", mw_buf_str(&err));
	mw_buf_free(&err);
	return r;
}

int mw_metrics_request_complete(const char *data, size_t len)
{
	return memmem(data, len, "\r\n\r\n", 4) != NULL || memmem(data, len, "\n\n", 2) != NULL;
}

void mw_metrics_http_answer(const struct mw_buf *body, struct mw_buf *out)
{
	mw_buf_printf(out, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
			   "Content-Length: %zu\r\nConnection: close\r\n\r\n", mw_buf_len(body));
	mw_buf_append(out, body->data, mw_buf_len(body));
}

struct server {
	int fd;
	mw_metrics_fill_fn *fill;
	void *ctx;
};

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void serve_one(struct server *s, int c)
{
	char req[MAX_REQUEST];
	size_t len = 0;
	long long deadline = ms_now() + REQUEST_TIMEOUT_MS;
	while (!mw_metrics_request_complete(req, len)) {
		long long left = deadline - ms_now();
		struct pollfd p = { c, POLLIN, 0 };
		if (left <= 0 || len == sizeof(req) || poll(&p, 1, (int)left) <= 0)
			return;
		ssize_t n = read(c, req + len, sizeof(req) - len);
		if (n <= 0)
			return;
		len += (size_t)n;
	}
	struct mw_buf body = MW_BUF_INIT, out = MW_BUF_INIT;
	s->fill(&body, s->ctx);
	mw_metrics_http_answer(&body, &out);
	for (size_t off = 0; off < mw_buf_len(&out);) {
		struct pollfd p = { c, POLLOUT, 0 };
		long long left = deadline - ms_now();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t n = send(c, out.data + off, mw_buf_len(&out) - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	mw_buf_free(&body);
	mw_buf_free(&out);
}

static void *serve_thread(void *arg)
{
	struct server *s = arg;
	for (;;) {
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { s->fd, POLLIN, 0 };
				poll(&p, 1, -1);
				continue;
			}
			/* out of descriptors or memory: scrapes wait, mail does not */
			mw_msg_warn("metrics: accept: %s", strerror(errno));
			sleep(1);
			continue;
		}
		serve_one(s, c);
		close(c);
	}
	return NULL;
}

int mw_metrics_serve(int fd, mw_metrics_fill_fn *fill, void *ctx, struct mw_buf *err)
{
	struct server *s = mw_xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->fill = fill;
	s->ctx = ctx;
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, serve_thread, s);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		mw_buf_printf(err, "metrics: cannot start its thread: %s", strerror(rc));
		free(s);
		return -1;
	}
	return 0;
}
