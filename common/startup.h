/*
 * startup: the start-up sequence every mailward daemon's main() runs, in
 * order (see daemon.h for the pieces):
 *
 *   mw_startup_parse_args()   -c FILE, -f, -n, -C, and the daemon's own options
 *   (the daemon loads its configuration with -n / -C flags: cli.h, and binds)
 *   mw_startup_begin()        pid file, detach unless -f, privilege drop
 *   mw_startup_wait_signals() main thread: SIGHUP reloads, SIGTERM/SIGINT stop
 *   mw_startup_unlink_socket() at exit, for a unix listening socket
 *
 * Daemon code only: on an error these print the reason and exit (usage and
 * configuration errors with MW_EXIT_CONFIG, others through mw_msg_fatal).
 * Nothing returned needs freeing.
 */
#ifndef MW_STARTUP_H
#define MW_STARTUP_H

#include <getopt.h>

#include "daemon.h"
#include "log.h"

struct mw_startup_args {
	const char *config_path; /* -c, or the daemon's default */
	unsigned cli_flags;      /* MW_CLI_PRINT (-n), MW_CLI_CHECK (-C) */
	int foreground;          /* -f */
};

/* A daemon's own option: 0, or -1 for a usage error. */
typedef int mw_startup_opt_fn(int opt, const char *arg, void *ctx);

/*
 * getopt_long over "c:fnC" plus extra_short (may be NULL or ""); longopts may
 * be NULL. Every other option goes to opt_fn (NULL: none allowed). A usage
 * error or a stray argument prints usage_text on stderr and exits 2.
 */
void mw_startup_parse_args(int argc, char **argv, const char *default_config,
			   const char *extra_short, const struct option *longopts,
			   mw_startup_opt_fn *opt_fn, void *ctx, const char *usage_text,
			   struct mw_startup_args *out);

/* After the sockets are bound as root: the pid file (unless dc->pid_file is
   empty), detach and log to syslog unless foreground, drop to dc->user. */
void mw_startup_begin(const struct mw_daemon_conf *dc, int foreground);

/*
 * For daemons whose work runs in other threads (libmilter): call before
 * creating them. Catches SIGHUP, SIGTERM and SIGINT in this thread and waits:
 * each SIGHUP calls sig->reload here; SIGTERM, SIGINT or mw_startup_stop()
 * returns. Tells systemd (notify.h) READY=1 on entry, RELOADING=1 and READY=1
 * around each reload, STOPPING=1 on the way out. Any thread that does not
 * block them may run the handler; the main thread does the work.
 */
void mw_startup_catch_signals(void);
void mw_startup_wait_signals(const struct mw_daemon_signals *sig);
/* Async-signal-safe: makes mw_startup_wait_signals() return. */
void mw_startup_stop(void);

/*
 * For daemons whose work runs in one thread of its own (libmilter's
 * smfi_main): catches the signals in this thread, runs run() in a new one,
 * waits for signals (SIGHUP: sig->reload), and on SIGTERM/SIGINT, or when
 * run() returns by itself, calls stop() and joins the thread. run()
 * returning -1 is logged with what.
 */
void mw_startup_run_worker(int (*run)(void), void (*stop)(void), const struct mw_daemon_signals *sig,
			   const char *what);

/*
 * A configuration that SIGHUP reloads: mw_startup_reload() is a
 * mw_daemon_signals reload function taking a struct mw_reloadable. It loads
 * path afresh with load (which also starts it: NULL with the reason in err,
 * nothing kept); on failure the running one stays and the reason is logged.
 * Otherwise it warns when the socket or user changed (they need a restart),
 * applies the fresh log settings, hands the fresh configuration to apply,
 * drops the reference to the old one with unref and keeps the fresh one in
 * conf. parts tells where a configuration keeps these settings.
 */
struct mw_reload_parts {
	const char *socket;
	const struct mw_daemon_conf *daemon;
	const struct mw_log_conf *log;
};

struct mw_reloadable {
	const char *path;
	void *conf; /* the running configuration: one reference, ours */
	void *(*load)(const char *path, struct mw_buf *err);
	void (*unref)(void *conf);
	void (*apply)(void *conf);
	void (*parts)(const void *conf, struct mw_reload_parts *out);
};

void mw_startup_reload(void *reloadable);

/*
 * A milter's life after mw_startup_begin(): mw_startup_run_worker() with
 * SIGHUP reloading r, then, once stopped, the unix socket of the
 * configuration in force (r->conf) and the pid file removed. The caller
 * still owns r->conf. Linking it (startup_milter.c) also replaces
 * sigwait() in the executable so that libmilter's own signal thread, which
 * would stop the milter on SIGHUP, never takes SIGHUP, SIGTERM or SIGINT:
 * the main thread gets every one (startup_milter.c says why and how).
 */
void mw_startup_run_milter(struct mw_reloadable *r, int (*run)(void), void (*stop)(void));

/* Removes the socket file of a "unix:" socket spec; anything else: no-op. */
void mw_startup_unlink_socket(const char *spec);

#endif
