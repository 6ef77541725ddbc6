#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "log.h"
#include "store.h"
#include "strnum.h"

/*
 * The check-and-count, atomic on the Redis server, on its clock. One hash
 * per counter (KEYS[1] = prefix{rule:value}: one key, one slot), a field
 * pair per window: t<period> (the TAT, microseconds) and l<period> (the
 * limit it was counted under). ARGV: cost, commit, then period_us and
 * limit per window. Returns {allowed, retry_ms, denied_window, used...}.
 * The same arithmetic as pr_gcra_apply() in gcra.c.
 */
static const char GCRA_LUA[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local cost = tonumber(ARGV[1])\n"
	"local commit = tonumber(ARGV[2])\n"
	"local n = (#ARGV - 2) / 2\n"
	"local allowed, retry, denied = 1, 0, 0\n"
	"local tats, nexts, es = {}, {}, {}\n"
	"for i = 1, n do\n"
	"  local period = tonumber(ARGV[1 + 2 * i])\n"
	"  local limit = tonumber(ARGV[2 + 2 * i])\n"
	"  local e = period / limit\n"
	"  local st = redis.call('HMGET', KEYS[1], 't' .. period, 'l' .. period)\n"
	"  local tat = tonumber(st[1]) or 0\n"
	"  if tat < now then tat = now end\n"
	"  local old = tonumber(st[2])\n"
	/* a limit changed (override, reload): keep what was counted */
	"  if old and old > 0 and old ~= limit then tat = now + (tat - now) * old / limit end\n"
	"  local nt = tat + cost * e\n"
	"  tats[i], nexts[i], es[i] = tat, nt, e\n"
	"  if nt - now > period + 0.5 then\n"
	"    local r = math.ceil((nt - period - now) / 1000)\n"
	"    if allowed == 1 or r > retry then retry = r; denied = i - 1 end\n"
	"    allowed = 0\n"
	"  end\n"
	"end\n"
	"local out = {allowed, retry, denied}\n"
	"local latest = now\n"
	"for i = 1, n do\n"
	"  local after = tats[i]\n"
	"  if allowed == 1 then after = nexts[i] end\n"
	"  out[3 + i] = math.ceil((after - now) / es[i] - 1e-9)\n"
	"  if nexts[i] > latest then latest = nexts[i] end\n"
	"end\n"
	"if allowed == 1 and commit == 1 then\n"
	"  for i = 1, n do\n"
	"    local period = ARGV[1 + 2 * i]\n"
	"    redis.call('HSET', KEYS[1], 't' .. period, string.format('%.17g', nexts[i]), 'l' .. period, ARGV[2 + 2 * i])\n"
	"  end\n"
	"  redis.call('PEXPIRE', KEYS[1], math.ceil((latest - now) / 1000) + 1000)\n"
	"end\n"
	"return out\n";

/* Gives cost back: ARGV: cost, then period_us and limit per window. */
static const char REFUND_LUA[] =
	"local cost = tonumber(ARGV[1])\n"
	"for i = 1, (#ARGV - 1) / 2 do\n"
	"  local period = tonumber(ARGV[2 * i])\n"
	"  local limit = tonumber(ARGV[2 * i + 1])\n"
	"  local f = 't' .. ARGV[2 * i]\n"
	"  local tat = tonumber(redis.call('HGET', KEYS[1], f))\n"
	"  if tat then redis.call('HSET', KEYS[1], f, string.format('%.17g', tat - cost * period / limit)) end\n"
	"end\n"
	"return 1\n";

struct conn {
	struct pr_store *s;
	redisAsyncContext *ac;
	int up;
};

struct pr_store {
	int redis;
	struct pr_memstore *mem;
	/* Redis */
	struct event_base *base;
	struct mw_redis_conf conf;
	char prefix[64];
	struct conn *conns;
	int nconns;
	unsigned rr;
	char gcra_sha[41];
	char refund_sha[41];
	struct event *retry;          /* reconnects */
	int discovering;              /* a Sentinel query is running */
	int wake[2];                  /* discovery thread -> event loop */
	struct event *wake_ev;
	struct mw_redis_addr master;
	int have_master;
	struct pr_store_stats stats;
	unsigned long long timeout_ms;
};

double pr_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e6 + (double)(ts.tv_nsec / 1000);
}

