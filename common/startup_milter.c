/*
 * The libmilter half of startup.h: mw_startup_run_milter(), and the sigwait()
 * that keeps libmilter's signal thread from taking our signals. A separate
 * object so that only the milters (which call mw_startup_run_milter) link it.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "startup.h"

/*
 * libmilter's smfi_main() blocks SIGHUP, SIGTERM and SIGINT in its thread and
 * starts one more thread that sigwait()s for them and stops the milter on any
 * of them, SIGHUP included. Our main thread catches the same three (startup.c)
 * so that SIGHUP reloads. A signal sent to the process is taken by one thread
 * that does not block it, and a thread inside sigwait() counts as one: which
 * of the two takes a SIGHUP is up to the kernel and timing, so a reload could
 * stop the milter (issue 15).
 *
 * Narrowing that window is not enough, so libmilter's thread must never wait
 * for them at all. libmilter is a shared library: its sigwait() call binds to
 * the first definition in the dynamic linker's search order, and the
 * executable comes first, before libc and before the ASan runtime's
 * interceptor. This definition is linked into each milter executable (it sits
 * beside mw_startup_run_milter): called for a set holding any of our three
 * signals, it sleeps for good with every signal blocked, so it never dequeues
 * one. The main thread is then the only thread that does not block them
 * (libmilter's other threads inherit its mask), so every SIGHUP, SIGTERM and
 * SIGINT goes to the main thread's handler: deterministic, not a race won.
 * Stopping still works: smfi_stop() from the main thread does not need the
 * signal thread, and exit() ends the sleeping thread with the process.
 *
 * Any other set is served as sigwait() should be, through sigwaitinfo().
 * mailward's own waiting never calls sigwait() (daemon.c uses sigwaitinfo()).
 */
int sigwait(const sigset_t *restrict set, int *restrict sig)
{
	if (sigismember(set, SIGHUP) == 1 || sigismember(set, SIGTERM) == 1 || sigismember(set, SIGINT) == 1) {
		sigset_t all;
		sigfillset(&all);
		for (;;)
			sigsuspend(&all);
	}
	for (;;) {
		int n = sigwaitinfo(set, NULL);
		if (n > 0) {
			*sig = n;
			return 0;
		}
		if (errno != EINTR)
			return errno;
	}
}

void mw_startup_run_milter(struct mw_reloadable *r, int (*run)(void), void (*stop)(void))
{
	/* libmilter runs in a thread of its own; signals come to this one */
	struct mw_daemon_signals sig = { mw_startup_reload, NULL, r };
	mw_startup_run_worker(run, stop, &sig, "libmilter");
	struct mw_reload_parts now;
	r->parts(r->conf, &now);
	mw_startup_unlink_socket(now.socket);
	mw_pidfile_remove();
}
