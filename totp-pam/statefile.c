#include "config.h"

#include <stdint.h>
#include <string.h>

#include "statefile.h"
#include "strnum.h"

#define TIME_MAX ((unsigned long long)1 << 40) /* year 36812: enough, and no overflow when added to */

void tp_state_init(struct tp_state *st)
{
	memset(st, 0, sizeof(*st));
	st->alg = TP_SHA1;
	st->digits = 6;
	st->step = 30;
	st->window = -1;
	st->pending.alg = TP_SHA1;
	st->pending.digits = 6;
	st->pending.step = 30;
}

void tp_state_wipe(struct tp_state *st)
{
	tp_wipe(st, sizeof(*st));
}

int tp_app_name_ok(const char *name, size_t n)
{
	if (n == 0 || n > TP_APP_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int tp_rhost_ok(const char *addr, size_t n)
{
	if (n == 0 || n > TP_RHOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = addr[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == ':' || c == '_' || c == '%' || c == '-'))
			return 0;
	}
	return 1;
}

int tp_state_find_rhost(const struct tp_state *st, const char *addr)
{
	for (int i = 0; i < st->nrhost; i++)
		if (strcmp(st->rhost[i].addr, addr) == 0)
			return i;
	return -1;
}

int tp_state_find_app(const struct tp_state *st, const char *name)
{
	for (int i = 0; i < st->napp; i++)
		if (strcmp(st->app[i].name, name) == 0)
			return i;
	return -1;
}

void tp_state_remove_backup(struct tp_state *st, int i)
{
	if (i < 0 || i >= st->nbackup)
		return;
	memmove(&st->backup[i], &st->backup[i + 1], (size_t)(st->nbackup - i - 1) * sizeof(st->backup[0]));
	st->nbackup--;
	memset(&st->backup[st->nbackup], 0, sizeof(st->backup[0]));
}

void tp_state_remove_app(struct tp_state *st, int i)
{
	if (i < 0 || i >= st->napp)
		return;
	memmove(&st->app[i], &st->app[i + 1], (size_t)(st->napp - i - 1) * sizeof(st->app[0]));
	st->napp--;
	memset(&st->app[st->napp], 0, sizeof(st->app[0]));
}

void tp_state_promote_pending(const struct tp_state *st, struct tp_state *out)
{
	const struct tp_pending *p = &st->pending;
	*out = *st;
	memcpy(out->secret, p->secret, sizeof(out->secret));
	out->secret_len = p->secret_len;
	out->alg = p->alg;
	out->digits = p->digits;
	out->step = p->step;
	out->created = p->created;
	memcpy(out->backup, p->backup, sizeof(out->backup));
	out->nbackup = p->nbackup;
	memset(out->used, 0, sizeof(out->used));
	out->nused = 0;
	out->confirmed = 1;
	out->failures = 0;
	out->locked_until = 0;
	out->lockouts = 0;
	memset(&out->pending, 0, sizeof(out->pending));
	out->pending.alg = TP_SHA1;
	out->pending.digits = 6;
	out->pending.step = 30;
}

void tp_state_use_backup(struct tp_state *st, int i)
{
	if (i < 0 || i >= st->nbackup)
		return;
	if (st->nused == TP_MAX_BACKUP) {
		memmove(&st->used[0], &st->used[1], (size_t)(TP_MAX_BACKUP - 1) * sizeof(st->used[0]));
		st->nused--;
	}
	st->used[st->nused++] = st->backup[i];
	tp_state_remove_backup(st, i);
}

/* A decimal number without leading zeros (one spelling per value). */
static int num(const char *s, size_t n, unsigned long long max, unsigned long long *v)
{
	if (n == 0 || (n > 1 && s[0] == '0'))
		return -1;
	return mw_parse_uint_n(s, n, max, v);
}

static int set_secret(unsigned char *secret, size_t *secret_len, const char *v, size_t n)
{
	struct mw_buf b;
	mw_buf_init(&b, TP_SECRET_MAX + 8);
	int r = -1;
	if (tp_base32_decode(v, n, &b) == 0 && b.len >= TP_SECRET_MIN && b.len <= TP_SECRET_MAX) {
		memcpy(secret, b.data, b.len);
		*secret_len = b.len;
		r = 0;
	}
	mw_buf_wipe(&b);
	return r;
}

/* Splits a value into exactly four fields at single spaces; 0, or -1 when
   there are more or fewer. */
static int split4(const char *v, size_t n, const char *f[4], size_t fl[4])
{
	int k = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || v[i] == ' ') {
			if (k == 4)
				return -1;
			f[k] = v + start;
			fl[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k == 4 ? 0 : -1;
}

static int parse_app(struct tp_state *st, const char *v, size_t n, struct mw_buf *err, unsigned lineno)
{
	const char *f[4];
	size_t fl[4];
	if (split4(v, n, f, fl) < 0)
		goto bad;
	if (st->napp == TP_MAX_APPS) {
		mw_buf_setf(err, "line %u: more than %d app passwords", lineno, TP_MAX_APPS);
		return -1;
	}
	struct tp_app *a = &st->app[st->napp];
	unsigned long long created, used;
	if (!tp_app_name_ok(f[0], fl[0]) || num(f[1], fl[1], TIME_MAX, &created) < 0 ||
	    num(f[2], fl[2], TIME_MAX, &used) < 0 || tp_hash_parse(f[3], fl[3], &a->hash) < 0)
		goto bad;
	memcpy(a->name, f[0], fl[0]);
	a->name[fl[0]] = '\0';
	if (tp_state_find_app(st, a->name) >= 0) {
		mw_buf_setf(err, "line %u: app password \"%s\" listed twice", lineno, a->name);
		memset(a, 0, sizeof(*a));
		return -1;
	}
	a->created = (int64_t)created;
	a->last_used = (int64_t)used;
	st->napp++;
	return 0;
bad:
	mw_buf_setf(err, "line %u: app wants NAME CREATED LAST_USED HASH", lineno);
	return -1;
}

/* rhost ADDR FAILURES BLOCKED_UNTIL LAST_SEEN */
static int parse_rhost(struct tp_state *st, const char *v, size_t n, struct mw_buf *err, unsigned lineno)
{
	const char *f[4];
	size_t fl[4];
	if (split4(v, n, f, fl) < 0)
		goto bad;
	if (st->nrhost == TP_MAX_RHOSTS) {
		mw_buf_setf(err, "line %u: more than %d rhost lines", lineno, TP_MAX_RHOSTS);
		return -1;
	}
	struct tp_rhost *h = &st->rhost[st->nrhost];
	unsigned long long fails, until, seen;
	if (!tp_rhost_ok(f[0], fl[0]) || num(f[1], fl[1], 1000000, &fails) < 0 || num(f[2], fl[2], TIME_MAX, &until) < 0 ||
	    num(f[3], fl[3], TIME_MAX, &seen) < 0)
		goto bad;
	memcpy(h->addr, f[0], fl[0]);
	h->addr[fl[0]] = '\0';
	if (tp_state_find_rhost(st, h->addr) >= 0) {
		mw_buf_setf(err, "line %u: rhost listed twice", lineno);
		memset(h, 0, sizeof(*h));
		return -1;
	}
	h->failures = (unsigned)fails;
	h->blocked_until = (int64_t)until;
	h->last_seen = (int64_t)seen;
	st->nrhost++;
	return 0;
bad:
	mw_buf_setf(err, "line %u: rhost wants ADDR FAILURES BLOCKED_UNTIL LAST_SEEN", lineno);
	return -1;
}

enum key {
	K_VERSION, K_SECRET, K_ALGORITHM, K_DIGITS, K_STEP, K_WINDOW, K_CONFIRMED, K_LAST_STEP,
	K_LAST_LOGIN, K_FAILURES, K_LOCKED_UNTIL, K_CREATED, K_BACKUP, K_APP, K_P_SECRET, K_P_ALGORITHM,
	K_P_DIGITS, K_P_STEP, K_P_CREATED, K_P_BACKUP, K_BACKUP_USED, K_LOCKOUTS, K_RHOST, K_COUNT
};

static const char *const key_names[K_COUNT] = {
	"version", "secret", "algorithm", "digits", "step", "window", "confirmed", "last_step",
	"last_login", "failures", "locked_until", "created", "backup", "app", "pending_secret",
	"pending_algorithm", "pending_digits", "pending_step", "pending_created", "pending_backup",
	"backup_used", "lockouts", "rhost",
};

static int parse_backup(struct tp_hash *backup, int *nbackup, const char *v, size_t n, struct mw_buf *err,
			unsigned lineno)
{
	if (*nbackup == TP_MAX_BACKUP) {
		mw_buf_setf(err, "line %u: more than %d backup codes", lineno, TP_MAX_BACKUP);
		return -1;
	}
	if (tp_hash_parse(v, n, &backup[*nbackup]) < 0) {
		memset(&backup[*nbackup], 0, sizeof(backup[0]));
		return 1;
	}
	(*nbackup)++;
	return 0;
}

static int parse_line(struct tp_state *st, enum key k, const char *v, size_t n, struct mw_buf *err,
		      unsigned lineno)
{
	unsigned long long x;
	switch (k) {
	case K_VERSION:
		if (n != 1 || v[0] != '1') {
			mw_buf_setf(err, "line %u: unsupported version (this reads version 1)", lineno);
			return -1;
		}
		return 0;
	case K_SECRET:
		if (set_secret(st->secret, &st->secret_len, v, n) < 0) {
			mw_buf_setf(err, "line %u: secret is not base32 of %d to %d bytes", lineno,
				    TP_SECRET_MIN, TP_SECRET_MAX);
			return -1;
		}
		return 0;
	case K_P_SECRET:
		if (set_secret(st->pending.secret, &st->pending.secret_len, v, n) < 0) {
			mw_buf_setf(err, "line %u: pending_secret is not base32 of %d to %d bytes", lineno,
				    TP_SECRET_MIN, TP_SECRET_MAX);
			return -1;
		}
		return 0;
	case K_ALGORITHM:
	case K_P_ALGORITHM:
		if (tp_alg_parse(v, n, k == K_ALGORITHM ? &st->alg : &st->pending.alg) < 0)
			break;
		return 0;
	case K_DIGITS:
	case K_P_DIGITS:
		if (num(v, n, 8, &x) < 0 || x < 6)
			break;
		*(k == K_DIGITS ? &st->digits : &st->pending.digits) = (int)x;
		return 0;
	case K_STEP:
	case K_P_STEP:
		if (num(v, n, TP_STEP_MAX, &x) < 0 || x < 1)
			break;
		*(k == K_STEP ? &st->step : &st->pending.step) = (unsigned)x;
		return 0;
	case K_P_CREATED:
		if (num(v, n, TIME_MAX, &x) < 0)
			break;
		st->pending.created = (int64_t)x;
		return 0;
	case K_BACKUP_USED:
	case K_P_BACKUP: {
		int r = k == K_BACKUP_USED ? parse_backup(st->used, &st->nused, v, n, err, lineno)
					   : parse_backup(st->pending.backup, &st->pending.nbackup, v, n, err, lineno);
		if (r > 0)
			break;
		return r;
	}
	case K_WINDOW:
		if (num(v, n, TP_WINDOW_MAX, &x) < 0)
			break;
		st->window = (int)x;
		return 0;
	case K_CONFIRMED:
		if (num(v, n, 1, &x) < 0)
			break;
		st->confirmed = (int)x;
		return 0;
	case K_LAST_STEP:
		if (num(v, n, TIME_MAX, &x) < 0)
			break;
		st->last_step = x;
		return 0;
	case K_LAST_LOGIN:
	case K_LOCKED_UNTIL:
	case K_CREATED:
		if (num(v, n, TIME_MAX, &x) < 0)
			break;
		*(k == K_LAST_LOGIN ? &st->last_login : k == K_CREATED ? &st->created : &st->locked_until) =
			(int64_t)x;
		return 0;
	case K_FAILURES:
	case K_LOCKOUTS:
		if (num(v, n, 1000000, &x) < 0)
			break;
		*(k == K_FAILURES ? &st->failures : &st->lockouts) = (unsigned)x;
		return 0;
	case K_BACKUP: {
		int r = parse_backup(st->backup, &st->nbackup, v, n, err, lineno);
		if (r > 0)
			break;
		return r;
	}
	case K_APP:
		return parse_app(st, v, n, err, lineno);
	case K_RHOST:
		return parse_rhost(st, v, n, err, lineno);
	case K_COUNT:
		break;
	}
	mw_buf_setf(err, "line %u: bad value for %s", lineno, key_names[k]);
	return -1;
}

int tp_state_parse(const char *text, size_t n, struct tp_state *st, struct mw_buf *err)
{
	int seen[K_COUNT] = { 0 };
	unsigned lineno = 0;
	size_t pos = 0;
	tp_state_init(st);
	if (n > TP_FILE_MAX) {
		mw_buf_setf(err, "larger than %d bytes", TP_FILE_MAX);
		goto fail;
	}
	while (pos < n) {
		lineno++;
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', n - pos);
		if (nl == NULL) {
			mw_buf_setf(err, "line %u: no newline at the end (truncated?)", lineno);
			goto fail;
		}
		size_t len = (size_t)(nl - line);
		pos += len + 1;
		if (len > TP_LINE_MAX) {
			mw_buf_setf(err, "line %u: longer than %d bytes", lineno, TP_LINE_MAX);
			goto fail;
		}
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)line[i];
			if (c < 0x20 || c >= 0x7f) {
				mw_buf_setf(err, "line %u: control or non-ASCII byte", lineno);
				goto fail;
			}
		}
		if (len == 0 || line[0] == '#')
			continue;
		const char *sp = memchr(line, ' ', len);
		if (sp == NULL || sp == line || (size_t)(sp - line) + 1 == len || sp[1] == ' ' ||
		    line[len - 1] == ' ') {
			mw_buf_setf(err, "line %u: not \"key value\"", lineno);
			goto fail;
		}
		size_t klen = (size_t)(sp - line);
		int k;
		for (k = 0; k < K_COUNT; k++)
			if (strlen(key_names[k]) == klen && memcmp(key_names[k], line, klen) == 0)
				break;
		if (k == K_COUNT) {
			/* not echoed: a misplaced secret could sit there */
			mw_buf_setf(err, "line %u: unknown key", lineno);
			goto fail;
		}
		if (seen[k] && k != K_BACKUP && k != K_APP && k != K_P_BACKUP && k != K_BACKUP_USED &&
		    k != K_RHOST) {
			mw_buf_setf(err, "line %u: %s given twice", lineno, key_names[k]);
			goto fail;
		}
		if (k != K_VERSION && !seen[K_VERSION]) {
			mw_buf_setf(err, "line %u: %s before version", lineno, key_names[k]);
			goto fail;
		}
		seen[k] = 1;
		if (parse_line(st, (enum key)k, sp + 1, len - klen - 1, err, lineno) < 0)
			goto fail;
	}
	if (!seen[K_VERSION] || !seen[K_SECRET]) {
		mw_buf_setf(err, "no %s line", seen[K_VERSION] ? "secret" : "version");
		goto fail;
	}
	if (!seen[K_P_SECRET]) {
		for (int k = K_P_ALGORITHM; k <= K_P_BACKUP; k++) {
			if (seen[k]) {
				mw_buf_setf(err, "%s without pending_secret", key_names[k]);
				goto fail;
			}
		}
	}
	return 0;
fail:
	tp_state_wipe(st);
	tp_state_init(st);
	return -1;
}

