#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

#include "conf.h"
#include "dns.h"
#include "strnum.h"

#define ROOT_KEY_FILE "/usr/share/dns/root.key"
/* How long the thread reading libunbound's pipe waits before letting
   others check their deadlines. */
#define LEADER_SLICE_MS 50

/* An answer as we keep it: ours, so it can be shared by the cache and
   every result that uses it. */
struct mw_dns_answer {
	atomic_int refs;
	enum mw_dns_status status;
	enum mw_dns_security security;
	int rcode;
	unsigned ttl;
	int count;
	unsigned char **data;
	size_t *len;
	unsigned char *packet;
	size_t packet_len;
};

struct cache_slot {
	char *name;         /* lower-case */
	int type;
	time_t expires;     /* CLOCK_MONOTONIC seconds */
	struct mw_dns_answer *ans;
};

struct mw_dns {
	struct ub_ctx *ub;
	pthread_mutex_t cache_lock;
	struct cache_slot cache[MW_DNS_CACHE_ENTRIES]; /* direct-mapped by hash */
	struct mw_dns_conf conf;
	pthread_mutex_t lock;  /* guards libunbound calls and the fields below */
	pthread_cond_t cond;   /* broadcast when results were processed */
	int leader;            /* a thread is polling ub_fd() */
};

/* One outstanding query; lives on the waiting thread's stack. */
struct query {
	int done;
	int err;
	struct ub_result *result;
};

/* ---------------------------------------------------------------- config */

static int valid_forwarder(const char *w, size_t n, struct mw_buf *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *at = memchr(w, '@', n);
	size_t hl = at != NULL ? (size_t)(at - w) : n;
	unsigned char addr[sizeof(struct in6_addr)];

	if (hl == 0 || hl >= sizeof(host)) {
		mw_buf_printf(err, "bad forwarder address \"%.*s\"", (int)n, w);
		return -1;
	}
	memcpy(host, w, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
		mw_buf_printf(err, "\"%s\" is not an IP address (write system, or ip[@port] ...)",
			      host);
		return -1;
	}
	if (at != NULL) {
		unsigned long long port;
		if (mw_parse_uint_n(at + 1, n - hl - 1, 65535, &port) < 0 || port == 0) {
			mw_buf_printf(err, "bad port in \"%.*s\"", (int)n, w);
			return -1;
		}
	}
	return 0;
}

int mw_dns_conf_set_resolver(struct mw_dns_conf *conf, const char *value, struct mw_buf *err)
{
	if (strcmp(value, "system") != 0) {
		const char *p = value;
		int count = 0;
		while (*p != '\0') {
			p += strspn(p, " \t,");
			size_t n = strcspn(p, " \t,");
			if (n == 0)
				break;
			if (valid_forwarder(p, n, err) < 0)
				return -1;
			count++;
			p += n;
		}
		if (count == 0) {
			mw_buf_puts(err, "expected system, or one or more ip[@port]");
			return -1;
		}
	}
	char *copy = strdup(value);
	if (copy == NULL) {
		mw_buf_puts(err, "out of memory");
		return -1;
	}
	free(conf->resolver);
	conf->resolver = copy;
	return 0;
}

void mw_dns_conf_clear_resolver(struct mw_dns_conf *conf)
{
	free(conf->resolver);
	conf->resolver = NULL;
}

/* ---------------------------------------------------------------- answers */

