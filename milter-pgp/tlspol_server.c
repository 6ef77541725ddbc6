#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "log.h"
#include "notify.h"
#include "sock.h"
#include "tlspol_netstring.h"
#include "tlspol_server.h"

/* A configuration and the lookups still using it (loop thread only). */
struct confref {
	struct tlspol_conf *conf;
	int refs;
};

struct client;

/* One lookup for one destination, shared by every request that asks for
   it while it runs. */
struct job {
	struct job *next;       /* in the pending map bucket (loop thread) */
	struct job *qnext;      /* in the work or done queue */
	char *dest;
	int refresh;            /* a background MTA-STS refresh: no waiters, not in the pending map */
	struct confref *conf;
	struct tlspol_verdict v;
	struct client **waiters;
	size_t nwaiters, cap;
};

/* Plain non-blocking reads and writes on the socket, no bufferevent: a
   cached answer costs one read and one write (a bufferevent added an
   ioctl and two epoll_ctl calls per request, most of the time spent). */
#define CLIENT_IN_MAX (TLSPOL_NETSTRING_MAX + 16)
struct client {
	evutil_socket_t fd;
	struct event *rev;   /* EV_READ | EV_PERSIST, timeout client_timeout */
	struct event *wev;   /* added only while out holds unsent bytes */
	struct mw_buf out;   /* what a write could not take at once */
	size_t out_off;      /* sent part of out */
	size_t inlen;
	int busy;   /* a request is waiting for its job */
	int dead;   /* the connection closed while busy: freed when the job ends */
	int reading; /* rev added: off while in[] is full behind a busy request */
	char in[CLIENT_IN_MAX];
};

#define NBUCKETS 1024

/* Recent answers (loop thread only): a destination asked again within
   answer_cache_ttl is answered without a lookup. TEMP is never kept. */
struct answer {
	struct answer *next;
	char *dest;
	char *reply;   /* the netstring, ready to write */
	size_t replylen;
	struct timespec expires; /* CLOCK_MONOTONIC */
};
#define ANSWER_BUCKETS 16384
#define ANSWER_MAX 200000

static struct {
	struct event_base *base;
	struct timeval client_tv_val;
	const struct timeval *client_tv; /* client_timeout, for event_add */
	struct confref *conf;
	const char *conf_path;
	struct tlspol_env *env;
	int fd;
	struct evconnlistener *listener;
	unsigned long long connections;
	struct job *pending[NBUCKETS];
	struct answer *answers[ANSWER_BUCKETS];
	size_t nanswers;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job *work_head, *work_tail, *done_head;
	struct event *done_ev;
	struct event *refresh_ev; /* the periodic background refresh of MTA-STS policies */
	pthread_t *threads;
	size_t nthreads;
	int stopping;
} srv = { .fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

int tlspol_server_bind(struct tlspol_conf *conf, struct mw_buf *err)
{
	struct mw_sockspec spec;
	if (mw_sock_parse(conf->s.socket, &spec, err) < 0)
		return -1;
	const struct mw_daemon_conf *d = &conf->s.daemon;
	struct mw_sock_perms perms = mw_daemon_sock_perms(d);
	srv.fd = mw_sock_listen(&spec, &perms, 1024, err);
	return srv.fd < 0 ? -1 : 0;
}

static void confref_put(struct confref *r)
{
	if (--r->refs == 0) {
		tlspol_conf_free(r->conf);
		free(r);
	}
}

static unsigned bucket(const char *s)
{
	unsigned h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h % NBUCKETS;
}

/* ------------------------------------------------------------ answers */

static unsigned answer_bucket(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % ANSWER_BUCKETS;
}

static void answers_clear(void)
{
	for (size_t i = 0; i < ANSWER_BUCKETS; i++) {
		while (srv.answers[i] != NULL) {
			struct answer *a = srv.answers[i];
			srv.answers[i] = a->next;
			free(a->dest);
			free(a->reply);
			free(a);
		}
	}
	srv.nanswers = 0;
}

static int before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The kept reply for dest, or NULL (an expired one is dropped). */
static const struct answer *answer_get(const char *dest)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (struct answer **pp = &srv.answers[answer_bucket(dest)]; *pp != NULL; pp = &(*pp)->next) {
		struct answer *a = *pp;
		if (strcmp(a->dest, dest) != 0)
			continue;
		if (before(&now, &a->expires))
			return a;
		*pp = a->next;
		free(a->dest);
		free(a->reply);
		free(a);
		srv.nanswers--;
		return NULL;
	}
	return NULL;
}

