/*
 * mw-testd: the smallest daemon built on common/, for testing the life every
 * mailward daemon shares: options, strict configuration (file:line, exit 2),
 * -n / -C, socket binding, pid file, privilege drop, SIGHUP reload and
 * SIGTERM shutdown. It answers each connection with its "greeting" and the
 * uid it runs as, then closes it.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "sock.h"
#include "notify.h"
#include "startup.h"

struct testd_conf {
	char *listen;
	char *greeting;
	struct mw_daemon_conf daemon;
	struct mw_log_conf log;
};

static const struct mw_conf_key schema[] = {
	{ .name = "listen", .type = MW_CONF_SOCKET, .offset = offsetof(struct testd_conf, listen),
	  .flags = MW_CONF_REQUIRED, .help = "where to listen" },
	{ .name = "greeting", .type = MW_CONF_STRING, .offset = offsetof(struct testd_conf, greeting),
	  .def = "hello" },
	MW_DAEMON_CONF_KEYS(struct testd_conf, daemon, ""),
	MW_LOG_CONF_KEYS(struct testd_conf, log),
	{ .name = NULL },
};

static const char *config_path = "/etc/mailward/mw-testd.conf";
static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct testd_conf *conf;
static struct mw_conf *conf_owner;
static atomic_int stopping;

static void reload(void *ctx)
{
	(void)ctx;
	struct testd_conf *fresh = calloc(1, sizeof(*fresh));
	struct mw_buf err = MW_BUF_INIT;
	struct mw_conf *owner = mw_cli_reload_config(schema, fresh, config_path, NULL, &err);
	if (owner == NULL) {
		mw_msg_error("reload failed, keeping the running configuration: %s", mw_buf_str(&err));
		free(fresh);
		mw_buf_free(&err);
		return;
	}
	pthread_mutex_lock(&conf_lock);
	struct testd_conf *old = conf;
	struct mw_conf *old_owner = conf_owner;
	conf = fresh;
	conf_owner = owner;
	mw_log_apply_conf(&conf->log);
	pthread_mutex_unlock(&conf_lock);
	mw_conf_free(old_owner);
	free(old);
	mw_msg_info("configuration reloaded from %s", config_path);
}

static void stop(void *ctx)
{
	(void)ctx;
	stopping = 1;
}

int main(int argc, char **argv)
{
	struct mw_startup_args a;
	struct mw_buf err = MW_BUF_INIT;

	mw_log_init("mw-testd", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, config_path, NULL, NULL, NULL, NULL,
			      "usage: mw-testd [-c FILE] [-f] [-n] [-C]\n", &a);
	config_path = a.config_path;

	conf = calloc(1, sizeof(*conf));
	conf_owner = mw_cli_load_config(schema, conf, config_path, a.cli_flags, NULL);
	mw_log_apply_conf(&conf->log);

	struct mw_sockspec spec;
	if (mw_sock_parse(conf->listen, &spec, &err) < 0) /* checked at load: cannot fail */
		mw_msg_panic("listen: %s", mw_buf_str(&err));
	const char *owner = conf->daemon.socket_owner[0] ? conf->daemon.socket_owner : conf->daemon.user;
	struct mw_sock_perms perms = { owner, conf->daemon.socket_group,
				       (mode_t)conf->daemon.socket_mode };
	int lfd = mw_sock_listen(&spec, &perms, 64, &err);
	if (lfd < 0)
		mw_msg_fatal("listen %s: %s", conf->listen, mw_buf_str(&err));
	mw_startup_begin(&conf->daemon, a.foreground);
	struct mw_daemon_signals sig = { reload, stop, NULL };
	if (mw_daemon_signal_thread(&sig, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mw_msg_info("listening on %s as uid %ld", conf->listen, (long)getuid());
	mw_notify("READY=1");

	while (!stopping) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		char line[512];
		pthread_mutex_lock(&conf_lock);
		int n = snprintf(line, sizeof(line), "%s uid=%ld\n", conf->greeting, (long)getuid());
		pthread_mutex_unlock(&conf_lock);
		if (n > 0 && write(c, line, (size_t)n) < 0)
			mw_msg_warn("write: %s", strerror(errno));
		close(c);
	}
	mw_msg_info("stopping");
	close(lfd);
	mw_startup_unlink_socket(conf->listen);
	mw_pidfile_remove();
	mw_conf_free(conf_owner);
	free(conf);
	return 0;
}