static void answer_unref(struct mw_dns_answer *a)
{
	if (a == NULL || atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	for (int i = 0; i < a->count; i++)
		free(a->data[i]);
	free(a->data);
	free(a->len);
	free(a->packet);
	free(a);
}

/* Our copy of libunbound's result; NULL when out of memory. */
static struct mw_dns_answer *answer_from_ub(const struct ub_result *r, enum mw_dns_status status)
{
	struct mw_dns_answer *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	atomic_init(&a->refs, 1);
	a->status = status;
	a->security = r->secure ? MW_DNS_SECURE : r->bogus ? MW_DNS_BOGUS : MW_DNS_INSECURE;
	a->rcode = r->rcode;
	a->ttl = r->ttl > 0 ? (unsigned)r->ttl : 0;
	if (status == MW_DNS_OK)
		while (r->data[a->count] != NULL)
			a->count++;
	a->data = calloc((size_t)a->count + 1, sizeof(*a->data));
	a->len = calloc((size_t)a->count + 1, sizeof(*a->len));
	if (a->data == NULL || a->len == NULL)
		goto fail;
	for (int i = 0; i < a->count; i++) {
		a->len[i] = (size_t)r->len[i];
		a->data[i] = malloc(a->len[i] + 1);
		if (a->data[i] == NULL)
			goto fail;
		memcpy(a->data[i], r->data[i], a->len[i]);
	}
	if (r->answer_packet != NULL && r->answer_len > 0) {
		a->packet = malloc((size_t)r->answer_len);
		if (a->packet == NULL)
			goto fail;
		memcpy(a->packet, r->answer_packet, (size_t)r->answer_len);
		a->packet_len = (size_t)r->answer_len;
	}
	return a;
fail:
	for (int i = 0; a->data != NULL && i < a->count; i++)
		free(a->data[i]);
	free(a->data);
	free(a->len);
	free(a->packet);
	free(a);
	return NULL;
}

static time_t monotonic_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* FNV-1a over the lower-cased name and the type. */
static size_t cache_index(const char *lname, int type)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)type;
	for (const unsigned char *p = (const unsigned char *)lname; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return (size_t)(h % MW_DNS_CACHE_ENTRIES);
}

/* A referenced answer from the cache, or NULL. */
static struct mw_dns_answer *cache_get(struct mw_dns *dns, const char *lname, int type)
{
	size_t i = cache_index(lname, type);
	struct mw_dns_answer *a = NULL;
	pthread_mutex_lock(&dns->cache_lock);
	struct cache_slot *slot = &dns->cache[i];
	if (slot->ans != NULL && slot->type == type && strcmp(slot->name, lname) == 0) {
		if (slot->expires > monotonic_seconds()) {
			a = slot->ans;
			atomic_fetch_add(&a->refs, 1);
		}
	}
	pthread_mutex_unlock(&dns->cache_lock);
	return a;
}

static void cache_put(struct mw_dns *dns, const char *lname, int type, struct mw_dns_answer *a)
{
	unsigned ttl = a->ttl;
	unsigned cap = a->status == MW_DNS_OK ? MW_DNS_CACHE_TTL_MAX : MW_DNS_NEGATIVE_TTL_MAX;
	if (a->status != MW_DNS_OK && ttl == 0)
		ttl = 30; /* negative answers without a TTL: briefly */
	if (ttl == 0 || a->security == MW_DNS_BOGUS)
		return;
	if (ttl > cap)
		ttl = cap;
	char *name = strdup(lname);
	if (name == NULL)
		return;
	size_t i = cache_index(lname, type);
	atomic_fetch_add(&a->refs, 1);
	pthread_mutex_lock(&dns->cache_lock);
	struct cache_slot *slot = &dns->cache[i];
	char *old_name = slot->name;
	struct mw_dns_answer *old = slot->ans;
	slot->name = name;
	slot->type = type;
	slot->expires = monotonic_seconds() + (time_t)ttl;
	slot->ans = a;
	pthread_mutex_unlock(&dns->cache_lock);
	free(old_name);
	answer_unref(old);
}

static void fill_result(struct mw_dns_result *res, struct mw_dns_answer *a)
{
	res->ans = a;
	res->status = a->status;
	res->security = a->security;
	res->rcode = a->rcode;
	res->ttl = a->ttl;
	res->count = a->count;
}

/* ---------------------------------------------------------------- setup */

static int set_option(struct mw_dns *dns, const char *opt, const char *val, struct mw_buf *err)
{
	int r = ub_ctx_set_option(dns->ub, opt, val);
	if (r != 0) {
		mw_buf_printf(err, "unbound option %s %s: %s", opt, val, ub_strerror(r));
		return -1;
	}
	return 0;
}