static void answer_put(const char *dest, const char *reply)
{
	unsigned long long ttl = srv.conf->conf->s.answer_cache_ttl_ms;
	if (ttl == 0)
		return;
	if (srv.nanswers >= ANSWER_MAX)
		answers_clear(); /* rare: simpler than an LRU, and costs one lookup each */
	struct mw_buf ns = MW_BUF_INIT;
	tlspol_ns_encode(&ns, reply, strlen(reply));
	struct answer *a = calloc(1, sizeof(*a));
	if (a == NULL || (a->dest = strdup(dest)) == NULL || (a->reply = strdup(mw_buf_str(&ns))) == NULL) {
		if (a != NULL)
			free(a->dest);
		free(a);
		mw_buf_free(&ns);
		return;
	}
	a->replylen = mw_buf_len(&ns);
	mw_buf_free(&ns);
	clock_gettime(CLOCK_MONOTONIC, &a->expires);
	a->expires.tv_sec += (time_t)(ttl / 1000);
	a->expires.tv_nsec += (long)(ttl % 1000) * 1000000L;
	if (a->expires.tv_nsec >= 1000000000L) {
		a->expires.tv_sec++;
		a->expires.tv_nsec -= 1000000000L;
	}
	unsigned b = answer_bucket(dest);
	a->next = srv.answers[b];
	srv.answers[b] = a;
	srv.nanswers++;
}

/* ------------------------------------------------------------ workers */

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&srv.mu);
		while (srv.work_head == NULL && !srv.stopping)
			pthread_cond_wait(&srv.cond, &srv.mu);
		if (srv.work_head == NULL) {
			pthread_mutex_unlock(&srv.mu);
			return NULL;
		}
		struct job *j = srv.work_head;
		srv.work_head = j->qnext;
		if (srv.work_head == NULL)
			srv.work_tail = NULL;
		int stopping = srv.stopping;
		pthread_mutex_unlock(&srv.mu);

		/* a refresh nobody waits for is dropped when stopping: no fetch delays the stop */
		if (!j->refresh)
			tlspol_lookup(srv.env, j->conf->conf, j->dest, &j->v);
		else if (!stopping)
			tlspol_refresh(srv.env, j->conf->conf, j->dest, &j->v);

		pthread_mutex_lock(&srv.mu);
		j->qnext = srv.done_head;
		srv.done_head = j;
		pthread_mutex_unlock(&srv.mu);
		event_active(srv.done_ev, EV_READ, 0);
	}
}

/* ------------------------------------------------------------ clients */

static void client_free(struct client *c)
{
	srv.connections--;
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	mw_buf_free(&c->out);
	free(c);
}

static void close_client(struct client *c)
{
	if (c->busy) {
		c->dead = 1; /* the job still points at it */
		event_del(c->rev);
		event_del(c->wev);
		evutil_closesocket(c->fd);
		c->fd = -1;
		return;
	}
	client_free(c);
}

static void process_input(struct client *c);

/* Writes what it can now; the rest waits for the socket (wev). -1 when the
   connection is gone (the caller closes it). */
static int flush_out(struct client *c)
{
	while (c->out_off < mw_buf_len(&c->out)) {
		ssize_t w = send(c->fd, mw_buf_str(&c->out) + c->out_off, mw_buf_len(&c->out) - c->out_off,
				 MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->wev, srv.client_tv);
				return 0;
			}
			return -1;
		}
		c->out_off += (size_t)w;
	}
	mw_buf_reset(&c->out);
	c->out_off = 0;
	event_del(c->wev);
	return 0;
}

