/*
 * pam_totp.so: TOTP two-factor authentication, backup codes and app
 * passwords, as a PAM module (auth and account).
 *
 * This file is the thin PAM layer: arguments (args.c), the user's state
 * (store.c for files, tpredis.c for the shared dynamic part in Redis), and
 * the decisions (verify.c) are elsewhere. It never exits, never logs
 * anything but through pam_syslog, and never logs a code, a password or a
 * secret. Exported: pam_sm_* only.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "args.h"
#include "store.h"
#include "tpredis.h"
#include "verify.h"

#define EXPORT __attribute__((visibility("default")))

/* defer: what the checking line accepted, for the commit line to record
   (pam_set_data under this name; freed and wiped by PAM). */
#define DEFERRED_DATA "pam_totp_deferred"

struct deferred {
	char user[TP_USER_MAX + 1];
	struct tp_result r;
	struct tp_hash backup;      /* ACCEPT_BACKUP: the code's hash */
	int committed;
};

struct ctx {
	pam_handle_t *pamh;
	struct tp_args args;
	const char *user;
	const char *service;
	const char *rhost;          /* PAM_RHOST, or NULL */
	int64_t now;
	struct tp_store store;
	struct tp_state *st;
	int can_record;             /* the lock is held (file) or Redis answered */
	struct tp_redis redis;
	int redis_down;             /* Redis failed: on_redis_error decides */
	long long check;            /* Redis: this guess's check, 0 before gate() */
	int rhost_blocked_now;      /* this failure blocked the client's address */
	struct mw_buf err;
};

static void tp_log(struct ctx *c, int prio, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void tp_log(struct ctx *c, int prio, const char *fmt, ...)
{
	struct mw_buf line = MW_BUF_INIT;
	va_list ap;
	mw_buf_puts(&line, "user ");
	if (c->user != NULL)
		mw_buf_append_printable(&line, c->user, strlen(c->user), 128);
	else
		mw_buf_puts(&line, "(unknown)");
	if (c->service != NULL) {
		mw_buf_puts(&line, " service ");
		mw_buf_append_printable(&line, c->service, strlen(c->service), 64);
	}
	/* where a login came from, for the admin and for fail2ban */
	mw_buf_puts(&line, " rhost ");
	if (c->rhost != NULL && c->rhost[0] != '\0')
		mw_buf_append_printable(&line, c->rhost, strlen(c->rhost), 64);
	else
		mw_buf_puts(&line, "-");
	mw_buf_puts(&line, ": ");
	va_start(ap, fmt);
	mw_buf_vprintf(&line, fmt, ap);
	va_end(ap);
	pam_syslog(c->pamh, prio, "%s", mw_buf_failed(&line) ? "(log line too long)" : mw_buf_str(&line));
	mw_buf_free(&line);
}

static const char *rhost_key(const struct ctx *c);

static int ctx_init(struct ctx *c, pam_handle_t *pamh, int argc, const char **argv)
{
	memset(c, 0, sizeof(*c));
	c->pamh = pamh;
	c->store = (struct tp_store)TP_STORE_INIT;
	mw_buf_init(&c->err, 4096);
	c->now = (int64_t)time(NULL);
	const void *item = NULL;
	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS)
		c->service = item;
	item = NULL;
	if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS)
		c->rhost = item;
	if (tp_args_parse(argc, argv, &c->args, &c->err) < 0) {
		pam_syslog(pamh, LOG_ERR, "bad arguments, refusing: %s", mw_buf_str(&c->err));
		return PAM_SERVICE_ERR;
	}
	if (c->args.redis && tp_redis_init(&c->redis, &c->args, &c->err) < 0) {
		pam_syslog(pamh, LOG_ERR, "redis settings, refusing: %s", mw_buf_str(&c->err));
		return PAM_SERVICE_ERR;
	}
	if (c->args.redis)
		c->redis.rhost = rhost_key(c);
	int r = pam_get_user(pamh, &c->user, NULL);
	if (r != PAM_SUCCESS || c->user == NULL) {
		c->user = NULL;
		return r == PAM_SUCCESS ? PAM_USER_UNKNOWN : r;
	}
	if (!tp_user_name_ok(c->user)) {
		tp_log(c, LOG_NOTICE, "refused: not a user name totp-pam can look up");
		return PAM_USER_UNKNOWN;
	}
	c->st = calloc(1, sizeof(*c->st));
	if (c->st == NULL)
		return PAM_BUF_ERR;
	return PAM_SUCCESS;
}

