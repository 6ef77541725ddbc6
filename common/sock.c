#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"
#include "strnum.h"

static int parse_port(const char *s, size_t n, unsigned *port, struct mw_buf *err)
{
	unsigned long long v;
	if (mw_parse_uint_n(s, n, 65535, &v) < 0 || v == 0) {
		mw_buf_puts(err, "port must be a number from 1 to 65535");
		return -1;
	}
	*port = (unsigned)v;
	return 0;
}

static int valid_host(const char *s, size_t n, int allow_colon)
{
	if (n == 0 || n >= MW_SOCK_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-' || c == '_' || (allow_colon && (c == ':' || c == '%')))
			continue;
		return 0;
	}
	return 1;
}

static int set_host(struct mw_sockspec *out, const char *s, size_t n, struct mw_buf *err)
{
	if (n == 1 && s[0] == '*') {
		out->host[0] = '\0';
		return 0;
	}
	if (!valid_host(s, n, out->kind == MW_SOCK_INET6)) {
		mw_buf_puts(err, out->kind == MW_SOCK_INET6 ? "bad IPv6 address or host name"
							    : "bad IPv4 address or host name");
		return -1;
	}
	memcpy(out->host, s, n);
	out->host[n] = '\0';
	return 0;
}

static int parse_inet(const char *rest, struct mw_sockspec *out, struct mw_buf *err)
{
	size_t len = strlen(rest);
	const char *at = strchr(rest, '@');

	if (len == 0) {
		mw_buf_puts(err, "missing port");
		return -1;
	}
	if (at != NULL) { /* Sendmail: port@host */
		if (parse_port(rest, (size_t)(at - rest), &out->port, err) < 0)
			return -1;
		return set_host(out, at + 1, strlen(at + 1), err);
	}
	if (rest[0] == '[') { /* Postfix: [host]:port */
		const char *close = strchr(rest, ']');
		if (close == NULL || close[1] != ':') {
			mw_buf_puts(err, "expected [host]:port");
			return -1;
		}
		if (set_host(out, rest + 1, (size_t)(close - rest - 1), err) < 0)
			return -1;
		return parse_port(close + 2, strlen(close + 2), &out->port, err);
	}
	const char *colon = strrchr(rest, ':');
	if (colon == NULL) /* port only: any address */
		return parse_port(rest, len, &out->port, err);
	if (out->kind == MW_SOCK_INET6 && strchr(rest, ':') != colon) {
		mw_buf_puts(err, "write an IPv6 address as port@address or [address]:port");
		return -1;
	}
	/* Postfix: host:port */
	if (set_host(out, rest, (size_t)(colon - rest), err) < 0)
		return -1;
	return parse_port(colon + 1, strlen(colon + 1), &out->port, err);
}

int mw_sock_parse(const char *spec, struct mw_sockspec *out, struct mw_buf *err)
{
	memset(out, 0, sizeof(*out));
	const char *colon = strchr(spec, ':');
	if (colon == NULL) {
		mw_buf_puts(err, "expected unix:/path, local:/path, inet:port@host or inet6:port@host");
		return -1;
	}
	size_t tl = (size_t)(colon - spec);
	const char *rest = colon + 1;

	if ((tl == 4 && strncmp(spec, "unix", 4) == 0) || (tl == 5 && strncmp(spec, "local", 5) == 0)) {
		out->kind = MW_SOCK_UNIX;
		size_t pl = strlen(rest);
		if (pl == 0 || rest[0] != '/') {
			mw_buf_puts(err, "a unix socket path must be absolute");
			return -1;
		}
		if (pl >= MW_SOCK_PATH_MAX) {
			mw_buf_printf(err, "unix socket path longer than %d bytes", MW_SOCK_PATH_MAX - 1);
			return -1;
		}
		for (size_t i = 0; i < pl; i++) {
			if ((unsigned char)rest[i] < 0x20) {
				mw_buf_puts(err, "control character in socket path");
				return -1;
			}
		}
		memcpy(out->path, rest, pl + 1);
		return 0;
	}
	if (tl == 4 && strncmp(spec, "inet", 4) == 0) {
		out->kind = MW_SOCK_INET;
		return parse_inet(rest, out, err);
	}
	if (tl == 5 && strncmp(spec, "inet6", 5) == 0) {
		out->kind = MW_SOCK_INET6;
		return parse_inet(rest, out, err);
	}
	mw_buf_puts(err, "unknown socket type: expected unix:, local:, inet: or inet6:");
	return -1;
}

