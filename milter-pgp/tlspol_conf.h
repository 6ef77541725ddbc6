/*
 * tlspol_conf: tlspolicyd's configuration (tlspolicyd.conf(5)): the
 * schema, the loaded settings and the policy file they name, reloaded as
 * a whole on SIGHUP.
 *
 * Memory: struct tlspol_conf owns everything in it; tlspol_conf_free().
 */
#ifndef TLSPOL_CONF_H
#define TLSPOL_CONF_H

#include "conf.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "tlspol_policy.h"

enum tlspol_on_fetch_error { TLSPOL_FETCH_ERROR_TEMP, TLSPOL_FETCH_ERROR_DEFAULT };

struct tlspol_settings {
	char *socket;
	char *map_name;
	char *policy_file;
	char *default_policy;
	int dane;
	int mta_sts;
	char *cache_file;
	unsigned long long cache_max_entries;
	char *mta_sts_ca_file;
	unsigned long long mta_sts_timeout_ms;
	unsigned long long mta_sts_max_size;
	unsigned long long mta_sts_port;
	unsigned long long mta_sts_refresh_ms;
	int on_fetch_error;             /* enum tlspol_on_fetch_error */
	unsigned long long answer_cache_ttl_ms;
	unsigned long long workers;
	unsigned long long max_connections;
	unsigned long long client_timeout_ms;
	struct mw_dns_conf dns;
	struct mw_daemon_conf daemon;
	struct mw_log_conf log;
};

struct tlspol_conf {
	struct tlspol_settings s;
	struct mw_conf *owner;
	struct tlspol_policy policy; /* policy_file, parsed (empty when none) */
};

extern const struct mw_conf_key tlspol_conf_schema[];

/* Loads the file and the policy file; NULL with "file:line: ..." in err. */
struct tlspol_conf *tlspol_conf_load(const char *path, struct mw_buf *err);
/* The same, exiting 2 on error; -n / -C handled (cli.h flags). */
struct tlspol_conf *tlspol_conf_load_cli(const char *path, unsigned flags);
void tlspol_conf_free(struct tlspol_conf *c);

#endif
