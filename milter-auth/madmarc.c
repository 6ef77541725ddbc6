#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libpsl.h>
#include <opendmarc/dmarc.h>

#include "dmarc_walk.h"
#include "madmarc.h"

struct ma_dmarc {
	struct mw_dns *dns;
	psl_ctx_t *psl;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static OPENDMARC_LIB_T lib;

/* libopendmarc's library init writes global state: once per process. */
static void lib_init(void)
{
	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
	opendmarc_policy_library_init(&lib);
}

struct ma_dmarc *ma_dmarc_new(struct mw_dns *dns, const char *public_suffix_list, struct mw_buf *err)
{
	struct ma_dmarc *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	d->dns = dns;
	d->psl = psl_load_file(public_suffix_list);
	if (d->psl == NULL) {
		mw_buf_printf(err, "cannot load the public suffix list %s", public_suffix_list);
		free(d);
		return NULL;
	}
	pthread_once(&lib_once, lib_init);
	return d;
}

void ma_dmarc_free(struct ma_dmarc *d)
{
	if (d == NULL)
		return;
	psl_free(d->psl);
	free(d);
}

void ma_dmarc_org_domain(const struct ma_dmarc *d, const char *domain, char *out, size_t outlen)
{
	const char *reg = psl_registrable_domain(d->psl, domain);
	/* A public suffix itself (or an unknown name) is its own organization. */
	snprintf(out, outlen, "%s", reg != NULL ? reg : domain);
}

static enum ma_dmarc_policy policy_from_lib(int p)
{
	switch (p) {
	case DMARC_RECORD_P_NONE: return MA_DMARC_P_NONE;
	case DMARC_RECORD_P_QUARANTINE: return MA_DMARC_P_QUARANTINE;
	case DMARC_RECORD_P_REJECT: return MA_DMARC_P_REJECT;
	default: return MA_DMARC_P_UNSPECIFIED;
	}
}

int ma_dmarc_parse(const char *text, const char *domain, struct ma_dmarc_record *rec)
{
	/* libopendmarc keeps the client address in its context; DMARC
	   evaluation does not need it here. */
	DMARC_POLICY_T *ctx = opendmarc_policy_connect_init((u_char *)"0.0.0.0", DMARC_POLICY_IP_TYPE_IPV4);
	int p = 0, sp = 0, pct = 100, adkim = 0, aspf = 0;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->domain, sizeof(rec->domain), "%s", domain);
	if (ctx == NULL) {
		snprintf(rec->problem, sizeof(rec->problem), "out of memory");
		return -1;
	}
	OPENDMARC_STATUS_T st = opendmarc_policy_store_dmarc(ctx, (u_char *)text, (u_char *)domain, NULL);
	if (st != DMARC_PARSE_OKAY) {
		snprintf(rec->problem, sizeof(rec->problem), "invalid DMARC record at %s: %s", domain,
			 opendmarc_policy_status_to_str(st));
		opendmarc_policy_connect_shutdown(ctx);
		return -1;
	}
	opendmarc_policy_fetch_p(ctx, &p);
	opendmarc_policy_fetch_sp(ctx, &sp);
	opendmarc_policy_fetch_pct(ctx, &pct);
	opendmarc_policy_fetch_adkim(ctx, &adkim);
	opendmarc_policy_fetch_aspf(ctx, &aspf);
	opendmarc_policy_connect_shutdown(ctx);
	rec->p = policy_from_lib(p);
	rec->sp = policy_from_lib(sp);
	rec->pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
	rec->adkim = adkim == DMARC_RECORD_A_STRICT ? 's' : 'r';
	rec->aspf = aspf == DMARC_RECORD_A_STRICT ? 's' : 'r';
	rec->psd = 'u';
	/* rua= for aggregate reports: our parser reads it the same way */
	struct ma_dmarc_record ours;
	ma_dmarc_record_parse(text, strlen(text), &ours);
	memcpy(rec->rua, ours.rua, sizeof(rec->rua));
	if (rec->p == MA_DMARC_P_UNSPECIFIED) {
		snprintf(rec->problem, sizeof(rec->problem), "DMARC record at %s has no valid p=", domain);
		return -1;
	}
	return 0;
}

