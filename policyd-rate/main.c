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

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/policyd-rate.conf"

static void usage(void)
{
	fprintf(stderr, "usage: policyd-rate [-f] [-c FILE]\n       policyd-rate -n | -C [-c FILE]\n");
	exit(MW_EXIT_CONFIG);
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	unsigned flags = 0;
	int foreground = 0, opt;
	struct mw_buf err = MW_BUF_INIT;

	mw_log_init("policyd-rate", MW_LOG_TO_STDERR, 0);
	while ((opt = getopt(argc, argv, "c:fnC")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'f': foreground = 1; break;
		case 'n': flags |= MW_CLI_PRINT; break;
		case 'C': flags |= MW_CLI_CHECK; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	struct pr_conf *conf = pr_conf_load_cli(path, flags);
	mw_log_apply_conf(&conf->s.log);
	if (pr_server_bind(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	if (conf->s.daemon.pid_file[0] != '\0' && mw_pidfile_open(conf->s.daemon.pid_file, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	if (!foreground) {
		if (mw_daemon_detach(&err) < 0 || mw_pidfile_update(&err) < 0)
			mw_msg_fatal("%s", mw_buf_str(&err));
		mw_log_set_destinations(MW_LOG_TO_SYSLOG);
	}
	if (mw_drop_privileges(conf->s.daemon.user, conf->s.daemon.group, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	/* the sockets to remove at exit, parsed now: a reload retires conf,
	   and the server frees retired configurations */
	struct mw_sockspec sock, control;
	int unlink_sock = mw_sock_parse(conf->s.socket, &sock, &err) == 0 && sock.kind == MW_SOCK_UNIX;
	int unlink_control = mw_sock_parse(conf->s.control_socket, &control, &err) == 0 &&
			     control.kind == MW_SOCK_UNIX;
	int rc = pr_server_run(conf, path);
	mw_pidfile_remove();
	if (unlink_sock)
		(void)unlink(sock.path);
	if (unlink_control)
		(void)unlink(control.path);
	mw_buf_free(&err);
	return rc;
}