static void ctx_free(struct ctx *c)
{
	tp_store_close(&c->store);
	if (c->args.redis)
		tp_redis_free(&c->redis);
	if (c->st != NULL) {
		tp_state_wipe(c->st);
		free(c->st);
	}
	mw_buf_wipe(&c->err);
}

/* The client's address as counted per address, or NULL. */
static const char *rhost_key(const struct ctx *c)
{
	if (c->args.policy.rhost_max_failures == 0 || c->rhost == NULL ||
	    !tp_rhost_ok(c->rhost, strlen(c->rhost)))
		return NULL;
	return c->rhost;
}

/* PAM_MAXTRIES if the user or the client's address is locked out, else 0. */
static int locked_out(struct ctx *c)
{
	if (tp_locked(c->st, c->now)) {
		tp_log(c, LOG_NOTICE, "refused: locked out for %llds more after repeated failures",
		       (long long)(c->st->locked_until - c->now));
		return PAM_MAXTRIES;
	}
	const char *key = rhost_key(c);
	int64_t until = key != NULL ? tp_rhost_blocked(c->st, key, c->now) : 0;
	if (until > 0) {
		tp_log(c, LOG_NOTICE, "refused: address blocked for %llds more after repeated failures from it",
		       (long long)(until - c->now));
		return PAM_MAXTRIES;
	}
	return 0;
}

/* Reads the user's state, without the lock: 1 enrolled, 0 not, or a PAM
   error. Enough to know whether to ask for anything at all. */
static int load(struct ctx *c)
{
	if (c->store.dir_fd < 0 && tp_store_open(&c->store, c->args.dir, c->user, &c->err) < 0) {
		tp_log(c, LOG_ERR, "refused: %s", mw_buf_str(&c->err));
		return PAM_AUTHINFO_UNAVAIL;
	}
	int r = tp_store_load(&c->store, c->st, &c->err);
	if (r < 0) {
		tp_log(c, LOG_ERR, "refused: %s", mw_buf_str(&c->err));
		return PAM_AUTHINFO_UNAVAIL;
	}
	return r == 1 && c->st->confirmed ? 1 : 0;
}

/*
 * Once the user has answered: files: take the user's lock (held until
 * ctx_free, so read-verify-write is one step) and read the state again
 * under it; Redis: fetch the shared dynamic part. Never held while a
 * person types: one user at a prompt must not stall the others' logins.
 * 1 to go on, or a PAM error (also when two-factor was turned off
 * meanwhile).
 */
static int relock(struct ctx *c)
{
	mw_buf_reset(&c->err);
	if (c->args.redis) {
		if (tp_redis_fetch(&c->redis, c->user, c->st, &c->err) == 0) {
			c->can_record = 1;
			return 1;
		}
		c->redis_down = 1;
		tp_log(c, LOG_CRIT, "redis: %s; on_redis_error=%s", mw_buf_str(&c->err),
		       c->args.on_redis_error == TP_REDIS_ERR_REFUSE ? "refuse" : "accept_without_replay");
		return c->args.on_redis_error == TP_REDIS_ERR_REFUSE ? PAM_AUTHINFO_UNAVAIL : 1;
	}
	int lr = tp_store_lock(&c->store, c->args.lock_timeout_ms, &c->err);
	if (lr < 0) {
		/* checking without the lock would let parallel logins each use
		   one code or each make a guess uncounted: never a weaker check */
		tp_log(c, LOG_ERR, "refused: cannot lock the state (%s)", mw_buf_str(&c->err));
		return PAM_AUTHINFO_UNAVAIL;
	}
	if (lr > 0) {
		/* a read-only or full disk without a lock file: nobody can change
		   the state, nor can we record; on_state_error decides after a
		   valid code */
		tp_log(c, LOG_CRIT, "cannot lock the state (%s): what this login changes will not be "
		       "recorded", mw_buf_str(&c->err));
		return 1;
	}
	c->can_record = 1;
	int ret = load(c);
	if (ret == 0) {
		tp_log(c, LOG_NOTICE, "refused: two-factor was turned off during the login");
		return PAM_AUTH_ERR;
	}
	return ret;
}

