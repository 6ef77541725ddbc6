#include "config.h"

#include <string.h>

#include "verify.h"

const char *tp_outcome_name(enum tp_outcome o)
{
	switch (o) {
	case TP_ACCEPT_CODE:
		return "code accepted";
	case TP_ACCEPT_BACKUP:
		return "backup code accepted";
	case TP_REJECT_REPLAY:
		return "code already used (replay)";
	case TP_REJECT_BACKUP_USED:
		return "backup code already used";
	case TP_REJECT_SKEW:
		return "code outside the time window";
	case TP_REJECT_BAD:
		return "wrong code";
	case TP_REJECT_MALFORMED:
		return "not a code";
	case TP_ERROR:
		break;
	}
	return "internal error";
}

int tp_effective_window(const struct tp_state *st, const struct tp_policy *pol)
{
	int w = st->window >= 0 ? st->window : pol->window;
	if (w < 0)
		w = 0;
	if (w > TP_WINDOW_MAX)
		w = TP_WINDOW_MAX;
	return w;
}

int tp_locked(const struct tp_state *st, int64_t now)
{
	return st->locked_until > 0 && now < st->locked_until;
}

static int find(const struct tp_state *st, uint64_t from, uint64_t to, const char *otp, size_t n, uint64_t *step_r)
{
	if (from > to)
		return 0;
	return tp_totp_find(st->alg, st->secret, st->secret_len, st->digits, from, to, otp, n, step_r);
}

static void match_code(const struct tp_state *st, const struct tp_policy *pol, int64_t now, const char *otp,
		       size_t n, struct tp_result *r)
{
	uint64_t cur = tp_time_step(now, st->step);
	uint64_t w = (uint64_t)tp_effective_window(st, pol);
	uint64_t lo = cur >= w ? cur - w : 0, hi = cur + w;
	uint64_t step;
	int f;

	/* only steps newer than the last one accepted can be accepted
	   (last_step 0: none yet; step 0 is 1970's first 30 s) */
	uint64_t newer = st->last_step > 0 && st->last_step + 1 > lo ? st->last_step + 1 : lo;
	if ((f = find(st, newer, hi, otp, n, &step)) != 0) {
		r->outcome = f > 0 ? TP_ACCEPT_CODE : TP_ERROR;
		r->step = step;
		return;
	}
	if (st->last_step > 0 && (f = find(st, lo, st->last_step < hi ? st->last_step : hi, otp, n, &step)) != 0) {
		r->outcome = f > 0 ? TP_REJECT_REPLAY : TP_ERROR;
		r->step = step;
		return;
	}
	uint64_t s = pol->skew_steps > 0 ? (uint64_t)pol->skew_steps : 0;
	if (s > 0) {
		/* a clock behind (the usual case), then ahead */
		f = lo > 0 ? find(st, lo > s ? lo - s : 0, lo - 1, otp, n, &step) : 0;
		if (f == 0)
			f = find(st, hi + 1, hi + s, otp, n, &step);
		if (f > 0) {
			r->outcome = TP_REJECT_SKEW;
			r->step = step;
			r->skew_steps = (int64_t)step - (int64_t)cur;
			return;
		}
		if (f < 0) {
			r->outcome = TP_ERROR;
			return;
		}
	}
	r->outcome = TP_REJECT_BAD;
}

/* Index of the first of h[0..n) that norm matches, -1 none, -2 error
   (every entry is checked either way). */
static int find_hash(const struct tp_hash *h, int n, const char *norm, size_t len, struct tp_hash_cache *cache)
{
	int found = -1, err = 0;
	for (int i = 0; i < n; i++) {
		int v = tp_hash_verify(norm, len, &h[i], cache);
		if (v < 0)
			err = 1;
		else if (v > 0 && found < 0)
			found = i;
	}
	return err ? -2 : found;
}

