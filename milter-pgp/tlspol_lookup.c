#include "config.h"

#include <string.h>
#include <time.h>

#include "log.h"
#include "tlspol_fetch.h"
#include "tlspol_lookup.h"

/* A DNS status that is not an answer: TEMP with the name and why. */
static int dns_failed(struct tlspol_verdict *v, const char *what, const char *name,
		      const struct mw_dns_result *res)
{
	if (res->status == MW_DNS_SERVFAIL && res->security == MW_DNS_BOGUS) {
		tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "DNSSEC validation failed", "%s %s: bogus (%s)", what, name,
				   res->error);
		return 1;
	}
	if (mw_dns_status_is_temporary(res->status)) {
		tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "DNS lookup failed", "%s %s: %s %s", what, name,
				   mw_dns_status_name(res->status), res->error);
		return 1;
	}
	return 0;
}

/*
 * DANE (RFC 7672): the MX set must be DNSSEC-secure, then each host's
 * _25._tcp TLSA set. 1 when v is final (dane-only, mandatory TLS, TEMP),
 * 0 to go on with MTA-STS.
 */
static int try_dane(struct tlspol_env *env, const char *domain,
		    struct tlspol_verdict *v)
{
	struct mw_dns_result res;
	char hosts[TLSPOL_MAX_MX_HOSTS][256];
	int nhosts = 0;
	mw_dns_lookup(env->dns, domain, MW_DNS_T_MX, NULL, &res);
	if (dns_failed(v, "MX", domain, &res)) {
		mw_dns_result_free(&res);
		return 1;
	}
	if (res.security != MW_DNS_SECURE || res.status == MW_DNS_NXDOMAIN) {
		mw_dns_result_free(&res);
		return 0;
	}
	if (res.status == MW_DNS_NODATA) {
		snprintf(hosts[nhosts++], sizeof(hosts[0]), "%s", domain); /* the implicit MX */
	} else {
		struct mw_buf host = MW_BUF_INIT;
		for (int i = 0; i < res.count && nhosts < TLSPOL_MAX_MX_HOSTS; i++) {
			unsigned pref;
			mw_buf_reset(&host);
			if (mw_dns_result_mx(&res, i, &pref, &host) < 0 || mw_buf_len(&host) == 0 ||
			    mw_buf_len(&host) >= sizeof(hosts[0]))
				continue;
			const char *h = mw_buf_str(&host);
			size_t hl = strlen(h);
			if (h[hl - 1] == '.')
				hl--;
			if (hl == 0)
				continue; /* null MX (RFC 7505): no mail at all */
			memcpy(hosts[nhosts], h, hl);
			hosts[nhosts][hl] = '\0';
			for (size_t k = 0; k < hl; k++)
				if (hosts[nhosts][k] >= 'A' && hosts[nhosts][k] <= 'Z')
					hosts[nhosts][k] = (char)(hosts[nhosts][k] + 32);
			nhosts++;
		}
		mw_buf_free(&host);
	}
	mw_dns_result_free(&res);
	int usable = 0, unusable = 0;
	struct mw_buf with = MW_BUF_INIT, name = MW_BUF_INIT;
	for (int i = 0; i < nhosts; i++) {
		mw_buf_setf(&name, "_25._tcp.%s", hosts[i]);
		mw_dns_lookup(env->dns, mw_buf_str(&name), MW_DNS_T_TLSA, NULL, &res);
		if (dns_failed(v, "TLSA", mw_buf_str(&name), &res)) {
			mw_dns_result_free(&res);
			mw_buf_free(&with);
			mw_buf_free(&name);
			return 1;
		}
		if (res.status == MW_DNS_OK && res.security == MW_DNS_SECURE) {
			int host_usable = 0;
			for (int k = 0; k < res.count; k++) {
				uint8_t usage, selector, mtype;
				const unsigned char *data;
				size_t len;
				if (mw_dns_result_tlsa(&res, k, &usage, &selector, &mtype, &data, &len) == 0 &&
				    (usage == 2 || usage == 3) && selector <= 1 && mtype <= 2)
					host_usable = 1;
			}
			if (host_usable) {
				usable++;
				mw_buf_printf(&with, "%s%s", mw_buf_len(&with) ? "," : "", hosts[i]);
			} else {
				unusable++;
			}
		}
		mw_dns_result_free(&res);
	}
	mw_buf_free(&name);
	int done = 1;
	if (usable > 0)
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, "dane-only",
				   "dane: secure MX, secure TLSA on %d of %d MX hosts (%s)", usable, nhosts,
				   mw_buf_str(&with));
	else if (unusable > 0)
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, "encrypt",
				   "dane: secure MX, TLSA records on %d MX hosts but none usable (RFC 7672 2.2: mandatory TLS)",
				   unusable);
	else
		done = 0;
	mw_buf_free(&with);
	return done;
}

