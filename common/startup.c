#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "notify.h"
#include "sock.h"
#include "startup.h"

static void usage_exit(const char *usage_text)
{
	fputs(usage_text, stderr);
	exit(MW_EXIT_CONFIG);
}

void mw_startup_parse_args(int argc, char **argv, const char *default_config,
			   const char *extra_short, const struct option *longopts,
			   mw_startup_opt_fn *opt_fn, void *ctx, const char *usage_text,
			   struct mw_startup_args *out)
{
	static const struct option none[] = { { NULL, 0, NULL, 0 } };
	char shortopts[64];
	int opt;

	if (snprintf(shortopts, sizeof(shortopts), "c:fnC%s", extra_short != NULL ? extra_short : "") >=
	    (int)sizeof(shortopts))
		mw_msg_panic("too many short options");
	out->config_path = default_config;
	out->cli_flags = 0;
	out->foreground = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts != NULL ? longopts : none, NULL)) != -1) {
		switch (opt) {
		case 'c': out->config_path = optarg; break;
		case 'f': out->foreground = 1; break;
		case 'n': out->cli_flags |= MW_CLI_PRINT; break;
		case 'C': out->cli_flags |= MW_CLI_CHECK; break;
		default:
			if (opt == '?' || opt == ':' || opt_fn == NULL || opt_fn(opt, optarg, ctx) < 0)
				usage_exit(usage_text);
		}
	}
	if (optind != argc)
		usage_exit(usage_text);
}

void mw_startup_begin(const struct mw_daemon_conf *dc, int foreground)
{
	struct mw_buf err = MW_BUF_INIT;

	if (dc->pid_file[0] != '\0' && mw_pidfile_open(dc->pid_file, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	if (!foreground) {
		if (mw_daemon_detach(&err) < 0 || mw_pidfile_update(&err) < 0)
			mw_msg_fatal("%s", mw_buf_str(&err));
		mw_log_set_destinations(MW_LOG_TO_SYSLOG);
	}
	if (mw_drop_privileges(dc->user, dc->group, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mw_buf_free(&err);
}

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	ssize_t w = write(signal_pipe[1], &c, 1);
	(void)w;
	errno = saved;
}

void mw_startup_stop(void)
{
	on_signal(SIGTERM);
}

void mw_startup_catch_signals(void)
{
	if (signal_pipe[0] >= 0)
		return;
	if (pipe2(signal_pipe, O_CLOEXEC) < 0)
		mw_msg_fatal("pipe: %s", strerror(errno));
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void mw_startup_wait_signals(const struct mw_daemon_signals *sig)
{
	mw_startup_catch_signals();
	mw_notify("READY=1"); /* the sockets are bound and root dropped */
	for (;;) {
		unsigned char c;
		ssize_t n = read(signal_pipe[0], &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c != SIGHUP)
			break;
		mw_notify("RELOADING=1");
		if (sig->reload != NULL)
			sig->reload(sig->ctx);
		mw_notify("READY=1");
	}
	mw_notify("STOPPING=1");
	if (sig->stop != NULL)
		sig->stop(sig->ctx);
}

struct worker {
	int (*run)(void);
	const char *what;
};

static void *worker_thread(void *arg)
{
	const struct worker *w = arg;
	if (w->run() < 0)
		mw_msg_error("%s stopped with an error", w->what);
	mw_startup_stop(); /* wake the main thread if it stopped on its own */
	return NULL;
}

void mw_startup_run_worker(int (*run)(void), void (*stop)(void), const struct mw_daemon_signals *sig,
			   const char *what)
{
	struct worker w = { run, what };
	pthread_t tid;
	mw_startup_catch_signals(); /* before the thread: it inherits the handlers' mask */
	if (pthread_create(&tid, NULL, worker_thread, &w) != 0)
		mw_msg_fatal("cannot start the %s thread", what);
	mw_startup_wait_signals(sig);
	mw_msg_info("stopping");
	stop();
	pthread_join(tid, NULL);
}

void mw_startup_unlink_socket(const char *spec_text)
{
	struct mw_sockspec spec;
	struct mw_buf err = MW_BUF_INIT;
	if (spec_text != NULL && mw_sock_parse(spec_text, &spec, &err) == 0 && spec.kind == MW_SOCK_UNIX)
		(void)unlink(spec.path);
	mw_buf_free(&err);
}

void mw_startup_reload(void *reloadable)
{
	struct mw_reloadable *r = reloadable;
	struct mw_buf err = MW_BUF_INIT;
	void *fresh = r->load(r->path, &err);
	if (fresh == NULL) {
		mw_msg_error("reload failed, keeping the running configuration: %s", mw_buf_str(&err));
		mw_buf_free(&err);
		return;
	}
	struct mw_reload_parts now, then;
	r->parts(fresh, &now);
	r->parts(r->conf, &then);
	if (strcmp(now.socket, then.socket) != 0 || strcmp(now.daemon->user, then.daemon->user) != 0)
		mw_msg_warn("socket and user changes take effect at the next restart");
	mw_log_apply_conf(now.log);
	r->apply(fresh);
	r->unref(r->conf);
	r->conf = fresh;
	mw_msg_info("configuration reloaded from %s", r->path);
	mw_buf_free(&err);
}
