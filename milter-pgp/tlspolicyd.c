/*
 * tlspolicyd: per-destination TLS policy for Postfix's outbound SMTP
 * (smtp_tls_policy_maps = socketmap:unix:PATH:tlspolicy).
 *
 *   tlspolicyd [-f] [-c FILE]          run
 *   tlspolicyd -n | -C [-c FILE]       print / check the configuration
 *   tlspolicyd [-c FILE] -t DOMAIN     decide once and print why
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "startup.h"
#include "tlspol_conf.h"
#include "tlspol_fetch.h"
#include "tlspol_lookup.h"
#include "tlspol_server.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/tlspolicyd.conf"

#define USAGE                                    \
	"usage: tlspolicyd [-f] [-c FILE]\n"         \
	"       tlspolicyd -n | -C [-c FILE]\n"      \
	"       tlspolicyd [-c FILE] -t DOMAIN\n"

static int own_option(int opt, const char *arg, void *ctx)
{
	if (opt != 't')
		return -1;
	*(const char **)ctx = arg;
	return 0;
}

static void env_init(struct tlspol_env *env, const struct tlspol_conf *conf)
{
	struct mw_buf err = MW_BUF_INIT;
	if (tlspol_fetch_global_init(&err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	env->dns = mw_dns_new(&conf->s.dns, &err);
	if (env->dns == NULL)
		mw_msg_fatal("DNS resolver: %s", mw_buf_str(&err));
	env->save_cache = 0;
	env->cache = tlspol_cache_new(conf->s.cache_max_entries);
	if (env->cache == NULL)
		mw_msg_fatal("out of memory");
	mw_buf_free(&err);
}

/* After the privilege drop: a cache that cannot be written is lost at the
   next restart, and RFC 8461's protection against a blocked fetch with it. */
static void cache_check_writable(const struct tlspol_conf *conf)
{
	if (conf->s.cache_file[0] == '\0')
		return;
	struct mw_buf dir = MW_BUF_INIT;
	const char *slash = strrchr(conf->s.cache_file, '/');
	if (slash == NULL)
		mw_buf_puts(&dir, ".");
	else if (slash == conf->s.cache_file)
		mw_buf_puts(&dir, "/");
	else
		mw_buf_append(&dir, conf->s.cache_file, (size_t)(slash - conf->s.cache_file));
	if (access(mw_buf_str(&dir), W_OK) != 0)
		mw_msg_warn("cache_file: %s is not writable by this daemon's user (%s): MTA-STS policies will be "
			    "kept in memory only and fetched again after a restart",
			    mw_buf_str(&dir), strerror(errno));
	mw_buf_free(&dir);
}

static void cache_load(struct tlspol_env *env, const struct tlspol_conf *conf)
{
	if (conf->s.cache_file[0] == '\0')
		return;
	struct mw_buf err = MW_BUF_INIT;
	size_t bad = 0;
	if (tlspol_cache_load(env->cache, conf->s.cache_file, &bad, &err) < 0)
		mw_msg_warn("MTA-STS cache not read, starting empty: %s", mw_buf_str(&err));
	else if (bad > 0)
		mw_msg_warn("%s: %zu lines not understood, ignored", conf->s.cache_file, bad);
	mw_buf_free(&err);
}

/* -t: one decision on stdout, with the lookups' warnings on stderr. */
static int test_mode(struct tlspol_conf *conf, const char *domain)
{
	struct tlspol_env env;
	struct mw_buf dest = MW_BUF_INIT, reply = MW_BUF_INIT;
	if (tlspol_dest_normalize(domain, strlen(domain), &dest) < 0) {
		fprintf(stderr, "tlspolicyd: \"%s\" is not a domain or [host]:port\n", domain);
		return MW_EXIT_CONFIG;
	}
	env_init(&env, conf);
	cache_load(&env, conf); /* read, never written: -t leaves the daemon's cache alone */
	struct tlspol_verdict v;
	tlspol_verdict_init(&v);
	tlspol_lookup(&env, conf, mw_buf_str(&dest), &v);
	tlspol_verdict_reply(&v, &reply);
	printf("policy: %s\nreason: %s\n", mw_buf_str(&reply), mw_buf_str(&v.reason));
	tlspol_verdict_free(&v);
	tlspol_cache_free(env.cache);
	mw_dns_free(env.dns);
	mw_buf_free(&dest);
	mw_buf_free(&reply);
	tlspol_conf_free(conf);
	return 0;
}

int main(int argc, char **argv)
{
	struct mw_startup_args a;
	const char *test_domain = NULL;
	struct mw_buf err = MW_BUF_INIT;

	mw_log_init("tlspolicyd", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, DEFAULT_CONFIG, "t:", NULL, own_option, &test_domain, USAGE, &a);
	struct tlspol_conf *conf = tlspol_conf_load_cli(a.config_path, a.cli_flags);
	mw_log_apply_conf(&conf->s.log);
	if (test_domain != NULL)
		return test_mode(conf, test_domain);

	if (tlspol_server_bind(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mw_startup_begin(&conf->s.daemon, a.foreground);
	struct tlspol_env env;
	env_init(&env, conf);
	env.save_cache = 1;
	env.background_refresh = 1;
	cache_check_writable(conf);
	cache_load(&env, conf);
	/* the server may swap conf on SIGHUP; the socket stays the one bound */
	struct mw_buf sock = MW_BUF_INIT;
	mw_buf_puts(&sock, conf->s.socket);
	int rc = tlspol_server_run(conf, a.config_path, &env);
	mw_pidfile_remove();
	mw_startup_unlink_socket(mw_buf_str(&sock));
	tlspol_cache_free(env.cache);
	mw_dns_free(env.dns);
	mw_buf_free(&sock);
	mw_buf_free(&err);
	return rc;
}
