#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "metrics.h"
#include "prconf.h"
#include "sock.h"

MW_REDIS_CONF_DEFINE(struct pr_settings, redis)

static int parse_rule(void *target, const char *value, struct mw_buf *err)
{
	struct pr_settings *s = target;
	if (s->nrules >= PR_MAX_RULES) {
		mw_buf_printf(err, "at most %d rules", PR_MAX_RULES);
		return -1;
	}
	struct pr_rule r;
	if (pr_rule_parse(value, &r, err) < 0) {
		pr_rule_free(&r);
		return -1;
	}
	for (int i = 0; i < s->nrules; i++) {
		if (strcmp(s->rules[i].name, r.name) == 0) {
			mw_buf_printf(err, "rule %s is defined twice", r.name);
			pr_rule_free(&r);
			return -1;
		}
	}
	s->rules[s->nrules++] = r;
	return 0;
}

static void release_rules(void *target)
{
	struct pr_settings *s = target;
	for (int i = 0; i < s->nrules; i++)
		pr_rule_free(&s->rules[i]);
	s->nrules = 0;
}

static int parse_exempt_networks(void *target, const char *value, struct mw_buf *err)
{
	struct pr_settings *s = target;
	mw_cidr_list_free(&s->exempt_networks);
	return mw_cidr_list_add(&s->exempt_networks, value, err);
}

static void release_exempt_networks(void *target)
{
	mw_cidr_list_free(&((struct pr_settings *)target)->exempt_networks);
}