/*
 * Redis: before a guess is checked, take one of max_failures in Redis (the
 * file's lock does that for files): refused when a lockout is in force or
 * when the failures and the checks already in progress on any server reach
 * max_failures. 1 to check, or a PAM error.
 */
static int gate(struct ctx *c)
{
	if (!c->args.redis || !c->can_record)
		return 1;
	long long value = 0;
	mw_buf_reset(&c->err);
	int g = tp_redis_begin(&c->redis, c->user, &c->args.policy, c->now, &c->check, &value, &c->err);
	if (g == TP_GATE_GO)
		return 1;
	if (g == TP_GATE_LOCKED) {
		tp_log(c, LOG_NOTICE, "refused: locked out for %llds more after repeated failures",
		       value - (long long)c->now);
		return PAM_MAXTRIES;
	}
	if (g == TP_GATE_ADDRESS) {
		tp_log(c, LOG_NOTICE, "refused: address blocked for %llds more after repeated failures from it",
		       value - (long long)c->now);
		return PAM_MAXTRIES;
	}
	if (g == TP_GATE_BUSY) {
		tp_log(c, LOG_NOTICE, "refused unchecked: %lld check%s of this user's codes in progress and the "
		       "failures already reach max_failures=%u", value, value == 1 ? "" : "s",
		       c->args.policy.max_failures);
		return PAM_MAXTRIES;
	}
	c->redis_down = 1;
	c->can_record = 0;
	tp_log(c, LOG_CRIT, "redis: %s; on_redis_error=%s", mw_buf_str(&c->err),
	       c->args.on_redis_error == TP_REDIS_ERR_REFUSE ? "refuse" : "accept_without_replay");
	return c->args.on_redis_error == TP_REDIS_ERR_REFUSE ? PAM_AUTHINFO_UNAVAIL : 1;
}

/* Redis: a check that counts for nothing (not a code after all, an
   internal error) gives its place back. */
static void ungate(struct ctx *c)
{
	int locked_now = 0;
	if (c->args.redis && c->can_record && c->check > 0)
		tp_redis_failure(&c->redis, c->user, &c->args.policy, c->now, c->check, 0, c->st, &locked_now,
				 &c->rhost_blocked_now, &c->err);
	c->check = 0;
}

/* Writes what the decision changed in the state. 0 done, 1 lost a race
   (Redis: another server took this step or backup code first), 2 locked
   out meanwhile (Redis), -1 failed. */
static int record_success(struct ctx *c, const struct tp_result *r)
{
	if (!c->can_record)
		return -1;
	if (c->args.redis)
		return tp_redis_success(&c->redis, c->user, c->st, r, c->now, c->check, &c->err);
	tp_commit_success(c->st, r, c->now);
	if (rhost_key(c) != NULL)
		tp_commit_rhost_success(c->st, rhost_key(c));
	return tp_store_save(&c->store, c->st, &c->err);
}

static int record_failure(struct ctx *c, int *locked_now)
{
	*locked_now = 0;
	if (!c->can_record)
		return -1;
	if (c->args.redis)
		return tp_redis_failure(&c->redis, c->user, &c->args.policy, c->now, c->check, 1, c->st,
					locked_now, &c->rhost_blocked_now, &c->err);
	if (rhost_key(c) != NULL)
		c->rhost_blocked_now = tp_commit_rhost_failure(c->st, &c->args.policy, rhost_key(c), c->now);
	*locked_now = tp_commit_failure(c->st, &c->args.policy, c->now);
	return tp_store_save(&c->store, c->st, &c->err);
}

