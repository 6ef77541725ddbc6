/*
 * tpecho: the load generator's ceiling for the tlspolicyd benchmark. A
 * socketmap server that does no work: one epoll thread answers every
 * complete netstring request with a fixed reply of the size tlspolicyd
 * sends for a cached MTA-STS answer. What tpload reaches against it is the
 * most this machine (kernel, loopback, tpload itself) can show for any
 * server; a server near that figure is bottlenecked by the load, not by
 * itself.
 *
 *   tpecho inet:PORT@HOST | unix:PATH
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY "OK secure match=mx.d000.example servername=hostname"

struct conn {
	int fd;
	size_t have;
	char buf[1024];
};

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	const char *spec = argv[1];
	int lfd;
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", spec + 5);
		unlink(sa.sun_path);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return perror("bind"), 1;
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		const char *at = strchr(spec, '@');
		if (at == NULL)
			return 2;
		sa.sin_port = htons((unsigned short)atoi(spec + 5));
		inet_pton(AF_INET, at + 1, &sa.sin_addr);
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		int one = 1;
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return perror("bind"), 1;
	}
	if (listen(lfd, 1024) < 0)
		return perror("listen"), 1;
	char reply[128];
	int rl = snprintf(reply, sizeof(reply), "%zu:%s,", strlen(REPLY), REPLY);
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
			if (r <= 0) {
				close(c->fd);
				free(c);
				continue;
			}
			c->have += (size_t)r;
			/* every complete netstring gets the reply */
			for (;;) {
				char *colon = memchr(c->buf, ':', c->have);
				if (colon == NULL)
					break;
				size_t len = (size_t)atol(c->buf), used = (size_t)(colon - c->buf) + 1 + len + 1;
				if (used > c->have)
					break;
				ssize_t w = write(c->fd, reply, (size_t)rl);
				(void)w;
				memmove(c->buf, c->buf + used, c->have - used);
				c->have -= used;
			}
			if (c->have == sizeof(c->buf)) {
				close(c->fd);
				free(c);
			}
		}
	}
}