/* "v=DMARC1" followed by ';', white space or the end (RFC 7489 6.4). */
static int is_dmarc_record(const char *t)
{
	if (strncmp(t, "v=DMARC1", 8) != 0)
		return 0;
	const char *r = t + 8;
	while (*r == ' ' || *r == '\t')
		r++;
	return *r == ';' || *r == '\0';
}

/* One name's records: FOUND (exactly one), NOTFOUND (none, or several:
   RFC 7489 6.6.3 says no policy then), or TEMPERROR. */
static enum ma_dmarc_lookup lookup_one(struct ma_dmarc *d, struct mw_dns_budget *budget,
				       const char *domain, struct ma_dmarc_record *rec)
{
	char name[MA_DOMAIN_MAX + 8];
	struct mw_dns_result r;
	struct mw_buf txt = MW_BUF_INIT, found = MW_BUF_INIT;
	int n = 0;

	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	enum mw_dns_status st = mw_dns_lookup(d->dns, name, MW_DNS_T_TXT, budget, &r);
	if (mw_dns_status_is_temporary(st)) {
		snprintf(rec->problem, sizeof(rec->problem), "DNS %s for %s: %s", mw_dns_status_name(st),
			 name, r.error);
		mw_dns_result_free(&r);
		return MA_DMARC_LOOKUP_TEMPERROR;
	}
	for (int i = 0; i < r.count; i++) {
		mw_buf_reset(&txt);
		if (mw_dns_result_txt(&r, i, &txt) == 0 && is_dmarc_record(mw_buf_str(&txt)) &&
		    memchr(txt.data, '\0', mw_buf_len(&txt)) == NULL) {
			n++;
			mw_buf_set(&found, mw_buf_str(&txt));
		}
	}
	mw_dns_result_free(&r);
	enum ma_dmarc_lookup ret = MA_DMARC_NOTFOUND;
	if (n > 1) {
		snprintf(rec->problem, sizeof(rec->problem), "%d DMARC records at %s: none applies", n, name);
	} else if (n == 1) {
		struct ma_dmarc_record parsed;
		if (ma_dmarc_parse(mw_buf_str(&found), domain, &parsed) == 0) {
			*rec = parsed;
			ret = MA_DMARC_FOUND;
		} else {
			snprintf(rec->problem, sizeof(rec->problem), "%s", parsed.problem);
		}
	}
	mw_buf_free(&txt);
	mw_buf_free(&found);
	return ret;
}

enum ma_dmarc_lookup ma_dmarc_fetch(struct ma_dmarc *d, struct mw_dns_budget *budget,
				    const char *from_domain, struct ma_dmarc_record *rec)
{
	char org[MA_DOMAIN_MAX];
	memset(rec, 0, sizeof(*rec));
	enum ma_dmarc_lookup r = lookup_one(d, budget, from_domain, rec);
	if (r != MA_DMARC_NOTFOUND)
		return r;
	ma_dmarc_org_domain(d, from_domain, org, sizeof(org));
	if (strcmp(org, from_domain) == 0)
		return r;
	/* RFC 7489 6.6.3: fall back to the organizational domain's record. */
	struct ma_dmarc_record org_rec;
	memset(&org_rec, 0, sizeof(org_rec));
	r = lookup_one(d, budget, org, &org_rec);
	if (r != MA_DMARC_NOTFOUND || org_rec.problem[0] != '\0') {
		char first[sizeof(rec->problem)];
		snprintf(first, sizeof(first), "%s", rec->problem);
		*rec = org_rec;
		if (r == MA_DMARC_NOTFOUND && first[0] != '\0')
			snprintf(rec->problem, sizeof(rec->problem), "%s", first);
	}
	return r;
}

static int aligned(const struct ma_dmarc *d, const char *a, const char *b, char mode)
{
	if (strcasecmp(a, b) == 0)
		return 1;
	if (mode == 's')
		return 0;
	char oa[MA_DOMAIN_MAX], ob[MA_DOMAIN_MAX];
	ma_dmarc_org_domain(d, a, oa, sizeof(oa));
	ma_dmarc_org_domain(d, b, ob, sizeof(ob));
	return strcasecmp(oa, ob) == 0;
}