/* Sends one netstring; 0, or -1 when the connection is gone (not freed). */
static int send_raw(struct client *c, const char *ns, size_t len)
{
	if (c->fd < 0)
		return -1;
	if (mw_buf_len(&c->out) == 0) {
		/* the usual case: the whole reply in one send, nothing buffered */
		ssize_t w = send(c->fd, ns, len, MSG_NOSIGNAL);
		if (w == (ssize_t)len)
			return 0;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (w > 0) {
			ns += w;
			len -= (size_t)w;
		}
	}
	mw_buf_append(&c->out, ns, len);
	return flush_out(c);
}

static int send_reply(struct client *c, const char *payload, size_t len)
{
	struct mw_buf out = MW_BUF_INIT;
	tlspol_ns_encode(&out, payload, len);
	int rc = send_raw(c, mw_buf_str(&out), mw_buf_len(&out));
	mw_buf_free(&out);
	return rc;
}

static void queue_job(struct job *j)
{
	pthread_mutex_lock(&srv.mu);
	if (srv.work_tail != NULL)
		srv.work_tail->qnext = j;
	else
		srv.work_head = j;
	srv.work_tail = j;
	pthread_cond_signal(&srv.cond);
	pthread_mutex_unlock(&srv.mu);
}

static void answer_drop(const char *dest)
{
	for (struct answer **pp = &srv.answers[answer_bucket(dest)]; *pp != NULL; pp = &(*pp)->next) {
		struct answer *a = *pp;
		if (strcmp(a->dest, dest) == 0) {
			*pp = a->next;
			free(a->dest);
			free(a->reply);
			free(a);
			srv.nanswers--;
			return;
		}
	}
}

/* Fetches dest's MTA-STS policy again in a worker; nobody waits for it. */
static void queue_refresh(const char *dest)
{
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->dest = strdup(dest)) == NULL) {
		free(j);
		mw_msg_error("out of memory: no background refresh for %s", dest);
		return;
	}
	j->refresh = 1;
	tlspol_verdict_init(&j->v);
	j->conf = srv.conf;
	srv.conf->refs++;
	queue_job(j);
}

static void refresh_done(struct job *j)
{
	/* a new policy: the next lookup answers from it, not from a kept answer */
	if (j->v.answer == TLSPOL_ANSWER_OK)
		answer_drop(j->dest);
	confref_put(j->conf);
	tlspol_verdict_free(&j->v);
	free(j->dest);
	free(j);
}

static void job_done(struct job *j)
{
	if (j->refresh) {
		refresh_done(j);
		return;
	}
	if (j->v.refresh)
		queue_refresh(j->dest);
	struct mw_buf reply = MW_BUF_INIT;
	tlspol_verdict_reply(&j->v, &reply);
	mw_msg_info("%s: %s; reason: %s%s", j->dest, mw_buf_str(&reply), mw_buf_str(&j->v.reason),
		    j->nwaiters > 1 ? " (shared by concurrent requests)" : "");
	/* only from the configuration in force: a reload may have changed the answer */
	if (j->v.answer != TLSPOL_ANSWER_TEMP && j->conf == srv.conf)
		answer_put(j->dest, mw_buf_str(&reply));
	/* out of the map first: a waiter's next request starts a new job */
	struct job **pp = &srv.pending[bucket(j->dest)];
	while (*pp != j)
		pp = &(*pp)->next;
	*pp = j->next;
	for (size_t i = 0; i < j->nwaiters; i++) {
		struct client *c = j->waiters[i];
		c->busy = 0;
		if (c->dead || send_reply(c, mw_buf_str(&reply), mw_buf_len(&reply)) < 0) {
			client_free(c);
			j->waiters[i] = NULL;
			continue;
		}
	}
	/* pipelined requests, after every waiter got its answer */
	for (size_t i = 0; i < j->nwaiters; i++)
		if (j->waiters[i] != NULL && !j->waiters[i]->busy)
			process_input(j->waiters[i]);
	mw_buf_free(&reply);
	confref_put(j->conf);
	tlspol_verdict_free(&j->v);
	free(j->waiters);
	free(j->dest);
	free(j);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pthread_mutex_lock(&srv.mu);
	struct job *list = srv.done_head;
	srv.done_head = NULL;
	pthread_mutex_unlock(&srv.mu);
	while (list != NULL) {
		struct job *next = list->qnext;
		job_done(list);
		list = next;
	}
}

