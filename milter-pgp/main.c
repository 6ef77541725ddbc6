/*
 * milter-pgp: OpenPGP encryption and signing of outbound mail, for Postfix
 * and Sendmail.
 *
 *   milter-pgp [-f] [-c FILE]            run the milter
 *   milter-pgp -n | -C [-c FILE]         print / check the configuration
 *   milter-pgp -c FILE -t MESSAGE --mail-from A --rcpt B [--rcpt C]...
 *              [--auth USER [--tls]] [--client-ip IP] [-o OUT]
 *                                         what the milter would do, no MTA
 *   milter-pgp -c FILE -t MESSAGE --inject --mail-from A --rcpt B...
 *                                         hand MESSAGE to the MTA through
 *                                         "reinject", with the loop mark
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "gpg.h"
#include "inject.h"
#include "log.h"
#include "milter.h"
#include "msg.h"
#include "pem.h"
#include "pgpconf.h"
#include "startup.h"
#include "testmode.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/milter-pgp.conf"
#define MAX_TEST_MESSAGE ((size_t)1 << 30)
#define MAX_TEST_RCPTS 256

#define USAGE                                                                                 \
	"usage: milter-pgp [-f] [-c FILE]\n"                                                   \
	"       milter-pgp -n | -C [-c FILE]\n"                                                \
	"       milter-pgp -c FILE -t MESSAGE --mail-from ADDR --rcpt ADDR [--rcpt ADDR]...\n" \
	"                  [--auth USER [--tls]] [--client-ip IP] [-o OUT]\n"                \
	"       milter-pgp -c FILE -t MESSAGE --inject --mail-from ADDR --rcpt ADDR...\n"

struct test_args {
	const char *message;
	const char *mail_from;
	const char *auth;
	int tls;
	const char *client_ip;
	const char *out;
	int inject;
	const char *rcpts[MAX_TEST_RCPTS];
	int nrcpts;
};

/* ------------------------------------------------------------ test mode */

struct feed {
	struct mp_msg *m;
};

static void feed_header(void *ctx, const char *name, const char *value)
{
	mp_msg_header(((struct feed *)ctx)->m, name, value);
}

static void feed_eoh(void *ctx)
{
	mp_msg_eoh(((struct feed *)ctx)->m);
}

static void feed_body(void *ctx, const unsigned char *data, size_t len)
{
	mp_msg_body(((struct feed *)ctx)->m, data, len);
}

/* Header fields as the MTA keeps them: name, colon, value, CRLF. */
struct field {
	char *name;
	char *value;
	int deleted;
};

static void collect_field(void *ctx, const char *name, const char *value)
{
	struct mw_buf *b = ctx;
	struct field f = { mw_xstrdup(name), mw_xstrdup(value), 0 };
	mw_buf_append(b, &f, sizeof(f));
}

static void ignore_eoh(void *ctx)
{
	(void)ctx;
}

static void ignore_body(void *ctx, const unsigned char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
}

static void put_value(FILE *f, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			fputc('\r', f);
		fputc(*p, f);
	}
}

static int put_file(void *ctx, const void *data, size_t len)
{
	return fwrite(data, 1, len, ctx) == len ? 0 : -1;
}

/* The message as the MTA would send it on: the original fields minus the
   deleted ones plus the added ones (at the end), CRLF, the body. */
static void write_output(const char *path, const char *text, size_t len, const struct mp_outcome *o,
			 int orig_body_fd)
{
	struct mw_buf fields;
	mw_buf_init(&fields, (size_t)1 << 30);
	struct mw_test_feed f = { collect_field, ignore_eoh, ignore_body, &fields };
	mw_test_feed_message(text, len, &f);
	struct field *fs = (struct field *)(void *)fields.data;
	size_t nf = mw_buf_len(&fields) / sizeof(struct field);

	for (int i = 0; i < o->nchanges; i++) {
		if (o->changes[i].add)
			continue;
		int seen = 0;
		for (size_t k = 0; k < nf; k++) {
			if (strcasecmp(fs[k].name, o->changes[i].name) != 0 || ++seen != o->changes[i].index)
				continue;
			if (o->changes[i].value == NULL) {
				fs[k].deleted = 1;
			} else {
				free(fs[k].value);
				fs[k].value = mw_xstrdup(o->changes[i].value);
			}
		}
	}
	FILE *out = fopen(path, "we");
	if (out == NULL)
		mw_msg_fatal_status(MW_EXIT_CONFIG, "%s: %s", path, strerror(errno));
	for (size_t k = 0; k < nf; k++) {
		if (!fs[k].deleted) {
			fprintf(out, "%s:", fs[k].name);
			put_value(out, fs[k].value);
			fputs("\r\n", out);
		}
		free(fs[k].name);
		free(fs[k].value);
	}
	for (int i = 0; i < o->nchanges; i++) {
		if (!o->changes[i].add)
			continue;
		fprintf(out, "%s:", o->changes[i].name);
		put_value(out, o->changes[i].value);
		fputs("\r\n", out);
	}
	fputs("\r\n", out);
	int fd = o->body_fd >= 0 ? o->body_fd : orig_body_fd;
	if ((fd >= 0 && mp_fd_chunks(fd, put_file, out) < 0) || fclose(out) != 0)
		mw_msg_fatal("%s: %s", path, strerror(errno));
	mw_buf_free(&fields);
}

