/*
 * report_redis: report_store = redis. The DMARC evaluations of every MX
 * host go into the same Redis (redis_servers, as policyd-rate and
 * totp-pam use it), so `milter-auth-report send` on any one host builds
 * one report per Policy Domain and day whose counts add up.
 *
 * Keys: one list per UTC day, "mailward:dmarc:eval:YYYYMMDD", one element
 * per evaluation in dmarc_report.h's line format (the host is inside the
 * line); each list expires report_retention after its day ends (EXPIREAT),
 * so retention holds in Redis without anyone deleting. The day a report
 * was sent is marked by "mailward:dmarc:sent:YYYYMMDD" (same expiry).
 *
 * redis_mode = cluster works too: every command names one key, sent to
 * the master of its slot (common/redis_cluster.h follows MOVED and ASK);
 * a day's list lives on one master.
 *
 * Recording never waits for Redis: ma_report_redis_push() only queues
 * (bounded, MA_REPORT_REDIS_QUEUE lines); a thread of the store's own
 * writes the queue in batches (one RPUSH of all of a day's lines). An evaluation that cannot be
 * written (Redis down or slow, queue full) is dropped, logged at most once
 * a minute and counted (milter_auth_report_store_errors_total): the verdict
 * and the message are never delayed or changed.
 *
 * Memory: the store owns its queue and its connection; push copies line;
 * a connection from ma_report_redis_conn_open() is the caller's
 * (ma_report_redis_conn_close); replies are the caller's (freeReplyObject).
 */
#ifndef MA_REPORT_REDIS_H
#define MA_REPORT_REDIS_H

#include <stddef.h>

#include "buf.h"
#include "redis.h"

#define MA_REPORT_REDIS_QUEUE 50000

struct ma_report_redis;
struct ma_report_redis_conn;
struct redisReply;

/* A blocking connection for reading and marking (milter-auth-report):
   the master (single, sentinel) or the cluster; NULL with err. */
struct ma_report_redis_conn *ma_report_redis_conn_open(const struct mw_redis_conf *conf, struct mw_buf *err);
void ma_report_redis_conn_close(struct ma_report_redis_conn *rc);
/* Runs argv, whose argv[1] is the one key it touches; the reply, or NULL
   with err (no answer, or an error reply). */
struct redisReply *ma_report_redis_cmd(struct ma_report_redis_conn *rc, int argc, const char **argv,
				       struct mw_buf *err);

/* Starts the writer thread (it connects when the first line comes). */
struct ma_report_redis *ma_report_redis_new(const struct mw_redis_conf *conf, unsigned long long retention_s,
					    struct mw_buf *err);
void ma_report_redis_push(struct ma_report_redis *r, unsigned day, const char *line, size_t len);
/* Writes what is queued (one attempt, within redis_timeout), stops the
   thread, frees. */
void ma_report_redis_free(struct ma_report_redis *r);

/* The key names of a day. */
void ma_report_redis_eval_key(unsigned day, char *out, size_t len);
void ma_report_redis_sent_key(unsigned day, char *out, size_t len);

/* Reading (milter-auth-report, blocking): calls fn for each recorded line
   of day, in batches of LRANGE. 0, or -1 with err. */
typedef void ma_report_redis_line_fn(void *ctx, const char *line, size_t len);
int ma_report_redis_read_day(struct ma_report_redis_conn *c, unsigned day, ma_report_redis_line_fn *fn, void *ctx,
			     struct mw_buf *err);

#endif