static int add_name(struct pr_names *l, const char *v, size_t n)
{
	char **grown = realloc(l->v, (l->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	l->v = grown;
	l->v[l->n] = mw_xstrndup(v, n);
	l->n++;
	return 0;
}

static void free_names(struct pr_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* exempt = sasl_username:NAME sender:ADDRESS client_address:NETWORK ...
   (spaces or commas between them) */
static int parse_exempt(void *target, const char *value, struct mw_buf *err)
{
	struct pr_settings *s = target;
	const char *p = value;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return 0;
		size_t n = strcspn(p, " \t,");
		const char *colon = memchr(p, ':', n);
		size_t kl = colon != NULL ? (size_t)(colon - p) : 0;
		size_t vl = colon != NULL ? n - kl - 1 : 0;
#define KIND(name) (kl == sizeof(name) - 1 && memcmp(p, name, kl) == 0)
		if (colon == NULL || !(KIND("sasl_username") || KIND("sender") || KIND("client_address"))) {
			mw_buf_printf(err, "\"%.*s\" does not say what it matches: write sasl_username:NAME "
				      "(an authenticated user), sender:ADDRESS (the envelope sender, which any "
				      "client can claim) or client_address:NETWORK", (int)n, p);
			return -1;
		}
		if (vl == 0) {
			mw_buf_printf(err, "\"%.*s\": nothing after the colon", (int)n, p);
			return -1;
		}
		if (KIND("client_address")) {
			char *net = mw_xstrndup(colon + 1, vl);
			int r = mw_cidr_list_add(&s->exempt_clients, net, err);
			free(net);
			if (r < 0)
				return -1;
		} else if (add_name(KIND("sender") ? &s->exempt_senders : &s->exempt_sasl_usernames, colon + 1, vl) < 0) {
			mw_buf_puts(err, "out of memory");
			return -1;
		}
#undef KIND
		p += n;
	}
}

static void release_exempt(void *target)
{
	struct pr_settings *s = target;
	free_names(&s->exempt_sasl_usernames);
	free_names(&s->exempt_senders);
	mw_cidr_list_free(&s->exempt_clients);
}

/* exempt_users matched the SASL name or the envelope sender, and any
   client may send with any sender: refused, saying what to write now. */
static int parse_exempt_users(void *target, const char *value, struct mw_buf *err)
{
	(void)target;
	(void)value;
	mw_buf_puts(err, "exempt_users is no longer accepted: it exempted a SASL user name or an envelope "
		    "sender, and any client can send with any sender. Write what each entry matches: "
		    "exempt = sasl_username:NAME (authenticated users; usually what you want), "
		    "or sender:ADDRESS (only if Postfix ties senders to logins, e.g. reject_sender_login_mismatch)");
	return -1;
}

static const char *const stages[] = { "end-of-message", "data", NULL };
static const char *const stores[] = { "memory", "redis", NULL };
static const char *const on_errors[] = { "local", "allow", "defer", NULL };

#define S(f) offsetof(struct pr_settings, f)
const struct mw_conf_key pr_conf_schema[] = {
	{ .name = "socket", .type = MW_CONF_SOCKET, .offset = S(socket),
	  .def = "unix:/var/spool/postfix/mailward/policyd-rate.sock",
	  .help = "where Postfix connects (check_policy_service)" },
	{ .name = "rule", .type = MW_CONF_CUSTOM, .flags = MW_CONF_MULTI, .parse = parse_rule,
	  .release = release_rules, .help = "NAME: key=... limit=N/PERIOD[,...] [count=] [action=] [match=] [networks=]" },
	{ .name = "overrides_file", .type = MW_CONF_STRING, .offset = S(overrides_file), .def = "",
	  .help = "per-user and per-domain limits: KEY RULE LIMITS|exempt per line (re-read on SIGHUP)" },
	{ .name = "exempt_networks", .type = MW_CONF_CUSTOM, .def = "", .parse = parse_exempt_networks,
	  .release = release_exempt_networks, .help = "clients never limited" },
	{ .name = "exempt", .type = MW_CONF_CUSTOM, .flags = MW_CONF_MULTI, .parse = parse_exempt,
	  .release = release_exempt,
	  .help = "never limited: sasl_username:NAME sender:ADDRESS client_address:NETWORK ..." },
	{ .name = "exempt_users", .type = MW_CONF_CUSTOM, .parse = parse_exempt_users,
	  .help = "removed: see exempt (sasl_username:NAME or sender:ADDRESS)" },
	{ .name = "count_at", .type = MW_CONF_ENUM, .offset = S(count_at), .def = "end-of-message",
	  .choices = stages, .help = "the protocol stage at which a message is counted" },
	{ .name = "check_at_rcpt", .type = MW_CONF_BOOL, .offset = S(check_at_rcpt), .def = "yes",
	  .help = "at RCPT, refuse early (without counting) a sender already over a limit" },
	{ .name = "store", .type = MW_CONF_ENUM, .offset = S(store), .def = "memory", .choices = stores,
	  .help = "memory (one host) or redis (shared by several MTAs)" },
	{ .name = "on_store_error", .type = MW_CONF_ENUM, .offset = S(on_store_error), .def = "local",
	  .choices = on_errors,
	  .help = "when Redis cannot answer: local (count in memory until it is back), allow, or defer" },
	{ .name = "memory_max_entries", .type = MW_CONF_UINT, .offset = S(memory_max_entries),
	  .def = "1000000", .min = 1000, .max = 100000000, .help = "counters kept in memory at most" },
	MW_REDIS_CONF_KEYS(struct pr_settings, redis, "127.0.0.1:6379"),
	{ .name = "redis_connections", .type = MW_CONF_UINT, .offset = S(redis_connections), .def = "1",
	  .min = 1, .max = 64, .help = "connections to Redis; requests are pipelined on each, and one batches best" },
	{ .name = "redis_prefix", .type = MW_CONF_STRING, .offset = S(redis_prefix), .def = "mw:rate:",
	  .help = "prefix of policyd-rate's Redis keys" },
	{ .name = "control_socket", .type = MW_CONF_SOCKET, .offset = S(control_socket),
	  .def = "unix:/run/mailward/policyd-rate.ctl", .help = "for policyd-rate-ctl (usage, reset, top, stats)" },
	{ .name = "metrics_listen", .type = MW_CONF_STRING, .offset = S(metrics_listen), .def = "",
	  .help = "inet:port@host serving Prometheus metrics over HTTP (empty: off)" },
	{ .name = "max_connections", .type = MW_CONF_UINT, .offset = S(max_connections), .def = "10000",
	  .min = 1, .max = 1000000,
	  .help = "policy connections at once (lowered, with a warning, to fit the file descriptor limit)" },
	{ .name = "client_timeout", .type = MW_CONF_DURATION, .offset = S(client_timeout_ms), .def = "1h",
	  .min = 1000, .max = 86400000ULL, .help = "an idle or stalled client is disconnected after this" },
	{ .name = "client_write_timeout", .type = MW_CONF_DURATION, .offset = S(client_write_timeout_ms),
	  .def = "1m", .min = 1000, .max = 86400000ULL,
	  .help = "a client that does not read its answers for this long is disconnected" },
	MW_DAEMON_CONF_KEYS(struct pr_settings, daemon, "mailward"),
	MW_LOG_CONF_KEYS(struct pr_settings, log),
	{ .name = NULL },
};

static int validate(struct mw_conf *cfg, void *target)
{
	struct pr_settings *s = target;
	if (s->nrules == 0)
		return mw_conf_fail(cfg, "rule", "no rule: nothing would be limited");
	struct mw_buf rerr = MW_BUF_INIT;
	if (mw_redis_conf_check(&s->redis, &rerr) < 0) {
		int r = mw_conf_fail(cfg, mw_conf_is_set(cfg, "redis_mode") ? "redis_mode" : "redis_servers", "%s",
				     mw_buf_str(&rerr));
		mw_buf_free(&rerr);
		return r;
	}
	mw_buf_free(&rerr);
	if (mw_metrics_validate_listen(cfg, "metrics_listen", s->metrics_listen) < 0)
		return -1;
	return 0;
}

static int load_overrides(struct pr_conf *c, struct mw_buf *err)
{
	const char *path = c->s.overrides_file;
	if (path == NULL || path[0] == '\0')
		return 0;
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		mw_buf_printf(err, "%s:0: cannot read overrides file: %s", path, strerror(errno));
		return -1;
	}
	struct mw_buf text;
	mw_buf_init(&text, 16 * 1024 * 1024);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mw_buf_append(&text, chunk, n);
	fclose(f);
	if (mw_buf_failed(&text)) {
		mw_buf_printf(err, "%s:0: larger than 16 MB", path);
		mw_buf_free(&text);
		return -1;
	}
	int r = pr_overrides_parse(path, text.data != NULL ? text.data : "", mw_buf_len(&text), &c->overrides, err);
	mw_buf_free(&text);
	if (r == 0) {
		/* every rule an override names must exist */
		for (size_t i = 0; i < c->overrides.n; i++) {
			const char *rule = c->overrides.items[i].rule;
			int known = strcmp(rule, "*") == 0;
			for (int k = 0; k < c->s.nrules && !known; k++)
				known = strcmp(c->s.rules[k].name, rule) == 0;
			if (!known) {
				mw_buf_printf(err, "%s:0: override for %s names unknown rule %s", path,
					      c->overrides.items[i].key, rule);
				return -1;
			}
		}
	}
	return r;
}

struct pr_conf *pr_conf_load(const char *path, struct mw_buf *err)
{
	struct pr_conf *c = mw_xcalloc(1, sizeof(*c));
	c->owner = mw_cli_reload_config(pr_conf_schema, &c->s, path, validate, err);
	if (c->owner == NULL) {
		free(c);
		return NULL;
	}
	if (load_overrides(c, err) < 0) {
		pr_conf_free(c);
		return NULL;
	}
	return c;
}

struct pr_conf *pr_conf_load_cli(const char *path, unsigned flags)
{
	struct pr_conf *c = mw_xcalloc(1, sizeof(*c));
	/* -n exits inside; -C only after the overrides file was checked too */
	c->owner = mw_cli_load_config(pr_conf_schema, &c->s, path, flags & MW_CLI_PRINT, validate);
	struct mw_buf err = MW_BUF_INIT;
	if (load_overrides(c, &err) < 0) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		exit(MW_EXIT_CONFIG);
	}
	mw_buf_free(&err);
	if (flags & MW_CLI_CHECK) {
		printf("%s: configuration OK\n", path);
		exit(0);
	}
	return c;
}

void pr_conf_free(struct pr_conf *c)
{
	if (c == NULL)
		return;
	pr_overrides_free(&c->overrides);
	mw_conf_free(c->owner);
	free(c);
}