/* The _mta-sts TXT record: its id when there is exactly one valid STSv1 record. */
static enum tlspol_txt_status sts_txt(struct tlspol_env *env, const char *domain, char *id, struct mw_buf *why)
{
	struct mw_dns_result res;
	struct mw_buf name = MW_BUF_INIT, txt = MW_BUF_INIT;
	mw_buf_printf(&name, "_mta-sts.%s", domain);
	enum tlspol_txt_status st = TLSPOL_TXT_NONE;
	mw_dns_lookup(env->dns, mw_buf_str(&name), MW_DNS_T_TXT, NULL, &res);
	if (mw_dns_status_is_temporary(res.status)) {
		mw_buf_printf(why, "_mta-sts TXT lookup: %s %s", mw_dns_status_name(res.status), res.error);
		st = TLSPOL_TXT_TEMP;
	} else if (res.status != MW_DNS_OK) {
		mw_buf_printf(why, "no _mta-sts TXT record (%s)", mw_dns_status_name(res.status));
	} else {
		int records = 0, valid = 0;
		for (int i = 0; i < res.count; i++) {
			mw_buf_reset(&txt);
			if (mw_dns_result_txt(&res, i, &txt) < 0)
				continue;
			int r = tlspol_sts_txt_parse(mw_buf_str(&txt), mw_buf_len(&txt), id);
			if (r != 0)
				records++;
			if (r == 1)
				valid++;
		}
		if (records == 1 && valid == 1)
			st = TLSPOL_TXT_FOUND;
		else if (records == 0)
			mw_buf_puts(why, "no STSv1 record at _mta-sts");
		else
			mw_buf_printf(why, "%d STSv1 records at _mta-sts, %d valid: treated as none (RFC 8461 3.1)",
				      records, valid);
	}
	mw_dns_result_free(&res);
	mw_buf_free(&name);
	mw_buf_free(&txt);
	return st;
}

time_t tlspol_refresh_retry(const struct tlspol_conf *conf)
{
	/* never while the last try may still run: no two fetches of one policy */
	time_t refresh_s = (time_t)(conf->s.mta_sts_refresh_ms / 1000);
	time_t fetch_s = (time_t)(conf->s.mta_sts_timeout_ms / 1000) + 1;
	time_t retry = refresh_s < 300 ? refresh_s : 300;
	return retry > fetch_s ? retry : fetch_s;
}

/* Fetches and parses domain's policy, keeps it (memory and cache_file) in
   *fresh. 0, or -1 with err. */
