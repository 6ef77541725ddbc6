#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tlspol_conf.h"

MW_DNS_CONF_DEFINE(struct tlspol_settings, dns)

static int parse_default_policy(void *target, const char *value, struct mw_buf *err)
{
	struct tlspol_settings *s = target;
	if (tlspol_policy_check(value, err) < 0)
		return -1;
	free(s->default_policy);
	s->default_policy = strdup(value);
	if (s->default_policy == NULL) {
		mw_buf_puts(err, "out of memory");
		return -1;
	}
	return 0;
}

static void release_default_policy(void *target)
{
	struct tlspol_settings *s = target;
	free(s->default_policy);
	s->default_policy = NULL;
}

static const char *const on_fetch_errors[] = { "temp", "default", NULL };

#define S(f) offsetof(struct tlspol_settings, f)
const struct mw_conf_key tlspol_conf_schema[] = {
	{ .name = "socket", .type = MW_CONF_SOCKET, .offset = S(socket),
	  .def = "unix:/var/spool/postfix/mailward/tlspolicyd.sock",
	  .help = "where Postfix connects (smtp_tls_policy_maps = socketmap:...:tlspolicy)" },
	{ .name = "map_name", .type = MW_CONF_STRING, .offset = S(map_name), .def = "tlspolicy",
	  .help = "the socketmap name Postfix asks for (the part after the last colon)" },
	{ .name = "policy_file", .type = MW_CONF_STRING, .offset = S(policy_file), .def = "",
	  .help = "the admin's per-destination policies, first rule (re-read on SIGHUP)" },
	{ .name = "default_policy", .type = MW_CONF_CUSTOM, .def = "encrypt", .parse = parse_default_policy,
	  .release = release_default_policy,
	  .help = "when nothing else applies: encrypt (forced TLS) or may (opportunistic)" },
	{ .name = "dane", .type = MW_CONF_BOOL, .offset = S(dane), .def = "yes",
	  .help = "dane-only for domains whose MX hosts publish DNSSEC-secure TLSA records" },
	{ .name = "mta_sts", .type = MW_CONF_BOOL, .offset = S(mta_sts), .def = "yes",
	  .help = "apply MTA-STS (RFC 8461) policies" },
	{ .name = "cache_file", .type = MW_CONF_STRING, .offset = S(cache_file),
	  .def = LOCALSTATEDIR "/lib/mailward/tlspolicyd.cache",
	  .help = "MTA-STS policies kept across restarts (empty: in memory only)" },
	{ .name = "cache_max_entries", .type = MW_CONF_UINT, .offset = S(cache_max_entries), .def = "100000",
	  .min = 10, .max = 10000000, .help = "MTA-STS policies kept at most" },
	{ .name = "mta_sts_ca_file", .type = MW_CONF_STRING, .offset = S(mta_sts_ca_file), .def = "",
	  .help = "CA certificates for the policy servers (empty: the system's store)" },
	{ .name = "mta_sts_timeout", .type = MW_CONF_DURATION, .offset = S(mta_sts_timeout_ms), .def = "10s",
	  .min = 500, .max = 60000, .help = "one policy fetch, connection to last byte" },
	{ .name = "mta_sts_max_size", .type = MW_CONF_SIZE, .offset = S(mta_sts_max_size), .def = "64k",
	  .min = 512, .max = 64 * 1024, .help = "a larger policy is refused (RFC 8461 3.3)" },
	{ .name = "mta_sts_port", .type = MW_CONF_UINT, .offset = S(mta_sts_port), .def = "443", .min = 1,
	  .max = 65535, .help = "port of the policy servers (443; other values for tests)" },
	{ .name = "mta_sts_refresh", .type = MW_CONF_DURATION, .offset = S(mta_sts_refresh_ms), .def = "1d",
	  .min = 1000, .max = 31557600000ULL,
	  .help = "a cached policy this old (or past half its max_age) is fetched again, in the background" },
	{ .name = "on_fetch_error", .type = MW_CONF_ENUM, .offset = S(on_fetch_error), .def = "temp",
	  .choices = on_fetch_errors,
	  .help = "a policy announced in DNS that cannot be fetched (none cached): temp or default" },
	{ .name = "answer_cache_ttl", .type = MW_CONF_DURATION, .offset = S(answer_cache_ttl_ms), .def = "10s",
	  .min = 0, .max = 300000,
	  .help = "a destination asked again this soon gets the same answer without new lookups (0: off)" },
	{ .name = "workers", .type = MW_CONF_UINT, .offset = S(workers), .def = "8", .min = 1, .max = 256,
	  .help = "threads doing DNS lookups and fetches" },
	{ .name = "max_connections", .type = MW_CONF_UINT, .offset = S(max_connections), .def = "10000",
	  .min = 1, .max = 1000000 },
	{ .name = "client_timeout", .type = MW_CONF_DURATION, .offset = S(client_timeout_ms), .def = "5m",
	  .min = 1000, .max = 86400000ULL, .help = "an idle or stalled client is disconnected after this" },
	MW_DNS_CONF_KEYS(struct tlspol_settings, dns),
	MW_DAEMON_CONF_KEYS(struct tlspol_settings, daemon, "mailward"),
	MW_LOG_CONF_KEYS(struct tlspol_settings, log),
	{ .name = NULL },
};

static int validate(struct mw_conf *cfg, void *target)
{
	struct tlspol_settings *s = target;
	if (s->map_name[0] == '\0' || strpbrk(s->map_name, " \t:") != NULL)
		return mw_conf_fail(cfg, "map_name", "a name without spaces or colons");
	return 0;
}

static struct tlspol_conf *finish(struct tlspol_conf *c, struct mw_buf *err)
{
	if (c->s.policy_file[0] != '\0' && tlspol_policy_load(&c->policy, c->s.policy_file, err) < 0) {
		tlspol_conf_free(c);
		return NULL;
	}
	return c;
}

struct tlspol_conf *tlspol_conf_load(const char *path, struct mw_buf *err)
{
	struct tlspol_conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	c->owner = mw_cli_reload_config(tlspol_conf_schema, &c->s, path, validate, err);
	if (c->owner == NULL) {
		free(c);
		return NULL;
	}
	return finish(c, err);
}

struct tlspol_conf *tlspol_conf_load_cli(const char *path, unsigned flags)
{
	struct tlspol_conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	/* the policy file is checked before -n / -C say OK */
	c->owner = mw_cli_load_config(tlspol_conf_schema, &c->s, path, flags & ~(MW_CLI_PRINT | MW_CLI_CHECK), validate);
	struct mw_buf err = MW_BUF_INIT;
	if (finish(c, &err) == NULL) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		exit(MW_EXIT_CONFIG);
	}
	mw_buf_free(&err);
	if (flags & MW_CLI_PRINT) {
		mw_conf_print(c->owner, stdout);
		exit(0);
	}
	if (flags & MW_CLI_CHECK) {
		printf("%s: configuration OK\n", path);
		exit(0);
	}
	return c;
}

void tlspol_conf_free(struct tlspol_conf *c)
{
	if (c == NULL)
		return;
	tlspol_policy_free(&c->policy);
	mw_conf_free(c->owner);
	free(c);
}
