#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "notify.h"

static int pidfile_fd = -1;
static char *pidfile_path;

static int pidfile_write(pid_t pid)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)pid);
	/* pwrite then truncate: a reader never sees an empty file */
	if (pwrite(pidfile_fd, text, (size_t)n, 0) != n || ftruncate(pidfile_fd, n) < 0)
		return -1;
	return 0;
}

int mw_daemon_detach(struct mw_buf *err)
{
	pid_t pid = fork();
	if (pid < 0) {
		mw_buf_printf(err, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		/* The pid file names the child before the parent returns: whoever
		   started us (an init script, systemd Type=forking) reads it then. */
		if (pidfile_fd >= 0 && pidfile_write(pid) < 0) {
			dprintf(STDERR_FILENO, "%s: %s\n", pidfile_path, strerror(errno));
			kill(pid, SIGTERM);
			_exit(1);
		}
		_exit(0);
	}
	if (setsid() < 0) {
		mw_buf_printf(err, "setsid: %s", strerror(errno));
		return -1;
	}
	if (chdir("/") < 0) {
		mw_buf_printf(err, "chdir /: %s", strerror(errno));
		return -1;
	}
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0) {
		mw_buf_printf(err, "/dev/null: %s", strerror(errno));
		return -1;
	}
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

int mw_pidfile_update(struct mw_buf *err)
{
	if (pidfile_fd < 0)
		return 0;
	if (pidfile_write(getpid()) < 0) {
		mw_buf_printf(err, "%s: %s", pidfile_path, strerror(errno));
		return -1;
	}
	return 0;
}

int mw_pidfile_open(const char *path, struct mw_buf *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		mw_buf_printf(err, "pid file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char text[32] = "";
		ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
		if (n > 0)
			text[strcspn(text, "\n")] = '\0';
		mw_buf_printf(err, "pid file %s is locked: already running%s%s%s", path,
			      n > 0 ? " (pid " : "", n > 0 ? text : "", n > 0 ? ")" : "");
		close(fd);
		return -1;
	}
	pidfile_fd = fd;
	free(pidfile_path);
	pidfile_path = strdup(path);
	return mw_pidfile_update(err);
}

void mw_pidfile_remove(void)
{
	if (pidfile_fd < 0)
		return;
	if (pidfile_path != NULL)
		(void)unlink(pidfile_path); /* may fail after dropping root: harmless */
	close(pidfile_fd);
	pidfile_fd = -1;
	free(pidfile_path);
	pidfile_path = NULL;
}

int mw_drop_privileges(const char *user, const char *group, struct mw_buf *err)
{
	if (user == NULL || user[0] == '\0')
		return 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		mw_buf_printf(err, "unknown user %s", user);
		return -1;
	}
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (group != NULL && group[0] != '\0') {
		struct group *gr = getgrnam(group);
		if (gr == NULL) {
			mw_buf_printf(err, "unknown group %s", group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		mw_buf_printf(err, "cannot switch to user %s: not running as root", user);
		return -1;
	}
	if (setgroups(1, &gid) < 0) {
		mw_buf_printf(err, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) < 0) {
		mw_buf_printf(err, "setresgid: %s", strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) < 0) {
		mw_buf_printf(err, "setresuid: %s", strerror(errno));
		return -1;
	}
	/* The drop must be irreversible: prove it. */
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		mw_buf_puts(err, "privilege drop failed: root could be regained");
		return -1;
	}
	return 0;
}

struct signal_thread_args {
	struct mw_daemon_signals handlers;
	sigset_t set;
};

static void *signal_thread(void *arg)
{
	struct signal_thread_args *a = arg;
	for (;;) {
		/* not sigwait(): in a milter it never returns for these (startup_milter.c) */
		int sig = sigwaitinfo(&a->set, NULL);
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			mw_notify("RELOADING=1");
			if (a->handlers.reload != NULL)
				a->handlers.reload(a->handlers.ctx);
			mw_notify("READY=1");
		} else {
			mw_notify("STOPPING=1");
			if (a->handlers.stop != NULL)
				a->handlers.stop(a->handlers.ctx);
		}
	}
	return NULL;
}

int mw_daemon_signal_thread(const struct mw_daemon_signals *sig, struct mw_buf *err)
{
	struct signal_thread_args *a = calloc(1, sizeof(*a));
	pthread_t tid;

	if (a == NULL) {
		mw_buf_puts(err, "out of memory");
		return -1;
	}
	a->handlers = *sig;
	sigemptyset(&a->set);
	sigaddset(&a->set, SIGHUP);
	sigaddset(&a->set, SIGTERM);
	sigaddset(&a->set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	int r = pthread_sigmask(SIG_BLOCK, &a->set, NULL);
	if (r == 0)
		r = pthread_create(&tid, NULL, signal_thread, a);
	if (r != 0) {
		mw_buf_printf(err, "signal thread: %s", strerror(r));
		free(a);
		return -1;
	}
	pthread_detach(tid);
	return 0;
}

struct mw_sock_perms mw_daemon_sock_perms(const struct mw_daemon_conf *dc)
{
	struct mw_sock_perms p = { dc->socket_owner[0] ? dc->socket_owner : dc->user, dc->socket_group,
				   (mode_t)dc->socket_mode };
	return p;
}