/* OUT.reinject: the re-injected copy, as inject.h would hand it on
   (without the loop mark, which is made at injection). */
static void write_copy(const char *out_path, int fd)
{
	struct mw_buf path = MW_BUF_INIT;
	mw_buf_printf(&path, "%s.reinject", out_path);
	FILE *out = fopen(mw_buf_str(&path), "we");
	if (out == NULL || mp_fd_chunks(fd, put_file, out) < 0 || fclose(out) != 0)
		mw_msg_fatal("%s: %s", mw_buf_str(&path), strerror(errno));
	mw_buf_free(&path);
}

/* --inject: the message as it is, through "reinject" (checks that path). */
static int inject_mode(struct mp_conf *conf, const struct test_args *t, const char *sender, char *text, size_t len)
{
	struct mw_buf err = MW_BUF_INIT;
	char rcpts[MAX_TEST_RCPTS][512];
	const char *rv[MAX_TEST_RCPTS];
	for (int i = 0; i < t->nrcpts; i++) {
		mw_test_strip_brackets(t->rcpts[i], rcpts[i], sizeof(rcpts[i]));
		rv[i] = rcpts[i];
	}
	int r = mp_inject_buf(conf->inject, sender, rv, (size_t)t->nrcpts, text, len, &err);
	if (r < 0)
		printf("reinject: failed: %s\n", mw_buf_str(&err));
	else
		printf("reinject: via=%s from=<%s> rcpts=%d\n", mp_inject_describe(conf->inject), sender, t->nrcpts);
	free(text);
	mw_buf_free(&err);
	mp_conf_unref(conf);
	return r < 0 ? 1 : 0;
}

static const char *const rcpt_states[] = { "plaintext", "encrypted", "rejected", "plaintext(split)", "password",
					   "encrypted(at-rest)", "plaintext(at-rest-no-usable-key)",
					   "plaintext(at-rest-oversize)" };

