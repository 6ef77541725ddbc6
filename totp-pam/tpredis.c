#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "redis.h"
#include "redis_cluster.h"
#include "strnum.h"
#include "tpredis.h"

/* KEYS[1] the user's hash, KEYS[2] the checks in progress. A guess is
   checked only while failures plus checks in progress stay below
   max_failures: the budget is taken before the check, atomically. */
static const char BEGIN_LUA[] =
	"local now, maxf, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local lu = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')\n"
	"if lu > now then return {1, lu} end\n"
	"if ARGV[4] ~= '' then\n"
	"  local v = redis.call('HGET', KEYS[3], ARGV[4])\n"
	"  local bu = v and tonumber(string.match(v, ' (%d+)$')) or 0\n"
	"  if bu > now then return {3, bu} end\n"
	"end\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
	"if maxf > 0 then\n"
	"  local f = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')\n"
	"  if lu > 0 then f = 0 end\n"
	"  local busy = redis.call('ZCARD', KEYS[2])\n"
	"  if f + busy >= maxf then return {2, busy} end\n"
	"end\n"
	"local id = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
	"redis.call('ZADD', KEYS[2], now + ttl, id)\n"
	"return {0, id}\n";

/* A step is taken once, by whichever server gets here first; never while
   a lockout is in force. A success from an address clears its count. */
static const char SUCCESS_LUA[] =
	"local kind, v, now = ARGV[1], ARGV[2], ARGV[3]\n"
	"redis.call('ZREM', KEYS[2], ARGV[4])\n"
	"local lu = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')\n"
	"if lu > tonumber(now) then return 2 end\n"
	"if kind == 'step' then\n"
	"  local cur = tonumber(redis.call('HGET', KEYS[1], 'last_step') or '0')\n"
	"  if tonumber(v) <= cur then return 1 end\n"
	"  redis.call('HSET', KEYS[1], 'last_step', v)\n"
	"else\n"
	"  if redis.call('HSETNX', KEYS[1], 'used:' .. v, now) == 0 then return 1 end\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'failures', 0, 'locked_until', 0, 'lockouts', 0, 'last_login', now)\n"
	"if ARGV[5] ~= '' then redis.call('HDEL', KEYS[3], ARGV[5]) end\n"
	"return 0\n";

/* The same arithmetic as tp_commit_failure(), tp_lockout_length() and
   tp_commit_rhost_failure() (verify.c): {locked now, locked_until,
   lockouts, address blocked now}. */
static const char FAILURE_LUA[] =
	"local now, maxf, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local lockmax = math.max(tonumber(ARGV[6]), lock)\n"
	"redis.call('ZREM', KEYS[2], ARGV[4])\n"
	"if ARGV[5] == '0' then return {0, 0, 0, 0} end\n"
	"local blocked = 0\n"
	"local rmax, rlock = tonumber(ARGV[8]), tonumber(ARGV[9])\n"
	"if ARGV[7] ~= '' and rmax > 0 then\n"
	"  local v = redis.call('HGET', KEYS[3], ARGV[7]) or '0 0'\n"
	"  local rf, bu = string.match(v, '^(%d+) (%d+)$')\n"
	"  rf, bu = tonumber(rf) or 0, tonumber(bu) or 0\n"
	"  if bu > 0 and now >= bu then rf = 0; bu = 0 end\n"
	"  rf = rf + 1\n"
	"  if rf >= rmax then bu = now + rlock; rf = 0; blocked = 1 end\n"
	"  redis.call('HSET', KEYS[3], ARGV[7], rf .. ' ' .. bu)\n"
	"  redis.call('EXPIRE', KEYS[3], rlock + 86400)\n"
	"end\n"
	"local lu = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')\n"
	"local f = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')\n"
	"local n = tonumber(redis.call('HGET', KEYS[1], 'lockouts') or '0')\n"
	"if lu > 0 and now >= lu then lu = 0; f = 0 end\n"
	"if f < 1000000 then f = f + 1 end\n"
	"local locked = 0\n"
	"if maxf > 0 and f >= maxf then\n"
	"  if n < 1000000 then n = n + 1 end\n"
	"  local len, i = lock, 1\n"
	"  while i < n and len > 0 and len < lockmax do len = len * 2; i = i + 1 end\n"
	"  if len > lockmax then len = lockmax end\n"
	"  lu = now + len; f = 0; locked = 1\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'failures', f, 'locked_until', lu, 'lockouts', n)\n"
	"return {locked, lu, n, blocked}\n";

