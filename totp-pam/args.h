/*
 * args: the PAM module's arguments (the words after pam_totp.so in a
 * pam.d line), parsed strictly: an unknown or malformed argument makes
 * the module refuse (PAM_SERVICE_ERR) rather than run half-configured.
 *
 *   dir=/var/lib/totp            state directory
 *   window=1                     steps either side accepted (0..10)
 *   skew_search=20               steps beyond the window searched only to
 *                                log a client's clock offset (0..120)
 *   forward_pass                 the code is typed after the password
 *   nullok                       users without a state file pass (PAM_IGNORE)
 *   defer                        check the code, but record it as used only
 *                                in a later "pam_totp.so commit" line (after
 *                                the password module): a wrong password
 *                                never spends a valid code
 *   commit                       record what the deferring line checked
 *   app_passwords=dovecot,smtp   on these services an enrolled user must
 *                                use an app password
 *   max_failures=10 lockout=300  lockout after consecutive failures (s, or
 *                                with a unit: 5m); each further lockout in a
 *   lockout_max=1d               row twice as long, up to lockout_max
 *   rhost_max_failures=3         failures from one client address (PAM_RHOST)
 *   rhost_lockout=15m            that block it for this user (state=file)
 *   on_state_error=allow_without_replay | fail
 *   lock_timeout=5s              how long to wait for the user's lock
 *   prompt=Verification code:    the conversation's prompt ([prompt=...]
 *                                in pam.d for spaces)
 *   state=file | redis, redis_servers=..., redis_password_file=...,
 *   redis_mode=auto | single | sentinel | cluster (seeds in redis_servers),
 *   redis_database=0, redis_timeout=300ms, redis_prefix=totp:,
 *   on_redis_error=refuse | accept_without_replay
 *   debug                        log each decision (never a secret)
 *
 * Pure: no I/O. The struct holds pointers into argv (which PAM keeps for
 * the call's duration) plus fixed fields; nothing to free.
 */
#ifndef TP_ARGS_H
#define TP_ARGS_H

#include "buf.h"
#include "redis.h"
#include "verify.h"

#define TP_MAX_SERVICES 16

enum tp_on_state_error { TP_STATE_ERR_ALLOW, TP_STATE_ERR_FAIL };
enum tp_on_redis_error { TP_REDIS_ERR_REFUSE, TP_REDIS_ERR_ACCEPT };

struct tp_args {
	const char *dir;
	struct tp_policy policy;
	int forward_pass;
	int nullok;
	int defer;
	int commit;
	int debug;
	const char *services[TP_MAX_SERVICES];
	size_t service_len[TP_MAX_SERVICES];
	int nservices;
	enum tp_on_state_error on_state_error;
	unsigned lock_timeout_ms;
	const char *prompt;
	int redis;                          /* state=redis */
	struct mw_redis_conf redis_conf;    /* password read from redis_password_file */
	const char *redis_password_file;
	const char *redis_prefix;
	enum tp_on_redis_error on_redis_error;
};

#define TP_DEFAULT_DIR "/var/lib/totp"

int tp_args_parse(int argc, const char **argv, struct tp_args *a, struct mw_buf *err);
/* Whether service is listed in app_passwords=. */
int tp_args_app_service(const struct tp_args *a, const char *service);

#endif