int tp_state_format(const struct tp_state *st, struct mw_buf *out)
{
	mw_buf_puts(out, "version 1\n# totp-pam state: change it with totp-admin, not by hand\nsecret ");
	tp_base32_encode(st->secret, st->secret_len, out);
	mw_buf_printf(out, "\nalgorithm %s\ndigits %d\nstep %u\n", tp_alg_name(st->alg), st->digits, st->step);
	if (st->window >= 0)
		mw_buf_printf(out, "window %d\n", st->window);
	mw_buf_printf(out,
		      "confirmed %d\ncreated %lld\nlast_step %llu\nlast_login %lld\nfailures %u\n"
		      "locked_until %lld\nlockouts %u\n",
		      st->confirmed ? 1 : 0, (long long)st->created, (unsigned long long)st->last_step,
		      (long long)st->last_login, st->failures, (long long)st->locked_until, st->lockouts);
	for (int i = 0; i < st->nbackup; i++) {
		mw_buf_puts(out, "backup ");
		tp_hash_format(&st->backup[i], out);
		mw_buf_putc(out, '\n');
	}
	for (int i = 0; i < st->nused; i++) {
		mw_buf_puts(out, "backup_used ");
		tp_hash_format(&st->used[i], out);
		mw_buf_putc(out, '\n');
	}
	for (int i = 0; i < st->napp; i++) {
		const struct tp_app *a = &st->app[i];
		mw_buf_printf(out, "app %s %lld %lld ", a->name, (long long)a->created, (long long)a->last_used);
		tp_hash_format(&a->hash, out);
		mw_buf_putc(out, '\n');
	}
	for (int i = 0; i < st->nrhost; i++) {
		const struct tp_rhost *h = &st->rhost[i];
		mw_buf_printf(out, "rhost %s %u %lld %lld\n", h->addr, h->failures, (long long)h->blocked_until,
			      (long long)h->last_seen);
	}
	const struct tp_pending *p = &st->pending;
	if (p->secret_len > 0) {
		mw_buf_puts(out, "pending_secret ");
		tp_base32_encode(p->secret, p->secret_len, out);
		mw_buf_printf(out, "\npending_algorithm %s\npending_digits %d\npending_step %u\npending_created %lld\n",
			      tp_alg_name(p->alg), p->digits, p->step, (long long)p->created);
		for (int i = 0; i < p->nbackup; i++) {
			mw_buf_puts(out, "pending_backup ");
			tp_hash_format(&p->backup[i], out);
			mw_buf_putc(out, '\n');
		}
	}
	return mw_buf_failed(out) ? -1 : 0;
}

