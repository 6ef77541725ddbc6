#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "decide.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "server.h"
#include "sock.h"
#include "store.h"
#include "strnum.h"

/* Answers held for one client at most. Postfix reads each answer before
   it sends the next request: past this, the client pipelines without
   reading, and nothing more is read from it until it does (or until
   client_write_timeout drops it). */
#define MAX_OUTPUT (64 * 1024)
/* Control and metrics connections at once. */
#define MAX_SIDE 64
/* File descriptors kept beyond max_connections: standard streams,
   listeners, the event loop's own, logging, a few control connections;
   Redis connections are added. */
#define FD_MARGIN 32
/* When accept() fails for want of descriptors or memory, accepting
   pauses this long, and is tried again. */
#define ACCEPT_PAUSE_MS 250

/* Latency buckets for the metrics, microseconds. */
static const unsigned long long buckets_us[] = { 100, 250, 500, 1000, 2500, 5000, 10000, 50000 };
static struct mw_histogram latency = { .bounds_us = buckets_us,
				       .nbounds = sizeof(buckets_us) / sizeof(buckets_us[0]) };

struct counters {
	unsigned long long requests, dunno, defer, reject, hold, exempt, bad_requests;
	unsigned long long store_errors, store_fallbacks, connections, connections_total;
};

struct server {
	struct event_base *base;
	struct pr_conf *conf;
	struct pr_conf *retired[8]; /* older configurations, maybe still in use */
	const char *conf_path;
	struct pr_store *store;
	struct pr_store *local; /* on_store_error = local */
	int fds[3];             /* policy, control, metrics (-1: none) */
	struct evconnlistener *listeners[3];
	struct counters n;
	int store_down;         /* Redis is failing: logged once, then every minute */
	time_t store_down_logged;
	int stopping;
	struct event *stop_timer;
	unsigned long long max_connections; /* max_connections, within the fd limit */
	unsigned long long side_connections;
	int accept_paused[3];   /* a listener paused after accept() failed */
	struct event *accept_timer;
	unsigned long long accept_failures; /* since accepting last worked */
};

static struct server srv = { .fds = { -1, -1, -1 } };

/*
 * A policy connection. It is freed only when its last reference goes: the
 * open connection holds one, a pending store answer one, and each handler
 * one while it runs, so closing it (a bad request, EOF, a timeout) from
 * deep inside a handler never frees it under a caller that still uses it.
 */
struct client {
	struct bufferevent *bev;
	struct pr_request req;
	struct pr_conf *conf;  /* the configuration of the request in flight */
	struct pr_plan plan;
	struct timespec t0;
	int refs;
	int busy;              /* a request waits for its store answer */
	int closing;           /* closed: nothing more is read or written */
	int in_input;          /* process_input() is running: it reads the next request itself */
	int throttled;         /* reading paused until the client reads its answers */
	int from_local;        /* answered by the local fallback store */
};

/* ------------------------------------------------------------ binding */

static int bind_one(const char *spec_text, const struct mw_daemon_conf *d, int unix_socket_perms,
		    struct mw_buf *err)
{
	struct mw_sockspec spec;
	if (mw_sock_parse(spec_text, &spec, err) < 0)
		return -1;
	struct mw_sock_perms perms = mw_daemon_sock_perms(d);
	/* the control socket is for root and the daemon's user only */
	struct mw_sock_perms ctl = { d->user, "", 0600 };
	return mw_sock_listen(&spec, unix_socket_perms ? &perms : &ctl, 1024, err);
}

