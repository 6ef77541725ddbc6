#include "config.h"

#include <string.h>

#include "tpredis.h"

int tp_redis_init(struct tp_redis *r, const struct tp_args *args, struct mw_buf *err)
{
	memset(r, 0, sizeof(*r));
	r->args = args;
	(void)err;
	return 0;
}

void tp_redis_free(struct tp_redis *r)
{
	memset(r, 0, sizeof(*r));
}

int tp_redis_fetch(struct tp_redis *r, const char *user, struct tp_state *st, struct mw_buf *err)
{
	(void)r; (void)user; (void)st;
	mw_buf_setf(err, "not implemented yet");
	return -1;
}

int tp_redis_success(struct tp_redis *r, const char *user, const struct tp_state *st,
		     const struct tp_result *res, int64_t now, struct mw_buf *err)
{
	(void)r; (void)user; (void)st; (void)res; (void)now;
	mw_buf_setf(err, "not implemented yet");
	return -1;
}

int tp_redis_failure(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		     int *locked_now, struct mw_buf *err)
{
	(void)r; (void)user; (void)pol; (void)now; (void)locked_now;
	mw_buf_setf(err, "not implemented yet");
	return -1;
}

int tp_redis_app_used(struct tp_redis *r, const char *user, const char *name, int64_t now, struct mw_buf *err)
{
	(void)r; (void)user; (void)name; (void)now;
	mw_buf_setf(err, "not implemented yet");
	return -1;
}
