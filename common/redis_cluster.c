#include "config.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_cluster.h"
#include "strnum.h"

/* CRC16-CCITT as XMODEM computes it: polynomial 0x1021, initial value 0,
   no reflection (the cluster specification's crc16). */
uint16_t mw_redis_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc;
}

unsigned mw_redis_keyslot(const char *key, size_t len)
{
	/* the first '{', then the first '}' after it; an empty tag ("{}")
	   means the whole key is hashed */
	const char *open = memchr(key, '{', len);
	if (open != NULL) {
		size_t rest = len - (size_t)(open + 1 - key);
		const char *close = memchr(open + 1, '}', rest);
		if (close != NULL && close > open + 1)
			return mw_redis_crc16(open + 1, (size_t)(close - open - 1)) & (MW_REDIS_SLOTS - 1);
	}
	return mw_redis_crc16(key, len) & (MW_REDIS_SLOTS - 1);
}

void mw_redis_slotmap_init(struct mw_redis_slotmap *m)
{
	m->nnodes = 0;
	for (int i = 0; i < MW_REDIS_SLOTS; i++)
		m->slot[i] = -1;
}

int mw_redis_slotmap_node(struct mw_redis_slotmap *m, const struct mw_redis_addr *addr)
{
	for (int i = 0; i < m->nnodes; i++)
		if (m->nodes[i].port == addr->port && strcmp(m->nodes[i].host, addr->host) == 0)
			return i;
	if (m->nnodes == MW_REDIS_MAX_NODES)
		return -1;
	m->nodes[m->nnodes] = *addr;
	return m->nnodes++;
}

static void clear_slots(struct mw_redis_slotmap *m)
{
	for (int i = 0; i < MW_REDIS_SLOTS; i++)
		m->slot[i] = -1;
}

static int is_string(const redisReply *r)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* A node's address from the reply: host (empty or "?" handled) and port. */
static int node_addr(const redisReply *host, long long port, const struct mw_redis_addr *asked,
		     struct mw_redis_addr *out)
{
	if (!is_string(host) || port < 1 || port > 65535)
		return -1;
	if (host->len == 0) {
		/* "the node you asked": its own address is not configured */
		if (asked == NULL)
			return -1;
		snprintf(out->host, sizeof(out->host), "%s", asked->host);
	} else {
		if (host->len >= sizeof(out->host) || memchr(host->str, '\0', host->len) != NULL ||
		    strcmp(host->str, "?") == 0)
			return -1;
		memcpy(out->host, host->str, host->len + 1);
	}
	out->port = (int)port;
	return 0;
}

static int assign(struct mw_redis_slotmap *m, long long from, long long to, int node)
{
	if (from < 0 || to < from || to >= MW_REDIS_SLOTS)
		return -1;
	int n = 0;
	for (long long s = from; s <= to; s++, n++)
		m->slot[s] = (int16_t)node;
	return n;
}

static int count_slots(const struct mw_redis_slotmap *m)
{
	int n = 0;
	for (int i = 0; i < MW_REDIS_SLOTS; i++)
		n += m->slot[i] >= 0;
	return n;
}

/*
 * CLUSTER SLOTS: [[start, end, [ip, port, id, ...], [replica...]...], ...]
 */
int mw_redis_slotmap_from_slots(struct mw_redis_slotmap *m, const redisReply *r,
				const struct mw_redis_addr *asked, struct mw_buf *err)
{
	clear_slots(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		mw_buf_puts(err, "CLUSTER SLOTS: not an array");
		return -1;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
		    e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
			mw_buf_printf(err, "CLUSTER SLOTS: range %zu malformed", i);
			clear_slots(m);
			return -1;
		}
		struct mw_redis_addr a;
		if (node_addr(e->element[2]->element[0], e->element[2]->element[1]->integer, asked, &a) < 0)
			continue; /* an unknown endpoint: those slots stay unserved */
		int node = mw_redis_slotmap_node(m, &a);
		if (node < 0) {
			mw_buf_printf(err, "CLUSTER SLOTS: more than %d masters", MW_REDIS_MAX_NODES);
			clear_slots(m);
			return -1;
		}
		if (assign(m, e->element[0]->integer, e->element[1]->integer, node) < 0) {
			mw_buf_printf(err, "CLUSTER SLOTS: bad range %lld-%lld", e->element[0]->integer,
				      e->element[1]->integer);
			clear_slots(m);
			return -1;
		}
	}
	return count_slots(m);
}