int pr_server_bind(struct pr_conf *conf, struct mw_buf *err)
{
	srv.fds[0] = bind_one(conf->s.socket, &conf->s.daemon, 1, err);
	if (srv.fds[0] < 0)
		return -1;
	if (conf->s.control_socket[0] != '\0') {
		srv.fds[1] = bind_one(conf->s.control_socket, &conf->s.daemon, 0, err);
		if (srv.fds[1] < 0) {
			mw_buf_puts(err, " (control_socket)");
			return -1;
		}
	}
	if (conf->s.metrics_listen[0] != '\0') {
		srv.fds[2] = bind_one(conf->s.metrics_listen, &conf->s.daemon, 1, err);
		if (srv.fds[2] < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ requests */

static void client_hold(struct client *c)
{
	c->refs++;
}

static void client_release(struct client *c)
{
	if (--c->refs > 0)
		return;
	srv.n.connections--;
	bufferevent_free(c->bev);
	pr_request_free(&c->req);
	free(c);
}

/* Ends the connection; the client is freed when the last reference goes. */
static void client_close(struct client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	/* answers to the requests before a bad one: one try, never blocking
	   (a bufferevent's output is frozen for others than itself: peeked) */
	struct evbuffer_iovec vec[8];
	int nvec = evbuffer_peek(bufferevent_get_output(c->bev), -1, NULL, vec, 8);
	if (nvec > 0) {
		struct iovec iov[8];
		for (int i = 0; i < nvec && i < 8; i++) {
			iov[i].iov_base = vec[i].iov_base;
			iov[i].iov_len = vec[i].iov_len;
		}
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)(nvec < 8 ? nvec : 8) };
		(void)sendmsg(bufferevent_getfd(c->bev), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	client_release(c); /* the open connection's reference */
}

static void record_latency(const struct client *c)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	unsigned long long us = (unsigned long long)(t1.tv_sec - c->t0.tv_sec) * 1000000ULL +
				(unsigned long long)((t1.tv_nsec - c->t0.tv_nsec) / 1000);
	mw_histogram_observe(&latency, us);
}

static void process_input(struct client *c);

/* The caller holds a reference to c. */
static void send_reply(struct client *c, const char *reply)
{
	record_latency(c);
	if (!c->closing)
		bufferevent_write(c->bev, reply, strlen(reply));
	pr_request_reset(&c->req);
	c->busy = 0;
	if (c->closing || c->in_input)
		return; /* process_input() goes on with the next request itself */
	if (srv.stopping) {
		bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
		return;
	}
	process_input(c); /* an answer from Redis: pipelined requests already read */
}

static void log_store_trouble(void)
{
	time_t now = time(NULL);
	if (!srv.store_down) {
		srv.store_down = 1;
		srv.store_down_logged = now;
		const char *what[] = { "counting in memory on this host until it is back (on_store_error = local)",
				       "ALLOWING mail without limits until it is back (on_store_error = allow)",
				       "DEFERRING all counted mail until it is back (on_store_error = defer)" };
		mw_msg_error("Redis is not answering: %s", what[srv.conf->s.on_store_error]);
	} else if (now - srv.store_down_logged >= 60) {
		srv.store_down_logged = now;
		mw_msg_error("Redis still not answering (%llu requests affected so far)", srv.n.store_errors);
	}
}

static void answer(struct client *c, const struct pr_gcra_result *results)
{
	int refund[PR_MAX_CHECKS];
	struct mw_buf reply = MW_BUF_INIT, log = MW_BUF_INIT;
	enum pr_verdict v = pr_decide_reply(c->conf, &c->plan, results, refund, &reply, &log);
	for (int i = 0; i < c->plan.n; i++)
		if (refund[i])
			pr_store_refund(c->from_local ? srv.local : srv.store, &c->plan.checks[i]);
	switch (v) {
	case PR_VERDICT_DUNNO: srv.n.dunno++; break;
	case PR_VERDICT_DEFER: srv.n.defer++; break;
	case PR_VERDICT_REJECT: srv.n.reject++; break;
	case PR_VERDICT_HOLD: srv.n.hold++; break;
	}
	if (v != PR_VERDICT_DUNNO) {
		mw_msg_info("%s: client=%s sasl_username=%s sender=<%s> %s",
			    c->req.queue_id != NULL && c->req.queue_id[0] ? c->req.queue_id : "NOQUEUE",
			    c->req.client_address != NULL ? c->req.client_address : "",
			    c->req.sasl_username != NULL ? c->req.sasl_username : "",
			    c->req.sender != NULL ? c->req.sender : "", mw_buf_str(&log));
	}
	send_reply(c, mw_buf_str(&reply));
	mw_buf_free(&reply);
	mw_buf_free(&log);
}

static void on_local(void *ctx, enum pr_store_status st, const struct pr_gcra_result *results, int n)
{
	(void)st;
	(void)n;
	struct client *c = ctx;
	c->from_local = 1;
	answer(c, results);
	client_release(c); /* the pending answer's reference */
}

static void on_store(void *ctx, enum pr_store_status st, const struct pr_gcra_result *results, int n)
{
	struct client *c = ctx;
	(void)n;
	if (st == PR_STORE_OK) {
		if (srv.store_down) {
			srv.store_down = 0;
			mw_msg_info("Redis answers again: counters are shared again");
		}
		answer(c, results);
		client_release(c); /* the pending answer's reference */
		return;
	}
	srv.n.store_errors++;
	log_store_trouble();
	switch (c->conf->s.on_store_error) {
	case PR_ON_ERROR_LOCAL:
		srv.n.store_fallbacks++;
		/* The same checks against this host's memory: limits still hold
		   per MTA while Redis is away. */
		client_hold(c); /* for on_local */
		pr_store_run(srv.local, c->plan.checks, c->plan.n, on_local, c);
		break;
	case PR_ON_ERROR_ALLOW:
		srv.n.dunno++;
		send_reply(c, "action=DUNNO\n\n");
		break;
	case PR_ON_ERROR_DEFER:
	default:
		srv.n.defer++;
		send_reply(c, "action=DEFER_IF_PERMIT 4.7.1 Sending rate limits cannot be checked right now, "
			      "try again later\n\n");
		break;
	}
	client_release(c); /* the pending answer's reference */
}

static void handle_request(struct client *c)
{
	srv.n.requests++;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	c->busy = 1;
	c->from_local = 0;
	c->conf = srv.conf;
	if (c->req.request != NULL && strcmp(c->req.request, "smtpd_access_policy") != 0) {
		srv.n.dunno++;
		send_reply(c, "action=DUNNO\n\n");
		return;
	}
	pr_decide_checks(c->conf, &c->req, &c->plan);
	if (c->plan.n == 0) {
		if (c->plan.exempt)
			srv.n.exempt++;
		srv.n.dunno++;
		send_reply(c, "action=DUNNO\n\n");
		return;
	}
	/* While Redis is known to be down, on_store_error = local answers
	   from memory at once (the store keeps reconnecting meanwhile). */
	struct pr_store_stats st;
	pr_store_get_stats(srv.store, &st);
	if (pr_store_is_redis(srv.store) && st.connected == 0 && c->conf->s.on_store_error == PR_ON_ERROR_LOCAL) {
		srv.n.store_errors++;
		srv.n.store_fallbacks++;
		log_store_trouble();
		client_hold(c); /* for on_local */
		pr_store_run(srv.local, c->plan.checks, c->plan.n, on_local, c);
		return;
	}
	client_hold(c); /* for on_store */
	pr_store_run(srv.store, c->plan.checks, c->plan.n, on_store, c);
}

/*
 * Answers the requests read so far, in order, one at a time: a loop, so
 * that a store answering at once (the memory store) does not recurse once
 * per pipelined request.
 */
static void process_input(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev), *out = bufferevent_get_output(c->bev);
	client_hold(c);
	c->in_input = 1;
	while (!c->busy && !c->closing && evbuffer_get_length(in) > 0) {
		if (evbuffer_get_length(out) >= MAX_OUTPUT) {
			/* on_write reads on once the client has read its answers */
			c->throttled = 1;
			bufferevent_disable(c->bev, EV_READ);
			break;
		}
		size_t len = evbuffer_get_length(in), used = 0;
		if (len > 65536)
			len = 65536;
		const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		struct mw_buf err = MW_BUF_INIT;
		enum pr_parse_status st = pr_request_feed(&c->req, data, len, &used, &err);
		evbuffer_drain(in, used);
		if (st == PR_BAD) {
			srv.n.bad_requests++;
			mw_msg_warn("closing a policy connection: %s", mw_buf_str(&err));
			mw_buf_free(&err);
			client_close(c);
			break;
		}
		mw_buf_free(&err);
		if (st == PR_NEED_MORE)
			break;
		handle_request(c);
	}
	c->in_input = 0;
	client_release(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct client *c = arg;
	/* A client sending far ahead of our answers is not Postfix. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 1024 * 1024) {
		srv.n.bad_requests++;
		mw_msg_warn("closing a policy connection: more than 1 MB sent ahead of the answers");
		client_close(c);
		return;
	}
	process_input(c);
}

/* The output buffer drained (libevent calls this when it is empty). */
static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct client *c = arg;
	if (!c->throttled)
		return;
	c->throttled = 0;
	bufferevent_enable(c->bev, EV_READ);
	process_input(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct client *c = arg;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		srv.n.bad_requests++;
		mw_msg_warn("closing a policy connection that has not read its answers for %llu s "
			    "(%zu bytes unread; client_write_timeout)", srv.conf->s.client_write_timeout_ms / 1000,
			    evbuffer_get_length(bufferevent_get_output(c->bev)));
	} else if (what & BEV_EVENT_TIMEOUT) {
		mw_msg_info("closing an idle policy connection");
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		client_close(c); /* a pending store answer still holds it */
}

/* ------------------------------------------------------------ accepting */

static int listener_index(const struct evconnlistener *l)
{
	for (int i = 0; i < 3; i++)
		if (srv.listeners[i] == l)
			return i;
	return 0;
}

static void on_accept_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	for (int i = 0; i < 3; i++) {
		if (srv.accept_paused[i] && srv.listeners[i] != NULL && !srv.stopping)
			evconnlistener_enable(srv.listeners[i]);
		srv.accept_paused[i] = 0;
	}
}

/*
 * accept() failed (EMFILE, ENFILE, ENOBUFS...): the pending connection
 * stays in the backlog and the listener would wake us at once, forever.
 * Pause it, try again a little later, and log once until it works again.
 */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)arg;
	int e = EVUTIL_SOCKET_ERROR();
	if (srv.accept_failures++ == 0) {
		struct rlimit rl = { 0, 0 };
		(void)getrlimit(RLIMIT_NOFILE, &rl);
		mw_msg_error("cannot accept connections: %s (%llu policy connections open, file descriptor "
			     "limit %llu): pausing accepts, trying again every %d ms", evutil_socket_error_to_string(e),
			     srv.n.connections, (unsigned long long)rl.rlim_cur, ACCEPT_PAUSE_MS);
	}
	int i = listener_index(l);
	evconnlistener_disable(l);
	srv.accept_paused[i] = 1;
	if (srv.accept_timer != NULL && !evtimer_pending(srv.accept_timer, NULL)) {
		struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
		evtimer_add(srv.accept_timer, &tv);
	}
}

