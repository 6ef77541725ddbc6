/*
 * decide: what one policy request means, and the reply, between the
 * parsed request and the store. Pure: unit-tested without sockets.
 *
 *   pr_decide_checks(): which counters the request touches (rules that
 *     apply, the key each counts under, overrides, exemptions, the stage),
 *     and whether to count or only look;
 *   pr_decide_reply(): the store's results as a Postfix reply, and which
 *     counted checks must be given back (another rule refused).
 */
#ifndef PR_DECIDE_H
#define PR_DECIDE_H

#include "buf.h"
#include "prconf.h"
#include "request.h"
#include "store.h"

struct pr_plan {
	struct pr_check checks[PR_MAX_CHECKS];
	int rule_of[PR_MAX_CHECKS];   /* index into the rules */
	enum pr_key_kind kind_of[PR_MAX_CHECKS]; /* where the key's value came from */
	char value_of[PR_MAX_CHECKS][256]; /* the key value, for the reply */
	int n;
	int exempt;                   /* exempt client or user: DUNNO */
	const char *why_none;         /* when n == 0: why (for debug logs) */
};

/* Fills plan for req. */
void pr_decide_checks(const struct pr_conf *conf, const struct pr_request *req, struct pr_plan *plan);

enum pr_verdict { PR_VERDICT_DUNNO, PR_VERDICT_DEFER, PR_VERDICT_REJECT, PR_VERDICT_HOLD };

/*
 * The reply line ("action=...\n\n") for results of plan; refund[i] set for
 * counted checks to give back. Returns the verdict.
 */
enum pr_verdict pr_decide_reply(const struct pr_conf *conf, const struct pr_plan *plan,
				const struct pr_gcra_result *results, int *refund, struct mw_buf *reply,
				struct mw_buf *log);
/* "12 min", "1 h 5 min", "30 s" */
void pr_format_retry(long long ms, struct mw_buf *out);

#endif
