#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "decide.h"

static int stage_is(const char *state, const char *want)
{
	return state != NULL && strcasecmp(state, want) == 0;
}

static int in_names(const struct pr_names *l, const char *v)
{
	if (v == NULL || v[0] == '\0')
		return 0;
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], v) == 0)
			return 1;
	return 0;
}

/* Each exemption matches only the attribute it names. */
static int exempt(const struct pr_conf *conf, const struct pr_request *req)
{
	if (req->client_address != NULL &&
	    (mw_cidr_list_match_text(&conf->s.exempt_networks, req->client_address) == 1 ||
	     mw_cidr_list_match_text(&conf->s.exempt_clients, req->client_address) == 1))
		return 1;
	return in_names(&conf->s.exempt_sasl_usernames, req->sasl_username) ||
	       in_names(&conf->s.exempt_senders, req->sender);
}

/* The override for this rule and value: one naming the value's kind
   ("sasl_username:alice@example.org"), else one without a kind, which
   stands for the rule's first key only (so it never follows a fallback
   to a value anyone can claim, such as the sender). */
static const struct pr_override *find_override(const struct pr_conf *conf, const struct pr_rule *r,
					       enum pr_key_kind kind, const char *value)
{
	struct mw_buf typed = MW_BUF_INIT;
	mw_buf_printf(&typed, "%s:%s", pr_key_kind_name(kind), value);
	const struct pr_override *o = pr_overrides_find(&conf->overrides, r->name, mw_buf_str(&typed));
	mw_buf_free(&typed);
	if (o == NULL && kind == r->keys[0])
		o = pr_overrides_find(&conf->overrides, r->name, value);
	return o;
}

void pr_decide_checks(const struct pr_conf *conf, const struct pr_request *req, struct pr_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	const char *state = req->protocol_state;
	int counting = stage_is(state, conf->s.count_at == PR_STAGE_DATA ? "DATA" : "END-OF-MESSAGE");
	int rcpt = stage_is(state, "RCPT");
	if (!counting && !rcpt) {
		plan->why_none = "not a counting stage";
		return;
	}
	if (exempt(conf, req)) {
		plan->exempt = 1;
		plan->why_none = "exempt";
		return;
	}
	struct mw_buf key = MW_BUF_INIT;
	for (int i = 0; i < conf->s.nrules && plan->n < PR_MAX_CHECKS; i++) {
		const struct pr_rule *r = &conf->s.rules[i];
		enum pr_key_kind kind;
		if (pr_rule_key(r, req, &key, &kind) < 0)
			continue;
		/* Recipient domains are counted per recipient, at RCPT; every
		   other rule counts at count_at, and only looks at RCPT. */
		int per_rcpt = kind == PR_KEY_RECIPIENT_DOMAIN;
		int commit;
		if (per_rcpt)
			commit = rcpt;
		else
			commit = counting;
		if (!commit && !(rcpt && conf->s.check_at_rcpt && !per_rcpt))
			continue;
		const struct pr_override *o = find_override(conf, r, kind, mw_buf_str(&key));
		if (o != NULL && o->exempt)
			continue;
		struct pr_check *c = &plan->checks[plan->n];
		/* The counter names where its value came from: an unauthenticated
		   sender=alice@example.org never spends SASL user alice@example.org's quota. */
		if (snprintf(c->key, sizeof(c->key), "%s:%s:%s", r->name, pr_key_kind_name(kind), mw_buf_str(&key)) >=
		    (int)sizeof(c->key))
			continue; /* a value longer than any real address: not counted */
		const struct pr_window *w = o != NULL ? o->windows : r->windows;
		c->nwindows = o != NULL ? o->nwindows : r->nwindows;
		memcpy(c->windows, w, (size_t)c->nwindows * sizeof(*w));
		c->cost = per_rcpt ? 1 : pr_rule_cost(r, req);
		c->commit = commit;
		plan->rule_of[plan->n] = i;
		plan->kind_of[plan->n] = kind;
		snprintf(plan->value_of[plan->n], sizeof(plan->value_of[0]), "%s", mw_buf_str(&key));
		plan->n++;
	}
	mw_buf_free(&key);
	if (plan->n == 0)
		plan->why_none = "no rule applies";
}

void pr_format_retry(long long ms, struct mw_buf *out)
{
	long long s = (ms + 999) / 1000;
	if (s < 60)
		mw_buf_printf(out, "%lld s", s < 1 ? 1 : s);
	else if (s < 3600)
		mw_buf_printf(out, "%lld min", (s + 59) / 60);
	else if (s % 3600 < 60)
		mw_buf_printf(out, "%lld h", s / 3600);
	else
		mw_buf_printf(out, "%lld h %lld min", s / 3600, (s % 3600 + 59) / 60);
}

enum pr_verdict pr_decide_reply(const struct pr_conf *conf, const struct pr_plan *plan,
				const struct pr_gcra_result *results, int *refund, struct mw_buf *reply,
				struct mw_buf *log)
{
	int denied = -1;
	for (int i = 0; i < plan->n; i++) {
		refund[i] = 0;
		if (!results[i].allowed && (denied < 0 || results[i].retry_ms > results[denied].retry_ms))
			denied = i;
	}
	if (denied < 0) {
		mw_buf_puts(reply, "action=DUNNO\n\n");
		return PR_VERDICT_DUNNO;
	}
	/* The message is refused: what other rules counted is given back. */
	for (int i = 0; i < plan->n; i++)
		refund[i] = plan->checks[i].commit && results[i].allowed;

	const struct pr_rule *r = &conf->s.rules[plan->rule_of[denied]];
	const struct pr_check *c = &plan->checks[denied];
	int wi = results[denied].denied_window;
	if (wi < 0 || wi >= c->nwindows)
		wi = 0;
	struct mw_buf text = MW_BUF_INIT;
	mw_buf_puts(&text, "Sending rate limit exceeded for ");
	mw_buf_append_printable(&text, plan->value_of[denied], strlen(plan->value_of[denied]), 200);
	mw_buf_puts(&text, ": ");
	pr_window_describe(&c->windows[wi], r->count, &text);
	enum pr_verdict v;
	switch (r->action) {
	case PR_ACTION_REJECT:
		mw_buf_printf(reply, "action=REJECT 5.7.1 %s\n\n", mw_buf_str(&text));
		v = PR_VERDICT_REJECT;
		break;
	case PR_ACTION_HOLD:
		mw_buf_printf(reply, "action=HOLD %s\n\n", mw_buf_str(&text));
		v = PR_VERDICT_HOLD;
		break;
	default:
		mw_buf_printf(reply, "action=DEFER_IF_PERMIT 4.7.1 %s, retry after ", mw_buf_str(&text));
		pr_format_retry(results[denied].retry_ms, reply);
		mw_buf_puts(reply, "\n\n");
		v = PR_VERDICT_DEFER;
		break;
	}
	mw_buf_printf(log, "rule=%s key=%s:", r->name, pr_key_kind_name(plan->kind_of[denied]));
	mw_buf_append_printable(log, plan->value_of[denied], strlen(plan->value_of[denied]), 200);
	mw_buf_printf(log, " used=%llu/%llu action=%s", results[denied].used[wi], c->windows[wi].limit,
		      v == PR_VERDICT_DEFER ? "defer" : v == PR_VERDICT_REJECT ? "reject" : "hold");
	mw_buf_free(&text);
	return v;
}
