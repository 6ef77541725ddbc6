/*
 * tpredis: the dynamic part of a user's state in Redis (state=redis), so
 * that several servers share it: the last accepted time step (replay), the
 * backup codes used, the failure count and lockout, and the last use of
 * each app password. The enrollment itself (secret, backup-code and
 * app-password hashes) stays in the root-owned file on each server.
 *
 * One hash per user, KEY = PREFIX{USER}:
 *   last_step, failures, locked_until, last_login, app:NAME (last use),
 *   used:BACKUP_ID (a used backup code: the first 8 bytes of its hash, hex)
 * Every change is one Lua script, so it is atomic across servers: a step
 * or backup code is taken by exactly one login.
 *
 * Library code: never logs; errors in a caller's mw_buf. hiredis's
 * synchronous API with redis_timeout on connect and on every command.
 */
#ifndef TP_TPREDIS_H
#define TP_TPREDIS_H

#include <stdint.h>

#include "args.h"
#include "buf.h"
#include "statefile.h"
#include "verify.h"

struct tp_redis {
	const struct tp_args *args;
	struct redisContext *ctx;     /* NULL until connected */
	char password[256];           /* from redis_password_file */
};

int tp_redis_init(struct tp_redis *r, const struct tp_args *args, struct mw_buf *err);
void tp_redis_free(struct tp_redis *r);

/* Merges Redis's dynamic state into st (last_step: the larger; failures
   and lockout: Redis's; used backup codes removed). 0 or -1. */
int tp_redis_fetch(struct tp_redis *r, const char *user, struct tp_state *st, struct mw_buf *err);
/* Records an accepted code (only if its step is newer than Redis's) or
   backup code (only if not used yet): 0 recorded, 1 lost the race, -1. */
int tp_redis_success(struct tp_redis *r, const char *user, const struct tp_state *st,
		     const struct tp_result *res, int64_t now, struct mw_buf *err);
int tp_redis_failure(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		     int *locked_now, struct mw_buf *err);
int tp_redis_app_used(struct tp_redis *r, const char *user, const char *name, int64_t now, struct mw_buf *err);

#endif
