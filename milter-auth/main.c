/*
 * milter-auth: inbound SPF, DKIM and DMARC for Postfix and Sendmail.
 *
 *   milter-auth [-f] [-c FILE]            run the milter
 *   milter-auth -n | -C [-c FILE]         print / check the configuration
 *   milter-auth -c FILE -t MESSAGE --client-ip IP --helo NAME --mail-from ADDR
 *               [--rcpt ADDR]... [--auth-user NAME] [--queue-id ID] [--dice N]
 *                                          what the milter would do, no MTA
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "log.h"
#include "maconf.h"
#include "mametrics.h"
#include "metrics.h"
#include "milter.h"
#include "pipeline.h"
#include "sock.h"
#include "startup.h"
#include "strnum.h"
#include "testmode.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/milter-auth.conf"
#define MAX_MESSAGE (64 * 1024 * 1024)

struct test_args {
	const char *message;
	const char *client_ip;
	const char *helo;
	const char *mail_from;
	const char *auth_user;
	const char *queue_id;
	const char *rcpts[64];
	int nrcpts;
	int dice;
	unsigned long repeat; /* --repeat: time the pipeline (benchmarks) */
};

#define USAGE                                                                                  \
	"usage: milter-auth [-f] [-c FILE]\n"                                                    \
	"       milter-auth -n | -C [-c FILE]\n"                                                 \
	"       milter-auth -c FILE -t MESSAGE --client-ip IP --helo NAME --mail-from ADDR\n"    \
	"                   [--rcpt ADDR]... [--auth-user NAME] [--queue-id ID] [--dice 0-99]\n"

/* ------------------------------------------------------------ test mode */

static void feed_header(void *ctx, const char *name, const char *value)
{
	ma_msg_header(ctx, name, value);
}

static void feed_eoh(void *ctx)
{
	ma_msg_eoh(ctx);
}

static void feed_body(void *ctx, const unsigned char *data, size_t len)
{
	ma_msg_body(ctx, data, len);
}

static void feed_message(struct ma_msg *m, const char *text, size_t len)
{
	struct mw_test_feed f = { feed_header, feed_eoh, feed_body, m };
	mw_test_feed_message(text, len, &f);
}

/*
 * --repeat N: the whole pipeline N times on the message (after one warm-up
 * run: caches filled), and where the time went, for bench/milter-auth.
 */
static void time_pipeline(struct ma_conf *conf, const struct test_args *t, const char *text, size_t len)
{
	unsigned long long spf = 0, dkim = 0, dmarc = 0, total = 0, all = 0;
	char sender[1024];
	mw_test_strip_brackets(t->mail_from, sender, sizeof(sender));
	for (unsigned long i = 0; i <= t->repeat; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		struct ma_msg *m = ma_msg_new(conf);
		ma_msg_connect(m, t->client_ip, "");
		ma_msg_helo(m, t->helo);
		ma_msg_mail(m, sender, t->auth_user);
		feed_message(m, text, len);
		struct ma_outcome o;
		ma_outcome_init(&o);
		ma_msg_eom(m, "TIMING", t->dice, &o);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (i > 0) { /* run 0 warms the caches */
			spf += o.spf_ns;
			dkim += o.dkim_ns;
			dmarc += o.dmarc_ns;
			total += o.total_ns;
			all += (unsigned long long)(b.tv_sec - a.tv_sec) * 1000000000ULL +
			       (unsigned long long)(b.tv_nsec - a.tv_nsec);
		}
		ma_outcome_free(&o);
		ma_msg_free(m);
	}
	unsigned long long n = t->repeat;
	fprintf(stderr, "timing: %llu messages, per message: spf %.1f us, dkim %.1f us, dmarc %.1f us, "
		"verdicts in all %.1f us, with header parsing and feeding %.1f us\n", n,
		spf / 1e3 / n, dkim / 1e3 / n, dmarc / 1e3 / n, total / 1e3 / n, all / 1e3 / n);
}