static void match_backup(const struct tp_state *st, const char *norm, size_t n, struct tp_result *r)
{
	struct tp_hash_cache cache;
	memset(&cache, 0, sizeof(cache));
	int found = find_hash(st->backup, st->nbackup, norm, n, &cache);
	int used = found == -1 ? find_hash(st->used, st->nused, norm, n, &cache) : -1;
	tp_hash_cache_wipe(&cache);
	if (found >= 0) {
		r->outcome = TP_ACCEPT_BACKUP;
		r->backup_index = found;
	} else if (found == -2 || used == -2) {
		r->outcome = TP_ERROR;
	} else {
		r->outcome = used >= 0 ? TP_REJECT_BACKUP_USED : TP_REJECT_BAD;
	}
}

int tp_is_guess(const struct tp_state *st, const char *otp, size_t n)
{
	char norm[TP_BACKUP_LEN + 1];
	if (tp_code_syntax_ok(otp, n, st->digits))
		return 1;
	int len = tp_backup_code_normalise(otp, n, norm, sizeof(norm));
	tp_wipe(norm, sizeof(norm));
	return len > 0;
}

void tp_match(const struct tp_state *st, const struct tp_policy *pol, int64_t now, const char *otp, size_t n,
	      struct tp_result *r)
{
	memset(r, 0, sizeof(*r));
	r->backup_index = -1;
	r->outcome = TP_REJECT_MALFORMED;
	if (tp_code_syntax_ok(otp, n, st->digits)) {
		match_code(st, pol, now, otp, n, r);
		if (r->outcome != TP_REJECT_BAD)
			return;
	}
	char norm[TP_BACKUP_LEN + 1];
	int len = tp_backup_code_normalise(otp, n, norm, sizeof(norm));
	if (len > 0) {
		struct tp_result b = *r;
		match_backup(st, norm, (size_t)len, &b);
		tp_wipe(norm, sizeof(norm));
		/* a wrong backup code after a skew/replay finding keeps that finding */
		if (b.outcome != TP_REJECT_BAD || r->outcome == TP_REJECT_MALFORMED)
			*r = b;
	}
}

void tp_commit_success(struct tp_state *st, const struct tp_result *r, int64_t now)
{
	if (r->outcome == TP_ACCEPT_CODE && r->step > st->last_step)
		st->last_step = r->step;
	else if (r->outcome == TP_ACCEPT_BACKUP)
		tp_state_use_backup(st, r->backup_index);
	else
		return;
	st->failures = 0;
	st->locked_until = 0;
	st->lockouts = 0;
	st->last_login = now;
}

int64_t tp_lockout_length(const struct tp_policy *pol, unsigned n)
{
	int64_t len = pol->lockout_s, max = pol->lockout_max_s > pol->lockout_s ? pol->lockout_max_s : pol->lockout_s;
	for (unsigned i = 1; i < n && len > 0 && len < max; i++)
		len *= 2;
	return len < max ? len : max;
}

int tp_commit_failure(struct tp_state *st, const struct tp_policy *pol, int64_t now)
{
	if (st->locked_until > 0 && now >= st->locked_until) {
		st->locked_until = 0; /* an expired lockout starts the count anew */
		st->failures = 0;
	}
	if (st->failures < 1000000)
		st->failures++;
	if (pol->max_failures > 0 && st->failures >= pol->max_failures) {
		if (st->lockouts < 1000000)
			st->lockouts++;
		st->locked_until = now + tp_lockout_length(pol, st->lockouts);
		st->failures = 0;
		return 1;
	}
	return 0;
}

int64_t tp_rhost_blocked(const struct tp_state *st, const char *addr, int64_t now)
{
	int i = tp_state_find_rhost(st, addr);
	return i >= 0 && st->rhost[i].blocked_until > now ? st->rhost[i].blocked_until : 0;
}