/* The password file: root's, not readable by others (it is a secret). */
static int read_password(const char *path, char *out, size_t size, struct mw_buf *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		mw_buf_setf(err, "redis_password_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != 0 || (sb.st_mode & 077) != 0) {
		close(fd);
		mw_buf_setf(err, "redis_password_file %s: must be a regular file of root's, mode 0600 or 0400", path);
		return -1;
	}
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	if (n < 0) {
		mw_buf_setf(err, "redis_password_file %s: %s", path, strerror(errno));
		return -1;
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	if (memchr(out, '\n', (size_t)n) != NULL || (size_t)n == size - 1) {
		mw_buf_setf(err, "redis_password_file %s: one line, shorter than %zu bytes", path, size - 1);
		return -1;
	}
	return 0;
}

int tp_redis_init(struct tp_redis *r, const struct tp_args *args, struct mw_buf *err)
{
	memset(r, 0, sizeof(*r));
	r->args = args;
	if (args->redis_password_file != NULL &&
	    read_password(args->redis_password_file, r->password, sizeof(r->password), err) < 0)
		return -1;
	return 0;
}

void tp_redis_free(struct tp_redis *r)
{
	if (r->ctx != NULL)
		redisFree(r->ctx);
	mw_redis_cluster_free(r->cluster);
	explicit_bzero(r->password, sizeof(r->password));
	memset(r, 0, sizeof(*r));
}

static int connected(struct tp_redis *r, struct mw_buf *err)
{
	if (r->ctx != NULL || r->cluster != NULL)
		return 0;
	r->conf = r->args->redis_conf;
	if (r->password[0] != '\0')
		r->conf.password = r->password;
	if (r->conf.mode == MW_REDIS_CLUSTER) {
		/* the map is loaded with the first command */
		r->cluster = mw_redis_cluster_new(&r->conf);
		if (r->cluster == NULL)
			mw_buf_setf(err, "out of memory");
		return r->cluster != NULL ? 0 : -1;
	}
	r->ctx = mw_redis_connect(&r->conf, err);
	return r->ctx != NULL ? 0 : -1;
}

/* PREFIX{USER}: one hash per user, and PREFIX{USER}:checks, in one slot
   (Redis Cluster). */
static void user_key(const struct tp_redis *r, const char *user, struct mw_buf *key)
{
	mw_buf_printf(key, "%s{%s}", r->args->redis_prefix, user);
}

static void checks_key(const struct tp_redis *r, const char *user, struct mw_buf *key)
{
	mw_buf_printf(key, "%s{%s}:checks", r->args->redis_prefix, user);
}

static void rhost_key(const struct tp_redis *r, const char *user, struct mw_buf *key)
{
	mw_buf_printf(key, "%s{%s}:rhost", r->args->redis_prefix, user);
}

static const char *rhost_arg(const struct tp_redis *r)
{
	return r->rhost != NULL ? r->rhost : "";
}

/* Runs argv (whose key is argv[key]); the reply, or NULL with err (and the
   connection dropped: the next call reconnects). */
static redisReply *run(struct tp_redis *r, int key, int argc, const char **argv, struct mw_buf *err)
{
	if (connected(r, err) < 0)
		return NULL;
	mw_buf_reset(err);
	if (r->cluster != NULL) {
		redisReply *rep = mw_redis_cluster_command(r->cluster, argv[key], strlen(argv[key]), argc, argv, err);
		if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
			mw_buf_printf(err, "%s: %s", argv[0], rep->str);
			freeReplyObject(rep);
			return NULL;
		}
		return rep;
	}
	redisReply *rep = mw_redis_command(r->ctx, argc, argv, err);
	if (rep == NULL && r->ctx->err) { /* the connection, not an error reply */
		redisFree(r->ctx);
		r->ctx = NULL;
	}
	return rep;
}

/* The first 8 bytes of a backup code's hash, hex: its name in Redis
   (not the code, and no help in guessing it). */