static int record_app(struct ctx *c, int index)
{
	if (!c->can_record)
		return -1;
	if (c->args.redis)
		return tp_redis_app_used(&c->redis, c->user, c->st->app[index].name, c->now, &c->err);
	tp_commit_app(c->st, index, c->now);
	return tp_store_save(&c->store, c->st, &c->err);
}

static const char *why_unrecorded(struct ctx *c)
{
	if (c->redis_down)
		return "redis is unreachable";
	return mw_buf_len(&c->err) ? mw_buf_str(&c->err) : "the state is not locked";
}

static void deferred_cleanup(pam_handle_t *pamh, void *data, int status)
{
	struct deferred *d = data;
	if (!d->committed && !(status & PAM_DATA_REPLACE))
		pam_syslog(pamh, LOG_INFO, "user %s: a code was accepted but not recorded as used: the login "
			   "failed after it (e.g. a wrong password), or no \"pam_totp.so commit\" line follows",
			   d->user);
	tp_wipe(d, sizeof(*d));
	free(d);
}

/* defer: keep what was accepted for the commit line; the code stays valid
   until then. */
static int defer_success(struct ctx *c, const struct tp_result *r, const char *how)
{
	struct deferred *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return PAM_BUF_ERR;
	snprintf(d->user, sizeof(d->user), "%s", c->user);
	d->r = *r;
	if (r->outcome == TP_ACCEPT_BACKUP)
		d->backup = c->st->backup[r->backup_index];
	int pr = pam_set_data(c->pamh, DEFERRED_DATA, d, deferred_cleanup);
	if (pr != PAM_SUCCESS) {
		tp_wipe(d, sizeof(*d));
		free(d);
		return pr;
	}
	ungate(c);
	tp_log(c, LOG_INFO, "%s; recorded as used once the login succeeds (commit)", how);
	return PAM_SUCCESS;
}

/* An accepted code or backup code: record it, or decide without. */
static int accept(struct ctx *c, const struct tp_result *r, const char *how)
{
	if (c->args.defer)
		return defer_success(c, r, how);
	int rec = record_success(c, r);
	if (rec == 0) {
		tp_log(c, LOG_INFO, "%s", how);
		return PAM_SUCCESS;
	}
	if (rec == 2) {
		tp_log(c, LOG_NOTICE, "refused: %s, but the user was locked out meanwhile", how);
		return PAM_MAXTRIES;
	}
	if (rec > 0) {
		tp_log(c, LOG_WARNING, "refused: %s, but another login used it first (replay)", how);
		return PAM_AUTH_ERR;
	}
	int allow = c->args.redis ? c->args.on_redis_error == TP_REDIS_ERR_ACCEPT
				  : c->args.on_state_error == TP_STATE_ERR_ALLOW;
	if (allow) {
		tp_log(c, LOG_CRIT, "%s WITHOUT replay protection: could not record it (%s); it could be "
		       "used again until the state is writable", how, why_unrecorded(c));
		return PAM_SUCCESS;
	}
	tp_log(c, LOG_ERR, "refused: %s, but could not record it (%s) and on_%s_error says fail", how,
	       why_unrecorded(c), c->args.redis ? "redis" : "state");
	return PAM_AUTHINFO_UNAVAIL;
}