int tp_commit_rhost_failure(struct tp_state *st, const struct tp_policy *pol, const char *addr, int64_t now)
{
	size_t n = strlen(addr);
	if (pol->rhost_max_failures == 0 || !tp_rhost_ok(addr, n))
		return 0;
	int i = tp_state_find_rhost(st, addr);
	if (i < 0) {
		if (st->nrhost < TP_MAX_RHOSTS) {
			i = st->nrhost++;
		} else {
			/* the address seen longest ago makes room (a blocked one
			   only if all are) */
			i = 0;
			for (int k = 1; k < st->nrhost; k++) {
				int kb = st->rhost[k].blocked_until > now, ib = st->rhost[i].blocked_until > now;
				if (kb < ib || (kb == ib && st->rhost[k].last_seen < st->rhost[i].last_seen))
					i = k;
			}
		}
		memset(&st->rhost[i], 0, sizeof(st->rhost[i]));
		memcpy(st->rhost[i].addr, addr, n + 1);
	}
	struct tp_rhost *h = &st->rhost[i];
	if (h->blocked_until > 0 && now >= h->blocked_until) {
		h->blocked_until = 0;
		h->failures = 0;
	}
	h->last_seen = now;
	if (h->failures < 1000000)
		h->failures++;
	if (h->failures >= pol->rhost_max_failures) {
		h->blocked_until = now + (int64_t)pol->rhost_lockout_s;
		h->failures = 0;
		return 1;
	}
	return 0;
}

void tp_commit_rhost_success(struct tp_state *st, const char *addr)
{
	int i = tp_state_find_rhost(st, addr);
	if (i < 0)
		return;
	memmove(&st->rhost[i], &st->rhost[i + 1], (size_t)(st->nrhost - i - 1) * sizeof(st->rhost[0]));
	st->nrhost--;
	memset(&st->rhost[st->nrhost], 0, sizeof(st->rhost[0]));
}

int tp_match_app(const struct tp_state *st, const char *typed, size_t n, int *index_r)
{
	char norm[TP_APPPASS_LEN + 1];
	int len = tp_app_password_normalise(typed, n, norm, sizeof(norm));
	if (len < 0)
		return 0;
	struct tp_hash_cache cache;
	memset(&cache, 0, sizeof(cache));
	int found = -1, err = 0;
	for (int i = 0; i < st->napp; i++) {
		int v = tp_hash_verify(norm, (size_t)len, &st->app[i].hash, &cache);
		if (v < 0)
			err = 1;
		else if (v > 0 && found < 0)
			found = i;
	}
	tp_hash_cache_wipe(&cache);
	tp_wipe(norm, sizeof(norm));
	if (found >= 0) {
		*index_r = found;
		return 1;
	}
	return err ? -1 : 0;
}

void tp_commit_app(struct tp_state *st, int index, int64_t now)
{
	if (index < 0 || index >= st->napp)
		return;
	st->app[index].last_used = now;
	st->last_login = now;
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

int tp_split_forward(const char *typed, size_t n, int digits, struct tp_split out[4])
{
	int k = 0;
	char tmp[TP_BACKUP_LEN + 1];
	if (digits >= 6 && digits <= 8 && n >= (size_t)digits && all_digits(typed + n - digits, (size_t)digits))
		out[k++] = (struct tp_split){ n - (size_t)digits, n - (size_t)digits, (size_t)digits };
	if (n >= TP_BACKUP_LEN + 1 && typed[n - 6] == '-' &&
	    tp_backup_code_normalise(typed + n - 11, 11, tmp, sizeof(tmp)) == TP_BACKUP_LEN)
		out[k++] = (struct tp_split){ n - 11, n - 11, 11 };
	if (n >= TP_BACKUP_LEN && tp_backup_code_normalise(typed + n - 10, 10, tmp, sizeof(tmp)) == TP_BACKUP_LEN)
		out[k++] = (struct tp_split){ n - 10, n - 10, 10 };
	if (digits != TP_GA_SCRATCH_LEN && n >= TP_GA_SCRATCH_LEN && all_digits(typed + n - 8, 8))
		out[k++] = (struct tp_split){ n - 8, n - 8, 8 };
	tp_wipe(tmp, sizeof(tmp));
	return k;
}