static int configure(struct mw_dns *dns, struct mw_buf *err)
{
	const struct mw_dns_conf *c = &dns->conf;
	int system = c->resolver == NULL || strcmp(c->resolver, "system") == 0;
	int r;

	/* Threads, not a forked process: one cache, and no child to reap. */
	if ((r = ub_ctx_async(dns->ub, 1)) != 0) {
		mw_buf_printf(err, "unbound async: %s", ub_strerror(r));
		return -1;
	}
	/* Local forwarders (127.0.0.1, 127.0.0.53) are the common case. */
	if (set_option(dns, "do-not-query-localhost:", "no", err) < 0)
		return -1;
	/* A forwarder that timed out once must still be asked next time: with
	   one forwarder there is nobody else to ask. */
	if (set_option(dns, "infra-keep-probing:", "yes", err) < 0)
		return -1;
	if (set_option(dns, "edns-buffer-size:", "1232", err) < 0)
		return -1;
	/* libunbound answers some names itself (RFC 6761/6303 default zones).
	   Our forwarders know better about private reverse zones (a client on
	   10.0.0.0/8 may well have PTR records there), and test. is what the
	   test suite serves. */
	if (set_option(dns, "unblock-lan-zones:", "yes", err) < 0 ||
	    set_option(dns, "insecure-lan-zones:", "yes", err) < 0 ||
	    set_option(dns, "local-zone:", "test. transparent", err) < 0)
		return -1;
	if (c->cache_size > 0) {
		char size[32];
		snprintf(size, sizeof(size), "%llu", c->cache_size / 2);
		if (set_option(dns, "msg-cache-size:", size, err) < 0 ||
		    set_option(dns, "rrset-cache-size:", size, err) < 0)
			return -1;
	}

	if (system) {
		r = ub_ctx_resolvconf(dns->ub, NULL);
		if (r != 0) {
			mw_buf_printf(err, "/etc/resolv.conf: %s", ub_strerror(r));
			return -1;
		}
	} else {
		const char *p = c->resolver;
		while (*p != '\0') {
			char fwd[INET6_ADDRSTRLEN + 8];
			p += strspn(p, " \t,");
			size_t n = strcspn(p, " \t,");
			if (n == 0)
				break;
			if (n >= sizeof(fwd)) {
				mw_buf_printf(err, "bad forwarder \"%.*s\"", (int)n, p);
				return -1;
			}
			memcpy(fwd, p, n);
			fwd[n] = '\0';
			if ((r = ub_ctx_set_fwd(dns->ub, fwd)) != 0) {
				mw_buf_printf(err, "forwarder %s: %s", fwd, ub_strerror(r));
				return -1;
			}
			p += n;
		}
	}

	const char *ta = c->trust_anchor;
	if (ta == NULL || strcmp(ta, "auto") == 0)
		ta = system && access(ROOT_KEY_FILE, R_OK) == 0 ? ROOT_KEY_FILE : NULL;
	else if (strcmp(ta, "none") == 0)
		ta = NULL;
	if (ta != NULL && (r = ub_ctx_add_ta_file(dns->ub, ta)) != 0) {
		mw_buf_printf(err, "trust anchor %s: %s", ta, ub_strerror(r));
		return -1;
	}
	return 0;
}

struct mw_dns *mw_dns_new(const struct mw_dns_conf *conf, struct mw_buf *err)
{
	struct mw_dns *dns = calloc(1, sizeof(*dns));
	pthread_condattr_t ca;

