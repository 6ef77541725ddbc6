/*
 * prload: a load generator for Postfix policy servers. C persistent
 * connections, each sending one END-OF-MESSAGE request at a time and
 * waiting for the answer (as an smtpd process does), for D seconds;
 * optionally paced to a total request rate. Prints one line:
 *
 *   requests=N seconds=S rps=R p50_us=.. p99_us=.. p999_us=.. max_us=..
 *   errors=E dunno=.. defer=.. other=..
 *
 *   prload -s unix:/path|inet:port@host [-c 8] [-d 10] [-r RPS] [-u USERS] [-S STAGE]
 *
 * STAGE is the protocol_state sent (END-OF-MESSAGE; RCPT for servers that
 * count only there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *spec;
static int conns = 8;
static double seconds = 10;
static double rate;      /* total requests/s; 0 = as fast as answered */
static unsigned users = 100000;
static const char *stage = "END-OF-MESSAGE";

struct conn {
	int fd;
	unsigned seed;
	char reply[4096];
	size_t got;
	double sent;      /* when the request in flight was sent; 0 = none */
	double next;      /* paced: when to send the next one */
};

static uint32_t *lat;   /* microseconds */
static size_t nlat, caplat;
static unsigned long errors, dunno, defer, other;
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_spec(void)
{
	int fd;
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen(spec + 5) >= sizeof(sun.sun_path))
			return -1;
		memcpy(sun.sun_path, spec + 5, strlen(spec + 5) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			goto fail;
		return fd;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		char host[64] = "127.0.0.1";
		unsigned port = (unsigned)strtoul(spec + 5, NULL, 10);
		const char *at = strchr(spec, '@');
		if (at != NULL && strlen(at + 1) < sizeof(host))
			memcpy(host, at + 1, strlen(at + 1) + 1);
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
			return -1;
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			goto fail;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		return fd;
	}
	return -1;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static int send_request(struct conn *c)
{
	char req[2048];
	unsigned u = (c->seed = c->seed * 1103515245u + 12345u) % users;
	int len = snprintf(req, sizeof(req),
			   "request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
			   "helo_name=client.example\nqueue_id=4QABC%u\nsender=user%u@example.org\n"
			   "recipient=rcpt@example.net\nrecipient_count=1\nclient_address=192.0.2.%u\nclient_name=client.example\n"
			   "reverse_client_name=client.example\ninstance=%x.%u\nsasl_method=PLAIN\n"
			   "sasl_username=user%u@example.org\nsasl_sender=\nsize=4321\nccert_subject=\n"
			   "ccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\n"
			   "encryption_cipher=\nencryption_keysize=0\netrn_domain=\nstress=\n"
			   "server_address=127.0.0.1\nserver_port=587\ncompatibility_level=3.6\n"
			   "mail_version=3.7.11\n\n",
			   stage, u, u, u % 250 + 1, (unsigned)c->fd, u, u);
	c->sent = now_s();
	c->got = 0;
	/* a request is far below the socket buffer: one write */
	return write(c->fd, req, (size_t)len) == len ? 0 : -1;
}

static void record(struct conn *c)
{
	double dt = now_s() - c->sent;
	if (nlat == caplat) {
		caplat = caplat ? caplat * 2 : 65536;
		lat = realloc(lat, caplat * sizeof(*lat));
		if (lat == NULL)
			abort();
	}
	lat[nlat++] = (uint32_t)(dt * 1e6);
	c->reply[c->got] = '\0';
	if (strncasecmp(c->reply, "action=dunno", 12) == 0 || strncasecmp(c->reply, "action=ok", 9) == 0)
		dunno++;
	else if (strncasecmp(c->reply, "action=defer", 12) == 0 || strncasecmp(c->reply, "action=45", 9) == 0)
		defer++;
	else
		other++;
	c->sent = 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "s:c:d:r:u:S:")) != -1) {
		switch (opt) {
		case 's': spec = optarg; break;
		case 'c': conns = atoi(optarg); break;
		case 'd': seconds = atof(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'u': users = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': stage = optarg; break;
		default:
			fprintf(stderr, "usage: prload -s SPEC [-c CONNS] [-d SECONDS] [-r RPS] [-u USERS] [-S STAGE]\n");
			return 2;
		}
	}
	if (spec == NULL || conns < 1 || conns > 4096 || seconds <= 0 || users < 1) {
		fprintf(stderr, "usage: prload -s SPEC [-c CONNS] [-d SECONDS] [-r RPS] [-u USERS] [-S STAGE]\n");
		return 2;
	}
	/* One thread, epoll, like redis-benchmark: the load generator takes as
	   little of the machine as it can from the server it measures. */
	struct conn *cs = calloc((size_t)conns, sizeof(*cs));
	int ep = epoll_create1(0);
	if (cs == NULL || ep < 0)
		return 1;
	double t0 = now_s(), end = t0 + seconds;
	double interval = rate > 0 ? (double)conns / rate : 0;
	int live = 0;
	for (int i = 0; i < conns; i++) {
		cs[i].seed = (unsigned)i * 2654435761u + 1;
		cs[i].fd = connect_spec();
		if (cs[i].fd < 0) {
			perror("prload: connect");
			errors++;
			continue;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		live++;
		cs[i].next = t0 + (interval > 0 ? interval * i / conns : 0);
		if (interval == 0 && send_request(&cs[i]) < 0)
			errors++;
	}
	struct epoll_event evs[256];
	while (live > 0) {
		double t = now_s();
		if (t >= end)
			break;
		int timeout_ms = 100;
		if (interval > 0) {
			double soonest = end;
			for (int i = 0; i < conns; i++) {
				if (cs[i].fd < 0 || cs[i].sent != 0)
					continue;
				if (cs[i].next <= t) {
					cs[i].next += interval;
					if (send_request(&cs[i]) < 0)
						errors++;
				} else if (cs[i].next < soonest) {
					soonest = cs[i].next;
				}
			}
			timeout_ms = (int)((soonest - now_s()) * 1000);
			if (timeout_ms < 0)
				timeout_ms = 0;
		}
		int n = epoll_wait(ep, evs, 256, timeout_ms);
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			ssize_t r = read(c->fd, c->reply + c->got, sizeof(c->reply) - 1 - c->got);
			if (r <= 0 || c->got + (size_t)r >= sizeof(c->reply) - 1) {
				errors++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				c->fd = -1;
				live--;
				continue;
			}
			c->got += (size_t)r;
			if (c->got >= 2 && memcmp(c->reply + c->got - 2, "\n\n", 2) == 0) {
				record(c);
				if (interval == 0 && now_s() < end && send_request(c) < 0)
					errors++;
			}
		}
	}
	double elapsed = now_s() - t0;
	size_t total = nlat;
	uint32_t *all = lat != NULL ? lat : calloc(1, sizeof(*all));
	if (all == NULL)
		return 1;
	qsort(all, total, sizeof(*all), cmp_u32);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] : 0)
	printf("requests=%zu seconds=%.2f rps=%.0f p50_us=%u p99_us=%u p999_us=%u max_us=%u errors=%lu "
	       "dunno=%lu defer=%lu other=%lu\n",
	       total, elapsed, (double)total / elapsed, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0), errors, dunno,
	       defer, other);
	free(all);
	for (int i = 0; i < conns; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	free(cs);
	return errors ? 1 : 0;
}
