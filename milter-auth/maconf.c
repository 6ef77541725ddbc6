#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "hdrparse.h"
#include "milterutil.h"
#include "maconf.h"
#include "madkim.h"
#include "madmarc.h"
#include "masign.h"
#include "metrics.h"
#include "report_store.h"
#include "spf.h"

MW_DNS_CONF_DEFINE(struct ma_settings, dns)
MW_REDIS_CONF_DEFINE(struct ma_settings, redis)

static int parse_trusted(void *target, const char *value, struct mw_buf *err)
{
	struct ma_settings *s = target;
	mw_cidr_list_free(&s->trusted);
	return mw_cidr_list_add(&s->trusted, value, err);
}

static void release_trusted(void *target)
{
	mw_cidr_list_free(&((struct ma_settings *)target)->trusted);
}

static const char *const quarantine_actions[] = { "hold", "header", NULL };
static const char *const malformed_actions[] = { "reject", "quarantine", "accept", NULL };
/* in the order of enum ma_dmarc_standard */
static const char *const dmarc_standards[] = { "rfc9989", "rfc7489", NULL };
static const char *const canon_names[] = { "relaxed/relaxed", "relaxed/simple", "simple/relaxed",
					   "simple/simple", NULL };
static const char *const origip_names[] = { "strip", "add", "keep", NULL };
static const char *const report_store_names[] = { "file", "redis", NULL };
#define DKIM_SIGN_HEADERS "From Reply-To Subject Date Message-ID To Cc MIME-Version Content-Type " \
	"Content-Transfer-Encoding Content-ID Content-Description Content-Disposition In-Reply-To " \
	"References Resent-Date Resent-From Resent-To Resent-Cc List-Id List-Help List-Unsubscribe " \
	"List-Unsubscribe-Post List-Subscribe List-Post List-Owner List-Archive"
#define DKIM_OVERSIGN_HEADERS "From To Cc Subject Date Message-ID Reply-To MIME-Version " \
	"Content-Type Content-Transfer-Encoding"

