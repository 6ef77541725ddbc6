/*
 * milter-tls: TLS required on submission. For the services named in
 * require_tls_for (Postfix: -o milter_macro_daemon_name=NAME on the
 * service; Sendmail: the DaemonPortOptions Name), MAIL FROM on a
 * connection without TLS is refused with 530 5.7.0 and a text that says
 * what to do; with TLS, the version and cipher are logged.
 *
 *   milter-tls [-f] [-c FILE]          run (SIGHUP re-reads FILE)
 *   milter-tls -n | -C [-c FILE]       print / check the configuration
 *
 * A connection keeps the configuration it started with (a reference to it),
 * so a reload never changes the rules half-way through a connection.
 *
 * Postfix sends {tls_version} and {cipher} with HELO/EHLO only (the EHLO
 * after STARTTLS carries them), so they are kept per connection.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libmilter/mfapi.h>

#include "cli.h"
#include "conf.h"
#include "daemon.h"
#include "log.h"
#include "sock.h"
#include "startup.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/milter-tls.conf"
#define USAGE "usage: milter-tls [-f] [-c FILE]\n       milter-tls -n | -C [-c FILE]\n"

struct mt_settings {
	char *socket;
	char **require_tls_for;
	char *reply_text;
	struct mw_daemon_conf daemon;
	struct mw_log_conf log;
};

#define S(f) offsetof(struct mt_settings, f)
static const struct mw_conf_key schema[] = {
	{ .name = "socket", .type = MW_CONF_SOCKET, .offset = S(socket),
	  .def = "unix:/var/spool/postfix/mailward/milter-tls.sock", .help = "where the MTA connects (smtpd_milters)" },
	{ .name = "require_tls_for", .type = MW_CONF_LIST, .offset = S(require_tls_for), .def = "submission",
	  .help = "{daemon_name} values of the services where MAIL FROM needs TLS" },
	{ .name = "reply_text", .type = MW_CONF_STRING, .offset = S(reply_text),
	  .def = "Must issue a STARTTLS command first, or use port 465 (submissions)",
	  .help = "the text of the 530 5.7.0 reply" },
	MW_DAEMON_CONF_KEYS(struct mt_settings, daemon, "mailward"),
	MW_LOG_CONF_KEYS(struct mt_settings, log),
	{ .name = NULL },
};

/* One loaded configuration; connections hold references to it. */
struct mt_conf {
	struct mt_settings s;
	struct mw_conf *cfg; /* owns the values in s */
	unsigned refs;       /* under conf_lock */
};

static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_conf *current; /* under conf_lock */

static struct mt_conf *conf_get(void)
{
	pthread_mutex_lock(&conf_lock);
	struct mt_conf *c = current;
	c->refs++;
	pthread_mutex_unlock(&conf_lock);
	return c;
}

static void conf_unref(void *conf)
{
	struct mt_conf *c = conf;
	if (c == NULL)
		return;
	pthread_mutex_lock(&conf_lock);
	int last = --c->refs == 0;
	pthread_mutex_unlock(&conf_lock);
	if (last) {
		mw_conf_free(c->cfg);
		free(c);
	}
}

/* The reload pieces for mw_startup_reload(). */
static void *conf_load(const char *path, struct mw_buf *err)
{
	struct mt_conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	c->cfg = mw_cli_reload_config(schema, &c->s, path, NULL, err);
	if (c->cfg == NULL) {
		free(c);
		return NULL;
	}
	c->refs = 1;
	return c;
}

static void conf_apply(void *conf)
{
	struct mt_conf *c = conf;
	pthread_mutex_lock(&conf_lock);
	/* current holds a reference of its own; the old one loses it here, and
	   mw_startup_reload() then drops its own (the old one is r->conf). */
	c->refs++;
	struct mt_conf *old = current;
	current = c;
	if (old != NULL)
		old->refs--;
	pthread_mutex_unlock(&conf_lock);
}

static void conf_parts(const void *conf, struct mw_reload_parts *out)
{
	const struct mt_conf *c = conf;
	out->socket = c->s.socket;
	out->daemon = &c->s.daemon;
	out->log = &c->s.log;
}

struct conn {
	struct mt_conf *conf; /* a reference */
	char daemon[64];
	char tls_version[32];
	char cipher[128];
	int required;
};

static int required_for(const struct mt_settings *settings, const char *daemon)
{
	for (char **n = settings->require_tls_for; n != NULL && *n != NULL; n++)
		if (strcasecmp(*n, daemon) == 0)
			return 1;
	return 0;
}

