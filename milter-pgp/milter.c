#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "log.h"
#include "milter.h"
#include "milterutil.h"
#include "msg.h"
#include "sock.h"

static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mp_conf *current_conf;

void mp_milter_set_conf(struct mp_conf *conf)
{
	if (conf != NULL)
		mp_conf_ref(conf);
	pthread_mutex_lock(&conf_lock);
	struct mp_conf *old = current_conf;
	current_conf = conf;
	pthread_mutex_unlock(&conf_lock);
	mp_conf_unref(old);
}

static struct mp_conf *get_conf(void)
{
	pthread_mutex_lock(&conf_lock);
	struct mp_conf *c = mp_conf_ref(current_conf);
	pthread_mutex_unlock(&conf_lock);
	return c;
}

static sfsistat refuse(SMFICTX *ctx, const struct mp_reply *r)
{
	struct mw_buf text = MW_BUF_INIT;
	mw_milter_reply_text(mw_buf_str(&r->text), &text);
	smfi_setreply(ctx, (char *)r->rcode, (char *)r->xcode, text.data);
	mw_buf_free(&text);
	return r->action == MP_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static struct mp_msg *msg_of(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	char ip[INET6_ADDRSTRLEN];
	(void)hostname;
	mw_milter_client_ip_or(hostaddr, smfi_getsymval(ctx, "{client_addr}"), ip, sizeof(ip));
	struct mp_conf *c = get_conf();
	struct mp_msg *m = mp_msg_new(c);
	mp_conf_unref(c);
	mp_msg_connect(m, ip);
	smfi_setpriv(ctx, m);
	return SMFIS_CONTINUE;
}

static sfsistat on_envfrom(SMFICTX *ctx, char **argv)
{
	struct mp_msg *m = msg_of(ctx);
	if (m == NULL)
		return SMFIS_TEMPFAIL;
	char sender[512];
	mw_milter_sender(argv != NULL ? argv[0] : NULL, sender, sizeof(sender));
	mp_msg_mail(m, sender, smfi_getsymval(ctx, "{auth_authen}"));
	/* the password header is honoured only over TLS (Postfix:
	   milter_mail_macros must list {tls_version}) */
	mp_msg_tls(m, smfi_getsymval(ctx, "{tls_version}"));
	return SMFIS_CONTINUE;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mp_msg *m = msg_of(ctx);
	struct mp_reply r;
	sfsistat ret = SMFIS_CONTINUE;
	if (m == NULL)
		return SMFIS_TEMPFAIL;
	mp_reply_init(&r);
	mp_msg_rcpt(m, argv != NULL && argv[0] != NULL ? argv[0] : "", &r);
	if (r.action != MP_ACCEPT) {
		mw_msg_info("recipient %s refused: %s %s %s", argv != NULL && argv[0] ? argv[0] : "", r.rcode,
			    r.xcode, mw_buf_str(&r.text));
		ret = refuse(ctx, &r);
	}
	mp_reply_free(&r);
	return ret;
}

static sfsistat on_header(SMFICTX *ctx, char *name, char *value)
{
	struct mp_msg *m = msg_of(ctx);
	if (m != NULL)
		mp_msg_header(m, name, value);
	return SMFIS_CONTINUE;
}

static sfsistat on_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct mp_msg *m = msg_of(ctx);
	if (m != NULL)
		mp_msg_body(m, data, len);
	return SMFIS_CONTINUE;
}

static int put_body(void *ctx, const void *data, size_t len)
{
	return smfi_replacebody(ctx, (unsigned char *)(uintptr_t)data, (int)len) == MI_SUCCESS ? 0 : -1;
}

