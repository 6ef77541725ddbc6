#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmilter/mfapi.h>

#include "log.h"
#include "milter.h"
#include "milterutil.h"
#include "pipeline.h"
#include "sock.h"
#include "tcprelay.h"

static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ma_conf *current_conf;

void ma_milter_set_conf(struct ma_conf *conf)
{
	ma_conf_ref(conf);
	pthread_mutex_lock(&conf_lock);
	struct ma_conf *old = current_conf;
	current_conf = conf;
	pthread_mutex_unlock(&conf_lock);
	ma_conf_unref(old);
}

static struct ma_conf *get_conf(void)
{
	pthread_mutex_lock(&conf_lock);
	struct ma_conf *c = ma_conf_ref(current_conf);
	pthread_mutex_unlock(&conf_lock);
	return c;
}

/* One per connection: the message pipeline, and what the MTA agreed to. */
struct conn {
	struct ma_msg *msg;
	unsigned long no_reply; /* SMFIP_NR_* the MTA accepted */
	int can_skip;           /* the MTA understands SMFIS_SKIP */
};

static struct conn *conn_of(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c == NULL) {
		/* an MTA without protocol negotiation */
		c = mw_xcalloc(1, sizeof(*c));
		smfi_setpriv(ctx, c);
	}
	return c;
}

static struct ma_msg *msg_of(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	return c != NULL ? c->msg : NULL;
}

/* Each callback answers only when the MTA waits for an answer: every
   skipped reply is a round trip saved per header. */
static sfsistat cont(SMFICTX *ctx, unsigned long nr_flag)
{
	struct conn *c = smfi_getpriv(ctx);
	return c != NULL && (c->no_reply & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	char ip[INET6_ADDRSTRLEN];
	mw_milter_client_ip_or(hostaddr, smfi_getsymval(ctx, "{client_addr}"), ip, sizeof(ip));
	struct ma_conf *c = get_conf();
	struct ma_msg *m = ma_msg_new(c);
	ma_conf_unref(c);
	ma_msg_connect(m, ip, hostname);
	conn_of(ctx)->msg = m;
	return cont(ctx, SMFIP_NR_CONN);
}

static sfsistat on_helo(SMFICTX *ctx, char *helo)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_helo(m, helo);
	return cont(ctx, SMFIP_NR_HELO);
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
	struct ma_msg *m = msg_of(ctx);
	if (m == NULL)
		return SMFIS_TEMPFAIL;
	char sender[1024];
	mw_milter_sender(argv != NULL ? argv[0] : NULL, sender, sizeof(sender));
	ma_msg_mail(m, sender, smfi_getsymval(ctx, "{auth_authen}"));
	return cont(ctx, SMFIP_NR_MAIL);
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_rcpt(m, argv != NULL ? argv[0] : "");
	return cont(ctx, SMFIP_NR_RCPT);
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_header(m, name, value);
	return cont(ctx, SMFIP_NR_HDR);
}

static sfsistat on_eoh(SMFICTX *ctx)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_eoh(m);
	return cont(ctx, SMFIP_NR_EOH);
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_body(m, data, len);
	/* Unsigned mail: the rest of the body cannot change a verdict. */
	if (m != NULL && !ma_msg_wants_body(m) && conn_of(ctx)->can_skip)
		return SMFIS_SKIP;
	return SMFIS_CONTINUE;
}

static sfsistat on_eom(SMFICTX *ctx)
{
	struct ma_msg *m = msg_of(ctx);
	struct ma_outcome o;
	sfsistat ret = SMFIS_ACCEPT;

	if (m == NULL)
		return SMFIS_TEMPFAIL;
	ma_outcome_init(&o);
	ma_msg_eom(m, smfi_getsymval(ctx, "i"), -1, &o);
	mw_msg_info("%s", mw_buf_str(&o.log));
	if (o.action == MA_REJECT || o.action == MA_TEMPFAIL) {
		struct mw_buf text = MW_BUF_INIT;
		mw_milter_reply_text(mw_buf_str(&o.text), &text);
		smfi_setreply(ctx, o.rcode, o.xcode, text.data);
		mw_buf_free(&text);
		ret = o.action == MA_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
	} else {
		for (int i = 0; i < o.nchanges; i++) {
			struct ma_change *c = &o.changes[i];
			if (!c->add)
				smfi_chgheader(ctx, c->name, c->index, NULL);
			else
				/* on top, as RFC 8601 5 asks of trace headers */
				smfi_insheader(ctx, 0, c->name, c->value);
		}
		if (o.action == MA_QUARANTINE) {
			struct mw_buf text = MW_BUF_INIT;
			mw_milter_reply_text(mw_buf_str(&o.text), &text);
			smfi_quarantine(ctx, text.data);
			mw_buf_free(&text);
		}
	}
	ma_outcome_free(&o);
	ma_msg_next(m);
	return ret;
}