	if (dns == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	dns->conf = *conf;
	dns->conf.resolver = conf->resolver != NULL ? strdup(conf->resolver) : NULL;
	dns->conf.trust_anchor = conf->trust_anchor != NULL ? strdup(conf->trust_anchor) : NULL;
	if (dns->conf.timeout_ms == 0)
		dns->conf.timeout_ms = 5000;
	if (dns->conf.budget_ms == 0)
		dns->conf.budget_ms = 15000;
	pthread_mutex_init(&dns->lock, NULL);
	pthread_mutex_init(&dns->cache_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dns->cond, &ca);
	pthread_condattr_destroy(&ca);

	dns->ub = ub_ctx_create();
	if (dns->ub == NULL) {
		mw_buf_puts(err, "cannot create the libunbound context");
		mw_dns_free(dns);
		return NULL;
	}
	if (configure(dns, err) < 0) {
		mw_dns_free(dns);
		return NULL;
	}
	return dns;
}

void mw_dns_free(struct mw_dns *dns)
{
	if (dns == NULL)
		return;
	if (dns->ub != NULL)
		ub_ctx_delete(dns->ub);
	for (size_t i = 0; i < MW_DNS_CACHE_ENTRIES; i++) {
		free(dns->cache[i].name);
		answer_unref(dns->cache[i].ans);
	}
	pthread_mutex_destroy(&dns->cache_lock);
	pthread_mutex_destroy(&dns->lock);
	pthread_cond_destroy(&dns->cond);
	free(dns->conf.resolver);
	free(dns->conf.trust_anchor);
	free(dns);
}

/* ---------------------------------------------------------------- time */

static void now_plus(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds from now until ts, rounded up: 0 only once ts has passed. */
static unsigned ms_until(const struct timespec *ts)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ns = (long long)(ts->tv_sec - now.tv_sec) * 1000000000LL +
		       (ts->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	long long ms = (ns + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffffU : (unsigned)ms;
}

void mw_dns_budget_start(const struct mw_dns *dns, struct mw_dns_budget *budget, unsigned total_ms)
{
	now_plus(&budget->deadline, total_ms > 0 ? total_ms : (unsigned)dns->conf.budget_ms);
	budget->exhausted = 0;
}

unsigned mw_dns_budget_left_ms(const struct mw_dns_budget *budget)
{
	return ms_until(&budget->deadline);
}

/* ---------------------------------------------------------------- lookup */

static void on_result(void *arg, int err, struct ub_result *result)
{
	struct query *q = arg;
	q->err = err;
	q->result = result;
	q->done = 1;
}

/* RFC 1035 limits, checked here so the caller gets BADNAME, not a resolver
   error. A trailing dot is allowed. */
static int valid_name(const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (++label > 63) {
			return 0;
		}
	}
	return label > 0;
}

static enum mw_dns_status classify(const struct ub_result *r, struct mw_dns_result *res)
{
	if (r->bogus) {
		snprintf(res->error, sizeof(res->error), "DNSSEC validation failed: %s",
			 r->why_bogus != NULL ? r->why_bogus : "bogus");
		return MW_DNS_SERVFAIL;
	}
	if (r->rcode == 3)
		return MW_DNS_NXDOMAIN;
	if (r->rcode != 0) {
		snprintf(res->error, sizeof(res->error), "server answered rcode %d%s", r->rcode,
			 r->rcode == 2 ? " (SERVFAIL)" : r->rcode == 5 ? " (REFUSED)" : "");
		return MW_DNS_SERVFAIL;
	}
	return r->havedata ? MW_DNS_OK : MW_DNS_NODATA;
}

enum mw_dns_status mw_dns_lookup(struct mw_dns *dns, const char *name, int type,
				 struct mw_dns_budget *budget, struct mw_dns_result *res)
{
	struct query q = { 0, 0, NULL };
	struct timespec deadline;
	int async_id = 0;
	unsigned timeout = (unsigned)dns->conf.timeout_ms;
	int cut_by_budget = 0;

	memset(res, 0, sizeof(*res));
	res->type = type;
	if (!valid_name(name)) {
		res->status = MW_DNS_BADNAME;
		snprintf(res->error, sizeof(res->error), "not a valid domain name");
		return res->status;
	}
	char lname[256];
	size_t nl = strlen(name);
	if (nl > 0 && name[nl - 1] == '.')
		nl--;
	for (size_t i = 0; i < nl; i++)
		lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	lname[nl] = '\0';
	struct mw_dns_answer *hit = cache_get(dns, lname, type);
	if (hit != NULL) {
		fill_result(res, hit);
		res->cached = 1;
		return res->status;
	}
	if (budget != NULL) {
		unsigned left = mw_dns_budget_left_ms(budget);
		if (left == 0) {
			budget->exhausted = 1;
			res->status = MW_DNS_TIMEOUT;
			snprintf(res->error, sizeof(res->error),
				 "the message's DNS time budget is spent");
			return res->status;
		}
		if (left < timeout) {
			timeout = left;
			cut_by_budget = 1;
		}
	}
	now_plus(&deadline, timeout);

	/* Names come from mail and DNS data and may hold any byte (SPF macros
	   can put spaces in them): libunbound reads presentation format, so
	   everything but letters, digits, '-', '_' and the dots between
	   labels goes as \DDD. */
	char escaped[256 * 4 + 2];
	size_t e = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '*')
			escaped[e++] = (char)*p;
		else
			e += (size_t)snprintf(escaped + e, sizeof(escaped) - e, "\\%03u", *p);
	}
	escaped[e] = '\0';