/* ------------------------------------------------------------ memory */

struct pr_store *pr_store_memory(size_t max_entries)
{
	struct pr_store *s = mw_xcalloc(1, sizeof(*s));
	s->mem = pr_memstore_new(max_entries);
	if (s->mem == NULL)
		mw_msg_fatal("out of memory");
	return s;
}

int pr_store_is_redis(const struct pr_store *s)
{
	return s->redis;
}

void pr_store_get_stats(const struct pr_store *s, struct pr_store_stats *out)
{
	*out = s->stats;
	out->connected = 0;
	for (int i = 0; i < s->nconns; i++)
		out->connected += s->conns[i].up;
}

/* ------------------------------------------------------------ Redis: connections */

static void schedule_retry(struct pr_store *s)
{
	struct timeval tv = { 0, 200000 }; /* back within a second of Redis */
	if (!evtimer_pending(s->retry, NULL))
		evtimer_add(s->retry, &tv);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	(void)status;
	if (c == NULL)
		return;
	if (c->up)
		mw_msg_warn("Redis connection lost: %s", ac->errstr[0] ? ac->errstr : "closed");
	c->up = 0;
	c->ac = NULL;
	c->s->have_master = 0; /* after a failover the master may have moved */
	schedule_retry(c->s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;
	if (status != REDIS_OK) {
		c->up = 0;
		c->ac = NULL; /* hiredis frees the context */
		c->s->have_master = 0;
		schedule_retry(c->s);
		return;
	}
	c->up = 1;
	c->s->stats.reconnects++;
	mw_msg_info("connected to Redis %s:%d", c->s->master.host, c->s->master.port);
}

static void on_ignore(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)priv;
	redisReply *r = reply;
	if (r != NULL && r->type == REDIS_REPLY_ERROR)
		mw_msg_error("Redis: %s", r->str);
}

static void on_role(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	redisReply *r = reply;
	/* A Sentinel may name the old master for a moment after a failover. */
	if (r != NULL && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
			  r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "master") != 0)) {
		mw_msg_warn("Redis %s is not a master: reconnecting", ac->c.tcp.host ? ac->c.tcp.host : "");
		redisAsyncDisconnect((redisAsyncContext *)ac);
	}
}