static int add_waiter(struct job *j, struct client *c)
{
	if (j->nwaiters == j->cap) {
		size_t ncap = j->cap ? j->cap * 2 : 4;
		void *nw = realloc(j->waiters, ncap * sizeof(*j->waiters));
		if (nw == NULL)
			return -1;
		j->waiters = nw;
		j->cap = ncap;
	}
	j->waiters[j->nwaiters++] = c;
	return 0;
}

/* 0, or -1 when the connection is gone (the caller closes it). */
static int submit(struct client *c, const char *dest)
{
	/* the policy file and next hops in brackets: answered here, never
	   queued behind lookups that wait on DNS or HTTPS */
	struct tlspol_verdict local;
	tlspol_verdict_init(&local);
	if (tlspol_lookup_local(srv.conf->conf, dest, &local)) {
		struct mw_buf reply = MW_BUF_INIT;
		tlspol_verdict_reply(&local, &reply);
		mw_msg_info("%s: %s; reason: %s", dest, mw_buf_str(&reply), mw_buf_str(&local.reason));
		int rc = send_reply(c, mw_buf_str(&reply), mw_buf_len(&reply));
		mw_buf_free(&reply);
		tlspol_verdict_free(&local);
		return rc;
	}
	tlspol_verdict_free(&local);
	const struct answer *kept = answer_get(dest);
	if (kept != NULL) {
		/* the payload of "LEN:PAYLOAD," for the log */
		const char *payload = strchr(kept->reply, ':') + 1;
		mw_msg_info("%s: %.*s; reason: the same answer within answer_cache_ttl", dest,
			    (int)(kept->replylen - (size_t)(payload - kept->reply) - 1), payload);
		return send_raw(c, kept->reply, kept->replylen);
	}
	unsigned b = bucket(dest);
	for (struct job *j = srv.pending[b]; j != NULL; j = j->next) {
		if (strcmp(j->dest, dest) == 0) {
			if (add_waiter(j, c) < 0)
				goto oom;
			c->busy = 1;
			return 0;
		}
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL || (j->dest = strdup(dest)) == NULL || add_waiter(j, c) < 0) {
		if (j != NULL) {
			free(j->dest);
			free(j->waiters);
		}
		free(j);
		goto oom;
	}
	tlspol_verdict_init(&j->v);
	j->conf = srv.conf;
	srv.conf->refs++;
	j->next = srv.pending[b];
	srv.pending[b] = j;
	c->busy = 1;
	queue_job(j);
	return 0;
oom:
	mw_msg_error("out of memory");
	return send_reply(c, "TEMP out of memory", 18);
}

/* Answers the requests already read, one at a time (pipelining keeps
   order). May free c (a connection that is gone). */