static sfsistat on_eom(SMFICTX *ctx)
{
	struct mp_msg *m = msg_of(ctx);
	struct mp_outcome o;
	sfsistat ret = SMFIS_ACCEPT;

	if (m == NULL)
		return SMFIS_TEMPFAIL;
	mp_outcome_init(&o);
	mp_msg_eom(m, smfi_getsymval(ctx, "i"), &o);
	if (o.reply.action != MP_ACCEPT) {
		ret = refuse(ctx, &o.reply);
	} else {
		int ok = 1;
		/* the body first: if it fails, the message is refused whole */
		if (o.body_fd >= 0 && mp_fd_chunks(o.body_fd, put_body, ctx) < 0)
			ok = 0;
		for (int i = 0; ok && i < o.nchanges; i++) {
			struct mp_change *c = &o.changes[i];
			int r = c->add ? smfi_addheader(ctx, c->name, c->value)
				       : smfi_chgheader(ctx, c->name, c->index, c->value);
			ok = r == MI_SUCCESS;
		}
		/* split: the recipients without a key leave this transaction and
		   get their copy through the MTA again; injected last, so that a
		   failure before it leaves nothing to undo, and a failed
		   injection tempfails the whole message (nothing lost; the
		   sender's retry sends each copy once) */
		for (int i = 0; ok && i < o.ndelrcpts; i++)
			ok = smfi_delrcpt(ctx, o.delrcpts[i]) == MI_SUCCESS;
		if (ok && o.reinject_fd >= 0 && mp_msg_reinject(m, &o) < 0) {
			ret = refuse(ctx, &o.reply);
		} else if (!ok) {
			/* a half-changed message must not leave: tempfail it */
			mw_buf_puts(&o.log, " tempfail=\"the MTA refused a change\"");
			smfi_setreply(ctx, "451", "4.7.0", "milter-pgp: cannot rewrite the message, try again later");
			ret = SMFIS_TEMPFAIL;
		}
	}
	mw_msg_info("%s", mw_buf_str(&o.log));
	mp_outcome_free(&o);
	mp_msg_next(m);
	return ret;
}

static sfsistat on_abort(SMFICTX *ctx)
{
	struct mp_msg *m = msg_of(ctx);
	if (m != NULL)
		mp_msg_next(m);
	return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx)
{
	struct mp_msg *m = msg_of(ctx);
	smfi_setpriv(ctx, NULL);
	mp_msg_free(m);
	return SMFIS_CONTINUE;
}

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			     unsigned long f3, unsigned long *pf0, unsigned long *pf1,
			     unsigned long *pf2, unsigned long *pf3)
{
	(void)ctx;
	(void)f0;
	(void)f2;
	(void)f3;
	*pf0 = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT;
	/* header values exactly as sent: the encrypted entity keeps its
	   Content-* fields byte for byte */
	*pf1 = f1 & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOHELO);
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "mailward milter-pgp",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_DELRCPT,
	.xxfi_connect = on_connect,
	.xxfi_envfrom = on_envfrom,
	.xxfi_envrcpt = on_envrcpt,
	.xxfi_header = on_header,
	.xxfi_body = on_body,
	.xxfi_eom = on_eom,
	.xxfi_abort = on_abort,
	.xxfi_close = on_close,
	.xxfi_negotiate = on_negotiate,
};

int mp_milter_setup(struct mp_conf *conf, struct mw_buf *err)
{
	struct mw_sockspec spec;
	struct mw_buf canon = MW_BUF_INIT;

	if (mw_sock_parse(conf->s.socket, &spec, err) < 0)
		return -1;
	/* Our own stale check: libmilter would remove a live socket too. */
	if (spec.kind == MW_SOCK_UNIX && mw_sock_remove_stale(spec.path, err) < 0)
		return -1;
	mw_sock_format(&spec, &canon);
	if (smfi_setconn(canon.data) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS) {
		mw_buf_printf(err, "libmilter refused %s", canon.data);
		mw_buf_free(&canon);
		return -1;
	}
	mw_buf_free(&canon);
	smfi_setbacklog(128);
	if (smfi_opensocket(false) != MI_SUCCESS) {
		mw_buf_printf(err, "cannot listen on %s", conf->s.socket);
		return -1;
	}
	if (spec.kind == MW_SOCK_UNIX) {
		const struct mw_daemon_conf *d = &conf->s.daemon;
		struct mw_sock_perms perms = mw_daemon_sock_perms(d);
		if (mw_sock_set_perms(spec.path, &perms, err) < 0)
			return -1;
	}
	return 0;
}

int mp_milter_run(void)
{
	return smfi_main() == MI_SUCCESS ? 0 : -1;
}

void mp_milter_stop(void)
{
	smfi_stop();
}
