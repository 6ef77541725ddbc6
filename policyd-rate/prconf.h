/*
 * prconf: policyd-rate's configuration (policyd-rate.conf(5)): the schema,
 * the loaded settings with their parsed rules and overrides, reloaded as a
 * whole on SIGHUP.
 *
 * Memory: struct pr_conf owns everything in it; pr_conf_free() releases it.
 */
#ifndef PR_PRCONF_H
#define PR_PRCONF_H

#include "cidr.h"
#include "conf.h"
#include "daemon.h"
#include "log.h"
#include "redis.h"
#include "rules.h"

#define PR_MAX_RULES 32

/* A list of names, compared without regard to case. */
struct pr_names {
	char **v;
	size_t n;
};

enum pr_store_kind { PR_STORE_MEMORY, PR_STORE_REDIS };
enum pr_on_error { PR_ON_ERROR_LOCAL, PR_ON_ERROR_ALLOW, PR_ON_ERROR_DEFER };
enum pr_stage { PR_STAGE_END_OF_MESSAGE, PR_STAGE_DATA };

struct pr_settings {
	char *socket;
	char *control_socket;
	char *metrics_listen;
	struct pr_rule rules[PR_MAX_RULES];
	int nrules;
	char *overrides_file;
	struct mw_cidr_list exempt_networks;
	/* exempt = sasl_username:NAME sender:ADDRESS client_address:NETWORK */
	struct pr_names exempt_sasl_usernames;
	struct pr_names exempt_senders;
	struct mw_cidr_list exempt_clients;
	int count_at;                   /* enum pr_stage */
	int check_at_rcpt;
	int store;                      /* enum pr_store_kind */
	int on_store_error;             /* enum pr_on_error */
	unsigned long long memory_max_entries;
	struct mw_redis_conf redis;
	unsigned long long redis_connections;
	char *redis_prefix;
	unsigned long long max_connections;
	unsigned long long client_timeout_ms;
	unsigned long long client_write_timeout_ms;
	struct mw_daemon_conf daemon;
	struct mw_log_conf log;
};

struct pr_conf {
	struct pr_settings s;
	struct mw_conf *owner;
	struct pr_overrides overrides;
};

extern const struct mw_conf_key pr_conf_schema[];

/* Loads the file (and the overrides file); NULL with "file:line: ..." in err. */
struct pr_conf *pr_conf_load(const char *path, struct mw_buf *err);
/* The same, exiting 2 on error; -n / -C handled (cli.h flags). */
struct pr_conf *pr_conf_load_cli(const char *path, unsigned flags);
void pr_conf_free(struct pr_conf *c);

#endif