void ma_dmarc_evaluate(const struct ma_dmarc *d, const char *from_domain, enum ma_dmarc_lookup lookup,
		       const struct ma_dmarc_record *rec, enum ma_spf_result spf_result,
		       const char *spf_domain, const struct ma_dkim_sig *sigs, int nsigs, int dice,
		       struct ma_dmarc_verdict *out)
{
	memset(out, 0, sizeof(*out));
	out->standard = MA_DMARC_RFC7489;
	out->policy_tag = "p";
	out->author_exists = -1;
	snprintf(out->from_domain, sizeof(out->from_domain), "%s", from_domain);
	ma_dmarc_org_domain(d, from_domain, out->org_domain, sizeof(out->org_domain));
	out->have_record = lookup == MA_DMARC_FOUND;
	if (rec != NULL)
		out->record = *rec;

	/* Alignment is computed even without a record (default relaxed), for
	   the log and the report. */
	char aspf = out->have_record ? rec->aspf : 'r';
	char adkim = out->have_record ? rec->adkim : 'r';
	int spf_temp = 0, dkim_temp = 0;
	if (spf_domain != NULL && spf_domain[0] != '\0' && aligned(d, spf_domain, from_domain, aspf)) {
		out->spf_aligned = spf_result == MA_SPF_PASS;
		spf_temp = spf_result == MA_SPF_TEMPERROR;
	}
	for (int i = 0; i < nsigs; i++) {
		if (sigs[i].domain[0] == '\0' || !aligned(d, sigs[i].domain, from_domain, adkim))
			continue;
		if (sigs[i].result == MA_DKIM_PASS)
			out->dkim_aligned = 1;
		else if (sigs[i].result == MA_DKIM_TEMPERROR)
			dkim_temp = 1;
	}

	if (lookup == MA_DMARC_LOOKUP_TEMPERROR) {
		out->result = MA_DMARC_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "%s", rec->problem);
		return;
	}
	if (!out->have_record) {
		out->result = MA_DMARC_NONE;
		snprintf(out->reason, sizeof(out->reason), "%s",
			 rec != NULL && rec->problem[0] ? rec->problem : "no DMARC record");
		return;
	}
	/* sp applies to a subdomain whose own record is missing (the record
	   came from the organizational domain). */
	out->policy = rec->p;
	if (strcasecmp(rec->domain, from_domain) != 0 && rec->sp != MA_DMARC_P_UNSPECIFIED) {
		out->policy = rec->sp;
		out->policy_tag = "sp";
	}
	out->disposition = MA_DMARC_P_NONE;

	if (out->spf_aligned || out->dkim_aligned) {
		out->result = MA_DMARC_PASS;
		snprintf(out->reason, sizeof(out->reason), "%s aligned",
			 out->spf_aligned && out->dkim_aligned ? "SPF and DKIM" :
			 out->spf_aligned ? "SPF" : "DKIM");
		return;
	}
	if (spf_temp || dkim_temp) {
		/* An aligned identifier could not be checked: the verdict is
		   unknown, not fail. */
		out->result = MA_DMARC_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "aligned %s could not be checked (DNS)",
			 spf_temp ? "SPF" : "DKIM");
		out->disposition = out->policy;
		return;
	}
	out->result = MA_DMARC_FAIL;
	snprintf(out->reason, sizeof(out->reason), "neither SPF nor DKIM aligned with %s", from_domain);
	out->disposition = out->policy;
	/* RFC 7489 6.6.4: outside the pct sample, apply the next weaker policy. */
	if (dice >= rec->pct && (out->policy == MA_DMARC_P_REJECT || out->policy == MA_DMARC_P_QUARANTINE)) {
		out->disposition = out->policy == MA_DMARC_P_REJECT ? MA_DMARC_P_QUARANTINE : MA_DMARC_P_NONE;
		out->sampled_out = 1;
	}
}

const char *ma_dmarc_result_name(enum ma_dmarc_result r)
{
	switch (r) {
	case MA_DMARC_NONE: return "none";
	case MA_DMARC_PASS: return "pass";
	case MA_DMARC_FAIL: return "fail";
	case MA_DMARC_TEMPERROR: return "temperror";
	case MA_DMARC_PERMERROR: return "permerror";
	}
	return "none";
}

/* ------------------------------------------------------------ RFC 9989 */

