/*
 * policyd-rate-ctl: talks to a running policyd-rate over its control socket.
 *
 *   policyd-rate-ctl [-c FILE | -s SOCKET] usage RULE:VALUE
 *   policyd-rate-ctl [-c FILE | -s SOCKET] reset RULE:VALUE[*]
 *   policyd-rate-ctl [-c FILE | -s SOCKET] where RULE:VALUE    (the Redis node holding it)
 *   policyd-rate-ctl [-c FILE | -s SOCKET] top [N]
 *   policyd-rate-ctl [-c FILE | -s SOCKET] stats      (Prometheus text format)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "prconf.h"
#include "sock.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/policyd-rate.conf"

static void usage(void)
{
	fprintf(stderr, "usage: policyd-rate-ctl [-c FILE | -s SOCKET] usage RULE:VALUE | reset RULE:VALUE[*] "
			"| where RULE:VALUE | top [N] | stats\n");
	exit(MW_EXIT_CONFIG);
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG, *socket_spec = NULL;
	int opt;
	struct mw_buf err = MW_BUF_INIT, line = MW_BUF_INIT;

	mw_log_init("policyd-rate-ctl", MW_LOG_TO_STDERR, 0);
	while ((opt = getopt(argc, argv, "c:s:")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 's': socket_spec = optarg; break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();
	const char *cmd = argv[optind];
	if (strcmp(cmd, "usage") != 0 && strcmp(cmd, "reset") != 0 && strcmp(cmd, "top") != 0 &&
	    strcmp(cmd, "stats") != 0 && strcmp(cmd, "where") != 0)
		usage();
	if ((strcmp(cmd, "usage") == 0 || strcmp(cmd, "reset") == 0 || strcmp(cmd, "where") == 0) &&
	    optind + 1 >= argc)
		usage();
	mw_buf_puts(&line, cmd);
	for (int i = optind + 1; i < argc; i++) {
		if (strchr(argv[i], '\n') != NULL)
			usage();
		mw_buf_printf(&line, " %s", argv[i]);
	}
	mw_buf_putc(&line, '\n');

	struct pr_conf *conf = NULL;
	int failed = 1, fd = -1;
	if (socket_spec == NULL) {
		conf = pr_conf_load(path, &err);
		if (conf == NULL) {
			fprintf(stderr, "%s\n", mw_buf_str(&err));
			failed = MW_EXIT_CONFIG;
			goto out;
		}
		socket_spec = conf->s.control_socket;
	}
	struct mw_sockspec spec;
	if (mw_sock_parse(socket_spec, &spec, &err) < 0) {
		fprintf(stderr, "%s: %s\n", socket_spec, mw_buf_str(&err));
		failed = MW_EXIT_CONFIG;
		goto out;
	}
	fd = mw_sock_connect(&spec, 5000, &err);
	if (fd < 0) {
		fprintf(stderr, "policyd-rate-ctl: %s (is policyd-rate running?)\n", mw_buf_str(&err));
		goto out;
	}
	if (write(fd, line.data, mw_buf_len(&line)) != (ssize_t)mw_buf_len(&line)) {
		perror("write");
		goto out;
	}
	char buf[65536];
	ssize_t n;
	failed = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (strncmp(buf, "ERROR", 5) == 0)
			failed = 1;
		fwrite(buf, 1, (size_t)n, stdout);
	}
out:
	/* every path frees what it made: LeakSanitizer checks this tool too */
	if (fd >= 0)
		close(fd);
	pr_conf_free(conf);
	mw_buf_free(&line);
	mw_buf_free(&err);
	return failed;
}