	pthread_mutex_lock(&dns->lock);
	int r = ub_resolve_async(dns->ub, escaped, type, 1, &q, on_result, &async_id);
	if (r != 0) {
		pthread_mutex_unlock(&dns->lock);
		res->status = MW_DNS_ERROR;
		snprintf(res->error, sizeof(res->error), "resolver: %s", ub_strerror(r));
		return res->status;
	}
	/*
	 * Leader/followers: one waiting thread at a time polls libunbound's
	 * result pipe and runs ub_process(), whose callbacks complete every
	 * thread's queries; the others sleep on the condition variable. Each
	 * thread leaves at its own deadline.
	 */
	while (!q.done) {
		unsigned left = ms_until(&deadline);
		if (left == 0)
			break;
		if (!dns->leader) {
			dns->leader = 1;
			int fd = ub_fd(dns->ub);
			pthread_mutex_unlock(&dns->lock);
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int pr = poll(&pfd, 1, (int)(left < LEADER_SLICE_MS ? left : LEADER_SLICE_MS));
			pthread_mutex_lock(&dns->lock);
			if (pr > 0)
				ub_process(dns->ub);
			dns->leader = 0;
			pthread_cond_broadcast(&dns->cond);
		} else {
			struct timespec wake;
			now_plus(&wake, left < LEADER_SLICE_MS ? left : LEADER_SLICE_MS);
			pthread_cond_timedwait(&dns->cond, &dns->lock, &wake);
		}
	}
	if (!q.done) {
		/* After a successful cancel the callback is never called. */
		ub_cancel(dns->ub, async_id);
		pthread_mutex_unlock(&dns->lock);
		if (cut_by_budget)
			budget->exhausted = 1;
		res->status = MW_DNS_TIMEOUT;
		snprintf(res->error, sizeof(res->error), "no answer within %u ms", timeout);
		return res->status;
	}
	pthread_mutex_unlock(&dns->lock);

	if (q.err != 0) {
		if (q.result != NULL)
			ub_resolve_free(q.result);
		res->status = q.err == UB_SYNTAX ? MW_DNS_BADNAME : MW_DNS_ERROR;
		snprintf(res->error, sizeof(res->error), "resolver: %s", ub_strerror(q.err));
		return res->status;
	}
	enum mw_dns_status st = classify(q.result, res);
	struct mw_dns_answer *a = answer_from_ub(q.result, st);
	ub_resolve_free(q.result);
	if (a == NULL) {
		res->status = MW_DNS_ERROR;
		snprintf(res->error, sizeof(res->error), "out of memory");
		return res->status;
	}
	if (!mw_dns_status_is_temporary(st))
		cache_put(dns, lname, type, a);
	fill_result(res, a);
	return res->status;
}

void mw_dns_result_free(struct mw_dns_result *res)
{
	answer_unref(res->ans);
	res->ans = NULL;
	res->count = 0;
}

/* ---------------------------------------------------------------- records */

int mw_dns_result_rdata(const struct mw_dns_result *res, int i, const unsigned char **data, size_t *len)
{
	if (res->ans == NULL || i < 0 || i >= res->count)
		return -1;
	*data = res->ans->data[i];
	*len = res->ans->len[i];
	return 0;
}

int mw_dns_result_txt(const struct mw_dns_result *res, int i, struct mw_buf *out)
{
	const unsigned char *d;
	size_t len;

	if (mw_dns_result_rdata(res, i, &d, &len) < 0)
		return -1;
	for (size_t pos = 0; pos < len;) {
		size_t n = d[pos++];
		if (n > len - pos)
			return -1;
		if (mw_buf_append(out, d + pos, n) < 0)
			return -1;
		pos += n;
	}
	return 0;
}