static void open_conn(struct pr_store *s, struct conn *c)
{
	redisAsyncContext *ac = s->master.port == 0 ? redisAsyncConnectUnix(s->master.host)
						    : redisAsyncConnect(s->master.host, s->master.port);
	if (ac == NULL || ac->err) {
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_retry(s);
		return;
	}
	ac->data = c;
	c->ac = ac;
	redisLibeventAttach(ac, s->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* Pipelined behind the connection: they run before any check. */
	const struct mw_redis_conf *rc = &s->conf;
	if (rc->password != NULL && rc->password[0] != '\0') {
		int user = rc->username != NULL && rc->username[0] != '\0';
		const char *argv[] = { "AUTH", user ? rc->username : rc->password, rc->password };
		redisAsyncCommandArgv(ac, on_ignore, NULL, user ? 3 : 2, argv, NULL);
	}
	if (rc->database != 0) {
		char db[24];
		snprintf(db, sizeof(db), "%llu", rc->database);
		const char *argv[] = { "SELECT", db };
		redisAsyncCommandArgv(ac, on_ignore, NULL, 2, argv, NULL);
	}
	if (rc->servers.sentinel) {
		const char *argv[] = { "ROLE" };
		redisAsyncCommandArgv(ac, on_role, NULL, 1, argv, NULL);
	}
	/* After a restart or failover the script cache is empty. */
	const char *load1[] = { "SCRIPT", "LOAD", GCRA_LUA };
	const char *load2[] = { "SCRIPT", "LOAD", REFUND_LUA };
	redisAsyncCommandArgv(ac, on_ignore, NULL, 3, load1, NULL);
	redisAsyncCommandArgv(ac, on_ignore, NULL, 3, load2, NULL);
}

struct discovery {
	struct pr_store *s;
	struct mw_redis_conf conf;
	struct mw_redis_addr master;
	int ok;
	char error[256];
};

/* Sentinel queries block: they run on a thread of their own and report
   through a pipe, so the event loop never waits for them. */
static void *discover_thread(void *arg)
{
	struct discovery *d = arg;
	struct mw_buf err = MW_BUF_INIT;
	d->ok = mw_redis_discover_master(&d->conf, &d->master, &err) == 0;
	snprintf(d->error, sizeof(d->error), "%s", mw_buf_str(&err));
	mw_buf_free(&err);
	ssize_t w = write(d->s->wake[1], &d, sizeof(d));
	(void)w;
	return NULL;
}

static void connect_all(struct pr_store *s)
{
	for (int i = 0; i < s->nconns; i++)
		if (s->conns[i].ac == NULL)
			open_conn(s, &s->conns[i]);
}

static void on_discovered(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct pr_store *s = arg;
	struct discovery *d;
	if (read(fd, &d, sizeof(d)) != (ssize_t)sizeof(d))
		return;
	s->discovering = 0;
	if (d->ok) {
		if (!s->have_master || strcmp(d->master.host, s->master.host) != 0 || d->master.port != s->master.port)
			mw_msg_info("Sentinel: master %s is at %s:%d", s->conf.servers.master_name, d->master.host,
				    d->master.port);
		s->master = d->master;
		s->have_master = 1;
		connect_all(s);
	} else {
		mw_msg_warn("Sentinel: %s", d->error);
		schedule_retry(s);
	}
	free(d);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pr_store *s = arg;
	if (!s->conf.servers.sentinel) {
		s->master = s->conf.servers.addrs[0];
		s->have_master = 1;
	}
	if (!s->have_master) {
		if (s->discovering)
			return;
		struct discovery *d = mw_xcalloc(1, sizeof(*d));
		d->s = s;
		d->conf = s->conf;
		pthread_t tid;
		s->discovering = 1;
		if (pthread_create(&tid, NULL, discover_thread, d) != 0) {
			s->discovering = 0;
			free(d);
			schedule_retry(s);
			return;
		}
		pthread_detach(tid);
		return;
	}
	connect_all(s);
}

/* The SHA1 Redis names a script by (EVALSHA): computed here, so no
   blocking SCRIPT LOAD is needed before the first check. */
static void sha1_hex(const char *text, char out[41])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)text, strlen(text), md);
	for (int i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void free_conf_strings(struct pr_store *s)
{
	explicit_bzero(s->conf.password, strlen(s->conf.password));
	free(s->conf.password);
	free(s->conf.username);
}

struct pr_store *pr_store_redis(struct event_base *base, const struct mw_redis_conf *conf, int connections,
				const char *prefix, struct mw_buf *err)
{
	struct pr_store *s = mw_xcalloc(1, sizeof(*s));
	s->redis = 1;
	s->base = base;
	/* our own copy of the strings: a reload frees the configuration the
	   caller passed, and the store lives on (store changes wait for a
	   restart), reconnecting with these after every Redis outage */
	s->conf = *conf;
	s->conf.username = mw_xstrdup(conf->username != NULL ? conf->username : "");
	s->conf.password = mw_xstrdup(conf->password != NULL ? conf->password : "");
	s->timeout_ms = conf->timeout_ms;
	snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
	s->nconns = connections > 0 ? connections : 1;
	s->conns = mw_xcalloc((size_t)s->nconns, sizeof(*s->conns));
	for (int i = 0; i < s->nconns; i++)
		s->conns[i].s = s;
	sha1_hex(GCRA_LUA, s->gcra_sha);
	sha1_hex(REFUND_LUA, s->refund_sha);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		mw_buf_printf(err, "pipe: %s", strerror(errno));
		free_conf_strings(s);
		free(s->conns);
		free(s);
		return NULL;
	}
	s->wake_ev = event_new(base, s->wake[0], EV_READ | EV_PERSIST, on_discovered, s);
	event_add(s->wake_ev, NULL);
	s->retry = evtimer_new(base, on_retry, s);
	on_retry(-1, 0, s); /* connect now, without waiting for the first check */
	return s;
}

