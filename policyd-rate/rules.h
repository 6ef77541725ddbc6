/*
 * rules: what policyd-rate limits, parsed from "rule = ..." lines and the
 * overrides map, and applied to a request. Pure: no I/O.
 *
 *   rule = per-user: key=sasl_username|sender limit=250/1h,1000/1d count=messages action=defer
 *   rule = per-net:  key=client_network/24 limit=100/1m match=unauthenticated
 *   rule = per-domain: key=recipient_domain limit=2000/1h count=recipients
 *
 * key: sasl_username, sender, sender_domain, client_address,
 *   client_network/N[//M] (IPv4 /N, IPv6 /M), recipient_domain, global;
 *   several separated by "|": the first one the request has is used (so
 *   unauthenticated mail falls back to its sender or address).
 * limit: one or more N/PERIOD windows, all enforced.
 * count: messages (1 per message), recipients (recipient_count), bytes (size).
 * action: defer (4.7.1, the default), reject (5.7.1), hold.
 * match: any (default), authenticated, unauthenticated.
 * networks: only clients in these networks (comma-separated CIDRs).
 *
 * Overrides file, one per line: KEYVALUE RULENAME LIMITS|exempt, where
 * RULENAME may be "*": "alice@example.org per-user 1000/1h".
 *
 * Memory: the caller owns the structs; pr_rule_free / pr_overrides_free
 * release what parsing allocated.
 */
#ifndef PR_RULES_H
#define PR_RULES_H

#include <stddef.h>

#include "buf.h"
#include "cidr.h"
#include "request.h"

#define PR_MAX_WINDOWS 4
#define PR_MAX_KEYS 4

enum pr_key_kind {
	PR_KEY_SASL_USERNAME,
	PR_KEY_SENDER,
	PR_KEY_SENDER_DOMAIN,
	PR_KEY_CLIENT_ADDRESS,
	PR_KEY_CLIENT_NETWORK,
	PR_KEY_RECIPIENT_DOMAIN,
	PR_KEY_GLOBAL,
};

enum pr_count { PR_COUNT_MESSAGES, PR_COUNT_RECIPIENTS, PR_COUNT_BYTES };
enum pr_action { PR_ACTION_DEFER, PR_ACTION_REJECT, PR_ACTION_HOLD };
enum pr_match { PR_MATCH_ANY, PR_MATCH_AUTHENTICATED, PR_MATCH_UNAUTHENTICATED };

struct pr_window {
	unsigned long long limit;
	unsigned long long period_ms;
};

struct pr_rule {
	char name[64];
	enum pr_key_kind keys[PR_MAX_KEYS];
	int nkeys;
	unsigned prefix4, prefix6;       /* client_network */
	struct pr_window windows[PR_MAX_WINDOWS];
	int nwindows;
	enum pr_count count;
	enum pr_action action;
	enum pr_match match;
	struct mw_cidr_list networks;    /* empty: all clients */
};

int pr_rule_parse(const char *text, struct pr_rule *out, struct mw_buf *err);
void pr_rule_free(struct pr_rule *r);

/*
 * The value this rule counts the request under ("alice@example.org",
 * "192.0.2.0/24", "*"), written to key; 0, or -1 when the rule does not
 * apply to this request (no such attribute, match or networks exclude it).
 * kind_used tells which key kind was taken.
 */
int pr_rule_key(const struct pr_rule *r, const struct pr_request *req, struct mw_buf *key,
		enum pr_key_kind *kind_used);
/* How much the request costs under this rule (at least 1). */
unsigned long long pr_rule_cost(const struct pr_rule *r, const struct pr_request *req);
const char *pr_key_kind_name(enum pr_key_kind k);
/* "250 messages per hour", for replies. */
void pr_window_describe(const struct pr_window *w, enum pr_count count, struct mw_buf *out);
/* Parses "250/1h,1000/1d"; 0 or -1 with err. */
int pr_windows_parse(const char *text, size_t len, struct pr_window *w, int *nw, struct mw_buf *err);

struct pr_override {
	char *key;                     /* lower-case */
	char rule[64];                 /* "*" for every rule */
	int exempt;
	struct pr_window windows[PR_MAX_WINDOWS];
	int nwindows;
};

struct pr_overrides {
	struct pr_override *items;
	size_t n;
};

/* Parses the overrides file's text; errors name path:line. */
int pr_overrides_parse(const char *path, const char *text, size_t len, struct pr_overrides *out,
		       struct mw_buf *err);
/* The override for a rule and key value, or NULL. */
const struct pr_override *pr_overrides_find(const struct pr_overrides *o, const char *rule, const char *key);
void pr_overrides_free(struct pr_overrides *o);

#endif
