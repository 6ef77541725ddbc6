#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sock.h"
#include "tcprelay.h"

static int listen_fd = -1;
static char private_dir[64];
static char private_sock[128];
static int max_conns;            /* connections relayed at once */
static atomic_int active;        /* relay threads running */

/* Each relayed connection holds three descriptors (the TCP socket, ours to
   libmilter, libmilter's end) and two threads (ours, libmilter's). */
#define FDS_PER_CONN 3
#define FDS_RESERVED 64          /* listeners, logs, DNS, key files */

/* max_connections, lowered to what the descriptor limit allows (after
   raising the soft limit to the hard one if need be), with a warning. */
static int fit_fd_limit(int want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	rlim_t need = (rlim_t)want * FDS_PER_CONN + FDS_RESERVED;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		long fit = rl.rlim_cur > FDS_RESERVED + FDS_PER_CONN ?
			   (long)((rl.rlim_cur - FDS_RESERVED) / FDS_PER_CONN) : 1;
		mw_msg_warn("max_connections = %d needs %llu file descriptors, the limit is %llu: "
			    "using max_connections = %ld", want, (unsigned long long)need,
			    (unsigned long long)rl.rlim_cur, fit);
		return (int)fit;
	}
	return want;
}

int ma_tcprelay_prepare(const struct mw_sockspec *tcp, const char *user, int max_connections,
			struct mw_buf *unix_spec, struct mw_buf *err)
{
	max_conns = fit_fd_limit(max_connections);
	listen_fd = mw_sock_listen(tcp, NULL, 128, err);
	if (listen_fd < 0)
		return -1;
	int one = 1;
	setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* listen() made it non-blocking: the accept thread blocks instead */
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) & ~O_NONBLOCK);

	snprintf(private_dir, sizeof(private_dir), "/tmp/milter-auth.XXXXXX");
	if (mkdtemp(private_dir) == NULL) {
		mw_buf_printf(err, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	if (user != NULL && user[0] != '\0') {
		struct passwd *pw = getpwnam(user);
		if (pw == NULL || chown(private_dir, pw->pw_uid, pw->pw_gid) < 0) {
			mw_buf_printf(err, "%s: cannot give it to %s", private_dir, user);
			return -1;
		}
	}
	snprintf(private_sock, sizeof(private_sock), "%s/libmilter.sock", private_dir);
	mw_buf_printf(unix_spec, "unix:%s", private_sock);
	return 0;
}

struct pair {
	int tcp;
	int unx;
};

/* Copies everything readable from one side to the other; -1 when either
   side is closed or broken. */
static int pump(int from, int to, int quickack)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n <= 0)
		return -1;
	if (quickack) {
		/* ACK at once: Postfix's next small write is waiting for it */
		int one = 1;
		setsockopt(from, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	return mw_sock_write_all(to, buf, (size_t)n);
}

static void *relay_thread(void *arg)
{
	struct pair *p = arg;
	struct pollfd fds[2] = { { p->tcp, POLLIN, 0 }, { p->unx, POLLIN, 0 } };
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && pump(p->tcp, p->unx, 1) < 0)
			break;
		if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && pump(p->unx, p->tcp, 0) < 0)
			break;
	}
	close(p->tcp);
	close(p->unx);
	free(p);
	atomic_fetch_sub(&active, 1);
	return NULL;
}

static void *accept_thread(void *arg)
{
	(void)arg;
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", private_sock);
	int refusing = 0;
	for (;;) {
		int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
				if (errno == EMFILE || errno == ENFILE)
					usleep(100000);
				continue;
			}
			mw_msg_error("inet relay: accept: %s", strerror(errno));
			return NULL;
		}
		/* Past the limit the MTA's connection is closed at once: it then
		   applies its milter_default_action (Postfix: tempfail), so no mail
		   goes through unchecked. Logged once per episode. */
		if (atomic_load(&active) >= max_conns) {
			close(c);
			if (!refusing)
				mw_msg_warn("inet relay: %d connections open (max_connections): refusing "
					    "new ones until some close", max_conns);
			refusing = 1;
			continue;
		}
		if (refusing)
			mw_msg_info("inet relay: below max_connections again, accepting");
		refusing = 0;
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(c, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (u < 0 || connect(u, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			mw_msg_error("inet relay: cannot reach libmilter at %s: %s", private_sock, strerror(errno));
			if (u >= 0)
				close(u);
			close(c);
			continue;
		}
		struct pair *p = malloc(sizeof(*p));
		pthread_t tid;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (p == NULL) {
			close(c);
			close(u);
		} else {
			p->tcp = c;
			p->unx = u;
			atomic_fetch_add(&active, 1);
			if (pthread_create(&tid, &attr, relay_thread, p) != 0) {
				atomic_fetch_sub(&active, 1);
				close(c);
				close(u);
				free(p);
			}
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int ma_tcprelay_start(struct mw_buf *err)
{
	pthread_t tid;
	int r = pthread_create(&tid, NULL, accept_thread, NULL);
	if (r != 0) {
		mw_buf_printf(err, "inet relay thread: %s", strerror(r));
		return -1;
	}
	pthread_detach(tid);
	return 0;
}

void ma_tcprelay_cleanup(void)
{
	if (private_sock[0] != '\0')
		(void)unlink(private_sock);
	if (private_dir[0] != '\0')
		(void)rmdir(private_dir);
}