void pr_store_free(struct pr_store *s)
{
	if (s == NULL)
		return;
	if (s->redis) {
		for (int i = 0; i < s->nconns; i++) {
			if (s->conns[i].ac != NULL) {
				s->conns[i].ac->data = NULL;
				redisAsyncFree(s->conns[i].ac);
			}
		}
		free(s->conns);
		if (s->retry != NULL)
			event_free(s->retry);
		if (s->wake_ev != NULL)
			event_free(s->wake_ev);
		close(s->wake[0]);
		close(s->wake[1]);
		free_conf_strings(s);
	}
	pr_memstore_free(s->mem);
	free(s);
}

/* ------------------------------------------------------------ running checks */

/* argv for EVALSHA: sha, 1, key, cost, commit, period_us, limit... */
struct argv_buf {
	const char *argv[8 + 2 * PR_MAX_WINDOWS];
	char num[2 + 2 * PR_MAX_WINDOWS][32];
	struct mw_buf key;
};

static int build_argv(struct pr_store *s, const char *sha, const struct pr_check *c, int refund,
		      struct argv_buf *a)
{
	int n = 0, k = 0;
	mw_buf_init(&a->key, 1024);
	mw_buf_printf(&a->key, "%s{%s}", s->prefix, c->key);
	a->argv[n++] = "EVALSHA";
	a->argv[n++] = sha;
	a->argv[n++] = "1";
	a->argv[n++] = mw_buf_str(&a->key);
	snprintf(a->num[k], sizeof(a->num[k]), "%llu", c->cost);
	a->argv[n++] = a->num[k++];
	if (!refund) {
		snprintf(a->num[k], sizeof(a->num[k]), "%d", c->commit);
		a->argv[n++] = a->num[k++];
	}
	for (int w = 0; w < c->nwindows; w++) {
		snprintf(a->num[k], sizeof(a->num[k]), "%llu", c->windows[w].period_ms * 1000ULL);
		a->argv[n++] = a->num[k++];
		snprintf(a->num[k], sizeof(a->num[k]), "%llu", c->windows[w].limit);
		a->argv[n++] = a->num[k++];
	}
	return n;
}

struct batch {
	struct pr_store *s;
	pr_store_cb *cb;
	void *ctx;
	int n;
	int pending;        /* replies still to come */
	int done;           /* the callback ran (results or timeout) */
	int failed;
	struct event *timer;
	struct conn *conn;
	struct pr_gcra_result results[PR_MAX_CHECKS];
	struct pr_check checks[];  /* n of them: kept to retry after NOSCRIPT */
};

static void batch_finish(struct batch *b)
{
	if (!b->done) {
		b->done = 1;
		evtimer_del(b->timer);
		if (b->failed)
			b->s->stats.errors++;
		b->cb(b->ctx, b->failed ? PR_STORE_UNAVAILABLE : PR_STORE_OK, b->results, b->n);
	}
	if (b->pending == 0) {
		event_free(b->timer);
		free(b);
	}
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct batch *b = arg;
	b->failed = 1;
	mw_msg_warn("Redis did not answer within %llu ms", b->s->timeout_ms);
	/* a stuck connection: drop it (its callbacks fire) and reconnect */
	struct conn *c = b->conn;
	batch_finish(b);
	if (c != NULL && c->ac != NULL && c->up)
		redisAsyncDisconnect(c->ac);
}

struct reply_slot {
	struct batch *b;
	int i;
};

static void on_gcra_reply(redisAsyncContext *ac, void *reply, void *priv);

/* The script cache was emptied under us (SCRIPT FLUSH, a restart we did not
   see as a disconnect): EVAL sends the script itself, and caches it again
   for the EVALSHAs that follow. */
