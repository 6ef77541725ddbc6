/*
 * policyd-rate: a Postfix policy daemon that limits how much each account,
 * sender, domain or client may send.
 *
 *   policyd-rate [-f] [-c FILE]       run
 *   policyd-rate -n | -C [-c FILE]    print / check the configuration
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "prconf.h"
#include "server.h"
#include "sock.h"
#include "startup.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/policyd-rate.conf"

#define USAGE "usage: policyd-rate [-f] [-c FILE]\n       policyd-rate -n | -C [-c FILE]\n"

int main(int argc, char **argv)
{
	struct mw_startup_args a;
	struct mw_buf err = MW_BUF_INIT;

	mw_log_init("policyd-rate", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, DEFAULT_CONFIG, NULL, NULL, NULL, NULL, USAGE, &a);
	struct pr_conf *conf = pr_conf_load_cli(a.config_path, a.cli_flags);
	mw_log_apply_conf(&conf->s.log);
	if (pr_server_bind(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mw_startup_begin(&conf->s.daemon, a.foreground);
	/* the sockets to remove at exit, copied now: a reload retires conf,
	   and the server frees retired configurations */
	char *sock = mw_xstrdup(conf->s.socket), *control = mw_xstrdup(conf->s.control_socket);
	int rc = pr_server_run(conf, a.config_path);
	mw_pidfile_remove();
	mw_startup_unlink_socket(sock);
	mw_startup_unlink_socket(control);
	free(sock);
	free(control);
	mw_buf_free(&err);
	return rc;
}