static void copy_macro(SMFICTX *ctx, const char *name, char *out, size_t outlen)
{
	const char *v = smfi_getsymval(ctx, (char *)name);
	if (v != NULL && v[0] != '\0')
		snprintf(out, outlen, "%s", v);
}

static sfsistat on_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)host;
	(void)addr;
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	c->conf = conf_get();
	copy_macro(ctx, "{daemon_name}", c->daemon, sizeof(c->daemon));
	c->required = required_for(&c->conf->s, c->daemon);
	smfi_setpriv(ctx, c);
	return c->required ? SMFIS_CONTINUE : SMFIS_ACCEPT;
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
	(void)helo;
	struct conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		copy_macro(ctx, "{tls_version}", c->tls_version, sizeof(c->tls_version));
		copy_macro(ctx, "{cipher}", c->cipher, sizeof(c->cipher));
	}
	return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
	(void)argv;
	struct conn *c = smfi_getpriv(ctx);
	if (c == NULL)
		return SMFIS_TEMPFAIL;
	/* MTAs configured to send them at MAIL FROM too */
	copy_macro(ctx, "{tls_version}", c->tls_version, sizeof(c->tls_version));
	copy_macro(ctx, "{cipher}", c->cipher, sizeof(c->cipher));
	const char *client = smfi_getsymval(ctx, "{client_addr}");
	if (c->tls_version[0] == '\0') {
		mw_msg_info("NOQUEUE: client=%s daemon=%s: MAIL FROM without TLS refused (530 5.7.0)",
			    client ? client : "unknown", c->daemon);
		smfi_setreply(ctx, "530", "5.7.0", c->conf->s.reply_text);
		return SMFIS_REJECT;
	}
	mw_msg_info("client=%s daemon=%s tls=%s cipher=%s", client ? client : "unknown", c->daemon, c->tls_version,
		    c->cipher[0] ? c->cipher : "unknown");
	return SMFIS_ACCEPT;
}

static sfsistat on_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c != NULL)
		conf_unref(c->conf);
	free(c);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "milter-tls",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,
	.xxfi_connect = on_connect,
	.xxfi_helo = on_helo,
	.xxfi_envfrom = on_envfrom,
	.xxfi_close = on_close,
};

static int milter_run(void)
{
	return smfi_main() == MI_SUCCESS ? 0 : -1;
}

static void milter_stop(void)
{
	smfi_stop();
}

int main(int argc, char **argv)
{
	struct mw_startup_args a;
	struct mw_buf err = MW_BUF_INIT;
	struct mw_sockspec spec;

	mw_log_init("milter-tls", MW_LOG_TO_STDERR, 0);
	mw_startup_parse_args(argc, argv, DEFAULT_CONFIG, NULL, NULL, NULL, NULL, USAGE, &a);
	struct mt_conf *conf = calloc(1, sizeof(*conf));
	if (conf == NULL)
		mw_msg_fatal("out of memory");
	conf->cfg = mw_cli_load_config(schema, &conf->s, a.config_path, a.cli_flags, NULL);
	conf->refs = 1;
	conf_apply(conf);
	const struct mt_settings *settings = &conf->s;
	mw_log_apply_conf(&settings->log);
	if (mw_sock_parse(settings->socket, &spec, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	if (spec.kind == MW_SOCK_UNIX && mw_sock_remove_stale(spec.path, &err) < 0)
		mw_msg_fatal("%s", mw_buf_str(&err));
	struct mw_buf canon = MW_BUF_INIT;
	mw_sock_format(&spec, &canon);
	if (smfi_setconn((char *)mw_buf_str(&canon)) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
	    smfi_opensocket(false) != MI_SUCCESS)
		mw_msg_fatal("cannot listen on %s", settings->socket);
	if (spec.kind == MW_SOCK_UNIX) {
		struct mw_sock_perms perms = mw_daemon_sock_perms(&settings->daemon);
		if (mw_sock_set_perms(spec.path, &perms, &err) < 0)
			mw_msg_fatal("%s", mw_buf_str(&err));
	}
	mw_startup_begin(&settings->daemon, a.foreground);
	mw_msg_info("listening on %s; TLS required for: %s", settings->socket,
		    settings->require_tls_for && settings->require_tls_for[0] ? settings->require_tls_for[0] : "(none)");
	struct mw_reloadable r = { a.config_path, conf, conf_load, conf_unref, conf_apply, conf_parts };
	mw_startup_run_milter(&r, milter_run, milter_stop);
	conf_unref(r.conf); /* the last one reloaded */
	mw_buf_free(&canon);
	mw_buf_free(&err);
	return 0;
}