static int resend_with_eval(redisAsyncContext *ac, struct batch *b, int i)
{
	struct argv_buf a;
	int argc = build_argv(b->s, b->s->gcra_sha, &b->checks[i], 0, &a);
	a.argv[0] = "EVAL";
	a.argv[1] = GCRA_LUA;
	struct reply_slot *slot = mw_xmalloc(sizeof(*slot));
	slot->b = b;
	slot->i = i;
	int rc = redisAsyncCommandArgv(ac, on_gcra_reply, slot, argc, a.argv, NULL);
	mw_buf_free(&a.key);
	if (rc != REDIS_OK) {
		free(slot);
		return -1;
	}
	b->pending++;
	const char *load[] = { "SCRIPT", "LOAD", REFUND_LUA };
	redisAsyncCommandArgv(ac, on_ignore, NULL, 3, load, NULL);
	return 0;
}

static void on_gcra_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct reply_slot *slot = priv;
	struct batch *b = slot->b;
	redisReply *r = reply;
	int i = slot->i;
	free(slot);
	b->pending--;
	if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !b->done &&
	    ac != NULL && b->conn->ac == ac && resend_with_eval(ac, b, i) == 0)
		return;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
		if (r != NULL && r->type == REDIS_REPLY_ERROR)
			mw_msg_error("Redis: %s", r->str);
		b->failed = 1;
	} else if (!b->done) {
		struct pr_gcra_result *res = &b->results[i];
		memset(res, 0, sizeof(*res));
		res->allowed = r->element[0]->integer != 0;
		res->retry_ms = r->element[1]->integer;
		res->denied_window = (int)r->element[2]->integer;
		for (size_t k = 3; k < r->elements && k - 3 < PR_MAX_WINDOWS; k++)
			res->used[k - 3] = r->element[k]->integer > 0 ? (unsigned long long)r->element[k]->integer : 0;
	}
	if (b->pending == 0 || b->done)
		batch_finish(b);
}

static struct conn *pick_conn(struct pr_store *s)
{
	for (int k = 0; k < s->nconns; k++) {
		struct conn *c = &s->conns[(s->rr++) % (unsigned)s->nconns];
		if (c->up && c->ac != NULL)
			return c;
	}
	return NULL;
}

void pr_store_run(struct pr_store *s, const struct pr_check *checks, int n, pr_store_cb *cb, void *ctx)
{
	struct pr_gcra_result results[PR_MAX_CHECKS];
	if (n > PR_MAX_CHECKS)
		n = PR_MAX_CHECKS;
	s->stats.queries++;
	if (!s->redis) {
		double now = pr_now_us();
		for (int i = 0; i < n; i++)
			pr_memstore_check(s->mem, checks[i].key, checks[i].windows, checks[i].nwindows, checks[i].cost,
					  checks[i].commit, now, &results[i]);
		cb(ctx, PR_STORE_OK, results, n);
		return;
	}
	struct conn *c = pick_conn(s);
	if (c == NULL) {
		s->stats.errors++;
		schedule_retry(s);
		cb(ctx, PR_STORE_UNAVAILABLE, NULL, 0);
		return;
	}
	struct batch *b = mw_xcalloc(1, sizeof(*b) + (size_t)n * sizeof(b->checks[0]));
	memcpy(b->checks, checks, (size_t)n * sizeof(b->checks[0]));
	b->s = s;
	b->cb = cb;
	b->ctx = ctx;
	b->n = n;
	b->conn = c;
	b->timer = evtimer_new(s->base, on_timeout, b);
	struct timeval tv = { (time_t)(s->timeout_ms / 1000), (suseconds_t)(s->timeout_ms % 1000) * 1000 };
	evtimer_add(b->timer, &tv);
	for (int i = 0; i < n; i++) {
		struct argv_buf a;
		int argc = build_argv(s, s->gcra_sha, &checks[i], 0, &a);
		struct reply_slot *slot = mw_xmalloc(sizeof(*slot));
		slot->b = b;
		slot->i = i;
		b->pending++;
		if (redisAsyncCommandArgv(c->ac, on_gcra_reply, slot, argc, a.argv, NULL) != REDIS_OK) {
			b->pending--;
			b->failed = 1;
			free(slot);
		}
		mw_buf_free(&a.key);
	}
	if (b->pending == 0)
		batch_finish(b);
	else
		/* Send now rather than on the next write event: one loop round
		   less per request (+35% with 8 lock-step clients). Requests that
		   arrive while Redis's socket is full still queue and go together. */
		redisAsyncHandleWrite(c->ac);
}

