#include "config.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis.h"
#include "strnum.h"

/* "host:port" or "[v6]:port" into addr. */
static int parse_addr(const char *s, size_t n, struct mw_redis_addr *addr, struct mw_buf *err)
{
	const char *host = s, *colon;
	size_t hl;
	unsigned long long port;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (close == NULL || (size_t)(close - s) + 1 >= n || close[1] != ':') {
			mw_buf_printf(err, "expected [address]:port in \"%.*s\"", (int)n, s);
			return -1;
		}
		host = s + 1;
		hl = (size_t)(close - s) - 1;
		colon = close + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < n; i++)
			if (s[i] == ':')
				colon = s + i;
		if (colon == NULL) {
			mw_buf_printf(err, "expected host:port in \"%.*s\"", (int)n, s);
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	size_t pl = n - (size_t)(colon + 1 - s);
	if (hl == 0 || hl >= sizeof(addr->host)) {
		mw_buf_printf(err, "bad host in \"%.*s\"", (int)n, s);
		return -1;
	}
	for (size_t i = 0; i < hl; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '_')) {
			mw_buf_printf(err, "bad host in \"%.*s\"", (int)n, s);
			return -1;
		}
	}
	if (mw_parse_uint_n(colon + 1, pl, 65535, &port) < 0 || port == 0) {
		mw_buf_printf(err, "bad port in \"%.*s\"", (int)n, s);
		return -1;
	}
	memcpy(addr->host, host, hl);
	addr->host[hl] = '\0';
	addr->port = (int)port;
	return 0;
}

int mw_redis_servers_parse(const char *value, struct mw_redis_servers *out, struct mw_buf *err)
{
	struct mw_redis_servers s;
	memset(&s, 0, sizeof(s));

	if (strncmp(value, "unix:", 5) == 0) {
		size_t n = strlen(value + 5);
		if (n == 0 || value[5] != '/' || n >= sizeof(s.addrs[0].host)) {
			mw_buf_puts(err, "expected unix:/absolute/path");
			return -1;
		}
		memcpy(s.addrs[0].host, value + 5, n + 1);
		s.naddrs = 1;
		*out = s;
		return 0;
	}
	const char *list = value;
	if (strncmp(value, "sentinel:", 9) == 0) {
		const char *at = strchr(value + 9, '@');
		size_t nl = at != NULL ? (size_t)(at - value - 9) : 0;
		if (at == NULL || nl == 0 || nl >= sizeof(s.master_name)) {
			mw_buf_puts(err, "expected sentinel:MASTERNAME@host:port[,host:port...]");
			return -1;
		}
		memcpy(s.master_name, value + 9, nl);
		s.master_name[nl] = '\0';
		s.sentinel = 1;
		list = at + 1;
	}
	const char *p = list;
	while (*p != '\0') {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (n == 0)
			break;
		if (s.naddrs == MW_REDIS_MAX_SENTINELS) {
			mw_buf_printf(err, "at most %d addresses", MW_REDIS_MAX_SENTINELS);
			return -1;
		}
		if (parse_addr(p, n, &s.addrs[s.naddrs], err) < 0)
			return -1;
		s.naddrs++;
		p += n;
	}
	if (s.naddrs == 0) {
		mw_buf_puts(err, "expected host:port, unix:/path or sentinel:MASTERNAME@host:port,...");
		return -1;
	}
	*out = s;
	return 0;
}

const char *const mw_redis_mode_names[] = { "auto", "single", "sentinel", "cluster", NULL };

int mw_redis_conf_check(struct mw_redis_conf *conf, struct mw_buf *err)
{
	struct mw_redis_servers *s = &conf->servers;
	if (conf->mode == MW_REDIS_AUTO)
		conf->mode = s->sentinel ? MW_REDIS_SENTINEL : MW_REDIS_SINGLE;
	switch (conf->mode) {
	case MW_REDIS_SINGLE:
		if (s->sentinel) {
			mw_buf_puts(err, "redis_mode = single, but redis_servers names Sentinels");
			return -1;
		}
		if (s->naddrs > 1) {
			mw_buf_puts(err, "several servers need Sentinel (sentinel:MASTERNAME@host:port,...) "
					 "or redis_mode = cluster");
			return -1;
		}
		return 0;
	case MW_REDIS_SENTINEL:
		if (!s->sentinel) {
			mw_buf_puts(err, "redis_mode = sentinel needs redis_servers = sentinel:MASTERNAME@host:port,...");
			return -1;
		}
		return 0;
	case MW_REDIS_CLUSTER:
		if (s->sentinel) {
			mw_buf_puts(err, "redis_mode = cluster takes seed nodes host:port,..., not Sentinels");
			return -1;
		}
		for (int i = 0; i < s->naddrs; i++)
			if (s->addrs[i].port == 0) {
				mw_buf_puts(err, "redis_mode = cluster needs host:port seed nodes (cluster nodes "
						 "redirect to TCP addresses)");
				return -1;
			}
		if (conf->database != 0) {
			mw_buf_puts(err, "Redis Cluster has only database 0: remove redis_database");
			return -1;
		}
		return 0;
	default:
		mw_buf_puts(err, "bad redis_mode");
		return -1;
	}
}

