/* libFuzzer target: the whole policy server loop. Each input is written,
   in pieces, to one end of a socketpair whose other end the real server
   code serves as a policy client (libevent loop, memory store, the
   contrib-like rules); the target reads every answer, closes its write
   side, and checks that the server closes the connection and frees the
   client. Found here first: a client freed by a bad request right after an
   answered one, while the caller still used it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "prconf.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;

static void setup(void)
{
	static const char conf_text[] =
		"socket = unix:/nonexistent/policy.sock\n"
		"user =\n"
		"pid_file =\n"
		"log_level = error\n"
		"rule = per-user: key=sasl_username limit=5/1h,20/1d match=authenticated\n"
		"rule = anon: key=sender|client_network/24//64 limit=3/1m match=unauthenticated action=reject\n"
		"rule = rcpt: key=recipient_domain|global limit=4/1s count=recipients action=hold\n"
		"exempt = sasl_username:postmaster@example.org client_address:10.0.0.0/8\n";
	char path[] = "/tmp/fuzz-policyd-rate-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, conf_text, sizeof(conf_text) - 1) != (ssize_t)(sizeof(conf_text) - 1))
		abort();
	close(fd);
	struct mw_buf err = MW_BUF_INIT;
	struct pr_conf *conf = pr_conf_load(path, &err);
	unlink(path);
	if (conf == NULL) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		abort();
	}
	mw_buf_free(&err);
	mw_log_init("fuzz", MW_LOG_TO_STDERR, 0);
	mw_log_apply_conf(&conf->s.log);
	signal(SIGPIPE, SIG_IGN); /* as the daemon does */
	base = event_base_new();
	if (base == NULL)
		abort();
	pr_server_init(base, conf, "/nonexistent");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (base == NULL)
		setup();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	pr_server_adopt(sv[0]);
	/* the first byte picks the size of each write: 1..256 */
	size_t piece = size > 0 ? (size_t)data[0] + 1 : 1, off = size > 0 ? 1 : 0;
	int shut = 0, eof = 0;
	char answers[65536];
	for (long round = 0; round < 1000000 && !eof; round++) {
		if (off < size) {
			size_t n = size - off < piece ? size - off : piece;
			ssize_t w = write(sv[1], data + off, n);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				off = size; /* the server closed: nothing more to send */
		} else if (!shut) {
			shutdown(sv[1], SHUT_WR);
			shut = 1;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		ssize_t r = read(sv[1], answers, sizeof(answers));
		if (r == 0 || (r < 0 && errno != EAGAIN))
			eof = 1;
	}
	close(sv[1]);
	/* the server saw our EOF: it must have closed and freed the client */
	if (!eof || pr_server_connections() != 0)
		abort();
	return 0;
}