void pr_store_refund(struct pr_store *s, const struct pr_check *check)
{
	if (!s->redis) {
		pr_memstore_refund(s->mem, check->key, check->windows, check->nwindows, check->cost);
		return;
	}
	struct conn *c = pick_conn(s);
	if (c == NULL)
		return; /* lost with the connection: the counter over-counts by one request at worst */
	struct argv_buf a;
	int argc = build_argv(s, s->refund_sha, check, 1, &a);
	redisAsyncCommandArgv(c->ac, on_ignore, NULL, argc, a.argv, NULL);
	mw_buf_free(&a.key);
}

/* ------------------------------------------------------------ admin */

struct listing {
	double now;
	struct mw_buf *out;
	const char *match;  /* exact key, or prefix with '*' */
	struct top { char key[256]; unsigned long long used; } *top;
	int ntop, maxtop;
	size_t removed;
};

static int key_matches(const char *key, const char *pattern)
{
	size_t pl = strlen(pattern);
	if (pl > 0 && pattern[pl - 1] == '*')
		return strncmp(key, pattern, pl - 1) == 0;
	return strcmp(key, pattern) == 0;
}

static void add_top(struct listing *l, const char *key, unsigned long long used)
{
	if (used == 0)
		return;
	int pos = l->ntop;
	if (l->ntop == l->maxtop) {
		if (used <= l->top[l->ntop - 1].used)
			return;
		pos = l->ntop - 1;
	} else {
		l->ntop++;
	}
	while (pos > 0 && l->top[pos - 1].used < used) {
		l->top[pos] = l->top[pos - 1];
		pos--;
	}
	snprintf(l->top[pos].key, sizeof(l->top[pos].key), "%s", key);
	l->top[pos].used = used;
}

static void each_entry(const char *key, const double *tat, const struct pr_window *w, int nw, void *ctx)
{
	struct listing *l = ctx;
	if (l->top != NULL) {
		add_top(l, key, nw > 0 ? pr_gcra_used(l->now, tat[0], &w[0]) : 0);
		return;
	}
	if (!key_matches(key, l->match))
		return;
	mw_buf_printf(l->out, "%s", key);
	for (int i = 0; i < nw; i++)
		mw_buf_printf(l->out, " %llu/%llu", pr_gcra_used(l->now, tat[i], &w[i]), w[i].limit);
	mw_buf_putc(l->out, '\n');
}

