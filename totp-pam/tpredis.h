/*
 * tpredis: the dynamic part of a user's state in Redis (state=redis), so
 * that several servers share it: the last accepted time step (replay), the
 * backup codes used, the failure count and lockout, and the last use of
 * each app password. The enrollment itself (secret, backup-code and
 * app-password hashes) stays in the root-owned file on each server.
 *
 * One hash per user, KEY = PREFIX{USER}:
 *   last_step, failures, locked_until, last_login, app:NAME (last use),
 *   used:BACKUP_ID (a used backup code: the first 8 bytes of its hash, hex),
 *   attempts (a sequence naming checks)
 * a hash PREFIX{USER}:rhost of client addresses with failures since their
 * last success (field ADDR, value "FAILURES BLOCKED_UNTIL"; the key expires
 * a day after the last failure), and a sorted set PREFIX{USER}:checks of
 * the checks in progress (member:
 * the check's number, score: when it is given up for lost, if its server
 * never finishes it). Every change is one Lua script, so it is atomic
 * across servers: a step or backup code is taken by exactly one login, and
 * a guess is checked only if failures plus checks in progress are below
 * max_failures, so parallel guesses on any number of servers are never
 * more than max_failures per lockout.
 *
 * Library code: never logs; errors in a caller's mw_buf. hiredis's
 * synchronous API with redis_timeout on connect and on every command.
 * With redis_mode=cluster each command goes to the master of the user's
 * slot (common/redis_cluster.h): all of a user's keys share the {USER}
 * hash tag, so every script's keys are in one slot.
 */
#ifndef TP_TPREDIS_H
#define TP_TPREDIS_H

#include <stdint.h>

#include "args.h"
#include "buf.h"
#include "statefile.h"
#include "verify.h"

struct mw_redis_cluster;

struct tp_redis {
	const struct tp_args *args;
	struct redisContext *ctx;     /* NULL until connected */
	struct mw_redis_cluster *cluster; /* redis_mode=cluster: NULL until first used */
	struct mw_redis_conf conf;    /* args' with the password read */
	char password[256];           /* from redis_password_file */
	const char *rhost;            /* this login's client address (tp_rhost_ok), or NULL:
					 counted per address as well */
};

int tp_redis_init(struct tp_redis *r, const struct tp_args *args, struct mw_buf *err);
void tp_redis_free(struct tp_redis *r);

/* Merges Redis's dynamic state into st (last_step: the larger; failures
   and lockout: Redis's; used backup codes removed). 0 or -1. */
int tp_redis_fetch(struct tp_redis *r, const char *user, struct tp_state *st, struct mw_buf *err);
/* How long a check may stay in progress before it is given up for lost
   (its server died between begin and its end): seconds. */
#define TP_REDIS_CHECK_TTL 60

enum tp_redis_gate { TP_GATE_GO, TP_GATE_LOCKED, TP_GATE_BUSY, TP_GATE_ADDRESS };

/* Before a guess is checked: TP_GATE_GO with *check_r naming the check
   (pass it to success or failure); TP_GATE_LOCKED with *value_r the end of
   the lockout; TP_GATE_BUSY with *value_r the checks in progress that,
   with the failures, already reach max_failures; TP_GATE_ADDRESS with
   *value_r the end of the block of r->rhost. -1 on error. */
int tp_redis_begin(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		   long long *check_r, long long *value_r, struct mw_buf *err);
/* Ends check and records an accepted code (only if its step is newer than
   Redis's) or backup code (only if not used yet), unless a lockout is in
   force: 0 recorded, 1 lost the race, 2 locked out, -1. */
int tp_redis_success(struct tp_redis *r, const char *user, const struct tp_state *st,
		     const struct tp_result *res, int64_t now, long long check, struct mw_buf *err);
/* Ends check; counted: one more failure (and a lockout at max_failures,
   *locked_now, with st's locked_until and lockouts set; r->rhost's block
   at rhost_max_failures, *rhost_blocked). 0 or -1. */
int tp_redis_failure(struct tp_redis *r, const char *user, const struct tp_policy *pol, int64_t now,
		     long long check, int counted, struct tp_state *st, int *locked_now, int *rhost_blocked,
		     struct mw_buf *err);
int tp_redis_app_used(struct tp_redis *r, const char *user, const char *name, int64_t now, struct mw_buf *err);

#endif