/* ------------------------------------------------ google-authenticator */

static int ga_option(struct tp_state *st, const char *v, size_t n, struct mw_buf *err, unsigned lineno)
{
	/* the option name, then space-separated numbers */
	size_t i = 0;
	while (i < n && v[i] != ' ')
		i++;
	size_t olen = i;
	unsigned long long nums[64];
	int nn = 0;
	while (i < n) {
		while (i < n && v[i] == ' ')
			i++;
		size_t s = i;
		while (i < n && v[i] != ' ')
			i++;
		if (i == s)
			break;
		if (nn == 64 || mw_parse_uint_n(v + s, i - s, TIME_MAX, &nums[nn]) < 0) {
			mw_buf_setf(err, "line %u: bad option value", lineno);
			return -1;
		}
		nn++;
	}
#define IS(name) (olen == sizeof(name) - 1 && memcmp(v, name, olen) == 0)
	if (IS("TOTP_AUTH") || IS("RATE_LIMIT") || IS("TIME_SKEW")) {
		return 0; /* ours: max_failures= / lockout=; no automatic skew */
	} else if (IS("HOTP_COUNTER")) {
		mw_buf_setf(err, "line %u: counter-based (HOTP) secrets are not supported", lineno);
		return -1;
	} else if (IS("STEP_SIZE")) {
		if (nn != 1 || nums[0] < 1 || nums[0] > TP_STEP_MAX)
			goto bad;
		st->step = (unsigned)nums[0];
	} else if (IS("WINDOW_SIZE")) {
		/* google-authenticator counts the whole window (3 = one each side) */
		if (nn != 1 || nums[0] < 1 || nums[0] > 100)
			goto bad;
		unsigned long long w = (nums[0] - 1) / 2;
		st->window = (int)(w > TP_WINDOW_MAX ? TP_WINDOW_MAX : w);
	} else if (IS("DISALLOW_REUSE")) {
		for (int j = 0; j < nn; j++)
			if (nums[j] > st->last_step)
				st->last_step = nums[j];
	} else {
		mw_buf_setf(err, "line %u: unknown google-authenticator option", lineno);
		return -1;
	}
	return 0;
#undef IS
bad:
	mw_buf_setf(err, "line %u: bad option value", lineno);
	return -1;
}