static void accept_worked(void)
{
	if (srv.accept_failures > 0) {
		mw_msg_info("accepting connections again (%llu accepts had failed)", srv.accept_failures);
		srv.accept_failures = 0;
	}
}

/*
 * max_connections within the file descriptor limit: the soft limit is
 * raised as far as the hard one allows, and what still does not fit is
 * clamped, with a warning.
 */
static void fit_fd_limit(const struct pr_conf *conf)
{
	unsigned long long margin = FD_MARGIN + conf->s.redis_connections;
	unsigned long long want = conf->s.max_connections + margin;
	srv.max_connections = conf->s.max_connections;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	if (rl.rlim_cur < want && rl.rlim_max > rl.rlim_cur) {
		struct rlimit more = rl;
		more.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			rl = more;
	}
	if (rl.rlim_cur >= want)
		return;
	srv.max_connections = rl.rlim_cur > margin + 1 ? rl.rlim_cur - margin : 1;
	mw_msg_warn("max_connections = %llu needs %llu file descriptors, but the limit is %llu "
		    "(ulimit -n, systemd LimitNOFILE=): accepting at most %llu policy connections",
		    conf->s.max_connections, want, (unsigned long long)rl.rlim_cur, srv.max_connections);
}

static void client_new(evutil_socket_t fd)
{
	struct client *c = mw_xcalloc(1, sizeof(*c));
	c->refs = 1; /* the open connection */
	c->bev = bufferevent_socket_new(srv.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	pr_request_init(&c->req);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	struct timeval rtv = { (time_t)(srv.conf->s.client_timeout_ms / 1000),
			       (suseconds_t)(srv.conf->s.client_timeout_ms % 1000) * 1000 };
	struct timeval wtv = { (time_t)(srv.conf->s.client_write_timeout_ms / 1000),
			       (suseconds_t)(srv.conf->s.client_write_timeout_ms % 1000) * 1000 };
	bufferevent_set_timeouts(c->bev, &rtv, &wtv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	srv.n.connections++;
	srv.n.connections_total++;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	accept_worked();
	if (srv.stopping || srv.n.connections >= srv.max_connections) {
		evutil_closesocket(fd);
		return;
	}
	client_new(fd);
}

/* ------------------------------------------------------------ control and metrics */

static void node_metrics(void *ctx, const char *node, int slots, int up, const struct pr_store_node_stats *st)
{
	struct mw_buf *out = ctx;
	mw_buf_printf(out,
		      "policyd_rate_redis_node_up{node=\"%s\"} %d\n"
		      "policyd_rate_redis_node_slots{node=\"%s\"} %d\n"
		      "policyd_rate_redis_node_requests_total{node=\"%s\"} %llu\n"
		      "policyd_rate_redis_node_redirections_total{node=\"%s\"} %llu\n"
		      "policyd_rate_redis_node_errors_total{node=\"%s\"} %llu\n"
		      "policyd_rate_redis_node_reconnects_total{node=\"%s\"} %llu\n",
		      node, up, node, slots, node, st->requests, node, st->redirections, node, st->errors, node,
		      st->reconnects);
}

static void metrics_text(struct mw_buf *out)
{
	struct pr_store_stats st;
	pr_store_get_stats(srv.store, &st);
	mw_buf_printf(out,
		      "# HELP policyd_rate_requests_total Policy requests answered.\n"
		      "# TYPE policyd_rate_requests_total counter\n"
		      "policyd_rate_requests_total %llu\n"
		      "# HELP policyd_rate_actions_total Replies by action.\n"
		      "# TYPE policyd_rate_actions_total counter\n"
		      "policyd_rate_actions_total{action=\"dunno\"} %llu\n"
		      "policyd_rate_actions_total{action=\"defer\"} %llu\n"
		      "policyd_rate_actions_total{action=\"reject\"} %llu\n"
		      "policyd_rate_actions_total{action=\"hold\"} %llu\n"
		      "policyd_rate_exempt_total %llu\n"
		      "policyd_rate_bad_requests_total %llu\n"
		      "# HELP policyd_rate_store_errors_total Requests Redis could not answer.\n"
		      "# TYPE policyd_rate_store_errors_total counter\n"
		      "policyd_rate_store_errors_total %llu\n"
		      "policyd_rate_store_fallbacks_total %llu\n"
		      "policyd_rate_store_up %d\n"
		      "policyd_rate_connections %llu\n"
		      "policyd_rate_connections_total %llu\n",
		      srv.n.requests, srv.n.dunno, srv.n.defer, srv.n.reject, srv.n.hold, srv.n.exempt,
		      srv.n.bad_requests, srv.n.store_errors, srv.n.store_fallbacks,
		      pr_store_is_redis(srv.store) ? (st.connected > 0 && !srv.store_down) : 1,
		      srv.n.connections, srv.n.connections_total);
	mw_metrics_histogram(out, "policyd_rate_latency_seconds", "Time from request to answer.", &latency);
	if (pr_store_is_redis(srv.store)) {
		mw_buf_puts(out, "# HELP policyd_rate_redis_node_requests_total Commands sent to each Redis node "
				 "(a cluster: each master).\n"
				 "# TYPE policyd_rate_redis_node_requests_total counter\n");
		pr_store_nodes(srv.store, node_metrics, out);
	}
}

/* One command per control connection:
     usage RULE:VALUE | reset RULE:VALUE[*] | where RULE:VALUE | top [N] | stats */
static void run_control(const char *line, struct mw_buf *out)
{
	struct mw_buf err = MW_BUF_INIT;
	char cmd[16] = "", arg[512] = "";
	size_t cl = strcspn(line, " \r\n");
	if (cl >= sizeof(cmd)) {
		mw_buf_puts(out, "ERROR unknown command\n");
		return;
	}
	memcpy(cmd, line, cl);
	const char *a = line + cl;
	while (*a == ' ')
		a++;
	size_t al = strcspn(a, "\r\n");
	if (al >= sizeof(arg))
		al = sizeof(arg) - 1;
	memcpy(arg, a, al);
	arg[al] = '\0';
	if (strcmp(cmd, "stats") == 0) {
		metrics_text(out);
	} else if ((strcmp(cmd, "usage") == 0 || strcmp(cmd, "reset") == 0 || strcmp(cmd, "where") == 0) &&
		   arg[0] != '\0') {
		/* Counters are named RULE:KIND:VALUE; RULE:VALUE means every kind. */
		const char *colon = strchr(arg, ':');
		int typed = colon == NULL;
		for (int k = 0; k <= PR_KEY_GLOBAL && !typed; k++) {
			size_t kl = strlen(pr_key_kind_name((enum pr_key_kind)k));
			typed = strncmp(colon + 1, pr_key_kind_name((enum pr_key_kind)k), kl) == 0 && colon[1 + kl] == ':';
		}
		size_t total = 0;
		int failed = 0;
		for (int k = typed ? -1 : 0; k <= (typed ? -1 : PR_KEY_GLOBAL) && !failed; k++) {
			char key[sizeof(arg) + 32];
			if (k < 0)
				snprintf(key, sizeof(key), "%s", arg);
			else
				snprintf(key, sizeof(key), "%.*s:%s:%s", (int)(colon - arg), arg,
					 pr_key_kind_name((enum pr_key_kind)k), colon + 1);
			size_t count = 0;
			if (cmd[0] == 'w') {
				failed = pr_store_where(srv.store, key, out, &err) < 0;
			} else if (cmd[0] == 'u') {
				failed = pr_store_usage(srv.store, key, NULL, 0, out, &err) < 0;
			} else {
				failed = pr_store_reset(srv.store, key, &count, &err) < 0;
				total += count;
				if (srv.local != NULL)
					pr_store_reset(srv.local, key, &count, &err);
			}
		}
		if (failed)
			mw_buf_printf(out, "ERROR %s\n", mw_buf_str(&err));
		else if (cmd[0] == 'r')
			mw_buf_printf(out, "OK %zu counters removed\n", total);
		else if (mw_buf_len(out) == 0)
			mw_buf_puts(out, "(nothing counted)\n");
		if (cmd[0] == 'r')
			mw_msg_info("control: reset %s", arg);
	} else if (strcmp(cmd, "top") == 0) {
		unsigned long long n = 20;
		if (arg[0] != '\0' && mw_parse_uint(arg, 1000, &n) < 0)
			n = 20;
		if (pr_store_top(srv.store, (int)n, out, &err) < 0)
			mw_buf_printf(out, "ERROR %s\n", mw_buf_str(&err));
	} else {
		mw_buf_puts(out, "ERROR commands: usage RULE:VALUE, reset RULE:VALUE[*], where RULE:VALUE, top [N], stats\n");
	}
	mw_buf_free(&err);
}

struct side {
	int metrics; /* HTTP, not the control protocol */
};

static void side_free(struct bufferevent *bev, struct side *s)
{
	srv.side_connections--;
	free(s);
	bufferevent_free(bev);
}

static void on_side_read(struct bufferevent *bev, void *arg)
{
	struct side *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (evbuffer_get_length(in) > 8192) {
		side_free(bev, s);
		return;
	}
	struct mw_buf out = MW_BUF_INIT, body = MW_BUF_INIT;
	if (s->metrics) {
		/* any request: wait for its end, answer the metrics */
		size_t inlen = evbuffer_get_length(in);
		if (!mw_metrics_request_complete((const char *)evbuffer_pullup(in, -1), inlen))
			return;
		metrics_text(&body);
		mw_metrics_http_answer(&body, &out);
	} else {
		char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_ANY);
		if (line == NULL)
			return;
		run_control(line, &out);
		free(line);
	}
	bufferevent_write(bev, out.data, mw_buf_len(&out));
	bufferevent_disable(bev, EV_READ);
	mw_buf_free(&out);
	mw_buf_free(&body);
}

static void on_side_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && !(bufferevent_get_enabled(bev) & EV_READ))
		side_free(bev, arg);
}