/* A field of a flat [name, value, name, value...] array (RESP2 maps). */
static const redisReply *field(const redisReply *map, const char *name)
{
	if (map == NULL || map->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < map->elements; i += 2) {
		const redisReply *k = map->element[i];
		if (is_string(k) && strcmp(k->str, name) == 0)
			return map->element[i + 1];
	}
	return NULL;
}

static int field_is(const redisReply *map, const char *name, const char *value)
{
	const redisReply *v = field(map, name);
	return is_string(v) && strcmp(v->str, value) == 0;
}

/*
 * CLUSTER SHARDS: [["slots", [start, end, ...], "nodes", [[ "id", ..,
 * "port", N, "ip", .., "endpoint", .., "role", "master", "health",
 * "online", ...], ...]], ...]
 */
int mw_redis_slotmap_from_shards(struct mw_redis_slotmap *m, const redisReply *r,
				 const struct mw_redis_addr *asked, struct mw_buf *err)
{
	clear_slots(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		mw_buf_puts(err, "CLUSTER SHARDS: not an array");
		return -1;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *shard = r->element[i];
		const redisReply *slots = field(shard, "slots"), *nodes = field(shard, "nodes");
		if (slots == NULL || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0 || nodes == NULL ||
		    nodes->type != REDIS_REPLY_ARRAY) {
			mw_buf_printf(err, "CLUSTER SHARDS: shard %zu malformed", i);
			clear_slots(m);
			return -1;
		}
		if (slots->elements == 0)
			continue;
		/* the shard's master, if it is healthy: a failed master's slots
		   stay unserved until a replica is promoted */
		struct mw_redis_addr a;
		int found = 0;
		for (size_t k = 0; k < nodes->elements && !found; k++) {
			const redisReply *n = nodes->element[k];
			const redisReply *port = field(n, "port");
			if (!field_is(n, "role", "master") || !field_is(n, "health", "online") || port == NULL ||
			    port->type != REDIS_REPLY_INTEGER)
				continue;
			const redisReply *host = field(n, "endpoint");
			if (!is_string(host) || host->len == 0 || strcmp(host->str, "?") == 0)
				host = field(n, "ip");
			found = node_addr(host, port->integer, asked, &a) == 0;
		}
		if (!found)
			continue;
		int node = mw_redis_slotmap_node(m, &a);
		if (node < 0) {
			mw_buf_printf(err, "CLUSTER SHARDS: more than %d masters", MW_REDIS_MAX_NODES);
			clear_slots(m);
			return -1;
		}
		for (size_t k = 0; k + 1 < slots->elements; k += 2) {
			const redisReply *from = slots->element[k], *to = slots->element[k + 1];
			if (from->type != REDIS_REPLY_INTEGER || to->type != REDIS_REPLY_INTEGER ||
			    assign(m, from->integer, to->integer, node) < 0) {
				mw_buf_printf(err, "CLUSTER SHARDS: shard %zu: bad slot range", i);
				clear_slots(m);
				return -1;
			}
		}
	}
	return count_slots(m);
}