/* Walks the Redis counters (SCAN), calling fn like the memory store does. */
static int redis_each(struct pr_store *s, const char *match_key,
		      void (*fn)(const char *key, const double *tat, const struct pr_window *w, int nw, void *ctx),
		      void *ctx, int delete_them, size_t *deleted, struct mw_buf *err)
{
	struct mw_buf err2 = MW_BUF_INIT;
	redisContext *rc = mw_redis_connect(&s->conf, &err2);
	if (rc == NULL) {
		mw_buf_printf(err, "Redis: %s", mw_buf_str(&err2));
		mw_buf_free(&err2);
		return -1;
	}
	struct mw_buf pattern = MW_BUF_INIT;
	mw_buf_printf(&pattern, "%s{%s}", s->prefix, match_key != NULL ? match_key : "*");
	if (match_key != NULL && pattern.data[mw_buf_len(&pattern) - 2] == '*') {
		/* "rule:al*" -> "prefix{rule:al*" : keep the glob open */
		mw_buf_truncate(&pattern, mw_buf_len(&pattern) - 1);
		mw_buf_putc(&pattern, '*');
	}
	char cursor[32] = "0";
	int visited = 0, ret = 0;
	size_t plen = strlen(s->prefix);
	do {
		const char *argv[] = { "SCAN", cursor, "MATCH", mw_buf_str(&pattern), "COUNT", "1000" };
		redisReply *r = redisCommandArgv(rc, 6, argv, NULL);
		if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			mw_buf_printf(err, "Redis SCAN: %s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
			if (r != NULL)
				freeReplyObject(r);
			ret = -1;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		redisReply *keys = r->element[1];
		double now = pr_now_us();
		for (size_t i = 0; i < keys->elements && visited < 100000; i++, visited++) {
			const char *full = keys->element[i]->str;
			if (delete_them) {
				const char *dargv[] = { "DEL", full };
				redisReply *d = redisCommandArgv(rc, 2, dargv, NULL);
				if (d != NULL && d->type == REDIS_REPLY_INTEGER)
					*deleted += (size_t)d->integer;
				if (d != NULL)
					freeReplyObject(d);
				continue;
			}
			const char *hargv[] = { "HGETALL", full };
			redisReply *h = redisCommandArgv(rc, 2, hargv, NULL);
			double tat[PR_MAX_WINDOWS];
			struct pr_window w[PR_MAX_WINDOWS];
			int nw = 0;
			for (size_t k = 0; h != NULL && h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2) {
				const char *f = h->element[k]->str;
				if (f[0] != 't' || nw >= PR_MAX_WINDOWS)
					continue;
				unsigned long long period_us, limit = 0;
				if (mw_parse_uint(f + 1, UINT64_MAX, &period_us) < 0)
					continue;
				for (size_t m = 0; m + 1 < h->elements; m += 2)
					if (h->element[m]->str[0] == 'l' && strcmp(h->element[m]->str + 1, f + 1) == 0)
						mw_parse_uint(h->element[m + 1]->str, UINT64_MAX, &limit);
				if (limit == 0)
					continue;
				w[nw].period_ms = period_us / 1000;
				w[nw].limit = limit;
				tat[nw++] = strtod(h->element[k + 1]->str, NULL);
			}
			if (h != NULL)
				freeReplyObject(h);
			/* strip prefix and braces: "prefix{rule:value}" -> "rule:value" */
			char key[512];
			snprintf(key, sizeof(key), "%s", full + plen + 1);
			size_t kl = strlen(key);
			if (kl > 0 && key[kl - 1] == '}')
				key[kl - 1] = '\0';
			struct listing *l = ctx;
			l->now = now;
			fn(key, tat, w, nw, ctx);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0 && visited < 100000);
	mw_buf_free(&pattern);
	mw_buf_free(&err2);
	redisFree(rc);
	return ret;
}

int pr_store_reset(struct pr_store *s, const char *key, size_t *count, struct mw_buf *err)
{
	*count = 0;
	if (!s->redis) {
		size_t kl = strlen(key);
		if (kl > 0 && key[kl - 1] == '*') {
			char prefix[512];
			snprintf(prefix, sizeof(prefix), "%.*s", (int)(kl - 1), key);
			*count = pr_memstore_reset(s->mem, prefix, 1);
		} else {
			*count = pr_memstore_reset(s->mem, key, 0);
		}
		return 0;
	}
	struct listing l = { 0 };
	return redis_each(s, key, each_entry, &l, 1, count, err);
}

int pr_store_usage(struct pr_store *s, const char *key, const struct pr_window *w, int nw,
		   struct mw_buf *out, struct mw_buf *err)
{
	(void)w;
	(void)nw;
	struct listing l = { .now = pr_now_us(), .out = out, .match = key };
	if (!s->redis) {
		pr_memstore_each(s->mem, l.now, each_entry, &l);
		return 0;
	}
	size_t dummy = 0;
	return redis_each(s, key, each_entry, &l, 0, &dummy, err);
}

int pr_store_top(struct pr_store *s, int n, struct mw_buf *out, struct mw_buf *err)
{
	struct listing l = { .now = pr_now_us(), .out = out, .match = "*" };
	if (n < 1)
		n = 1;
	if (n > 1000)
		n = 1000;
	l.top = mw_xcalloc((size_t)n, sizeof(*l.top));
	l.maxtop = n;
	int ret = 0;
	if (!s->redis) {
		pr_memstore_each(s->mem, l.now, each_entry, &l);
	} else {
		size_t dummy = 0;
		ret = redis_each(s, NULL, each_entry, &l, 0, &dummy, err);
	}
	for (int i = 0; i < l.ntop; i++)
		mw_buf_printf(out, "%s %llu\n", l.top[i].key, l.top[i].used);
	free(l.top);
	return ret;
}