static int test_mode(const char *config_path, const struct test_args *t)
{
	if (t->client_ip == NULL || t->helo == NULL || t->mail_from == NULL) {
		fprintf(stderr, "milter-auth: -t needs --client-ip, --helo and --mail-from\n");
		return MW_EXIT_CONFIG;
	}
	struct ma_conf *conf = ma_conf_load_cli(config_path, 0);
	struct mw_buf err = MW_BUF_INIT;
	mw_log_apply_conf(&conf->s.log);
	if (ma_conf_start(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	size_t len;
	char *text = mw_test_read_file(t->message, MAX_MESSAGE, &len);

	if (t->repeat > 0)
		time_pipeline(conf, t, text, len);
	struct ma_msg *m = ma_msg_new(conf);
	ma_msg_connect(m, t->client_ip, "");
	ma_msg_helo(m, t->helo);
	char sender[1024];
	mw_test_strip_brackets(t->mail_from, sender, sizeof(sender));
	ma_msg_mail(m, sender, t->auth_user);
	for (int i = 0; i < t->nrcpts; i++)
		ma_msg_rcpt(m, t->rcpts[i]);
	feed_message(m, text, len);

	struct ma_outcome o;
	ma_outcome_init(&o);
	ma_msg_eom(m, t->queue_id != NULL ? t->queue_id : "TEST", t->dice, &o);
	switch (o.action) {
	case MA_ACCEPT: printf("action: accept\n"); break;
	case MA_REJECT: printf("action: reject %s %s %s\n", o.rcode, o.xcode, mw_buf_str(&o.text)); break;
	case MA_TEMPFAIL: printf("action: tempfail %s %s %s\n", o.rcode, o.xcode, mw_buf_str(&o.text)); break;
	case MA_QUARANTINE: printf("action: quarantine %s\n", mw_buf_str(&o.text)); break;
	}
	if (o.action != MA_REJECT && o.action != MA_TEMPFAIL) {
		for (int i = 0; i < o.nchanges; i++) {
			if (o.changes[i].add) {
				char prefix[300];
				snprintf(prefix, sizeof(prefix), "add-header: %s:", o.changes[i].name);
				mw_test_print_folded(prefix, o.changes[i].value);
			} else {
				printf("delete-header: %s\n", o.changes[i].name);
			}
		}
	}
	fflush(stdout);
	mw_msg_info("%s", mw_buf_str(&o.log));
	ma_outcome_free(&o);
	ma_msg_free(m);
	ma_conf_unref(conf);
	free(text);
	mw_buf_free(&err);
	return 0;
}

/* ------------------------------------------------------------ daemon */

/* The reload pieces for mw_startup_reload(). */
static void *conf_load(const char *path, struct mw_buf *err)
{
	struct ma_conf *c = ma_conf_load(path, err);
	if (c != NULL && ma_conf_start(c, err) < 0) {
		ma_conf_unref(c);
		return NULL;
	}
	return c;
}

static void conf_unref(void *c)
{
	ma_conf_unref(c);
}

static void conf_apply(void *c)
{
	ma_milter_set_conf(c);
}

static void conf_parts(const void *conf, struct mw_reload_parts *out)
{
	const struct ma_conf *c = conf;
	out->socket = c->s.socket;
	out->daemon = &c->s.daemon;
	out->log = &c->s.log;
}

static int run_daemon(const char *path, int foreground)
{
	struct ma_conf *conf = ma_conf_load_cli(path, 0);
	struct mw_reloadable r = { path, conf, conf_load, conf_unref, conf_apply, conf_parts };
	struct mw_buf err = MW_BUF_INIT;

	mw_log_apply_conf(&conf->s.log);
	if (ma_milter_setup(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	/* metrics_listen: bound before the privilege drop, served after the
	   fork (threads do not survive it) */
	int metrics_fd = -1;
	if (conf->s.metrics_listen[0] != '\0') {
		struct mw_sockspec spec;
		struct mw_sock_perms perms = mw_daemon_sock_perms(&conf->s.daemon);
		if (mw_sock_parse(conf->s.metrics_listen, &spec, &err) < 0 ||
		    (metrics_fd = mw_sock_listen(&spec, &perms, 64, &err)) < 0)
			mw_msg_fatal("metrics_listen: %s", mw_buf_str(&err));
	}
	mw_startup_begin(&conf->s.daemon, foreground);
	if (metrics_fd >= 0 && mw_metrics_serve(metrics_fd, ma_metrics_text, NULL, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	if (ma_conf_start(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	ma_milter_set_conf(conf);

	mw_msg_info("listening on %s as %s (authserv-id %s)", conf->s.socket,
		    conf->s.daemon.user[0] ? conf->s.daemon.user : "root", conf->s.authserv_id);
	mw_startup_run_milter(&r, ma_milter_run, ma_milter_stop);
	conf = r.conf; /* the last one reloaded */
	ma_conf_unref(conf);
	mw_buf_free(&err);
	return 0;
}

enum { O_CLIENT_IP = 1000, O_HELO, O_MAIL_FROM, O_RCPT, O_AUTH_USER, O_QUEUE_ID, O_DICE, O_REPEAT };

static int test_option(int opt, const char *arg, void *ctx)
{
	struct test_args *t = ctx;
	unsigned long long v;

	switch (opt) {
	case 't': t->message = arg; break;
	case O_CLIENT_IP: t->client_ip = arg; break;
	case O_HELO: t->helo = arg; break;
	case O_MAIL_FROM: t->mail_from = arg; break;
	case O_RCPT:
		if (t->nrcpts < 64)
			t->rcpts[t->nrcpts++] = arg;
		break;
	case O_AUTH_USER: t->auth_user = arg; break;
	case O_QUEUE_ID: t->queue_id = arg; break;
	case O_DICE:
		if (mw_parse_uint(arg, 99, &v) < 0)
			return -1;
		t->dice = (int)v;
		break;
	case O_REPEAT:
		if (mw_parse_uint(arg, 10000000, &v) < 0)
			return -1;
		t->repeat = (unsigned long)v;
		break;
	default: return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "client-ip", required_argument, NULL, O_CLIENT_IP },
		{ "helo", required_argument, NULL, O_HELO },
		{ "mail-from", required_argument, NULL, O_MAIL_FROM },
		{ "rcpt", required_argument, NULL, O_RCPT },
		{ "auth-user", required_argument, NULL, O_AUTH_USER },
		{ "auth", required_argument, NULL, O_AUTH_USER },
		{ "queue-id", required_argument, NULL, O_QUEUE_ID },
		{ "dice", required_argument, NULL, O_DICE },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ NULL, 0, NULL, 0 },
	};
	struct test_args t = { .dice = -1 };
	struct mw_startup_args a;

	mw_log_init("milter-auth", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, DEFAULT_CONFIG, "t:", longopts, test_option, &t, USAGE, &a);
	if (a.cli_flags != 0) {
		ma_conf_load_cli(a.config_path, a.cli_flags); /* exits */
		return 0;
	}
	if (t.message != NULL)
		return test_mode(a.config_path, &t);
	return run_daemon(a.config_path, a.foreground);
}