#define MEMO_MAX 48

struct memo_entry {
	char name[MA_DOMAIN_MAX];
	enum ma_dmarc_answer answer;
	struct ma_dmarc_record rec;
};

/* One message's DNS questions for the walks: each _dmarc name is asked
   once per message (failures included, so a timeout costs its time once);
   the resolver's cache keeps the answers across messages. */
struct walk_io {
	struct ma_dmarc *d;
	struct mw_dns_budget *budget;
	struct memo_entry *memo;
	int nmemo;
	int queries;
};

static enum ma_dmarc_answer query_dmarc(struct walk_io *w, const char *domain, struct ma_dmarc_record *rec)
{
	char name[MA_DOMAIN_MAX + 8];
	struct mw_dns_result r;
	struct mw_buf txt = MW_BUF_INIT;
	struct ma_dmarc_record one;
	int n = 0;

	memset(rec, 0, sizeof(*rec));
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	w->queries++;
	enum mw_dns_status st = mw_dns_lookup(w->d->dns, name, MW_DNS_T_TXT, w->budget, &r);
	if (mw_dns_status_is_temporary(st)) {
		snprintf(rec->problem, sizeof(rec->problem), "DNS %s for %s: %s", mw_dns_status_name(st),
			 name, r.error);
		mw_dns_result_free(&r);
		return MA_DMARC_ANS_TEMPERROR;
	}
	for (int i = 0; i < r.count; i++) {
		mw_buf_reset(&txt);
		if (mw_dns_result_txt(&r, i, &txt) != 0)
			continue;
		/* RFC 9989 4.10 step 2: only records starting with v=DMARC1 */
		if (ma_dmarc_record_parse(txt.data, mw_buf_len(&txt), &one) != MA_DMARC_REC_NOT_DMARC &&
		    n++ == 0)
			*rec = one;
	}
	mw_dns_result_free(&r);
	mw_buf_free(&txt);
	if (n > 1) {
		memset(rec, 0, sizeof(*rec));
		snprintf(rec->problem, sizeof(rec->problem), "%d DMARC records at %s: none applies", n, name);
		return MA_DMARC_ANS_NONE;
	}
	return n == 1 ? MA_DMARC_ANS_RECORD : MA_DMARC_ANS_NONE;
}

static enum ma_dmarc_answer walk_query(void *ctx, const char *domain, struct ma_dmarc_record *rec)
{
	struct walk_io *w = ctx;
	for (int i = 0; i < w->nmemo; i++) {
		if (strcmp(w->memo[i].name, domain) == 0) {
			*rec = w->memo[i].rec;
			return w->memo[i].answer;
		}
	}
	enum ma_dmarc_answer a = query_dmarc(w, domain, rec);
	if (w->memo != NULL && w->nmemo < MEMO_MAX) {
		struct memo_entry *e = &w->memo[w->nmemo++];
		snprintf(e->name, sizeof(e->name), "%s", domain);
		e->answer = a;
		e->rec = *rec;
	}
	return a;
}

/* RFC 9989 3.2.13 and A.4: NXDOMAIN means the name does not exist; any
   other answer (even NODATA) that it does. */
static int walk_exists(void *ctx, const char *domain)
{
	struct walk_io *w = ctx;
	struct mw_dns_result r;
	w->queries++;
	enum mw_dns_status st = mw_dns_lookup(w->d->dns, domain, MW_DNS_T_A, w->budget, &r);
	mw_dns_result_free(&r);
	if (mw_dns_status_is_temporary(st))
		return -1;
	return st != MW_DNS_NXDOMAIN && st != MW_DNS_BADNAME;
}

void ma_dmarc_check(struct ma_dmarc *d, struct mw_dns_budget *budget, enum ma_dmarc_standard standard,
		    const char *from_domain, enum ma_spf_result spf_result, const char *spf_domain,
		    const struct ma_dkim_sig *sigs, int nsigs, int dice, struct ma_dmarc_verdict *out)
{
	if (standard == MA_DMARC_RFC7489) {
		struct ma_dmarc_record rec;
		enum ma_dmarc_lookup lk = ma_dmarc_fetch(d, budget, from_domain, &rec);
		ma_dmarc_evaluate(d, from_domain, lk, &rec, spf_result, spf_domain, sigs, nsigs, dice, out);
		return;
	}
	struct walk_io w = { .d = d, .budget = budget };
	w.memo = calloc(MEMO_MAX, sizeof(*w.memo)); /* without it: no memo, same answers */
	struct ma_dmarc_io io = { .query = walk_query, .exists = walk_exists, .ctx = &w };
	ma_dmarc_evaluate_9989(&io, from_domain, spf_result, spf_domain, sigs, nsigs, out);
	out->queries = w.queries;
	free(w.memo);
}

