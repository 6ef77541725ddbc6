#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libpsl.h>
#include <opendmarc/dmarc.h>

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
	if (strcasecmp(rec->domain, from_domain) != 0 && rec->sp != MA_DMARC_P_UNSPECIFIED)
		out->policy = rec->sp;
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

const char *ma_dmarc_policy_name(enum ma_dmarc_policy p)
{
	switch (p) {
	case MA_DMARC_P_UNSPECIFIED: return "unspecified";
	case MA_DMARC_P_NONE: return "none";
	case MA_DMARC_P_QUARANTINE: return "quarantine";
	case MA_DMARC_P_REJECT: return "reject";
	}
	return "none";
}