static void on_side_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	side_free(bev, arg);
}

static void on_side_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	accept_worked();
	if (srv.side_connections >= MAX_SIDE) {
		evutil_closesocket(fd);
		return;
	}
	srv.side_connections++;
	struct side *s = mw_xcalloc(1, sizeof(*s));
	s->metrics = arg != NULL;
	struct bufferevent *bev = bufferevent_socket_new(srv.base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, on_side_read, on_side_written, on_side_event, s);
	struct timeval tv = { 10, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------ signals */

static void reload_conf(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	struct mw_buf err = MW_BUF_INIT;
	struct pr_conf *fresh = pr_conf_load(srv.conf_path, &err);
	if (fresh == NULL) {
		mw_msg_error("reload failed, keeping the running configuration: %s", mw_buf_str(&err));
		mw_buf_free(&err);
		return;
	}
	if (fresh->s.store != srv.conf->s.store || strcmp(fresh->s.socket, srv.conf->s.socket) != 0)
		mw_msg_warn("store and socket changes take effect at the next restart");
	/*
	 * Requests in flight keep pointers into the old configuration: it is
	 * retired, and freed on a later reload once nothing can use it (one
	 * store round trip is far shorter than the time between reloads; the
	 * last eight are kept to be safe).
	 */
	if (srv.retired[7] != NULL)
		pr_conf_free(srv.retired[7]);
	memmove(&srv.retired[1], &srv.retired[0], 7 * sizeof(srv.retired[0]));
	srv.retired[0] = srv.conf;
	srv.conf = fresh;
	fit_fd_limit(fresh);
	mw_log_apply_conf(&fresh->s.log);
	mw_msg_info("configuration reloaded from %s: %d rules, %zu overrides", srv.conf_path, fresh->s.nrules,
		    fresh->overrides.n);
	mw_buf_free(&err);
}

/* systemd (Type=notify) shows the unit reloading until READY=1 */
static void on_reload(evutil_socket_t fd, short what, void *arg)
{
	mw_notify("RELOADING=1");
	reload_conf(fd, what, arg);
	mw_notify("READY=1");
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (srv.n.connections == 0 || srv.stopping > 50) /* all gone, or 5 s passed */
		event_base_loopexit(srv.base, NULL);
	srv.stopping++;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (srv.stopping)
		return;
	mw_notify("STOPPING=1");
	mw_msg_info("stopping: answering requests in flight");
	srv.stopping = 1;
	for (int i = 0; i < 3; i++)
		if (srv.listeners[i] != NULL)
			evconnlistener_disable(srv.listeners[i]);
	struct timeval tv = { 0, 100000 };
	srv.stop_timer = event_new(srv.base, -1, EV_PERSIST, on_stop_timer, NULL);
	event_add(srv.stop_timer, &tv);
}

void pr_server_init(struct event_base *base, struct pr_conf *conf, const char *conf_path)
{
	struct mw_buf err = MW_BUF_INIT;
	srv.base = base;
	srv.conf = conf;
	srv.conf_path = conf_path;
	if (conf->s.store == PR_STORE_REDIS) {
		srv.store = pr_store_redis(srv.base, &conf->s.redis, (int)conf->s.redis_connections,
					   conf->s.redis_prefix, &err);
		if (srv.store == NULL)
			mw_msg_fatal("%s", mw_buf_str(&err));
		if (conf->s.on_store_error == PR_ON_ERROR_LOCAL)
			srv.local = pr_store_memory((size_t)conf->s.memory_max_entries);
	} else {
		srv.store = pr_store_memory((size_t)conf->s.memory_max_entries);
	}
	fit_fd_limit(conf);
	srv.accept_timer = evtimer_new(srv.base, on_accept_timer, NULL);
	mw_buf_free(&err);
}

void pr_server_adopt(int fd)
{
	client_new(fd);
}

unsigned long long pr_server_connections(void)
{
	return srv.n.connections;
}

int pr_server_run(struct pr_conf *conf, const char *conf_path)
{
	evthread_use_pthreads(); /* Sentinel discovery reports from a thread */
	/* The changelist folds the write-interest on/off of each reply (ours
	   and hiredis's) into at most one epoll_ctl per loop iteration. */
	struct event_config *ec = event_config_new();
	if (ec != NULL)
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	srv.base = ec != NULL ? event_base_new_with_config(ec) : NULL;
	if (ec != NULL)
		event_config_free(ec);
	if (srv.base == NULL)
		srv.base = event_base_new();
	if (srv.base == NULL) {
		mw_msg_error("cannot create the event loop");
		return -1;
	}
	pr_server_init(srv.base, conf, conf_path);
	srv.listeners[0] = evconnlistener_new(srv.base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, srv.fds[0]);
	if (srv.fds[1] >= 0)
		srv.listeners[1] = evconnlistener_new(srv.base, on_side_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, srv.fds[1]);
	if (srv.fds[2] >= 0)
		srv.listeners[2] = evconnlistener_new(srv.base, on_side_accept, &srv, LEV_OPT_CLOSE_ON_FREE, -1, srv.fds[2]);
	for (int i = 0; i < 3; i++)
		if (srv.listeners[i] != NULL)
			evconnlistener_set_error_cb(srv.listeners[i], on_accept_error);
	struct event *hup = evsignal_new(srv.base, SIGHUP, on_reload, NULL);
	struct event *term = evsignal_new(srv.base, SIGTERM, on_stop, NULL);
	struct event *intr = evsignal_new(srv.base, SIGINT, on_stop, NULL);
	event_add(hup, NULL);
	event_add(term, NULL);
	event_add(intr, NULL);
	signal(SIGPIPE, SIG_IGN);
	mw_msg_info("listening on %s, %d rules, store %s%s", conf->s.socket, conf->s.nrules,
		    conf->s.store == PR_STORE_REDIS ? "redis" : "memory",
		    conf->s.store == PR_STORE_REDIS ? (conf->s.on_store_error == PR_ON_ERROR_LOCAL ?
						       ", on_store_error = local (count in memory while Redis is away)" :
						       conf->s.on_store_error == PR_ON_ERROR_ALLOW ?
						       ", on_store_error = allow (NO limits while Redis is away)" :
						       ", on_store_error = defer (defer mail while Redis is away)") : "");
	mw_notify("READY=1");
	event_base_dispatch(srv.base);
	mw_msg_info("stopped after %llu requests", srv.n.requests);
	for (int i = 0; i < 3; i++)
		if (srv.listeners[i] != NULL)
			evconnlistener_free(srv.listeners[i]);
	event_free(hup);
	event_free(term);
	event_free(intr);
	if (srv.stop_timer != NULL)
		event_free(srv.stop_timer);
	if (srv.accept_timer != NULL)
		event_free(srv.accept_timer);
	pr_store_free(srv.store);
	pr_store_free(srv.local);
	for (int i = 0; i < 8; i++)
		pr_conf_free(srv.retired[i]);
	event_base_free(srv.base);
	return 0;
}