static void backup_id(const struct tp_hash *h, char out[17])
{
	for (size_t i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", i < h->dklen ? h->dk[i] : 0);
}

static long long field_int(const redisReply *v)
{
	unsigned long long x = 0;
	if (v->type != REDIS_REPLY_STRING || mw_parse_uint(v->str, (unsigned long long)INT64_MAX, &x) < 0)
		return -1;
	return (long long)x;
}

int tp_redis_fetch(struct tp_redis *r, const char *user, struct tp_state *st, struct mw_buf *err)
{
	struct mw_buf key = MW_BUF_INIT;
	user_key(r, user, &key);
	const char *argv[] = { "HGETALL", mw_buf_str(&key) };
	redisReply *rep = run(r, 1, 2, argv, err);
	mw_buf_free(&key);
	if (rep == NULL)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0) {
		freeReplyObject(rep);
		mw_buf_setf(err, "HGETALL: unexpected reply");
		return -1;
	}
	/* Redis's word on what changes at login; the file's on the rest */
	st->failures = 0;
	st->locked_until = 0;
	st->lockouts = 0;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *f = rep->element[i], *v = rep->element[i + 1];
		if (f->type != REDIS_REPLY_STRING)
			continue;
		long long x = field_int(v);
		if (strcmp(f->str, "last_step") == 0 && x >= 0) {
			if ((uint64_t)x > st->last_step)
				st->last_step = (uint64_t)x;
		} else if (strcmp(f->str, "failures") == 0 && x >= 0) {
			st->failures = x > 1000000 ? 1000000 : (unsigned)x;
		} else if (strcmp(f->str, "locked_until") == 0 && x >= 0) {
			st->locked_until = x;
		} else if (strcmp(f->str, "lockouts") == 0 && x >= 0) {
			st->lockouts = x > 1000000 ? 1000000 : (unsigned)x;
		} else if (strcmp(f->str, "last_login") == 0 && x > st->last_login) {
			st->last_login = x;
		} else if (strncmp(f->str, "used:", 5) == 0) {
			for (int b = 0; b < st->nbackup; b++) {
				char id[17];
				backup_id(&st->backup[b], id);
				if (strcmp(id, f->str + 5) == 0) {
					tp_state_use_backup(st, b);
					break;
				}
			}
		} else if (strncmp(f->str, "app:", 4) == 0 && x >= 0) {
			int a = tp_state_find_app(st, f->str + 4);
			if (a >= 0 && x > st->app[a].last_used)
				st->app[a].last_used = x;
		}
	}
	freeReplyObject(rep);
	return 0;
}

int tp_redis_begin(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		   long long *check_r, long long *value_r, struct mw_buf *err)
{
	char when[32], maxf[16], ttl[16];
	snprintf(when, sizeof(when), "%" PRId64, now);
	snprintf(maxf, sizeof(maxf), "%u", pol->max_failures);
	snprintf(ttl, sizeof(ttl), "%d", TP_REDIS_CHECK_TTL);
	struct mw_buf key = MW_BUF_INIT, checks = MW_BUF_INIT, rhosts = MW_BUF_INIT;
	user_key(r, user, &key);
	checks_key(r, user, &checks);
	rhost_key(r, user, &rhosts);
	const char *argv[] = { "EVAL", BEGIN_LUA, "3", mw_buf_str(&key), mw_buf_str(&checks), mw_buf_str(&rhosts),
			       when, maxf, ttl, rhost_arg(r) };
	redisReply *rep = run(r, 3, 10, argv, err);
	mw_buf_free(&key);
	mw_buf_free(&checks);
	mw_buf_free(&rhosts);
	if (rep == NULL)
		return -1;
	int rc = -1;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_INTEGER &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer >= TP_GATE_GO &&
	    rep->element[0]->integer <= TP_GATE_ADDRESS) {
		rc = (int)rep->element[0]->integer;
		if (rc == TP_GATE_GO)
			*check_r = rep->element[1]->integer;
		else
			*value_r = rep->element[1]->integer;
	} else {
		mw_buf_setf(err, "EVAL: unexpected reply");
	}
	freeReplyObject(rep);
	return rc;
}

