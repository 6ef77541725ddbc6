#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "mametrics.h"
#include "redis_cluster.h"
#include "report_redis.h"
#include "report_store.h"

/* lines per batch: one RPUSH per day with them all */
#define BATCH 512
/* after a failed connection, lines queue up this long before the next try */
#define RECONNECT_MS 1000
#define LRANGE_CHUNK 1000

struct item {
	struct item *next;
	unsigned day;
	size_t len;
	char line[];
};

struct ma_report_redis {
	struct mw_redis_conf conf; /* strings borrowed from the configuration, which outlives us */
	unsigned long long retention_s;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct item *head, **tail;
	size_t queued;
	int closing;
	pthread_t thread;
	time_t last_warning;       /* under lock */
	struct ma_report_redis_conn *c; /* the writer thread's */
	int gave_up;               /* the writer's: the last batch found no connection */
};

void ma_report_redis_eval_key(unsigned day, char *out, size_t len)
{
	snprintf(out, len, "mailward:dmarc:eval:%08u", day);
}

void ma_report_redis_sent_key(unsigned day, char *out, size_t len)
{
	snprintf(out, len, "mailward:dmarc:sent:%08u", day);
}

/* One server (redis_mode single or sentinel: its master) or a cluster,
   where each command goes to the master of its key's slot. */
struct ma_report_redis_conn {
	struct redisContext *c;
	struct mw_redis_cluster *cl;
};

struct ma_report_redis_conn *ma_report_redis_conn_open(const struct mw_redis_conf *conf, struct mw_buf *err)
{
	struct ma_report_redis_conn *rc = mw_xcalloc(1, sizeof(*rc));
	if (conf->mode == MW_REDIS_CLUSTER) {
		rc->cl = mw_redis_cluster_new(conf);
		/* the slot map now, so an unreachable cluster fails here as one server would */
		if (mw_redis_cluster_map(rc->cl, err) == NULL) {
			ma_report_redis_conn_close(rc);
			return NULL;
		}
	} else if ((rc->c = mw_redis_connect(conf, err)) == NULL) {
		free(rc);
		return NULL;
	}
	return rc;
}

void ma_report_redis_conn_close(struct ma_report_redis_conn *rc)
{
	if (rc == NULL)
		return;
	if (rc->c != NULL)
		redisFree(rc->c);
	if (rc->cl != NULL)
		mw_redis_cluster_free(rc->cl);
	free(rc);
}

struct redisReply *ma_report_redis_cmd(struct ma_report_redis_conn *rc, int argc, const char **argv,
				       struct mw_buf *err)
{
	if (rc->c != NULL)
		return mw_redis_command(rc->c, argc, argv, err);
	redisReply *r = mw_redis_cluster_command(rc->cl, argv[1], strlen(argv[1]), argc, argv, err);
	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		mw_buf_printf(err, "%s: %.*s", argv[0], (int)r->len, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static void warn_limited(struct ma_report_redis *r, const char *what)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&r->lock);
	int say = now - r->last_warning >= 60;
	if (say)
		r->last_warning = now;
	pthread_mutex_unlock(&r->lock);
	if (say)
		mw_msg_warn("DMARC report store (redis): %s (evaluations are not recorded, counted in "
			    "milter_auth_report_store_errors_total)", what);
}

static void lost(struct ma_report_redis *r, unsigned long long n, const char *why)
{
	if (n == 0)
		return;
	ma_metrics_report_store_error(n);
	warn_limited(r, why);
}

void ma_report_redis_push(struct ma_report_redis *r, unsigned day, const char *line, size_t len)
{
	pthread_mutex_lock(&r->lock);
	int full = r->queued >= MA_REPORT_REDIS_QUEUE;
	if (!full) {
		struct item *it = mw_xmalloc(sizeof(*it) + len + 1);
		it->next = NULL;
		it->day = day;
		it->len = len;
		memcpy(it->line, line, len);
		it->line[len] = '\0'; /* a command argument */
		*r->tail = it;
		r->tail = &it->next;
		r->queued++;
		pthread_cond_signal(&r->wake);
	}
	pthread_mutex_unlock(&r->lock);
	if (full)
		lost(r, 1, "queue full: Redis too slow or down");
}

static void drop_connection(struct ma_report_redis *r)
{
	ma_report_redis_conn_close(r->c);
	r->c = NULL;
}

