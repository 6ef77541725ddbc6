/*
 * tpload: socketmap load for the tlspolicyd benchmark. C connections, one
 * request at a time on each (as Postfix's smtp processes do), keys taken
 * round-robin from a file of domains, for D seconds, optionally paced to R
 * requests/s in total. With -1, one request per connection (connect, ask,
 * close), as Postfix's proxymap-less smtp processes do when they ask once
 * per delivery; the latency then includes the connect. Prints: requests,
 * req/s, p50_us, p99_us, errors.
 *
 *   tpload -s unix:PATH|inet:PORT@HOST -c CONNS -d SECONDS -k KEYFILE [-r RATE] [-m MAP] [-1]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *spec, *map = "tlspolicy";
static char **keys;
static size_t nkeys;
static int conns = 8, seconds = 5, one_shot;
static double rate;
static struct timespec t_end;

struct worker {
	pthread_t tid;
	int id;
	unsigned *lat;
	size_t n, cap;
	unsigned long errors;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int dial(void)
{
	int fd;
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			return -1;
		}
	} else {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		const char *at = strchr(spec, '@');
		sa.sin_port = htons((unsigned short)atoi(spec + 5));
		inet_pton(AF_INET, at + 1, &sa.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			return -1;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

/* Reads one netstring reply; 0 if it starts with "OK". */
static int read_reply(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, cap - have - 1);
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		char *colon = strchr(buf, ':');
		if (colon != NULL) {
			size_t n = (size_t)atol(buf);
			if (have >= (size_t)(colon - buf) + 1 + n + 1)
				return strncmp(colon + 1, "OK", 2) == 0 ? 0 : 1;
		}
		if (have + 1 >= cap)
			return -1;
	}
}

static void *run(void *arg)
{
	struct worker *w = arg;
	int fd = one_shot ? -1 : dial();
	char req[512], buf[4096];
	size_t k = (size_t)w->id;
	double interval = rate > 0 ? conns / rate : 0, next = now_s();
	if (!one_shot && fd < 0) {
		w->errors++;
		return NULL;
	}
	for (;;) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec > t_end.tv_sec || (t.tv_sec == t_end.tv_sec && t.tv_nsec >= t_end.tv_nsec))
			break;
		if (interval > 0) {
			next += interval;
			double wait = next - now_s();
			if (wait > 0)
				usleep((useconds_t)(wait * 1e6));
		}
		char payload[400];
		int pl = snprintf(payload, sizeof(payload), "%s %s", map, keys[k++ % nkeys]);
		int rl = snprintf(req, sizeof(req), "%d:%s,", pl, payload);
		double t0 = now_s();
		if (one_shot && (fd = dial()) < 0) {
			w->errors++;
			break;
		}
		if (write(fd, req, (size_t)rl) != rl || read_reply(fd, buf, sizeof(buf)) < 0) {
			w->errors++;
			break;
		}
		if (one_shot) {
			close(fd);
			fd = -1;
		}
		unsigned us = (unsigned)((now_s() - t0) * 1e6);
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
		}
		w->lat[w->n++] = us;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *keyfile = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "s:c:d:k:r:m:1")) != -1) {
		switch (opt) {
		case 's': spec = optarg; break;
		case 'c': conns = atoi(optarg); break;
		case 'd': seconds = atoi(optarg); break;
		case 'k': keyfile = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'm': map = optarg; break;
		case '1': one_shot = 1; break;
		default: return 2;
		}
	}
	FILE *f = keyfile ? fopen(keyfile, "r") : NULL;
	if (spec == NULL || f == NULL) {
		fprintf(stderr, "usage: tpload -s SPEC -k KEYFILE [-c N] [-d S] [-r RATE] [-m MAP]\n");
		return 2;
	}
	char line[300];
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		keys = realloc(keys, (nkeys + 1) * sizeof(*keys));
		keys[nkeys++] = strdup(line);
	}
	fclose(f);
	struct worker *w = calloc((size_t)conns, sizeof(*w));
	clock_gettime(CLOCK_MONOTONIC, &t_end);
	t_end.tv_sec += seconds;
	double t0 = now_s();
	for (int i = 0; i < conns; i++) {
		w[i].id = i;
		pthread_create(&w[i].tid, NULL, run, &w[i]);
	}
	size_t total = 0;
	unsigned long errors = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(w[i].tid, NULL);
		total += w[i].n;
		errors += w[i].errors;
	}
	double elapsed = now_s() - t0;
	unsigned *all = malloc((total + 1) * sizeof(*all));
	size_t n = 0;
	for (int i = 0; i < conns; i++) {
		memcpy(all + n, w[i].lat, w[i].n * sizeof(*all));
		n += w[i].n;
	}
	qsort(all, n, sizeof(*all), cmp);
	printf("requests=%zu rps=%.0f p50_us=%u p99_us=%u errors=%lu\n", total, total / elapsed,
	       n ? all[n / 2] : 0, n ? all[(size_t)(n * 0.99)] : 0, errors);
	return 0;
}