void mw_redis_servers_format(const struct mw_redis_servers *s, struct mw_buf *out)
{
	if (s->naddrs == 1 && s->addrs[0].port == 0) {
		mw_buf_printf(out, "unix:%s", s->addrs[0].host);
		return;
	}
	if (s->sentinel)
		mw_buf_printf(out, "sentinel:%s@", s->master_name);
	for (int i = 0; i < s->naddrs; i++) {
		const char *h = s->addrs[i].host;
		int v6 = strchr(h, ':') != NULL;
		mw_buf_printf(out, "%s%s%s%s:%d", i ? "," : "", v6 ? "[" : "", h, v6 ? "]" : "",
			      s->addrs[i].port);
	}
}

static struct timeval tv_ms(unsigned long long ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

static redisContext *connect_addr(const struct mw_redis_addr *a, unsigned long long timeout_ms,
				  struct mw_buf *err)
{
	struct timeval tv = tv_ms(timeout_ms);
	redisContext *c = a->port == 0 ? redisConnectUnixWithTimeout(a->host, tv)
				       : redisConnectWithTimeout(a->host, a->port, tv);
	if (c == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	if (c->err) {
		if (a->port == 0)
			mw_buf_printf(err, "%s: %s", a->host, c->errstr);
		else
			mw_buf_printf(err, "%s:%d: %s", a->host, a->port, c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

redisReply *mw_redis_command(redisContext *c, int argc, const char **argv, struct mw_buf *err)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	if (r == NULL) {
		mw_buf_printf(err, "%s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		mw_buf_printf(err, "%s: %s", argv[0], r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

int mw_redis_discover_master(const struct mw_redis_conf *conf, struct mw_redis_addr *master,
			     struct mw_buf *err)
{
	const struct mw_redis_servers *s = &conf->servers;
	if (!s->sentinel) {
		*master = s->addrs[0];
		return 0;
	}
	struct mw_buf why = MW_BUF_INIT;
	for (int i = 0; i < s->naddrs; i++) {
		redisContext *c = connect_addr(&s->addrs[i], conf->timeout_ms, &why);
		if (c == NULL) {
			mw_buf_puts(&why, "; ");
			continue;
		}
		const char *argv[] = { "SENTINEL", "get-master-addr-by-name", s->master_name };
		redisReply *r = mw_redis_command(c, 3, argv, &why);
		redisFree(c);
		if (r == NULL) {
			mw_buf_puts(&why, "; ");
			continue;
		}
		unsigned long long port = 0;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
		    r->element[0]->len < sizeof(master->host) &&
		    mw_parse_uint(r->element[1]->str, 65535, &port) == 0 && port > 0) {
			memcpy(master->host, r->element[0]->str, r->element[0]->len + 1);
			master->port = (int)port;
			freeReplyObject(r);
			mw_buf_free(&why);
			return 0;
		}
		mw_buf_printf(&why, "Sentinel %s:%d does not know master %s; ", s->addrs[i].host,
			      s->addrs[i].port, s->master_name);
		freeReplyObject(r);
	}
	mw_buf_printf(err, "no Sentinel named a master: %s", mw_buf_str(&why));
	mw_buf_free(&why);
	return -1;
}

/* A connection whose set-up failed: frees it and the reply r (NULL: none);
   NULL for the caller to return. */
static redisContext *connect_failed(redisContext *c, redisReply *r)
{
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

redisContext *mw_redis_connect_addr(const struct mw_redis_conf *conf, const struct mw_redis_addr *addr,
				    struct mw_buf *err)
{
	redisContext *c = connect_addr(addr, conf->timeout_ms, err);
	if (c == NULL)
		return NULL;

	if (conf->password != NULL && conf->password[0] != '\0') {
		int user = conf->username != NULL && conf->username[0] != '\0';
		const char *argv[] = { "AUTH", user ? conf->username : conf->password, conf->password };
		redisReply *r = redisCommandArgv(c, user ? 3 : 2, argv, NULL);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			/* never echo the password: only Redis's own message */
			mw_buf_printf(err, "AUTH: %s", r != NULL ? r->str : c->errstr);
			return connect_failed(c, r);
		}
		freeReplyObject(r);
	}
	if (conf->database != 0) {
		char db[24];
		snprintf(db, sizeof(db), "%llu", conf->database);
		const char *argv[] = { "SELECT", db };
		redisReply *r = mw_redis_command(c, 2, argv, err);
		if (r == NULL)
			return connect_failed(c, NULL);
		freeReplyObject(r);
	}
	return c;
}

redisContext *mw_redis_connect(const struct mw_redis_conf *conf, struct mw_buf *err)
{
	struct mw_redis_addr master;
	if (mw_redis_discover_master(conf, &master, err) < 0)
		return NULL;
	redisContext *c = mw_redis_connect_addr(conf, &master, err);
	if (c == NULL)
		return NULL;
	if (conf->servers.sentinel) {
		/* A Sentinel may name the old master for a moment after a failover. */
		const char *argv[] = { "ROLE" };
		redisReply *r = mw_redis_command(c, 1, argv, err);
		if (r == NULL)
			return connect_failed(c, NULL);
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "master") != 0) {
			mw_buf_printf(err, "%s:%d is not a master (yet)", master.host, master.port);
			return connect_failed(c, r);
		}
		freeReplyObject(r);
	}
	return c;
}
