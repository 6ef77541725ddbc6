/*
 * sock: the Sendmail/Postfix socket specification, for listening and for
 * connecting.
 *
 *   unix:/run/mailward/auth.sock   local:/run/mailward/auth.sock
 *   inet:8891@127.0.0.1            inet:8891 (any IPv4 address)
 *   inet:127.0.0.1:8891            inet:[127.0.0.1]:8891  (Postfix's order)
 *   inet6:8891@::1                 inet6:[::1]:8891       inet6:8891
 *
 * A port is a number from 1 to 65535; a host is an address literal or a
 * host name; a unix path is absolute and fits sun_path. Nothing here
 * allocates except the error text written into the caller's buffer.
 *
 * Also the fd I/O every daemon repeats: write all of a buffer, read a whole
 * (capped) file or stream into an mw_buf the caller owns.
 */
#ifndef MW_SOCK_H
#define MW_SOCK_H

#include <sys/types.h>

#include "buf.h"

enum mw_sock_kind {
	MW_SOCK_UNIX,
	MW_SOCK_INET,
	MW_SOCK_INET6,
};

#define MW_SOCK_PATH_MAX 108 /* sizeof(sun_path) on Linux */
#define MW_SOCK_HOST_MAX 256

struct mw_sockspec {
	enum mw_sock_kind kind;
	char path[MW_SOCK_PATH_MAX]; /* MW_SOCK_UNIX */
	char host[MW_SOCK_HOST_MAX]; /* MW_SOCK_INET*: "" means any address */
	unsigned port;               /* MW_SOCK_INET* */
};

/* Owner, group and mode given to a listening unix socket. NULL / 0: keep. */
struct mw_sock_perms {
	const char *owner;
	const char *group;
	mode_t mode;
};

/* 0, or -1 with the reason appended to err. */
int mw_sock_parse(const char *spec, struct mw_sockspec *out, struct mw_buf *err);
/* The form libmilter and Sendmail read: unix:/path, inet:port@host, inet6:port@host. */
void mw_sock_format(const struct mw_sockspec *spec, struct mw_buf *out);

/*
 * Before listening on a unix socket: a socket file left by a crashed daemon
 * is removed; one that still accepts connections (another instance runs) or
 * a path that is not a socket is an error.
 */
int mw_sock_remove_stale(const char *path, struct mw_buf *err);
int mw_sock_set_perms(const char *path, const struct mw_sock_perms *perms, struct mw_buf *err);

/* A listening, non-blocking, close-on-exec socket; perms may be NULL.
   Returns the fd, or -1 with err. */
int mw_sock_listen(const struct mw_sockspec *spec, const struct mw_sock_perms *perms,
		   int backlog, struct mw_buf *err);
/* A connected, blocking socket, or -1 with err after timeout_ms. */
int mw_sock_connect(const struct mw_sockspec *spec, int timeout_ms, struct mw_buf *err);

/* Writes all n bytes of p to fd (a socket, pipe or file), again after EINTR
 * and short writes. 0, or -1 with errno set. */
int mw_sock_write_all(int fd, const void *p, size_t n);

/* Appends what fd has until end of file to out, again after EINTR; at most
 * max bytes in out in all. 0, or -1 with errno set (EFBIG past max). */
int mw_sock_read_all(int fd, struct mw_buf *out, size_t max);

/* The same for a small state file: path (never through a symbolic link)
 * appended to out, at most max bytes; a missing file reads as empty. 0, or
 * -1 with "path: reason" in err. */
int mw_sock_read_file(const char *path, struct mw_buf *out, size_t max, struct mw_buf *err);

/* Replaces path with len bytes of data, all or nothing: a temporary file
 * beside it (mode 0600, never through a symbolic link), fsynced, renamed
 * over path. 0, or -1 with the reason in err (path unchanged). */
int mw_sock_write_file(const char *path, const void *data, size_t len, struct mw_buf *err);

/* Creates path with len bytes of data unless it exists, never replacing it:
 * written to a temporary file beside it first, so that path is either
 * absent or whole, even to a process reading it at that moment. 0 if made,
 * 1 if path was there already (left as it is), -1 with the reason in err. */
int mw_sock_create_file(const char *path, const void *data, size_t len, struct mw_buf *err);

#endif