/* Writes up to BATCH items from *list (consumed); failures counted. */
static void write_batch(struct ma_report_redis *r, struct item **list)
{
	struct item *batch[BATCH];
	int n = 0;
	while (*list != NULL && n < BATCH) {
		batch[n++] = *list;
		*list = (*list)->next;
	}
	struct mw_buf err = MW_BUF_INIT;
	int failed = n;
	if (r->c == NULL && (r->c = ma_report_redis_conn_open(&r->conf, &err)) == NULL) {
		lost(r, (unsigned long long)n, mw_buf_str(&err));
	} else {
		/* per day in the batch (nearly always one): one RPUSH of its lines,
		   then its EXPIREAT; one key per command, so it works in a cluster */
		const char **argv = mw_xcalloc((size_t)n + 2, sizeof(*argv));
		int done[BATCH] = { 0 }, ok = 0;
		for (int i = 0; i < n && r->c != NULL; i++) {
			if (done[i])
				continue;
			unsigned day = batch[i]->day;
			char key[64], at[32];
			ma_report_redis_eval_key(day, key, sizeof(key));
			int argc = 0, lines = 0;
			argv[argc++] = "RPUSH";
			argv[argc++] = key;
			for (int j = i; j < n; j++)
				if (!done[j] && batch[j]->day == day) {
					argv[argc++] = batch[j]->line;
					done[j] = 1;
					lines++;
				}
			redisReply *reply = ma_report_redis_cmd(r->c, argc, argv, &err);
			if (reply == NULL) {
				/* broken or refused: connect afresh for the next batch */
				drop_connection(r);
				break;
			}
			freeReplyObject(reply);
			ok += lines;
			snprintf(at, sizeof(at), "%lld", (long long)ma_report_day_start(day) + 86400 + (long long)r->retention_s);
			const char *xargv[] = { "EXPIREAT", key, at };
			if ((reply = ma_report_redis_cmd(r->c, 3, xargv, &err)) == NULL)
				drop_connection(r); /* the lines are in; the next batch sets it again */
			else
				freeReplyObject(reply);
		}
		free(argv);
		failed = n - ok;
		lost(r, (unsigned long long)failed, mw_buf_len(&err) ? mw_buf_str(&err) : "not written");
	}
	for (int i = 0; i < n; i++)
		free(batch[i]);
	mw_buf_free(&err);
	if (failed > 0 && r->c == NULL) {
		/* Redis is down: let lines gather rather than try per line */
		pthread_mutex_lock(&r->lock);
		if (!r->closing) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += RECONNECT_MS / 1000;
			pthread_cond_timedwait(&r->wake, &r->lock, &until);
		}
		pthread_mutex_unlock(&r->lock);
	}
}

static void *writer(void *arg)
{
	struct ma_report_redis *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->lock);
		while (r->head == NULL && !r->closing)
			pthread_cond_wait(&r->wake, &r->lock);
		struct item *list = r->head;
		int closing = r->closing;
		r->head = NULL;
		r->tail = &r->head;
		r->queued = 0;
		pthread_mutex_unlock(&r->lock);
		while (list != NULL) {
			if (closing && r->gave_up) {
				/* stopping, and Redis already failed once: no more waits */
				unsigned long long n = 0;
				while (list != NULL) {
					struct item *next = list->next;
					free(list);
					list = next;
					n++;
				}
				lost(r, n, "stopping with Redis unreachable");
				break;
			}
			write_batch(r, &list);
			r->gave_up = r->c == NULL;
		}
		if (closing)
			break;
	}
	drop_connection(r);
	return NULL;
}

struct ma_report_redis *ma_report_redis_new(const struct mw_redis_conf *conf, unsigned long long retention_s,
					    struct mw_buf *err)
{
	struct ma_report_redis *r = mw_xcalloc(1, sizeof(*r));
	r->conf = *conf;
	r->retention_s = retention_s;
	r->tail = &r->head;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	int rc = pthread_create(&r->thread, NULL, writer, r);
	if (rc != 0) {
		mw_buf_printf(err, "report_store = redis: cannot start the writer thread: %s", strerror(rc));
		pthread_cond_destroy(&r->wake);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	return r;
}

void ma_report_redis_free(struct ma_report_redis *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->closing = 1;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int ma_report_redis_read_day(struct ma_report_redis_conn *c, unsigned day, ma_report_redis_line_fn *fn, void *ctx,
			     struct mw_buf *err)
{
	char key[64];
	ma_report_redis_eval_key(day, key, sizeof(key));
	for (long long start = 0;; start += LRANGE_CHUNK) {
		char a[32], b[32];
		snprintf(a, sizeof(a), "%lld", start);
		snprintf(b, sizeof(b), "%lld", start + LRANGE_CHUNK - 1);
		const char *argv[] = { "LRANGE", key, a, b };
		redisReply *reply = ma_report_redis_cmd(c, 4, argv, err);
		if (reply == NULL)
			return -1;
		if (reply->type != REDIS_REPLY_ARRAY) {
			mw_buf_printf(err, "%s is not a list", key);
			freeReplyObject(reply);
			return -1;
		}
		size_t n = reply->elements;
		for (size_t i = 0; i < n; i++)
			if (reply->element[i]->type == REDIS_REPLY_STRING)
				fn(ctx, reply->element[i]->str, reply->element[i]->len);
		freeReplyObject(reply);
		if (n < LRANGE_CHUNK)
			return 0;
	}
}
