/*
 * daemon: the life of a mailward daemon.
 *
 *   1. parse options and load the configuration (conf.h), -n / -C exit here
 *   2. bind the listening sockets as root (sock.h)
 *   3. mw_pidfile_open(): refuses to start twice
 *   4. mw_daemon_detach() unless -f (foreground, as systemd runs it)
 *   5. mw_drop_privileges() to the configured user/group; verified
 *   6. mw_daemon_signal_thread(): SIGHUP reloads, SIGTERM/SIGINT drain and stop
 *
 * Every function returns 0 or -1 with the reason appended to err; none
 * exits. Nothing returned needs freeing.
 */
#ifndef MW_DAEMON_H
#define MW_DAEMON_H

#include <stddef.h>

#include "buf.h"
#include "conf.h"
#include "sock.h"

/* The daemon-life keys of every daemon's configuration. */
struct mw_daemon_conf {
	char *user;                   /* user: drop root to this user after binding */
	char *group;                  /* group: and this group (default: the user's) */
	char *pid_file;               /* pid_file: "" for none (systemd) */
	char *socket_owner;           /* socket_owner: owner of a listening unix socket */
	char *socket_group;           /* socket_group */
	unsigned long long socket_mode; /* socket_mode: e.g. 0660 */
};
/* The owner (socket_owner, else user), group and mode dc asks of a listening
   unix socket. The strings point into dc. */
struct mw_sock_perms mw_daemon_sock_perms(const struct mw_daemon_conf *dc);

#define MW_DAEMON_CONF_KEYS(T, M, default_user)                                   \
	{ .name = "user", .type = MW_CONF_STRING, .offset = offsetof(T, M.user),   \
	  .def = default_user, .help = "drop root to this user after binding sockets" },   \
	{ .name = "group", .type = MW_CONF_STRING, .offset = offsetof(T, M.group), \
	  .def = "", .help = "and to this group (empty: the user's primary group)" },     \
	{ .name = "pid_file", .type = MW_CONF_STRING,                                      \
	  .offset = offsetof(T, M.pid_file), .def = "",                            \
	  .help = "pid file (empty: none, as under systemd)" },                           \
	{ .name = "socket_owner", .type = MW_CONF_STRING,                                  \
	  .offset = offsetof(T, M.socket_owner), .def = "",                        \
	  .help = "owner of a unix listening socket (empty: the daemon's user)" },         \
	{ .name = "socket_group", .type = MW_CONF_STRING,                                  \
	  .offset = offsetof(T, M.socket_group), .def = "",                        \
	  .help = "group of a unix listening socket (e.g. postfix)" },                     \
	{ .name = "socket_mode", .type = MW_CONF_OCTAL,                                    \
	  .offset = offsetof(T, M.socket_mode), .def = "0660",                     \
	  .help = "mode of a unix listening socket" }

/* Exit status for a configuration or usage error (the spec'd "exit 2"). */
#define MW_EXIT_CONFIG 2

/* Fork into the background: new session, cwd /, stdio on /dev/null. The
   parent writes the child's pid to the open pid file, then exits 0. */
int mw_daemon_detach(struct mw_buf *err);

/* Creates and locks the pid file (fd kept open for the life of the
   process); a locked file means another instance runs: error. Writes the
   current pid; mw_daemon_detach() rewrites it with the child's, and
   mw_pidfile_update() writes getpid() again. */
int mw_pidfile_open(const char *path, struct mw_buf *err);
int mw_pidfile_update(struct mw_buf *err);
void mw_pidfile_remove(void);

/*
 * setgroups, setresgid, setresuid to user (and group, or the user's primary
 * group when group is NULL or empty), then checks that root cannot be
 * regained. A no-op when user is NULL or empty; an error when not root and
 * the user differs from the current one.
 */
int mw_drop_privileges(const char *user, const char *group, struct mw_buf *err);

struct mw_daemon_signals {
	void (*reload)(void *ctx); /* SIGHUP */
	void (*stop)(void *ctx);   /* SIGTERM, SIGINT */
	void *ctx;
};

/*
 * Blocks SIGHUP, SIGTERM and SIGINT in the calling thread (call it before
 * creating other threads, so they inherit the mask), ignores SIGPIPE, and
 * starts a thread that waits for those signals and calls the handlers from
 * that thread, telling systemd RELOADING=1 / READY=1 around a reload and
 * STOPPING=1 before stop (notify.h; the caller sends the first READY=1 once
 * it serves). The structure is copied.
 */
int mw_daemon_signal_thread(const struct mw_daemon_signals *sig, struct mw_buf *err);

#endif