static int fetch_keep(struct tlspol_env *env, const struct tlspol_conf *conf, const char *domain, const char *id,
		      time_t now, struct tlspol_cache_entry *fresh, struct mw_buf *err)
{
	struct tlspol_fetch_conf fc = { conf->s.mta_sts_ca_file, conf->s.mta_sts_timeout_ms, conf->s.mta_sts_max_size,
					(unsigned)conf->s.mta_sts_port };
	struct mw_buf body = MW_BUF_INIT;
	int rc = -1;
	if (tlspol_fetch(env->dns, &fc, domain, &body, err) == 0 &&
	    tlspol_sts_policy_parse(mw_buf_str(&body), mw_buf_len(&body), &fresh->policy, err) == 0) {
		snprintf(fresh->domain, sizeof(fresh->domain), "%s", domain);
		snprintf(fresh->id, sizeof(fresh->id), "%s", id);
		fresh->fetched = now;
		fresh->expires = now + (time_t)fresh->policy.max_age;
		fresh->attempted = 0;
		if (tlspol_cache_put(env->cache, fresh) < 0)
			mw_msg_warn("%s: MTA-STS cache full (cache_max_entries): policy used but not kept", domain);
		else if (env->save_cache && conf->s.cache_file[0] != '\0') {
			struct mw_buf serr = MW_BUF_INIT;
			if (tlspol_cache_save(env->cache, conf->s.cache_file, &serr) < 0)
				mw_msg_warn("cannot write the MTA-STS cache: %s", mw_buf_str(&serr));
			mw_buf_free(&serr);
		}
		rc = 0;
	}
	mw_buf_free(&body);
	return rc;
}

void tlspol_refresh(struct tlspol_env *env, const struct tlspol_conf *conf, const char *domain,
		    struct tlspol_verdict *v)
{
	char id[TLSPOL_STS_ID_MAX + 1] = "";
	struct mw_buf why = MW_BUF_INIT, err = MW_BUF_INIT;
	struct tlspol_cache_entry fresh;
	memset(&fresh, 0, sizeof(fresh));
	switch (sts_txt(env, domain, id, &why)) {
	case TLSPOL_TXT_TEMP:
		mw_msg_warn("%s: MTA-STS background refresh failed, the cached policy stays in force: %s", domain,
			    mw_buf_str(&why));
		tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "refresh failed", "%s", mw_buf_str(&why));
		break;
	case TLSPOL_TXT_NONE:
		/* RFC 8461 5.1: the cached policy stays in force until it expires */
		tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "no record",
				   "MTA-STS background refresh: %s; the cached policy stays in force until it expires",
				   mw_buf_str(&why));
		mw_msg_info("%s: %s", domain, mw_buf_str(&v->reason));
		break;
	case TLSPOL_TXT_FOUND:
		if (fetch_keep(env, conf, domain, id, time(NULL), &fresh, &err) == 0) {
			tlspol_verdict_set(v, TLSPOL_ANSWER_OK, "",
					   "MTA-STS policy refreshed in the background: id=%s, mode %s, max_age=%llu", id,
					   tlspol_sts_mode_name(fresh.policy.mode), fresh.policy.max_age);
			mw_msg_info("%s: %s", domain, mw_buf_str(&v->reason));
		} else {
			mw_msg_warn("%s: MTA-STS background refresh failed (id=%s), the cached policy stays in force: %s",
				    domain, id, mw_buf_str(&err));
			tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "refresh failed", "%s", mw_buf_str(&err));
		}
		break;
	}
	tlspol_cache_entry_free(&fresh);
	mw_buf_free(&why);
	mw_buf_free(&err);
}