void mw_sock_format(const struct mw_sockspec *spec, struct mw_buf *out)
{
	switch (spec->kind) {
	case MW_SOCK_UNIX:
		mw_buf_printf(out, "unix:%s", spec->path);
		break;
	case MW_SOCK_INET:
	case MW_SOCK_INET6:
		mw_buf_printf(out, "%s:%u", spec->kind == MW_SOCK_INET ? "inet" : "inet6", spec->port);
		if (spec->host[0] != '\0')
			mw_buf_printf(out, "@%s", spec->host);
		break;
	}
}

static void unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	size_t n = strlen(path);
	if (n >= sizeof(sun->sun_path))
		n = sizeof(sun->sun_path) - 1;
	memcpy(sun->sun_path, path, n);
}

int mw_sock_remove_stale(const char *path, struct mw_buf *err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		mw_buf_printf(err, "%s exists and is not a socket: not removing it", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		mw_buf_printf(err, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un sun;
	unix_addr(path, &sun);
	int r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	close(fd);
	if (r == 0) {
		mw_buf_printf(err, "%s: another process is listening on this socket", path);
		return -1;
	}
	if (e != ECONNREFUSED) {
		mw_buf_printf(err, "%s: %s", path, strerror(e));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		mw_buf_printf(err, "cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int mw_sock_set_perms(const char *path, const struct mw_sock_perms *perms, struct mw_buf *err)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (perms == NULL)
		return 0;
	if (perms->owner != NULL && perms->owner[0] != '\0') {
		struct passwd *pw = getpwnam(perms->owner);
		if (pw == NULL) {
			mw_buf_printf(err, "unknown user %s", perms->owner);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (perms->group != NULL && perms->group[0] != '\0') {
		struct group *gr = getgrnam(perms->group);
		if (gr == NULL) {
			mw_buf_printf(err, "unknown group %s", perms->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0) {
		mw_buf_printf(err, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	if (perms->mode != 0 && chmod(path, perms->mode) < 0) {
		mw_buf_printf(err, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Resolves an inet spec into ai (freeaddrinfo() it); -1 with err. */
static int resolve(const struct mw_sockspec *spec, int passive, struct addrinfo **ai,
		   struct mw_buf *err)
{
	struct addrinfo hints;
	char port[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = spec->kind == MW_SOCK_INET6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	snprintf(port, sizeof(port), "%u", spec->port);
	const char *host = spec->host[0] != '\0' ? spec->host : NULL;
	if (host == NULL && !passive)
		host = spec->kind == MW_SOCK_INET6 ? "::1" : "127.0.0.1";
	int r = getaddrinfo(host, port, &hints, ai);
	if (r != 0) {
		mw_buf_printf(err, "%s: %s", host != NULL ? host : "*", gai_strerror(r));
		return -1;
	}
	return 0;
}

int mw_sock_listen(const struct mw_sockspec *spec, const struct mw_sock_perms *perms, int backlog,
		   struct mw_buf *err)
{
	int fd = -1;

	if (spec->kind == MW_SOCK_UNIX) {
		struct sockaddr_un sun;
		if (mw_sock_remove_stale(spec->path, err) < 0)
			return -1;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			mw_buf_printf(err, "socket: %s", strerror(errno));
			return -1;
		}
		unix_addr(spec->path, &sun);
		/* Bind with a tight umask; perms then opens it up as configured. */
		mode_t old = umask(0177);
		int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		umask(old);
		if (r < 0) {
			mw_buf_printf(err, "bind %s: %s", spec->path, strerror(errno));
			goto fail;
		}
		if (mw_sock_set_perms(spec->path, perms, err) < 0)
			goto fail;
	} else {
		struct addrinfo *ai;
		if (resolve(spec, 1, &ai, err) < 0)
			return -1;
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			mw_buf_printf(err, "socket: %s", strerror(errno));
			freeaddrinfo(ai);
			return -1;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			struct mw_buf shown = MW_BUF_INIT;
			mw_sock_format(spec, &shown);
			mw_buf_printf(err, "bind %s: %s", mw_buf_str(&shown), strerror(errno));
			mw_buf_free(&shown);
			freeaddrinfo(ai);
			goto fail;
		}
		freeaddrinfo(ai);
	}
	if (listen(fd, backlog) < 0) {
		mw_buf_printf(err, "listen: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int r;
		do
			r = poll(&pfd, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (r < 0)
			return -1;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return -1;
		if (soerr != 0) {
			errno = soerr;
			return -1;
		}
	}
	return fcntl(fd, F_SETFL, flags);
}

int mw_sock_connect(const struct mw_sockspec *spec, int timeout_ms, struct mw_buf *err)
{
	int fd;
	struct mw_buf shown = MW_BUF_INIT;
	mw_sock_format(spec, &shown);

	if (spec->kind == MW_SOCK_UNIX) {
		struct sockaddr_un sun;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		unix_addr(spec->path, &sun);
		if (fd >= 0 && connect_timeout(fd, (struct sockaddr *)&sun, sizeof(sun), timeout_ms) == 0)
			goto ok;
	} else {
		struct addrinfo *ai;
		if (resolve(spec, 0, &ai, err) < 0) {
			mw_buf_free(&shown);
			return -1;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0) {
			freeaddrinfo(ai);
			goto ok;
		}
		freeaddrinfo(ai);
	}
	mw_buf_printf(err, "connect %s: %s", mw_buf_str(&shown), strerror(errno));
	if (fd >= 0)
		close(fd);
	mw_buf_free(&shown);
	return -1;
ok:
	mw_buf_free(&shown);
	return fd;
}

int mw_sock_read_all(int fd, struct mw_buf *out, size_t max)
{
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (mw_buf_len(out) + (size_t)n > max || mw_buf_append(out, chunk, (size_t)n) < 0) {
			errno = EFBIG;
			return -1;
		}
	}
}

int mw_sock_read_file(const char *path, struct mw_buf *out, size_t max, struct mw_buf *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	int rc = mw_sock_read_all(fd, out, max);
	if (rc < 0 && errno == EFBIG)
		mw_buf_printf(err, "%s: larger than %zu bytes", path, max);
	else if (rc < 0)
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

/* len bytes of data in a new temporary file beside path (mode 0600, never
   through a symbolic link), fsynced and closed; its name in tmp. */
static int write_temp(const char *path, char *tmp, size_t tmpsz, const void *data, size_t len,
		      struct mw_buf *err)
{
	static atomic_uint seq;
	int n = snprintf(tmp, tmpsz, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&seq, 1));
	if (n < 0 || (size_t)n >= tmpsz) {
		mw_buf_printf(err, "%s: path too long", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		mw_buf_printf(err, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	int ok = mw_sock_write_all(fd, data, len) == 0 && fsync(fd) == 0;
	int saved = errno;
	if (close(fd) < 0 && ok) {
		ok = 0;
		saved = errno;
	}
	if (!ok) {
		mw_buf_printf(err, "%s: %s", tmp, strerror(saved));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int mw_sock_write_file(const char *path, const void *data, size_t len, struct mw_buf *err)
{
	char tmp[4096];
	if (write_temp(path, tmp, sizeof(tmp), data, len, err) < 0)
		return -1;
	if (rename(tmp, path) < 0) {
		mw_buf_printf(err, "rename %s: %s", tmp, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int mw_sock_create_file(const char *path, const void *data, size_t len, struct mw_buf *err)
{
	char tmp[4096];
	if (write_temp(path, tmp, sizeof(tmp), data, len, err) < 0)
		return -1;
	/* link(), unlike rename(), never replaces: of two processes creating
	   path at once one wins, and the other reads the winner's whole file */
	int rc = link(tmp, path) == 0 ? 0 : errno == EEXIST ? 1 : -1;
	if (rc < 0)
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
	(void)unlink(tmp);
	return rc;
}

int mw_sock_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}
