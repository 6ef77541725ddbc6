#include "config.h"

#include <string.h>

#include "args.h"
#include "strnum.h"

static int opt_value(const char *arg, const char *name, const char **v)
{
	size_t n = strlen(name);
	if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
		*v = arg + n + 1;
		return 1;
	}
	return 0;
}

static int uint_arg(const char *v, unsigned long long max, unsigned long long *out)
{
	return mw_parse_uint(v, max, out);
}

static int parse_services(struct tp_args *a, const char *v)
{
	a->nservices = 0;
	while (*v) {
		const char *comma = strchr(v, ',');
		size_t n = comma ? (size_t)(comma - v) : strlen(v);
		if (n == 0 || a->nservices == TP_MAX_SERVICES)
			return -1;
		a->services[a->nservices] = v;
		a->service_len[a->nservices] = n;
		a->nservices++;
		v += n + (comma ? 1 : 0);
		if (comma && *v == '\0')
			return -1;
	}
	return a->nservices > 0 ? 0 : -1;
}

int tp_args_parse(int argc, const char **argv, struct tp_args *a, struct mw_buf *err)
{
	memset(a, 0, sizeof(*a));
	a->dir = TP_DEFAULT_DIR;
	a->policy.window = 1;
	a->policy.skew_steps = 20;
	/* high: the client's address is blocked after rhost_max_failures */
	a->policy.max_failures = 10;
	a->policy.lockout_s = 300;
	a->policy.lockout_max_s = 86400;
	a->policy.rhost_max_failures = 3;
	a->policy.rhost_lockout_s = 900;
	a->on_state_error = TP_STATE_ERR_ALLOW;
	a->lock_timeout_ms = 5000;
	a->prompt = "Verification code: ";
	a->redis_prefix = "totp:";
	a->on_redis_error = TP_REDIS_ERR_REFUSE;
	a->redis_conf.timeout_ms = 300;
	a->redis_conf.username = (char *)"";
	a->redis_conf.password = (char *)"";
	int have_servers = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *v;
		unsigned long long x;
		if (strcmp(arg, "forward_pass") == 0) {
			a->forward_pass = 1;
		} else if (strcmp(arg, "nullok") == 0) {
			a->nullok = 1;
		} else if (strcmp(arg, "defer") == 0) {
			a->defer = 1;
		} else if (strcmp(arg, "commit") == 0) {
			a->commit = 1;
		} else if (strcmp(arg, "debug") == 0) {
			a->debug = 1;
		} else if (opt_value(arg, "dir", &v)) {
			if (v[0] != '/')
				goto bad;
			a->dir = v;
		} else if (opt_value(arg, "window", &v)) {
			if (uint_arg(v, TP_WINDOW_MAX, &x) < 0)
				goto bad;
			a->policy.window = (int)x;
		} else if (opt_value(arg, "skew_search", &v)) {
			if (uint_arg(v, 120, &x) < 0)
				goto bad;
			a->policy.skew_steps = (int)x;
		} else if (opt_value(arg, "max_failures", &v)) {
			if (uint_arg(v, 1000, &x) < 0)
				goto bad;
			a->policy.max_failures = (unsigned)x;
		} else if (opt_value(arg, "lockout", &v)) {
			if (mw_parse_duration_ms(v, 7ULL * 86400 * 1000, &x) < 0 || x % 1000 != 0)
				goto bad;
			a->policy.lockout_s = (unsigned)(x / 1000);
		} else if (opt_value(arg, "rhost_max_failures", &v)) {
			if (uint_arg(v, 1000, &x) < 0)
				goto bad;
			a->policy.rhost_max_failures = (unsigned)x;
		} else if (opt_value(arg, "rhost_lockout", &v)) {
			if (mw_parse_duration_ms(v, 7ULL * 86400 * 1000, &x) < 0 || x % 1000 != 0)
				goto bad;
			a->policy.rhost_lockout_s = (unsigned)(x / 1000);
		} else if (opt_value(arg, "lockout_max", &v)) {
			if (mw_parse_duration_ms(v, 30ULL * 86400 * 1000, &x) < 0 || x % 1000 != 0)
				goto bad;
			a->policy.lockout_max_s = (unsigned)(x / 1000);
		} else if (opt_value(arg, "lock_timeout", &v)) {
			if (mw_parse_duration_ms(v, 60000, &x) < 0)
				goto bad;
			a->lock_timeout_ms = (unsigned)x;
		} else if (opt_value(arg, "app_passwords", &v)) {
			if (parse_services(a, v) < 0)
				goto bad;
		} else if (opt_value(arg, "on_state_error", &v)) {
			if (strcmp(v, "allow_without_replay") == 0)
				a->on_state_error = TP_STATE_ERR_ALLOW;
			else if (strcmp(v, "fail") == 0)
				a->on_state_error = TP_STATE_ERR_FAIL;
			else
				goto bad;
		} else if (opt_value(arg, "prompt", &v)) {
			if (v[0] == '\0')
				goto bad;
			a->prompt = v;
		} else if (opt_value(arg, "state", &v)) {
			if (strcmp(v, "file") == 0)
				a->redis = 0;
			else if (strcmp(v, "redis") == 0)
				a->redis = 1;
			else
				goto bad;
		} else if (opt_value(arg, "redis_servers", &v)) {
			struct mw_buf e = MW_BUF_INIT;
			int r = mw_redis_servers_parse(v, &a->redis_conf.servers, &e);
			if (r < 0)
				mw_buf_setf(err, "%s: %s", arg, mw_buf_str(&e));
			mw_buf_free(&e);
			if (r < 0)
				return -1;
			have_servers = 1;
		} else if (opt_value(arg, "redis_mode", &v)) {
			int m = -1;
			for (int k = 0; mw_redis_mode_names[k] != NULL; k++)
				if (strcmp(v, mw_redis_mode_names[k]) == 0)
					m = k;
			if (m < 0)
				goto bad;
			a->redis_conf.mode = m;
		} else if (opt_value(arg, "redis_password_file", &v)) {
			if (v[0] != '/')
				goto bad;
			a->redis_password_file = v;
		} else if (opt_value(arg, "redis_database", &v)) {
			if (uint_arg(v, 15, &x) < 0)
				goto bad;
			a->redis_conf.database = x;
		} else if (opt_value(arg, "redis_timeout", &v)) {
			if (mw_parse_duration_ms(v, 60000, &x) < 0 || x < 10)
				goto bad;
			a->redis_conf.timeout_ms = x;
		} else if (opt_value(arg, "redis_prefix", &v)) {
			if (strlen(v) > 64 || strpbrk(v, " \t\r\n") != NULL)
				goto bad;
			a->redis_prefix = v;
		} else if (opt_value(arg, "on_redis_error", &v)) {
			if (strcmp(v, "refuse") == 0)
				a->on_redis_error = TP_REDIS_ERR_REFUSE;
			else if (strcmp(v, "accept_without_replay") == 0)
				a->on_redis_error = TP_REDIS_ERR_ACCEPT;
			else
				goto bad;
		} else {
			mw_buf_setf(err, "unknown argument \"");
			mw_buf_append_printable(err, arg, strlen(arg), 64);
			mw_buf_puts(err, "\"");
			return -1;
		}
		continue;
bad:
		mw_buf_setf(err, "bad value in \"");
		mw_buf_append_printable(err, arg, strlen(arg), 64);
		mw_buf_puts(err, "\"");
		return -1;
	}
	if (a->redis && !have_servers) {
		mw_buf_setf(err, "state=redis needs redis_servers=");
		return -1;
	}
	if (have_servers && mw_redis_conf_check(&a->redis_conf, err) < 0)
		return -1;
	if (a->defer && a->commit) {
		mw_buf_setf(err, "defer and commit belong on two lines: defer before the password module, "
			    "commit after it");
		return -1;
	}
	return 0;
}

int tp_args_app_service(const struct tp_args *a, const char *service)
{
	if (service == NULL)
		return 0;
	size_t n = strlen(service);
	for (int i = 0; i < a->nservices; i++)
		if (a->service_len[i] == n && memcmp(a->services[i], service, n) == 0)
			return 1;
	return 0;
}