static void try_sts(struct tlspol_env *env, const struct tlspol_conf *conf, const char *domain,
		    struct tlspol_verdict *v)
{
	char id[TLSPOL_STS_ID_MAX + 1] = "";
	struct mw_buf why = MW_BUF_INIT, err = MW_BUF_INIT;
	struct tlspol_cache_entry cached, fresh;
	int have_cached = tlspol_cache_get(env->cache, domain, &cached);
	memset(&fresh, 0, sizeof(fresh));
	time_t now = time(NULL);
	enum tlspol_txt_status txt = sts_txt(env, domain, id, &why);
	enum tlspol_sts_step step = tlspol_sts_plan(txt, id, have_cached ? &cached : NULL, now,
						    (time_t)(conf->s.mta_sts_refresh_ms / 1000));
	switch (step) {
	case TLSPOL_STEP_NONE:
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, conf->s.default_policy, "default_policy (no DANE; %s)",
				   mw_buf_str(&why));
		break;
	case TLSPOL_STEP_TEMP:
		tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "MTA-STS lookup failed", "%s", mw_buf_str(&why));
		break;
	case TLSPOL_STEP_CACHED:
		tlspol_decide_sts(&cached, txt == TLSPOL_TXT_FOUND ? "cached" : "cached (TXT record not found)",
				  conf->s.default_policy, v);
		break;
	case TLSPOL_STEP_FETCH: {
		if (env->background_refresh && tlspol_cache_entry_valid(have_cached ? &cached : NULL, now)) {
			/* a new id or a refresh due, a policy in force: applied now,
			   fetched again behind this answer (RFC 8461 10.2) */
			int claimed = tlspol_cache_claim_refresh(env->cache, domain, now, tlspol_refresh_retry(conf));
			const char *how = !claimed ? "cached, its refresh runs or failed lately"
					  : strcmp(cached.id, id) != 0 ? "cached, the new id being fetched"
					  : "cached, being refreshed";
			tlspol_decide_sts(&cached, how, conf->s.default_policy, v);
			v->refresh = claimed;
			break;
		}
		if (fetch_keep(env, conf, domain, id, now, &fresh, &err) == 0) {
			tlspol_decide_sts(&fresh, "fetched", conf->s.default_policy, v);
			break;
		}
		if (tlspol_cache_entry_valid(have_cached ? &cached : NULL, now)) {
			mw_msg_warn("%s: MTA-STS policy refresh failed, the cached one is in force: %s", domain,
				    mw_buf_str(&err));
			tlspol_decide_sts(&cached, "cached (refresh failed)", conf->s.default_policy, v);
			mw_buf_puts(&v->reason, "; fetch: ");
			mw_buf_append_printable(&v->reason, mw_buf_str(&err), mw_buf_len(&err), 300);
		} else if (conf->s.on_fetch_error == TLSPOL_FETCH_ERROR_TEMP) {
			tlspol_verdict_set(v, TLSPOL_ANSWER_TEMP, "MTA-STS policy fetch failed",
					   "mta-sts id=%s: policy fetch failed: ", id);
			mw_buf_append_printable(&v->reason, mw_buf_str(&err), mw_buf_len(&err), 300);
		} else {
			tlspol_verdict_set(v, TLSPOL_ANSWER_OK, conf->s.default_policy,
					   "default_policy (on_fetch_error = default; mta-sts id=%s: policy fetch failed: ", id);
			mw_buf_append_printable(&v->reason, mw_buf_str(&err), mw_buf_len(&err), 300);
			mw_buf_putc(&v->reason, ')');
		}
		break;
	}
	}
	if (have_cached)
		tlspol_cache_entry_free(&cached);
	tlspol_cache_entry_free(&fresh);
	mw_buf_free(&why);
	mw_buf_free(&err);
}

int tlspol_lookup_local(const struct tlspol_conf *conf, const char *dest, struct tlspol_verdict *v)
{
	const struct tlspol_policy_entry *e = tlspol_policy_lookup(&conf->policy, dest);
	if (e != NULL) {
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, e->policy, "policy_file %s:%u (%s)", conf->policy.path, e->line,
				   e->dest);
		return 1;
	}
	if (dest[0] == '.') {
		/* Postfix asks for parent domains only after we said NOTFOUND for the
		   domain itself, which we never do: nothing to add here. */
		tlspol_verdict_set(v, TLSPOL_ANSWER_NOTFOUND, "", "parent-domain key, no policy_file entry");
		return 1;
	}
	if (dest[0] == '[') {
		tlspol_verdict_set(v, TLSPOL_ANSWER_OK, conf->s.default_policy,
				   "default_policy (an explicit next hop: no DANE or MTA-STS lookup)");
		return 1;
	}
	return 0;
}

void tlspol_lookup(struct tlspol_env *env, const struct tlspol_conf *conf, const char *dest,
		   struct tlspol_verdict *v)
{
	if (tlspol_lookup_local(conf, dest, v))
		return;
	if (conf->s.dane && try_dane(env, dest, v))
		return;
	if (conf->s.mta_sts) {
		try_sts(env, conf, dest, v);
		return;
	}
	tlspol_verdict_set(v, TLSPOL_ANSWER_OK, conf->s.default_policy, "default_policy (no DANE%s)",
			   conf->s.mta_sts ? "" : ", mta_sts = no");
}