static int test_mode(const char *config_path, const struct test_args *t)
{
	if (t->mail_from == NULL || t->nrcpts == 0) {
		fprintf(stderr, "milter-pgp: -t needs --mail-from and at least one --rcpt\n");
		return MW_EXIT_CONFIG;
	}
	struct mw_buf err = MW_BUF_INIT;
	if (mp_gpg_global_init(&err) < 0 || mp_pem_global_init(&err) < 0 || mp_inject_global_init(&err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	struct mp_conf *conf = mp_conf_load_cli(config_path, 0);
	mw_log_apply_conf(&conf->s.log);
	if (mp_conf_start(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	size_t len;
	char *text = mw_test_read_file(t->message, MAX_TEST_MESSAGE, &len);
	char sender[512];
	mw_test_strip_brackets(t->mail_from, sender, sizeof(sender));
	if (t->inject)
		return inject_mode(conf, t, sender, text, len);

	struct mp_msg *m = mp_msg_new(conf);
	mp_msg_connect(m, t->client_ip != NULL ? t->client_ip : "127.0.0.1");
	mp_msg_mail(m, sender, t->auth);
	mp_msg_tls(m, t->tls ? "TLSv1.3" : NULL);
	for (int i = 0; i < t->nrcpts; i++) {
		struct mp_reply r;
		mp_reply_init(&r);
		mp_msg_rcpt(m, t->rcpts[i], &r);
		if (r.action != MP_ACCEPT)
			printf("rcpt-refused: %s %s %s %s\n", t->rcpts[i], r.rcode, r.xcode, mw_buf_str(&r.text));
		mp_reply_free(&r);
	}
	struct feed fd = { m };
	struct mw_test_feed f = { feed_header, feed_eoh, feed_body, &fd };
	mw_test_feed_message(text, len, &f);

	struct mp_outcome o;
	mp_outcome_init(&o);
	mp_msg_eom(m, "TEST", &o);
	switch (o.reply.action) {
	case MP_ACCEPT: printf("action: accept\n"); break;
	case MP_REJECT:
		printf("action: reject %s %s %s\n", o.reply.rcode, o.reply.xcode, mw_buf_str(&o.reply.text));
		break;
	case MP_TEMPFAIL:
		printf("action: tempfail %s %s %s\n", o.reply.rcode, o.reply.xcode, mw_buf_str(&o.reply.text));
		break;
	}
	for (int i = 0; i < o.nchanges; i++) {
		if (o.changes[i].add) {
			char prefix[300];
			snprintf(prefix, sizeof(prefix), "add-header: %s:", o.changes[i].name);
			mw_test_print_folded(prefix, o.changes[i].value);
		} else if (o.changes[i].value != NULL) {
			char prefix[300];
			snprintf(prefix, sizeof(prefix), "change-header: %s:", o.changes[i].name);
			mw_test_print_folded(prefix, o.changes[i].value);
		} else {
			printf("delete-header: %s\n", o.changes[i].name);
		}
	}
	if (o.body_fd >= 0)
		printf("replace-body\n");
	for (int i = 0; i < o.ndelrcpts; i++)
		printf("delete-rcpt: %s\n", o.delrcpts[i]);
	if (o.reinject_fd >= 0) {
		/* the test mode injects nothing: the copy goes to OUT.reinject */
		printf("reinject: via=%s from=<%s> to=", mp_inject_describe(conf->inject), o.reinject_sender);
		for (int i = 0; i < o.nreinject; i++)
			printf("%s<%s>", i ? "," : "", o.reinject_rcpts[i]);
		printf("\n");
	}
	for (int i = 0; i < mp_msg_nrcpts(m); i++)
		printf("rcpt: %s %s\n", mp_msg_rcpt_addr(m, i), rcpt_states[mp_msg_rcpt_state(m, i)]);
	fflush(stdout);
	mw_msg_info("%s", mw_buf_str(&o.log));
	if (t->out != NULL && o.reply.action == MP_ACCEPT) {
		write_output(t->out, text, len, &o, mp_msg_body_fd(m));
		if (o.reinject_fd >= 0)
			write_copy(t->out, o.reinject_fd);
	}
	mp_outcome_free(&o);
	mp_msg_free(m);
	mp_conf_unref(conf);
	explicit_bzero(text, len); /* it may hold a password header */
	free(text);
	mw_buf_free(&err);
	return 0;
}

/* ------------------------------------------------------------ daemon */

/* The reload pieces for mw_startup_reload(). */
static void *conf_load(const char *path, struct mw_buf *err)
{
	struct mp_conf *c = mp_conf_load(path, err);
	if (c != NULL && mp_conf_start(c, err) < 0) {
		mp_conf_unref(c);
		return NULL;
	}
	return c;
}

static void conf_unref(void *c)
{
	mp_conf_unref(c);
}

static void conf_apply(void *c)
{
	mp_milter_set_conf(c);
}

static void conf_parts(const void *conf, struct mw_reload_parts *out)
{
	const struct mp_conf *c = conf;
	out->socket = c->s.socket;
	out->daemon = &c->s.daemon;
	out->log = &c->s.log;
}

static int run_daemon(const char *path, int foreground)
{
	struct mw_buf err = MW_BUF_INIT;
	/* GPGME wants this before any thread starts */
	if (mp_gpg_global_init(&err) < 0 || mp_pem_global_init(&err) < 0 || mp_inject_global_init(&err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	struct mp_conf *conf = mp_conf_load_cli(path, 0);
	struct mw_reloadable r = { path, conf, conf_load, conf_unref, conf_apply, conf_parts };

	mw_log_apply_conf(&conf->s.log);
	if (mp_milter_setup(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mw_startup_begin(&conf->s.daemon, foreground);
	if (mp_conf_start(conf, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	mp_milter_set_conf(conf);

	mw_msg_info("listening on %s as %s (keyring %s)", conf->s.socket,
		    conf->s.daemon.user[0] ? conf->s.daemon.user : "root", conf->s.keyring);
	mw_startup_run_milter(&r, mp_milter_run, mp_milter_stop);
	conf = r.conf; /* the last one reloaded */
	mp_milter_set_conf(NULL);
	mp_conf_unref(conf);
	mw_buf_free(&err);
	return 0;
}

enum { O_MAIL_FROM = 1000, O_RCPT, O_AUTH, O_CLIENT_IP, O_TLS, O_INJECT };

static int test_option(int opt, const char *arg, void *ctx)
{
	struct test_args *t = ctx;
	switch (opt) {
	case 't': t->message = arg; break;
	case 'o': t->out = arg; break;
	case O_MAIL_FROM: t->mail_from = arg; break;
	case O_AUTH: t->auth = arg; break;
	case O_TLS: t->tls = 1; break;
	case O_CLIENT_IP: t->client_ip = arg; break;
	case O_INJECT: t->inject = 1; break;
	case O_RCPT:
		if (t->nrcpts >= MAX_TEST_RCPTS)
			return -1;
		t->rcpts[t->nrcpts++] = arg;
		break;
	default: return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mail-from", required_argument, NULL, O_MAIL_FROM },
		{ "rcpt", required_argument, NULL, O_RCPT },
		{ "auth", required_argument, NULL, O_AUTH },
		{ "client-ip", required_argument, NULL, O_CLIENT_IP },
		{ "tls", no_argument, NULL, O_TLS },
		{ "inject", no_argument, NULL, O_INJECT },
		{ NULL, 0, NULL, 0 },
	};
	struct test_args t = { 0 };
	struct mw_startup_args a;

	mw_log_init("milter-pgp", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, DEFAULT_CONFIG, "t:o:", longopts, test_option, &t, USAGE, &a);
	if (a.cli_flags != 0) {
		mp_conf_load_cli(a.config_path, a.cli_flags); /* exits */
		return 0;
	}
	if (t.message != NULL)
		return test_mode(a.config_path, &t);
	return run_daemon(a.config_path, a.foreground);
}