void ma_dmarc_ar_comment(const struct ma_dmarc_verdict *v, int override, struct mw_buf *out)
{
	const struct ma_dmarc_record *r = &v->record;
	mw_buf_printf(out, "p=%s", ma_dmarc_policy_name(r->p));
	if (r->sp != MA_DMARC_P_UNSPECIFIED)
		mw_buf_printf(out, " sp=%s", ma_dmarc_policy_name(r->sp));
	if (v->standard == MA_DMARC_RFC7489) {
		if (r->pct != 100)
			mw_buf_printf(out, " pct=%d", r->pct);
	} else {
		if (r->np != MA_DMARC_P_UNSPECIFIED)
			mw_buf_printf(out, " np=%s", ma_dmarc_policy_name(r->np));
		if (r->testing)
			mw_buf_puts(out, " t=y");
	}
	mw_buf_printf(out, " dis=%s", ma_dmarc_policy_name(
		(v->result == MA_DMARC_FAIL && !override) ? v->disposition : MA_DMARC_P_NONE));
	if (override)
		mw_buf_puts(out, " local override");
	if (v->standard == MA_DMARC_RFC9989 && (v->result == MA_DMARC_FAIL || v->result == MA_DMARC_TEMPERROR)) {
		if (strcasecmp(r->domain, v->from_domain) != 0)
			mw_buf_printf(out, ", %s= of %s%s", v->policy_tag, v->psd_policy ? "public suffix " : "",
				      r->domain);
		if (v->testing)
			mw_buf_printf(out, ", t=y: testing, %s applied as %s", ma_dmarc_policy_name(v->policy),
				      ma_dmarc_policy_name(v->disposition));
	}
}

const char *ma_dmarc_ar_policy(const struct ma_dmarc_verdict *v)
{
	if (!v->have_record || v->standard != MA_DMARC_RFC9989)
		return NULL;
	if (v->result == MA_DMARC_PASS)
		return ma_dmarc_policy_name(MA_DMARC_P_NONE);
	if (v->result == MA_DMARC_FAIL)
		return ma_dmarc_policy_name(v->disposition);
	return NULL;
}

void ma_dmarc_log_detail(const struct ma_dmarc_verdict *v, struct mw_buf *out)
{
	if (v->standard == MA_DMARC_RFC7489) {
		mw_buf_puts(out, " std=rfc7489");
		if (v->sampled_out)
			mw_buf_printf(out, " pct=%d sampled-out", v->record.pct);
		return;
	}
	if (v->org_domain[0] != '\0')
		mw_buf_printf(out, " org=%s", v->org_domain);
	if (v->have_record)
		mw_buf_printf(out, " policy=%s@%s%s", v->policy_tag, v->record.domain,
			      v->psd_policy ? "(psd)" : "");
	if (v->author_exists == 0)
		mw_buf_puts(out, " nxdomain");
	if (v->testing)
		mw_buf_printf(out, " testing(t=y: %s applied as %s)", ma_dmarc_policy_name(v->policy),
			      ma_dmarc_policy_name(v->disposition));
	const struct ma_dmarc_record *r = &v->record;
	if (v->have_record && (r->has_pct || r->has_rf || r->has_ri)) {
		const char *sep = " ignored=";
		const char *names[] = { "pct", "rf", "ri" };
		const int has[] = { r->has_pct, r->has_rf, r->has_ri };
		for (int i = 0; i < 3; i++) {
			if (has[i]) {
				mw_buf_printf(out, "%s%s", sep, names[i]);
				sep = ",";
			}
		}
		mw_buf_puts(out, "(removed by RFC 9989)");
	}
	mw_buf_printf(out, " queries=%d", v->queries);
}