static int refuse(struct ctx *c, const struct tp_result *r)
{
	int locked_now = 0;
	int w = tp_effective_window(c->st, &c->args.policy);
	if (r->outcome == TP_REJECT_SKEW) {
		long long secs = (long long)r->skew_steps * (long long)c->st->step;
		tp_log(c, LOG_WARNING, "refused: the code is for a time %+llds (%+lld steps) from this "
		       "server's clock, outside the window of %d step%s either side; the client's clock "
		       "is %s", secs, (long long)r->skew_steps, w, w == 1 ? "" : "s",
		       secs < 0 ? "behind (or this server's is ahead)" : "ahead (or this server's is behind)");
	} else if (r->outcome == TP_ERROR) {
		ungate(c);
		tp_log(c, LOG_ERR, "refused: internal error while checking the code");
		return PAM_AUTH_ERR;
	} else if (r->outcome == TP_REJECT_REPLAY || r->outcome == TP_REJECT_BACKUP_USED) {
		/* the code was valid once: no guess, not counted (parallel
		   connections of one client must not lock its owner out) */
		ungate(c);
		tp_log(c, LOG_NOTICE, "refused: %s", tp_outcome_name(r->outcome));
		return PAM_AUTH_ERR;
	} else if (r->outcome == TP_REJECT_MALFORMED) {
		/* not a guess at a code: not counted towards a lockout */
		ungate(c);
		tp_log(c, LOG_NOTICE, "refused: %s", c->args.forward_pass ? "no code at the end of the password"
									 : "the answer is not a code");
		return PAM_AUTH_ERR;
	} else {
		tp_log(c, LOG_NOTICE, "refused: %s", tp_outcome_name(r->outcome));
	}
	if (record_failure(c, &locked_now) < 0)
		tp_log(c, LOG_ERR, "could not record the failure (%s)", why_unrecorded(c));
	else if (locked_now)
		tp_log(c, LOG_WARNING, "locked out for %llds after %u failures (lockout %u in a row)",
		       (long long)(c->st->locked_until - c->now), c->args.policy.max_failures, c->st->lockouts);
	if (c->rhost_blocked_now)
		tp_log(c, LOG_WARNING, "address blocked for %us after %u failures from it", c->args.policy.rhost_lockout_s,
		       c->args.policy.rhost_max_failures);
	return PAM_AUTH_ERR;
}

/* forward_pass: the typed password, split at its end into a password and
   a code; the first reading that is accepted wins. */
static int check_forward(struct ctx *c, const char *typed)
{
	struct tp_result r;
	size_t n = strlen(typed);
	struct tp_split sp[4];
	int ns = tp_split_forward(typed, n, c->st->digits, sp);
	struct tp_result best = { .outcome = TP_REJECT_MALFORMED, .backup_index = -1 };
	int chosen = -1;
	int g = ns > 0 ? gate(c) : 1;
	if (g != 1)
		return g;
	for (int i = 0; i < ns; i++) {
		tp_match(c->st, &c->args.policy, c->now, typed + sp[i].otp_off, sp[i].otp_len, &r);
		if (r.outcome == TP_ACCEPT_CODE || r.outcome == TP_ACCEPT_BACKUP) {
			best = r;
			chosen = i;
			break;
		}
		/* keep the most telling refusal for the log */
		if (best.outcome == TP_REJECT_MALFORMED || best.outcome == TP_REJECT_BAD)
			best = r;
	}
	if (chosen < 0)
		return refuse(c, &best);
	int ret = accept(c, &best, best.outcome == TP_ACCEPT_CODE ? "code accepted (forward_pass)"
								  : "backup code accepted (forward_pass)");
	if (ret == PAM_SUCCESS) {
		/* the password alone goes on to the next module */
		char *pass = strndup(typed, sp[chosen].pass_len);
		if (pass == NULL)
			return PAM_BUF_ERR;
		int sr = pam_set_item(c->pamh, PAM_AUTHTOK, pass);
		tp_wipe(pass, sp[chosen].pass_len);
		free(pass);
		if (sr != PAM_SUCCESS)
			return sr;
	}
	return ret;
}