#define S(field) offsetof(struct ma_settings, field)
const struct mw_conf_key ma_conf_schema[] = {
	{ .name = "socket", .type = MW_CONF_SOCKET, .offset = S(socket),
	  .def = "unix:/var/spool/postfix/mailward/milter-auth.sock",
	  .help = "where the MTA connects: unix:/path, inet:port@host, inet6:port@host" },
	{ .name = "authserv_id", .type = MW_CONF_STRING, .offset = S(authserv_id), .def = "",
	  .help = "the name in our Authentication-Results headers (empty: this host's name)" },
	{ .name = "trusted_networks", .type = MW_CONF_CUSTOM, .def = "127.0.0.0/8 ::1",
	  .parse = parse_trusted, .release = release_trusted,
	  .help = "clients whose mail is not verified (outbound mail)" },
	{ .name = "skip_authenticated", .type = MW_CONF_BOOL, .offset = S(skip_authenticated),
	  .def = "yes", .help = "do not verify mail from SMTP AUTH users (outbound mail)" },
	{ .name = "spf_check_helo", .type = MW_CONF_BOOL, .offset = S(spf_helo), .def = "yes",
	  .help = "also check the HELO identity (reported as spf=... smtp.helo=)" },
	{ .name = "spf_reject_fail", .type = MW_CONF_BOOL, .offset = S(spf_reject_fail),
	  .def = "no", .help = "reject SPF fail (-all) when the domain publishes no DMARC record" },
	{ .name = "dkim_min_key_bits", .type = MW_CONF_UINT, .offset = S(dkim_min_key_bits),
	  .def = "1024", .min = 1024, .max = 16384,
	  .help = "shorter RSA keys never pass (RFC 8301: at least 1024)" },
	{ .name = "dkim_max_signatures", .type = MW_CONF_UINT, .offset = S(dkim_max_signatures),
	  .def = "8", .min = 1, .max = 64, .help = "signatures verified per message" },
	{ .name = "dmarc_enforce", .type = MW_CONF_BOOL, .offset = S(dmarc_enforce), .def = "yes",
	  .help = "act on p=reject and p=quarantine (no: report only)" },
	{ .name = "dmarc_standard", .type = MW_CONF_ENUM, .offset = S(dmarc_standard),
	  .def = "rfc9989", .choices = dmarc_standards,
	  .help = "rfc9989 (DNS tree walk, psd=, np=, t=) or rfc7489 (public suffix list, pct=), to compare" },
	{ .name = "quarantine_action", .type = MW_CONF_ENUM, .offset = S(quarantine_action),
	  .def = "hold", .choices = quarantine_actions,
	  .help = "p=quarantine: hold (Postfix hold queue) or header (for Sieve to file into Junk)" },
	{ .name = "quarantine_header", .type = MW_CONF_STRING, .offset = S(quarantine_header),
	  .def = "X-Mailward-Quarantine", .help = "header added with quarantine_action = header" },
	{ .name = "dmarc_override_domains", .type = MW_CONF_LIST, .offset = S(dmarc_override_domains),
	  .def = "", .flags = MW_CONF_MULTI,
	  .help = "From domains whose DMARC policy is reported but never enforced" },
	{ .name = "malformed_from", .type = MW_CONF_ENUM, .offset = S(malformed_from),
	  .def = "reject", .choices = malformed_actions,
	  .help = "zero or several From fields, or a From without a domain" },
	{ .name = "tempfail_on_dns_error", .type = MW_CONF_BOOL, .offset = S(dns_tempfail),
	  .def = "yes", .help = "when DNS trouble leaves a DMARC policy undecided, 4xx (try later)" },
	{ .name = "public_suffix_list", .type = MW_CONF_STRING, .offset = S(public_suffix_list),
	  .def = "/usr/share/publicsuffix/public_suffix_list.dat",
	  .help = "organizational domains with dmarc_standard = rfc7489 (Debian package publicsuffix)" },
	{ .name = "max_headers", .type = MW_CONF_UINT, .offset = S(max_headers), .def = "1000",
	  .min = 10, .max = 100000, .help = "headers read per message; a message with more is refused" },
	/* outbound: DKIM signing and submission hygiene (masign.c) */
	{ .name = "dkim_key_table", .type = MW_CONF_STRING, .offset = S(dkim_key_table), .def = "",
	  .help = "OpenDKIM KeyTable: NAME DOMAIN:SELECTOR:/path/to/key (empty: no signing)" },
	{ .name = "dkim_signing_table", .type = MW_CONF_STRING, .offset = S(dkim_signing_table),
	  .def = "", .help = "OpenDKIM SigningTable: refile:PATH (patterns like *@example.org) or PATH" },
	{ .name = "dkim_sign_headers", .type = MW_CONF_LIST, .offset = S(dkim_sign_headers),
	  .def = DKIM_SIGN_HEADERS, .help = "header fields signed (every instance)" },
	{ .name = "dkim_oversign_headers", .type = MW_CONF_LIST, .offset = S(dkim_oversign_headers),
	  .def = DKIM_OVERSIGN_HEADERS,
	  .help = "header fields signed once more than present, so none can be added later" },
	{ .name = "dkim_canonicalization", .type = MW_CONF_ENUM, .offset = S(dkim_canon),
	  .def = "relaxed/relaxed", .choices = canon_names, .help = "header/body canonicalization" },
	{ .name = "dkim_signature_ttl", .type = MW_CONF_DURATION, .offset = S(dkim_signature_ttl),
	  .def = "0", .min = 0, .max = 366ULL * 86400 * 1000,
	  .help = "x= this long after t= (0: no x=)" },
	{ .name = "sender_login_check", .type = MW_CONF_BOOL, .offset = S(sender_login_check),
	  .def = "no", .help = "refuse (550 5.7.1) an authenticated user sending as an address not theirs" },
	{ .name = "sender_login_maps", .type = MW_CONF_STRING, .offset = S(sender_login_maps),
	  .def = "", .help = "Postfix smtpd_sender_login_maps format: ADDRESS|@DOMAIN LOGIN[, LOGIN] "
	  "(empty: the login must be an address of the From domain)" },
	{ .name = "originating_ip", .type = MW_CONF_ENUM, .offset = S(originating_ip), .def = "strip",
	  .choices = origip_names,
	  .help = "X-Originating-IP on authenticated submissions: strip, add (the client's), keep" },
	{ .name = "max_connections", .type = MW_CONF_UINT, .offset = S(max_connections), .def = "256",
	  .min = 1, .max = 100000,
	  .help = "inet: sockets: MTA connections served at once, more are closed (read at start)" },
	/* DMARC aggregate reports */
	{ .name = "report_store", .type = MW_CONF_ENUM, .offset = S(report_store), .def = "file",
	  .choices = report_store_names,
	  .help = "where evaluations are recorded: file (report_store_dir) or redis (redis_servers, "
	  "shared by every MX host)" },
	{ .name = "report_store_dir", .type = MW_CONF_STRING, .offset = S(report_store_dir), .def = "",
	  .help = "record inbound DMARC evaluations here for milter-auth-report (empty: do not record)" },
	{ .name = "report_retention", .type = MW_CONF_DURATION, .offset = S(report_retention_ms),
	  .def = "30d", .min = 86400000ULL, .max = 366 * 86400000ULL,
	  .help = "recorded evaluations and read reports are deleted after this long" },
	{ .name = "report_keep_localparts", .type = MW_CONF_BOOL, .offset = S(report_keep_localparts),
	  .def = "no", .help = "keep whole envelope sender addresses in the store (no: domains only)" },
	{ .name = "report_host_id", .type = MW_CONF_STRING, .offset = S(report_host_id), .def = "",
	  .help = "names this host's store files, unique per MX host (empty: the host name)" },
	{ .name = "report_org_name", .type = MW_CONF_STRING, .offset = S(report_org_name), .def = "",
	  .help = "org_name in the reports we send (empty: authserv_id)" },
	{ .name = "report_email", .type = MW_CONF_STRING, .offset = S(report_email), .def = "",
	  .help = "the address reports are sent from (needed by milter-auth-report send)" },
	{ .name = "report_sendmail", .type = MW_CONF_STRING, .offset = S(report_sendmail),
	  .def = "/usr/sbin/sendmail", .help = "the sendmail program reports are handed to" },
	{ .name = "report_max_size", .type = MW_CONF_SIZE, .offset = S(report_max_size), .def = "10m",
	  .min = 4096, .max = 1024ULL * 1024 * 1024,
	  .help = "a report message larger than this is not sent (nor read, by ingest)" },
	{ .name = "report_received_dir", .type = MW_CONF_STRING, .offset = S(report_received_dir), .def = "",
	  .help = "where milter-auth-report ingest keeps the reports other receivers send us" },
	MW_REDIS_CONF_KEYS(struct ma_settings, redis, "127.0.0.1:6379"),
	{ .name = "metrics_listen", .type = MW_CONF_STRING, .offset = S(metrics_listen), .def = "",
	  .help = "inet:port@host serving Prometheus metrics over HTTP (empty: off; read at start)" },
	MW_DNS_CONF_KEYS(struct ma_settings, dns),
	MW_LOG_CONF_KEYS(struct ma_settings, log),
	MW_DAEMON_CONF_KEYS(struct ma_settings, daemon, "mailward"),
	{ .name = NULL },
};