enum mw_redis_redirect mw_redis_redirect_parse(const char *text, size_t len, unsigned *slot,
					       struct mw_redis_addr *to)
{
	enum mw_redis_redirect kind;
	size_t skip;
	if (len > 6 && memcmp(text, "MOVED ", 6) == 0) {
		kind = MW_REDIS_MOVED;
		skip = 6;
	} else if (len > 4 && memcmp(text, "ASK ", 4) == 0) {
		kind = MW_REDIS_ASK;
		skip = 4;
	} else {
		return MW_REDIS_NO_REDIRECT;
	}
	const char *p = text + skip, *end = text + len;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	unsigned long long s;
	if (sp == NULL || mw_parse_uint_n(p, (size_t)(sp - p), MW_REDIS_SLOTS - 1, &s) < 0)
		return MW_REDIS_NO_REDIRECT;
	const char *a = sp + 1;
	size_t al = (size_t)(end - a);
	/* host:port, the port after the last colon (IPv6 without brackets too) */
	const char *colon = NULL;
	for (size_t i = 0; i < al; i++)
		if (a[i] == ':')
			colon = a + i;
	unsigned long long port;
	if (colon == NULL || mw_parse_uint_n(colon + 1, (size_t)(end - colon - 1), 65535, &port) < 0 || port == 0)
		return MW_REDIS_NO_REDIRECT;
	const char *h = a;
	size_t hl = (size_t)(colon - a);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(to->host) || memchr(h, '\0', hl) != NULL)
		return MW_REDIS_NO_REDIRECT;
	memcpy(to->host, h, hl);
	to->host[hl] = '\0';
	to->port = (int)port;
	*slot = (unsigned)s;
	return kind;
}

/* One node's map, SHARDS first; the slots covered, or -1 with err. */
static int load_from(const struct mw_redis_conf *conf, const struct mw_redis_addr *a, struct mw_redis_slotmap *m,
		     struct mw_buf *err)
{
	redisContext *c = mw_redis_connect_addr(conf, a, err);
	if (c == NULL)
		return -1;
	const char *shards[] = { "CLUSTER", "SHARDS" };
	redisReply *r = redisCommandArgv(c, 2, shards, NULL);
	int n;
	if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
		n = mw_redis_slotmap_from_shards(m, r, a, err);
	} else {
		if (r != NULL)
			freeReplyObject(r);
		const char *slots[] = { "CLUSTER", "SLOTS" };
		r = redisCommandArgv(c, 2, slots, NULL);
		if (r == NULL) {
			mw_buf_printf(err, "%s:%d: %s", a->host, a->port, c->errstr);
			redisFree(c);
			return -1;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			mw_buf_printf(err, "%s:%d: %s", a->host, a->port, r->str);
			n = -1;
		} else {
			n = mw_redis_slotmap_from_slots(m, r, a, err);
		}
	}
	freeReplyObject(r);
	redisFree(c);
	return n;
}

int mw_redis_slotmap_load(const struct mw_redis_conf *conf, struct mw_redis_slotmap *m, struct mw_buf *err)
{
	struct mw_buf why = MW_BUF_INIT;
	/* the nodes known (the map may have moved on since the seeds were
	   written), then the seeds */
	struct mw_redis_addr ask[MW_REDIS_MAX_NODES + MW_REDIS_MAX_SENTINELS];
	int nask = 0;
	for (int i = 0; i < m->nnodes; i++)
		ask[nask++] = m->nodes[i];
	for (int i = 0; i < conf->servers.naddrs; i++)
		ask[nask++] = conf->servers.addrs[i];
	for (int i = 0; i < nask; i++) {
		int n = load_from(conf, &ask[i], m, &why);
		if (n > 0) {
			mw_buf_free(&why);
			return 0;
		}
		if (n == 0)
			mw_buf_printf(&why, "%s:%d serves no slots", ask[i].host, ask[i].port);
		mw_buf_puts(&why, "; ");
	}
	clear_slots(m);
	mw_buf_printf(err, "no cluster node gave a slot map: %s", mw_buf_str(&why));
	mw_buf_free(&why);
	return -1;
}

/* ------------------------------------------------------------ synchronous client */

struct mw_redis_cluster {
	struct mw_redis_conf conf;
	struct mw_redis_slotmap map;
	int have_map;
	redisContext *ctx[MW_REDIS_MAX_NODES]; /* by node index */
};

struct mw_redis_cluster *mw_redis_cluster_new(const struct mw_redis_conf *conf)
{
	struct mw_redis_cluster *cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return NULL;
	cl->conf = *conf;
	mw_redis_slotmap_init(&cl->map);
	return cl;
}

void mw_redis_cluster_free(struct mw_redis_cluster *cl)
{
	if (cl == NULL)
		return;
	for (int i = 0; i < MW_REDIS_MAX_NODES; i++)
		if (cl->ctx[i] != NULL)
			redisFree(cl->ctx[i]);
	free(cl);
}