static void process_input(struct client *c)
{
	struct mw_buf dest = MW_BUF_INIT;
	size_t off = 0;
	int gone = 0;
	while (!c->busy && off < c->inlen) {
		const char *data = c->in + off;
		size_t avail = c->inlen - off;
		const char *payload, *name, *key;
		size_t plen, consumed, nlen, klen;
		enum tlspol_ns_status st = tlspol_ns_decode(data, avail, TLSPOL_NETSTRING_MAX, &payload, &plen, &consumed);
		if (st == TLSPOL_NS_MORE)
			break;
		if (st != TLSPOL_NS_OK) {
			struct mw_buf what = MW_BUF_INIT;
			mw_buf_append_printable(&what, data, avail, 60);
			mw_msg_warn("%s request, connection closed: %s",
				    st == TLSPOL_NS_TOOLONG ? "oversized" : "malformed", mw_buf_str(&what));
			mw_buf_free(&what);
			gone = 1;
			break;
		}
		off += consumed;
		struct confref *conf = srv.conf;
		int rc;
		if (tlspol_ns_split_request(payload, plen, &name, &nlen, &key, &klen) < 0)
			rc = send_reply(c, "PERM malformed request", 22);
		else if (nlen != strlen(conf->conf->s.map_name) || memcmp(name, conf->conf->s.map_name, nlen) != 0)
			rc = send_reply(c, "PERM unknown map name", 21);
		else if (tlspol_dest_normalize(key, klen, &dest) < 0)
			rc = send_reply(c, "PERM not a domain or next hop", 29);
		else
			rc = submit(c, mw_buf_str(&dest));
		if (rc < 0) {
			gone = 1;
			break;
		}
	}
	mw_buf_free(&dest);
	if (gone) {
		close_client(c);
		return;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	/* a full buffer behind a busy request waits for its answer; a full
	   buffer otherwise cannot be (a netstring that long is refused above) */
	if (!c->reading && c->inlen < sizeof(c->in)) {
		event_add(c->rev, srv.client_tv);
		c->reading = 1;
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	if (what & EV_TIMEOUT) {
		mw_msg_debug("client idle past client_timeout: closed");
		close_client(c);
		return;
	}
	ssize_t r;
	do
		r = recv(fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (r <= 0) {
		close_client(c); /* EOF or an error */
		return;
	}
	c->inlen += (size_t)r;
	if (c->inlen == sizeof(c->in)) {
		event_del(c->rev);
		c->reading = 0;
	}
	if (!c->busy)
		process_input(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	struct client *c = arg;
	if ((what & EV_TIMEOUT) || flush_out(c) < 0)
		close_client(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	if (srv.connections >= srv.conf->conf->s.max_connections) {
		mw_msg_warn("max_connections (%llu) reached: connection refused", srv.conf->conf->s.max_connections);
		evutil_closesocket(fd);
		return;
	}
	struct client *c = malloc(sizeof(*c));
	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	memset(c, 0, offsetof(struct client, in));
	c->fd = fd;
	c->rev = event_new(srv.base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(srv.base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (c->rev == NULL || c->wev == NULL || evutil_make_socket_nonblocking(fd) < 0) {
		srv.connections++;
		client_free(c);
		return;
	}
	srv.connections++;
	event_add(c->rev, srv.client_tv);
	c->reading = 1;
}

/* ------------------------------------------------------------ signals */

/* The policies due for a refresh (RFC 8461 10.2), a batch per tick. */
static void on_refresh_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	const struct tlspol_conf *conf = srv.conf->conf;
	if (!conf->s.mta_sts)
		return;
	char due[64][256];
	size_t n = tlspol_cache_take_due(srv.env->cache, time(NULL), (time_t)(conf->s.mta_sts_refresh_ms / 1000),
					 tlspol_refresh_retry(conf), due, sizeof(due) / sizeof(due[0]));
	for (size_t i = 0; i < n; i++)
		queue_refresh(due[i]);
}

/* Every tenth of mta_sts_refresh, at least every minute, at most every second. */
static void set_refresh_tick(const struct tlspol_conf *c)
{
	unsigned long long ms = c->s.mta_sts_refresh_ms / 10;
	ms = ms < 1000 ? 1000 : ms > 60000 ? 60000 : ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(srv.refresh_ev, &tv);
}

/* New connections get client_timeout from the configuration in force. */
static void set_client_timeout(const struct tlspol_conf *c)
{
	unsigned long long ms = c->s.client_timeout_ms;
	srv.client_tv_val.tv_sec = (time_t)(ms / 1000);
	srv.client_tv_val.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	srv.client_tv = &srv.client_tv_val;
}

static void reload_conf(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	struct mw_buf err = MW_BUF_INIT;
	struct tlspol_conf *c = tlspol_conf_load(srv.conf_path, &err);
	if (c == NULL) {
		mw_msg_error("reload refused, the running configuration stays: %s", mw_buf_str(&err));
		mw_buf_free(&err);
		return;
	}
	mw_buf_free(&err);
	struct confref *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		tlspol_conf_free(c);
		mw_msg_error("reload: out of memory");
		return;
	}
	r->conf = c;
	r->refs = 1;
	mw_log_apply_conf(&c->s.log);
	set_client_timeout(c);
	set_refresh_tick(c);
	confref_put(srv.conf);
	srv.conf = r;
	answers_clear();
	mw_msg_info("configuration reloaded (%zu policy_file entries)", c->policy.n);
}

/* systemd (Type=notify) shows the unit reloading until READY=1 */
static void on_reload(evutil_socket_t fd, short what, void *arg)
{
	mw_notify("RELOADING=1");
	reload_conf(fd, what, arg);
	mw_notify("READY=1");
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	mw_notify("STOPPING=1");
	mw_msg_info("stopping");
	event_base_loopexit(srv.base, NULL);
}

int tlspol_server_run(struct tlspol_conf *conf, const char *conf_path, struct tlspol_env *env)
{
	evthread_use_pthreads();
	srv.base = event_base_new();
	if (srv.base == NULL)
		mw_msg_fatal("libevent: cannot create the event loop");
	srv.conf = calloc(1, sizeof(*srv.conf));
	if (srv.conf == NULL)
		mw_msg_fatal("out of memory");
	srv.conf->conf = conf;
	srv.conf->refs = 1;
	srv.conf_path = conf_path;
	srv.env = env;
	set_client_timeout(conf);
	srv.done_ev = event_new(srv.base, -1, 0, on_done, NULL);
	srv.refresh_ev = event_new(srv.base, -1, EV_PERSIST, on_refresh_tick, NULL);
	srv.listener = evconnlistener_new(srv.base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, srv.fd);
	struct event *hup = evsignal_new(srv.base, SIGHUP, on_reload, NULL);
	struct event *term = evsignal_new(srv.base, SIGTERM, on_stop, NULL);
	struct event *intr = evsignal_new(srv.base, SIGINT, on_stop, NULL);
	if (srv.done_ev == NULL || srv.refresh_ev == NULL || srv.listener == NULL || hup == NULL || term == NULL || intr == NULL)
		mw_msg_fatal("libevent: cannot set up the event loop");
	set_refresh_tick(conf);
	event_add(hup, NULL);
	event_add(term, NULL);
	event_add(intr, NULL);
	signal(SIGPIPE, SIG_IGN);

	srv.nthreads = conf->s.workers;
	srv.threads = calloc(srv.nthreads, sizeof(*srv.threads));
	if (srv.threads == NULL)
		mw_msg_fatal("out of memory");
	/* the workers must not take the signals the loop handles */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (size_t i = 0; i < srv.nthreads; i++)
		if (pthread_create(&srv.threads[i], NULL, worker, NULL) != 0)
			mw_msg_fatal("cannot start worker threads");
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	mw_msg_info("ready: %s, map %s, %zu policy_file entries, %zu cached MTA-STS policies, %zu workers",
		    conf->s.socket, conf->s.map_name, conf->policy.n, tlspol_cache_count(env->cache), srv.nthreads);
	mw_notify("READY=1");
	event_base_dispatch(srv.base);

	pthread_mutex_lock(&srv.mu);
	srv.stopping = 1;
	pthread_cond_broadcast(&srv.cond);
	pthread_mutex_unlock(&srv.mu);
	/* lookups in progress finish (bounded by dns_timeout and mta_sts_timeout) */
	for (size_t i = 0; i < srv.nthreads; i++)
		pthread_join(srv.threads[i], NULL);
	free(srv.threads);
	on_done(-1, 0, NULL); /* the jobs the workers finished last */
	evconnlistener_free(srv.listener);
	event_free(hup);
	event_free(term);
	event_free(intr);
	event_free(srv.done_ev);
	event_free(srv.refresh_ev);
	event_base_free(srv.base);
	answers_clear();
	confref_put(srv.conf);
	return 0;
}