static void signer_conf(const struct ma_settings *s, struct ma_signer_conf *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->key_table = s->dkim_key_table;
	sc->signing_table = s->dkim_signing_table;
	sc->login_maps = s->sender_login_maps;
	sc->sign_headers = s->dkim_sign_headers;
	sc->oversign_headers = s->dkim_oversign_headers;
	sc->header_relaxed = s->dkim_canon == MA_CANON_RELAXED_RELAXED || s->dkim_canon == MA_CANON_RELAXED_SIMPLE;
	sc->body_relaxed = s->dkim_canon == MA_CANON_RELAXED_RELAXED || s->dkim_canon == MA_CANON_SIMPLE_RELAXED;
	sc->ttl_s = (s->dkim_signature_ttl + 999) / 1000;
	sc->daemon_user = s->daemon.user;
}

static int validate_signing(struct mw_conf *cfg, struct ma_settings *s)
{
	if ((s->dkim_key_table[0] == '\0') != (s->dkim_signing_table[0] == '\0'))
		return mw_conf_fail(cfg, s->dkim_key_table[0] ? "dkim_signing_table" : "dkim_key_table",
				    "dkim_key_table and dkim_signing_table go together");
	int from = 0;
	for (char **h = s->dkim_sign_headers; h != NULL && *h != NULL; h++) {
		if (strcasecmp(*h, "From") == 0)
			from = 1;
		if (strcasecmp(*h, "X-Originating-IP") == 0 || strcasecmp(*h, "DKIM-Signature") == 0 ||
		    strcasecmp(*h, "Authentication-Results") == 0 || strcasecmp(*h, "Received") == 0 ||
		    strcasecmp(*h, "Return-Path") == 0)
			return mw_conf_fail(cfg, "dkim_sign_headers", "%s changes after signing: signing "
					    "it would break the signature", *h);
	}
	if (!from)
		return mw_conf_fail(cfg, "dkim_sign_headers", "must include From (RFC 6376 5.4)");
	if (s->sender_login_maps[0] != '\0' && access(s->sender_login_maps, R_OK) < 0)
		return mw_conf_fail(cfg, "sender_login_maps", "cannot read %s", s->sender_login_maps);
	if (s->dkim_key_table[0] != '\0' || s->sender_login_maps[0] != '\0') {
		/* a trial load, so that -C and a reload check the tables and
		   every key (the daemon loads them again after dropping root) */
		struct ma_signer_conf sc;
		struct mw_buf err = MW_BUF_INIT;
		signer_conf(s, &sc);
		struct ma_signer *trial = ma_signer_new(&sc, &err);
		int r = trial == NULL ? mw_conf_fail(cfg, s->dkim_key_table[0] ? "dkim_key_table" :
						     "sender_login_maps", "%s", mw_buf_str(&err)) : 0;
		ma_signer_free(trial);
		mw_buf_free(&err);
		return r;
	}
	return 0;
}