const struct mw_redis_slotmap *mw_redis_cluster_map(struct mw_redis_cluster *cl, struct mw_buf *err)
{
	if (!cl->have_map) {
		if (mw_redis_slotmap_load(&cl->conf, &cl->map, err) < 0)
			return NULL;
		cl->have_map = 1;
	}
	return &cl->map;
}

redisContext *mw_redis_cluster_node(struct mw_redis_cluster *cl, int i, struct mw_buf *err)
{
	if (i < 0 || i >= cl->map.nnodes) {
		mw_buf_puts(err, "no such cluster node");
		return NULL;
	}
	if (cl->ctx[i] == NULL)
		cl->ctx[i] = mw_redis_connect_addr(&cl->conf, &cl->map.nodes[i], err);
	return cl->ctx[i];
}

static void drop_node(struct mw_redis_cluster *cl, int i)
{
	if (cl->ctx[i] != NULL) {
		redisFree(cl->ctx[i]);
		cl->ctx[i] = NULL;
	}
}

redisReply *mw_redis_cluster_command(struct mw_redis_cluster *cl, const char *key, size_t keylen, int argc,
				     const char **argv, struct mw_buf *err)
{
	unsigned slot = mw_redis_keyslot(key, keylen);
	if (mw_redis_cluster_map(cl, err) == NULL)
		return NULL;
	int node = cl->map.slot[slot], asking = 0, asked = 0, reloaded = 0;
	for (int hop = 0; hop < 6; hop++) {
		if (node < 0) {
			/* nobody serves it in our map: a failover or a reshard
			   happened; ask again, once */
			if (reloaded || mw_redis_slotmap_load(&cl->conf, &cl->map, err) < 0) {
				if (mw_buf_len(err) == 0)
					mw_buf_printf(err, "no master serves slot %u (failover in progress?)", slot);
				return NULL;
			}
			reloaded = 1;
			node = cl->map.slot[slot];
			continue;
		}
		redisContext *c = mw_redis_cluster_node(cl, node, err);
		if (c == NULL) {
			/* that master is down: perhaps a replica has taken over */
			if (reloaded)
				return NULL;
			mw_buf_reset(err);
			node = -1;
			continue;
		}
		if (asking) {
			const char *a[] = { "ASKING" };
			redisReply *ar = redisCommandArgv(c, 1, a, NULL);
			if (ar != NULL)
				freeReplyObject(ar);
			asking = 0;
		}
		redisReply *r = redisCommandArgv(c, argc, argv, NULL);
		if (r == NULL) {
			mw_buf_printf(err, "%s:%d: %s: %s", cl->map.nodes[node].host, cl->map.nodes[node].port, argv[0],
				      c->errstr[0] ? c->errstr : "no reply");
			drop_node(cl, node);
			cl->have_map = 0; /* ask for the map again next time */
			return NULL;
		}
		if (r->type != REDIS_REPLY_ERROR)
			return r;
		unsigned rslot;
		struct mw_redis_addr to;
		enum mw_redis_redirect kind = mw_redis_redirect_parse(r->str, r->len, &rslot, &to);
		if (kind == MW_REDIS_NO_REDIRECT) {
			if (strncmp(r->str, "TRYAGAIN", 8) == 0 && hop < 5) {
				/* a multi-key command while its slot migrates */
				freeReplyObject(r);
				struct timespec ts = { 0, 20 * 1000 * 1000 };
				nanosleep(&ts, NULL);
				continue;
			}
			return r;
		}
		freeReplyObject(r);
		int to_node = mw_redis_slotmap_node(&cl->map, &to);
		if (to_node < 0) {
			mw_buf_puts(err, "too many cluster nodes");
			return NULL;
		}
		if (kind == MW_REDIS_MOVED) {
			cl->map.slot[rslot] = (int16_t)to_node;
		} else {
			if (asked) {
				mw_buf_printf(err, "slot %u: ASK redirection twice", slot);
				return NULL;
			}
			asked = asking = 1;
		}
		node = to_node;
	}
	mw_buf_printf(err, "slot %u: too many redirections", slot);
	return NULL;
}