int mw_dns_result_a(const struct mw_dns_result *res, int i, struct in_addr *out)
{
	const unsigned char *d;
	size_t len;
	if (mw_dns_result_rdata(res, i, &d, &len) < 0 || len != 4)
		return -1;
	memcpy(out, d, 4);
	return 0;
}

int mw_dns_result_aaaa(const struct mw_dns_result *res, int i, struct in6_addr *out)
{
	const unsigned char *d;
	size_t len;
	if (mw_dns_result_rdata(res, i, &d, &len) < 0 || len != 16)
		return -1;
	memcpy(out, d, 16);
	return 0;
}

/* Uncompressed wire-format name (libunbound decompresses rdata) to text,
   without the trailing dot. */
static int decode_name(const unsigned char *d, size_t len, size_t *pos, struct mw_buf *out)
{
	size_t total = 0;
	int first = 1;

	for (;;) {
		if (*pos >= len)
			return -1;
		size_t n = d[(*pos)++];
		if (n == 0)
			break;
		if (n > 63 || n > len - *pos || (total += n + 1) > 255)
			return -1;
		if (!first)
			mw_buf_putc(out, '.');
		first = 0;
		for (size_t k = 0; k < n; k++) {
			unsigned char c = d[*pos + k];
			/* Names are hostnames here: escape anything odd rather than
			   hand callers a dot or a control byte inside a label. */
			if (c == '.' || c == '\\' || c <= 0x20 || c >= 0x7f)
				mw_buf_printf(out, "\\%03u", c);
			else
				mw_buf_putc(out, c);
		}
		*pos += n;
	}
	if (first)
		mw_buf_putc(out, '.'); /* the root */
	return mw_buf_failed(out) ? -1 : 0;
}

int mw_dns_result_mx(const struct mw_dns_result *res, int i, unsigned *preference, struct mw_buf *host)
{
	const unsigned char *d;
	size_t len, pos = 2;
	if (mw_dns_result_rdata(res, i, &d, &len) < 0 || len < 3)
		return -1;
	*preference = (unsigned)(d[0] << 8 | d[1]);
	if (decode_name(d, len, &pos, host) < 0 || pos != len)
		return -1;
	return 0;
}

int mw_dns_result_ptr(const struct mw_dns_result *res, int i, struct mw_buf *host)
{
	const unsigned char *d;
	size_t len, pos = 0;
	if (mw_dns_result_rdata(res, i, &d, &len) < 0)
		return -1;
	if (decode_name(d, len, &pos, host) < 0 || pos != len)
		return -1;
	return 0;
}

int mw_dns_result_tlsa(const struct mw_dns_result *res, int i, uint8_t *usage, uint8_t *selector,
		       uint8_t *mtype, const unsigned char **data, size_t *len)
{
	const unsigned char *d;
	size_t n;
	if (mw_dns_result_rdata(res, i, &d, &n) < 0 || n < 4)
		return -1;
	*usage = d[0];
	*selector = d[1];
	*mtype = d[2];
	*data = d + 3;
	*len = n - 3;
	return 0;
}

const unsigned char *mw_dns_result_packet(const struct mw_dns_result *res, size_t *len)
{
	if (res->ans == NULL || res->ans->packet == NULL)
		return NULL;
	*len = res->ans->packet_len;
	return res->ans->packet;
}

const char *mw_dns_status_name(enum mw_dns_status status)
{
	switch (status) {
	case MW_DNS_OK: return "ok";
	case MW_DNS_NODATA: return "nodata";
	case MW_DNS_NXDOMAIN: return "nxdomain";
	case MW_DNS_SERVFAIL: return "servfail";
	case MW_DNS_TIMEOUT: return "timeout";
	case MW_DNS_BADNAME: return "badname";
	case MW_DNS_ERROR: return "error";
	}
	return "unknown";
}

int mw_dns_status_is_temporary(enum mw_dns_status status)
{
	return status == MW_DNS_SERVFAIL || status == MW_DNS_TIMEOUT || status == MW_DNS_ERROR;
}