static sfsistat on_abort(SMFICTX *ctx)
{
	struct ma_msg *m = msg_of(ctx);
	if (m != NULL)
		ma_msg_next(m);
	return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		smfi_setpriv(ctx, NULL);
		ma_msg_free(c->msg);
		free(c);
	}
	return SMFIS_CONTINUE;
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			     unsigned long f3, unsigned long *pf0, unsigned long *pf1,
			     unsigned long *pf2, unsigned long *pf3)
{
	(void)f0;
	(void)f2;
	(void)f3;
	*pf0 = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
	/* Header values exactly as sent (DKIM simple canonicalization needs
	   the space after the colon); no replies where we never object (each
	   one is a round trip); nothing we do not use. */
	const unsigned long nr = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
				 SMFIP_NR_HDR | SMFIP_NR_EOH;
	*pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NORCPT | SMFIP_SKIP | nr);
	*pf2 = 0;
	*pf3 = 0;
	struct conn *c = conn_of(ctx);
	c->no_reply = *pf1 & nr;
	c->can_skip = (*pf1 & SMFIP_SKIP) != 0;
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "mailward milter-auth",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
	.xxfi_connect = on_connect,
	.xxfi_helo = on_helo,
	.xxfi_envfrom = on_envfrom,
	.xxfi_envrcpt = on_envrcpt,
	.xxfi_header = on_header,
	.xxfi_eoh = on_eoh,
	.xxfi_body = on_body,
	.xxfi_eom = on_eom,
	.xxfi_abort = on_abort,
	.xxfi_close = on_close,
	.xxfi_negotiate = on_negotiate,
};

static int relay; /* inet: sockets go through tcprelay */

int ma_milter_setup(struct ma_conf *conf, struct mw_buf *err)
{
	struct mw_sockspec spec;
	struct mw_buf canon = MW_BUF_INIT;

	if (mw_sock_parse(conf->s.socket, &spec, err) < 0)
		return -1;
	/* Our own stale check: libmilter would remove a live socket too. */
	if (spec.kind == MW_SOCK_UNIX && mw_sock_remove_stale(spec.path, err) < 0)
		return -1;
	if (spec.kind == MW_SOCK_UNIX) {
		mw_sock_format(&spec, &canon);
	} else {
		/* TCP: our relay accepts (see tcprelay.h); libmilter listens on a
		   private unix socket behind it. */
		if (ma_tcprelay_prepare(&spec, conf->s.daemon.user, (int)conf->s.max_connections, &canon, err) < 0)
			return -1;
		relay = 1;
	}
	if (smfi_setconn(canon.data) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS) {
		mw_buf_printf(err, "libmilter refused %s", canon.data);
		mw_buf_free(&canon);
		return -1;
	}
	/* Many MTAs connect at once; 128 matches Postfix's default. */
	smfi_setbacklog(128);
	if (smfi_opensocket(false) != MI_SUCCESS) {
		mw_buf_printf(err, "cannot listen on %s", conf->s.socket);
		return -1;
	}
	if (relay) {
		const char *path = canon.data + strlen("unix:");
		struct mw_sock_perms perms = { conf->s.daemon.user, NULL, 0600 };
		if (mw_sock_set_perms(path, &perms, err) < 0)
			return -1;
	}
	mw_buf_free(&canon);
	if (spec.kind == MW_SOCK_UNIX) {
		const struct mw_daemon_conf *d = &conf->s.daemon;
		struct mw_sock_perms perms = mw_daemon_sock_perms(d);
		if (mw_sock_set_perms(spec.path, &perms, err) < 0)
			return -1;
	}
	return 0;
}

int ma_milter_run(void)
{
	if (relay) {
		struct mw_buf err = MW_BUF_INIT;
		if (ma_tcprelay_start(&err) < 0) {
			mw_msg_error("%s", mw_buf_str(&err));
			mw_buf_free(&err);
			return -1;
		}
	}
	int r = smfi_main() == MI_SUCCESS ? 0 : -1;
	if (relay)
		ma_tcprelay_cleanup();
	return r;
}

void ma_milter_stop(void)
{
	smfi_stop();
}