int tp_state_import_ga(const char *text, size_t n, int64_t now, struct tp_state *st, struct mw_buf *err)
{
	unsigned lineno = 0;
	size_t pos = 0;
	struct tp_hash salt_from;
	int have_salt = 0;
	tp_state_init(st);
	if (n > TP_FILE_MAX) {
		mw_buf_setf(err, "larger than %d bytes", TP_FILE_MAX);
		goto fail;
	}
	while (pos < n) {
		lineno++;
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - line) : n - pos;
		pos += len + (nl ? 1 : 0);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > TP_LINE_MAX) {
			mw_buf_setf(err, "line %u: longer than %d bytes", lineno, TP_LINE_MAX);
			goto fail;
		}
		if (lineno == 1) {
			if (set_secret(st->secret, &st->secret_len, line, len) < 0) {
				mw_buf_setf(err, "line 1: secret is not base32 of %d to %d bytes", TP_SECRET_MIN,
					    TP_SECRET_MAX);
				goto fail;
			}
			continue;
		}
		if (len == 0)
			continue;
		if (len >= 2 && line[0] == '"' && line[1] == ' ') {
			if (ga_option(st, line + 2, len - 2, err, lineno) < 0)
				goto fail;
			continue;
		}
		char code[16];
		if (tp_code_syntax_ok(line, len, TP_GA_SCRATCH_LEN) &&
		    tp_backup_code_normalise(line, len, code, sizeof(code)) == TP_GA_SCRATCH_LEN) {
			if (st->nbackup == TP_MAX_BACKUP) {
				mw_buf_setf(err, "line %u: more than %d scratch codes", lineno, TP_MAX_BACKUP);
				goto fail;
			}
			int r = tp_hash_new(code, TP_GA_SCRATCH_LEN, have_salt ? &salt_from : NULL,
					    &st->backup[st->nbackup]);
			tp_wipe(code, sizeof(code));
			if (r < 0) {
				mw_buf_setf(err, "line %u: hashing failed", lineno);
				goto fail;
			}
			if (!have_salt) {
				salt_from = st->backup[st->nbackup];
				have_salt = 1;
			}
			st->nbackup++;
			continue;
		}
		mw_buf_setf(err, "line %u: neither an option nor an 8-digit scratch code", lineno);
		goto fail;
	}
	if (lineno == 0) {
		mw_buf_setf(err, "empty file");
		goto fail;
	}
	st->confirmed = 1;
	st->created = now;
	tp_wipe(&salt_from, sizeof(salt_from));
	return 0;
fail:
	tp_wipe(&salt_from, sizeof(salt_from));
	tp_state_wipe(st);
	tp_state_init(st);
	return -1;
}