static int check_answer(struct ctx *c, char *resp)
{
	struct tp_result r;
	size_t n = strlen(resp), o = 0;
	/* spaces as some apps show the code: "123 456" */
	for (size_t i = 0; i < n; i++)
		if (resp[i] != ' ')
			resp[o++] = resp[i];
	if (tp_is_guess(c->st, resp, o)) {
		int g = gate(c);
		if (g != 1)
			return g;
	}
	tp_match(c->st, &c->args.policy, c->now, resp, o, &r);
	if (r.outcome == TP_ACCEPT_CODE || r.outcome == TP_ACCEPT_BACKUP)
		return accept(c, &r, r.outcome == TP_ACCEPT_CODE ? "code accepted" : "backup code accepted");
	return refuse(c, &r);
}

/* After the answer: lock, read again, and check the lockout again (another
   login may have started one meanwhile). */
static int relock_enrolled(struct ctx *c)
{
	int ret = relock(c);
	if (ret != 1)
		return ret;
	if ((ret = locked_out(c)) != 0)
		return ret;
	return 1;
}

/* The one-time part: typed after the password, or asked for. */
static int check_code(struct ctx *c)
{
	int ret;
	if (c->args.forward_pass) {
		const char *typed = NULL;
		int pr = pam_get_authtok(c->pamh, PAM_AUTHTOK, &typed, NULL);
		if (pr != PAM_SUCCESS || typed == NULL)
			return pr == PAM_SUCCESS ? PAM_AUTH_ERR : pr;
		if ((ret = relock_enrolled(c)) != 1)
			return ret;
		return check_forward(c, typed);
	}
	char *resp = NULL;
	int pr = pam_prompt(c->pamh, PAM_PROMPT_ECHO_OFF, &resp, "%s", c->args.prompt);
	if (pr != PAM_SUCCESS || resp == NULL) {
		tp_log(c, LOG_NOTICE, "no answer to the code prompt");
		return pr == PAM_SUCCESS ? PAM_CONV_ERR : pr;
	}
	size_t n = strlen(resp);
	ret = relock_enrolled(c);
	if (ret == 1)
		ret = check_answer(c, resp);
	tp_wipe(resp, n);
	free(resp);
	return ret;
}

