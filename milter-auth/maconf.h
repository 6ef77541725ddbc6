/*
 * maconf: milter-auth's configuration (milter-auth.conf(5)): the schema,
 * the struct it fills, and the checks across keys.
 *
 * A loaded configuration is immutable and shared by every milter thread
 * through a reference count: SIGHUP loads a new one and swaps it in;
 * messages in flight keep the one they started with.
 */
#ifndef MA_MACONF_H
#define MA_MACONF_H

#include <stdatomic.h>

#include "cidr.h"
#include "conf.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "redis.h"

struct ma_spf;
struct ma_dkim;
struct ma_dmarc;
struct ma_signer;
struct ma_report_store;

enum ma_quarantine_action { MA_QUARANTINE_HOLD, MA_QUARANTINE_HEADER };
enum ma_malformed_action { MA_MALFORMED_REJECT, MA_MALFORMED_QUARANTINE, MA_MALFORMED_ACCEPT };
enum ma_canon { MA_CANON_RELAXED_RELAXED, MA_CANON_RELAXED_SIMPLE, MA_CANON_SIMPLE_RELAXED,
		MA_CANON_SIMPLE_SIMPLE };
enum ma_originating_ip { MA_ORIGIP_STRIP, MA_ORIGIP_ADD, MA_ORIGIP_KEEP };
enum ma_report_store_kind { MA_REPORT_STORE_FILE, MA_REPORT_STORE_REDIS };

struct ma_settings {
	char *socket;
	char *authserv_id;             /* "" until load: then the host name */
	struct mw_cidr_list trusted;   /* trusted_networks */
	int skip_authenticated;
	int spf_helo;                  /* spf_check_helo */
	int spf_reject_fail;           /* reject SPF fail when no DMARC record */
	unsigned long long dkim_min_key_bits;
	unsigned long long dkim_max_signatures;
	int dmarc_enforce;
	int dmarc_standard;            /* enum ma_dmarc_standard */
	int quarantine_action;         /* enum ma_quarantine_action */
	char *quarantine_header;
	char **dmarc_override_domains;
	int malformed_from;            /* enum ma_malformed_action */
	int dns_tempfail;              /* tempfail_on_dns_error */
	char *public_suffix_list;
	unsigned long long max_headers;
	/* outbound: DKIM signing (masign.c) and submission hygiene */
	char *dkim_key_table;
	char *dkim_signing_table;
	char **dkim_sign_headers;
	char **dkim_oversign_headers;
	int dkim_canon;                /* enum ma_canon */
	unsigned long long dkim_signature_ttl; /* ms; 0: no x= */
	int sender_login_check;
	char *sender_login_maps;
	int originating_ip;            /* enum ma_originating_ip */
	unsigned long long max_connections; /* inet: relay, read at start */
	/* DMARC aggregate reports (report_store.h, milter-auth-report(8)) */
	int report_store;              /* enum ma_report_store_kind */
	char *report_store_dir;        /* file: "": evaluations are not recorded; redis: sent-day markers */
	struct mw_redis_conf redis;    /* report_store = redis */
	unsigned long long report_retention_ms;
	int report_keep_localparts;
	char *report_host_id;          /* "": the host name */
	char *report_org_name;         /* "": authserv_id */
	char *report_email;            /* From: of the reports we send */
	char *report_sendmail;
	unsigned long long report_max_size;
	char *report_received_dir;     /* reports others send us (ingest, summary) */
	struct mw_dns_conf dns;
	struct mw_log_conf log;
	struct mw_daemon_conf daemon;
	char *metrics_listen;          /* "": no Prometheus endpoint (read at start) */
};

/* The engines a configuration runs with (their settings come from it). */
struct ma_engines {
	struct mw_dns *dns;
	struct ma_spf *spf;
	struct ma_dkim *dkim;
	struct ma_dmarc *dmarc;
	struct ma_signer *signer;  /* NULL: no dkim_key_table */
	struct ma_report_store *reports; /* NULL unless evaluations are recorded */
};

struct ma_conf {
	struct ma_settings s;
	struct mw_conf *owner;  /* owns the strings in s */
	struct ma_engines e;    /* built by ma_conf_start() */
	atomic_int refs;
};

extern const struct mw_conf_key ma_conf_schema[];

/* Cross-key checks and defaults computed at load (authserv_id). */
int ma_conf_validate(struct mw_conf *cfg, void *target);

/* Loads path; NULL with "file:line: message" in err. */
struct ma_conf *ma_conf_load(const char *path, struct mw_buf *err);
/* For -n / -C and startup: loads or exits 2 (common/cli). */
struct ma_conf *ma_conf_load_cli(const char *path, unsigned cli_flags);
/* Builds the engines (resolver, SPF, DKIM, DMARC); 0, or -1 with err. */
int ma_conf_start(struct ma_conf *c, struct mw_buf *err);
struct ma_conf *ma_conf_ref(struct ma_conf *c);
void ma_conf_unref(struct ma_conf *c);

#endif