int ma_conf_validate(struct mw_conf *cfg, void *target)
{
	struct ma_settings *s = target;
	struct mw_buf why = MW_BUF_INIT;
	if (mw_milter_authserv_id(&s->authserv_id, &why) < 0) {
		int rc = mw_conf_fail(cfg, "authserv_id", "%s", mw_buf_str(&why));
		mw_buf_free(&why);
		return rc;
	}
	mw_buf_free(&why);
	char norm[MA_DOMAIN_MAX];
	if (s->dmarc_override_domains != NULL) {
		for (char **d = s->dmarc_override_domains; *d != NULL; d++) {
			if (ma_domain_normalize(*d, strlen(*d), norm, sizeof(norm)) < 0)
				return mw_conf_fail(cfg, "dmarc_override_domains",
						    "\"%s\" is not a domain", *d);
			memcpy(*d, norm, strlen(norm) + 1); /* normalizing never lengthens */
		}
	}
	if (mw_metrics_validate_listen(cfg, "metrics_listen", s->metrics_listen) < 0)
		return -1;
	if (access(s->public_suffix_list, R_OK) < 0)
		return mw_conf_fail(cfg, "public_suffix_list", "cannot read %s (install the Debian "
				    "package publicsuffix)", s->public_suffix_list);
	for (const char *p = s->quarantine_header; *p != '\0'; p++)
		if (*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f)
			return mw_conf_fail(cfg, "quarantine_header", "not a header field name");
	return validate_signing(cfg, s);
}

struct ma_conf *ma_conf_load(const char *path, struct mw_buf *err)
{
	struct ma_conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	c->owner = mw_cli_reload_config(ma_conf_schema, &c->s, path, ma_conf_validate, err);
	if (c->owner == NULL) {
		free(c);
		return NULL;
	}
	atomic_init(&c->refs, 1);
	return c;
}

struct ma_conf *ma_conf_load_cli(const char *path, unsigned cli_flags)
{
	struct ma_conf *c = calloc(1, sizeof(*c));
	if (c == NULL)
		mw_msg_fatal("out of memory");
	c->owner = mw_cli_load_config(ma_conf_schema, &c->s, path, cli_flags, ma_conf_validate);
	atomic_init(&c->refs, 1);
	return c;
}

int ma_conf_start(struct ma_conf *c, struct mw_buf *err)
{
	struct ma_engines *e = &c->e;
	const struct ma_settings *s = &c->s;
	e->dns = mw_dns_new(&s->dns, err);
	e->spf = e->dns != NULL ? ma_spf_new(e->dns, s->authserv_id, err) : NULL;
	e->dkim = e->spf != NULL ? ma_dkim_new(e->dns, (unsigned)s->dkim_min_key_bits, err) : NULL;
	e->dmarc = e->dkim != NULL ? ma_dmarc_new(e->dns, s->public_suffix_list, err) : NULL;
	if (e->dmarc == NULL)
		return -1;
	if (s->dkim_key_table[0] != '\0' || s->sender_login_check) {
		struct ma_signer_conf sc;
		signer_conf(s, &sc);
		if ((e->signer = ma_signer_new(&sc, err)) == NULL)
			return -1;
	}
	if (s->report_store == MA_REPORT_STORE_REDIS) {
		e->reports = ma_report_store_open_redis(&s->redis, s->report_host_id, s->report_retention_ms / 1000,
							s->report_keep_localparts, err);
		if (e->reports == NULL)
			return -1;
	} else if (s->report_store_dir[0] != '\0') {
		e->reports = ma_report_store_open(s->report_store_dir, s->report_host_id,
						  s->report_retention_ms / 1000, s->report_keep_localparts, err);
		if (e->reports == NULL)
			return -1;
	}
	return 0;
}

static void engines_free(struct ma_engines *e)
{
	ma_signer_free(e->signer);
	ma_report_store_close(e->reports);
	ma_dmarc_free(e->dmarc);
	ma_dkim_free(e->dkim);
	ma_spf_free(e->spf);
	mw_dns_free(e->dns);
}

struct ma_conf *ma_conf_ref(struct ma_conf *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void ma_conf_unref(struct ma_conf *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
		engines_free(&c->e);
		mw_conf_free(c->owner);
		free(c);
	}
}