int tp_redis_success(struct tp_redis *r, const char *user, const struct tp_state *st,
		     const struct tp_result *res, int64_t now, long long check, struct mw_buf *err)
{
	char value[32], when[32], id[32];
	const char *kind;
	if (res->outcome == TP_ACCEPT_CODE) {
		kind = "step";
		snprintf(value, sizeof(value), "%" PRIu64, res->step);
	} else if (res->outcome == TP_ACCEPT_BACKUP && res->backup_index >= 0 && res->backup_index < st->nbackup) {
		kind = "backup";
		backup_id(&st->backup[res->backup_index], value);
	} else {
		mw_buf_setf(err, "nothing to record");
		return -1;
	}
	snprintf(when, sizeof(when), "%" PRId64, now);
	snprintf(id, sizeof(id), "%lld", check);
	struct mw_buf key = MW_BUF_INIT, checks = MW_BUF_INIT, rhosts = MW_BUF_INIT;
	user_key(r, user, &key);
	checks_key(r, user, &checks);
	rhost_key(r, user, &rhosts);
	const char *argv[] = { "EVAL", SUCCESS_LUA, "3", mw_buf_str(&key), mw_buf_str(&checks), mw_buf_str(&rhosts),
			       kind, value, when, id, rhost_arg(r) };
	redisReply *rep = run(r, 3, 11, argv, err);
	mw_buf_free(&key);
	mw_buf_free(&checks);
	mw_buf_free(&rhosts);
	if (rep == NULL)
		return -1;
	int rc = rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 && rep->integer <= 2 ? (int)rep->integer : -1;
	if (rc < 0)
		mw_buf_setf(err, "EVAL: unexpected reply");
	freeReplyObject(rep);
	return rc;
}

int tp_redis_failure(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		     long long check, int counted, struct tp_state *st, int *locked_now, int *rhost_blocked,
		     struct mw_buf *err)
{
	char when[32], maxf[16], lock[16], lockmax[16], id[32], rmax[16], rlock[16];
	snprintf(when, sizeof(when), "%" PRId64, now);
	snprintf(maxf, sizeof(maxf), "%u", pol->max_failures);
	snprintf(lock, sizeof(lock), "%u", pol->lockout_s);
	snprintf(lockmax, sizeof(lockmax), "%u", pol->lockout_max_s);
	snprintf(id, sizeof(id), "%lld", check);
	snprintf(rmax, sizeof(rmax), "%u", pol->rhost_max_failures);
	snprintf(rlock, sizeof(rlock), "%u", pol->rhost_lockout_s);
	struct mw_buf key = MW_BUF_INIT, checks = MW_BUF_INIT, rhosts = MW_BUF_INIT;
	user_key(r, user, &key);
	checks_key(r, user, &checks);
	rhost_key(r, user, &rhosts);
	const char *argv[] = { "EVAL", FAILURE_LUA, "3", mw_buf_str(&key), mw_buf_str(&checks), mw_buf_str(&rhosts),
			       when, maxf, lock, id, counted ? "1" : "0", lockmax, rhost_arg(r), rmax, rlock };
	redisReply *rep = run(r, 3, 15, argv, err);
	mw_buf_free(&key);
	mw_buf_free(&checks);
	mw_buf_free(&rhosts);
	if (rep == NULL)
		return -1;
	int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 4;
	for (size_t i = 0; ok && i < 4; i++)
		ok = rep->element[i]->type == REDIS_REPLY_INTEGER;
	*locked_now = ok && rep->element[0]->integer == 1;
	*rhost_blocked = ok && rep->element[3]->integer == 1;
	if (*locked_now) {
		st->locked_until = rep->element[1]->integer;
		st->lockouts = (unsigned)rep->element[2]->integer;
	}
	freeReplyObject(rep);
	if (!ok) {
		mw_buf_setf(err, "EVAL: unexpected reply");
		return -1;
	}
	return 0;
}

int tp_redis_app_used(struct tp_redis *r, const char *user, const char *name, int64_t now, struct mw_buf *err)
{
	char when[32];
	snprintf(when, sizeof(when), "%" PRId64, now);
	struct mw_buf key = MW_BUF_INIT, field = MW_BUF_INIT;
	user_key(r, user, &key);
	mw_buf_printf(&field, "app:%s", name);
	const char *argv[] = { "HSET", mw_buf_str(&key), mw_buf_str(&field), when, "last_login", when };
	redisReply *rep = run(r, 1, 6, argv, err);
	mw_buf_free(&key);
	mw_buf_free(&field);
	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	return 0;
}
