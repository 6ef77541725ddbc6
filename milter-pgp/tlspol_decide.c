#include "config.h"

#include <stdarg.h>
#include <string.h>

#include "tlspol_decide.h"

void tlspol_verdict_init(struct tlspol_verdict *v)
{
	v->answer = TLSPOL_ANSWER_NOTFOUND;
	v->refresh = 0;
	mw_buf_init(&v->policy, 4096);
	mw_buf_init(&v->reason, 4096);
}

void tlspol_verdict_free(struct tlspol_verdict *v)
{
	mw_buf_free(&v->policy);
	mw_buf_free(&v->reason);
}

void tlspol_verdict_set(struct tlspol_verdict *v, enum tlspol_answer a, const char *policy, const char *fmt, ...)
{
	v->answer = a;
	mw_buf_set(&v->policy, policy);
	mw_buf_reset(&v->reason);
	va_list ap;
	va_start(ap, fmt);
	mw_buf_vprintf(&v->reason, fmt, ap);
	va_end(ap);
}

void tlspol_verdict_reply(const struct tlspol_verdict *v, struct mw_buf *out)
{
	switch (v->answer) {
	case TLSPOL_ANSWER_OK:
		mw_buf_printf(out, "OK %s", mw_buf_str(&v->policy));
		return;
	case TLSPOL_ANSWER_NOTFOUND:
		mw_buf_puts(out, "NOTFOUND ");
		return;
	case TLSPOL_ANSWER_TEMP:
		mw_buf_printf(out, "TEMP %s", mw_buf_str(&v->policy));
		return;
	}
}

int tlspol_cache_entry_valid(const struct tlspol_cache_entry *cached, time_t now)
{
	return cached != NULL && now < cached->expires;
}

enum tlspol_sts_step tlspol_sts_plan(enum tlspol_txt_status txt, const char *txt_id,
				     const struct tlspol_cache_entry *cached, time_t now, time_t refresh_s)
{
	int valid = tlspol_cache_entry_valid(cached, now);
	switch (txt) {
	case TLSPOL_TXT_TEMP:
		return valid ? TLSPOL_STEP_CACHED : TLSPOL_STEP_TEMP;
	case TLSPOL_TXT_NONE:
		/* RFC 8461 5.1: no live policy, but a cached one in force applies */
		return valid ? TLSPOL_STEP_CACHED : TLSPOL_STEP_NONE;
	case TLSPOL_TXT_FOUND:
		break;
	}
	if (!valid || strcmp(cached->id, txt_id) != 0)
		return TLSPOL_STEP_FETCH;
	if (now - cached->fetched >= refresh_s)
		return TLSPOL_STEP_FETCH;
	return TLSPOL_STEP_CACHED;
}

int tlspol_sts_refresh_due(const struct tlspol_cache_entry *e, time_t now, time_t refresh_s, time_t retry_s)
{
	if (!tlspol_cache_entry_valid(e, now))
		return 0; /* expired: the next lookup fetches it, and waits */
	if (e->attempted != 0 && now - e->attempted < retry_s)
		return 0;
	time_t age = now - e->fetched;
	return age >= refresh_s || (unsigned long long)age >= e->policy.max_age / 2;
}

void tlspol_decide_sts(const struct tlspol_cache_entry *e, const char *how, const char *default_policy,
		       struct tlspol_verdict *v)
{
	if (e->policy.mode == TLSPOL_STS_ENFORCE) {
		struct mw_buf pol = MW_BUF_INIT;
		tlspol_sts_postfix_policy(&e->policy, &pol);
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, mw_buf_str(&pol),
				   "mta-sts enforce (%s policy id=%s, max_age=%llu)", how, e->id, e->policy.max_age);
		mw_buf_free(&pol);
		return;
	}
	tlspol_verdict_set(v, TLSPOL_ANSWER_OK, default_policy, "default_policy (mta-sts mode %s, %s policy id=%s)",
			   tlspol_sts_mode_name(e->policy.mode), how, e->id);
}