static int check_app_password(struct ctx *c)
{
	const char *typed = NULL;
	int pr = pam_get_authtok(c->pamh, PAM_AUTHTOK, &typed, NULL);
	if (pr != PAM_SUCCESS || typed == NULL)
		return pr == PAM_SUCCESS ? PAM_AUTH_ERR : pr;
	int ret = relock(c);
	if (ret != 1)
		return ret;
	int idx = -1;
	int m = tp_match_app(c->st, typed, strlen(typed), &idx);
	if (m < 0) {
		tp_log(c, LOG_ERR, "refused: internal error while checking app passwords");
		return PAM_AUTH_ERR;
	}
	if (m == 0) {
		tp_log(c, LOG_NOTICE, "refused: app password not recognised (user has %d app password%s); "
		       "two-factor is on and this service needs one", c->st->napp, c->st->napp == 1 ? "" : "s");
		return PAM_AUTH_ERR;
	}
	char name[TP_APP_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", c->st->app[idx].name);
	if (record_app(c, idx) < 0)
		tp_log(c, LOG_WARNING, "app password \"%s\" accepted; its last use not recorded (%s)", name,
		       why_unrecorded(c));
	else
		tp_log(c, LOG_INFO, "app password \"%s\" accepted", name);
	return PAM_SUCCESS;
}

/*
 * commit: the code (or backup code) the defer line accepted, recorded now
 * that the rest of the stack has passed. Under the lock (or in Redis's
 * script) it must still be unused: two logins with one code may both have
 * been accepted by the defer line; only the first to commit gets in.
 */
static int commit(struct ctx *c)
{
	const void *data = NULL;
	if (pam_get_data(c->pamh, DEFERRED_DATA, &data) != PAM_SUCCESS || data == NULL)
		return PAM_IGNORE; /* nothing deferred: not enrolled (nullok), or an app password */
	struct deferred *d = (struct deferred *)data;
	if (d->committed)
		return PAM_SUCCESS;
	if (strcmp(d->user, c->user) != 0) {
		tp_log(c, LOG_ERR, "refused: the user changed between defer and commit");
		return PAM_AUTH_ERR;
	}
	int ret = load(c);
	if (ret == 0) {
		tp_log(c, LOG_NOTICE, "refused: two-factor was turned off during the login");
		return PAM_AUTH_ERR;
	}
	if (ret != 1 || (ret = relock_enrolled(c)) != 1)
		return ret;
	struct tp_result r = d->r;
	const char *how = r.outcome == TP_ACCEPT_CODE ? "code accepted" : "backup code accepted";
	if (r.outcome == TP_ACCEPT_CODE) {
		if (r.step <= c->st->last_step) {
			tp_log(c, LOG_WARNING, "refused: %s, but another login used it first (replay)", how);
			return PAM_AUTH_ERR;
		}
	} else {
		r.backup_index = -1;
		/* the same code: the same salt and derived key */
		for (int i = 0; i < c->st->nbackup; i++) {
			const struct tp_hash *h = &c->st->backup[i];
			if (h->saltlen == d->backup.saltlen && h->dklen == d->backup.dklen &&
			    memcmp(h->salt, d->backup.salt, h->saltlen) == 0 && memcmp(h->dk, d->backup.dk, h->dklen) == 0)
				r.backup_index = i;
		}
		if (r.backup_index < 0) {
			tp_log(c, LOG_WARNING, "refused: %s, but another login used it first", how);
			return PAM_AUTH_ERR;
		}
	}
	c->args.defer = 0;
	ret = accept(c, &r, r.outcome == TP_ACCEPT_CODE ? "code accepted, recorded at commit"
							: "backup code accepted, recorded at commit");
	if (ret == PAM_SUCCESS)
		d->committed = 1;
	return ret;
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct ctx c;
	int ret = ctx_init(&c, pamh, argc, argv);
	if (ret != PAM_SUCCESS)
		goto out;
	if (c.args.commit) {
		ret = commit(&c);
		goto out;
	}
	int app = tp_args_app_service(&c.args, c.service);
	ret = load(&c);
	if (ret == 0) {
		if (c.args.nullok) {
			if (c.args.debug)
				tp_log(&c, LOG_DEBUG, "not enrolled (or not confirmed): nullok, ignored");
			ret = PAM_IGNORE;
		} else {
			tp_log(&c, LOG_NOTICE, "refused: not enrolled in two-factor (or not confirmed), no nullok");
			ret = PAM_AUTH_ERR;
		}
		goto out;
	}
	if (ret != 1)
		goto out;
	if (app) {
		/* app passwords are long random strings: no lockout (verify.h) */
		ret = check_app_password(&c);
		goto out;
	}
	if ((ret = locked_out(&c)) != 0)
		goto out;
	ret = check_code(&c);
out:
	ctx_free(&c);
	return ret;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}

/* account: an enrolled user who is locked out is refused here too, so a
   login that did not go through auth (ssh keys) honours the lockout. */
EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	struct ctx c;
	int ret = ctx_init(&c, pamh, argc, argv);
	if (ret != PAM_SUCCESS)
		goto out;
	ret = load(&c);
	if (ret == 0) {
		ret = PAM_IGNORE;
		goto out;
	}
	if (ret != 1)
		goto out;
	if (c.args.redis && tp_redis_fetch(&c.redis, c.user, c.st, &c.err) < 0 &&
	    c.args.on_redis_error == TP_REDIS_ERR_REFUSE) {
		tp_log(&c, LOG_CRIT, "account: redis: %s; on_redis_error=refuse", mw_buf_str(&c.err));
		ret = PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	if (tp_locked(c.st, c.now)) {
		tp_log(&c, LOG_NOTICE, "account refused: locked out for %llds more",
		       (long long)(c.st->locked_until - c.now));
		ret = PAM_PERM_DENIED;
		goto out;
	}
	ret = PAM_SUCCESS;
out:
	ctx_free(&c);
	return ret;
}
