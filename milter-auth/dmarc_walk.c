#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dmarc_walk.h"

static int count_labels(const char *d)
{
	int n = 1;
	for (const char *p = d; *p != '\0'; p++)
		if (*p == '.')
			n++;
	return n;
}

/* d without its first k labels (k < its label count). */
static const char *drop_labels(const char *d, int k)
{
	while (k-- > 0) {
		const char *dot = strchr(d, '.');
		if (dot == NULL)
			break;
		d = dot + 1;
	}
	return d;
}

int ma_dmarc_walk_targets(const char *domain, char out[MA_DMARC_WALK_MAX][MA_DOMAIN_MAX])
{
	int n = 0;
	if (domain[0] == '\0')
		return 0;
	snprintf(out[n++], MA_DOMAIN_MAX, "%s", domain);
	int x = count_labels(domain);
	if (x == 1)
		return n;
	/* RFC 9989 4.10 step 4: below 8 labels drop one; from 8 on, keep the
	   last 7; then one label at a time down to the last one (step 7). */
	const char *cur = drop_labels(domain, x < 8 ? 1 : x - 7);
	while (n < MA_DMARC_WALK_MAX) {
		snprintf(out[n++], MA_DOMAIN_MAX, "%s", cur);
		const char *dot = strchr(cur, '.');
		if (dot == NULL)
			break;
		cur = dot + 1;
	}
	return n;
}

/* Whether sub is parent or below it (label boundaries). */
static int is_within(const char *sub, const char *parent)
{
	size_t ls = strlen(sub), lp = strlen(parent);
	if (ls == lp)
		return strcasecmp(sub, parent) == 0;
	return ls > lp && sub[ls - lp - 1] == '.' && strcasecmp(sub + ls - lp, parent) == 0;
}

/* The name one label below parent on the way to start (start below parent). */
static void one_below(const char *start, const char *parent, char *out, size_t outlen)
{
	size_t ls = strlen(start), lp = strlen(parent);
	const char *p = start + (ls - lp - 1); /* the dot before parent */
	while (p > start && p[-1] != '.')
		p--;
	snprintf(out, outlen, "%s", p);
}

void ma_dmarc_walk(const struct ma_dmarc_io *io, const char *start, int first_only, struct ma_dmarc_walk *w)
{
	char names[MA_DMARC_WALK_MAX][MA_DOMAIN_MAX];
	int n = ma_dmarc_walk_targets(start, names);

	memset(w, 0, sizeof(*w));
	for (int i = 0; i < n; i++) {
		struct ma_dmarc_record r;
		memset(&r, 0, sizeof(r));
		enum ma_dmarc_answer a = io->query(io->ctx, names[i], &r);
		if (a == MA_DMARC_ANS_TEMPERROR) {
			w->temperror = 1;
			snprintf(w->problem, sizeof(w->problem), "%s", r.problem);
			return;
		}
		if (a != MA_DMARC_ANS_RECORD) {
			if (r.problem[0] != '\0' && w->problem[0] == '\0')
				snprintf(w->problem, sizeof(w->problem), "%s", r.problem);
			continue;
		}
		snprintf(r.domain, sizeof(r.domain), "%s", names[i]);
		w->found[w->nfound++] = r;
		if (r.psd == 'y' || r.psd == 'n')
			break; /* steps 2 and 6 */
		if (i == 0 && first_only)
			return; /* the Author Domain's own record: org not needed yet */
	}

	/* RFC 9989 4.10.2: the Organizational Domain, longest name first */
	w->complete = 1;
	for (int j = 0; j < w->nfound; j++) {
		const struct ma_dmarc_record *r = &w->found[j];
		if (r->psd == 'n') {
			snprintf(w->org, sizeof(w->org), "%s", r->domain);
			return;
		}
		if (r->psd == 'y' && strcasecmp(r->domain, start) != 0) {
			one_below(start, r->domain, w->org, sizeof(w->org));
			return;
		}
	}
	snprintf(w->org, sizeof(w->org), "%s", w->nfound > 0 ? w->found[w->nfound - 1].domain : start);
}

int ma_dmarc_aligned_9989(const struct ma_dmarc_io *io, const char *author, const char *author_org,
			  const char *identifier, char mode)
{
	if (strcasecmp(identifier, author) == 0)
		return 1;
	if (mode == 's')
		return 0;
	/* An Organizational Domain is always the name itself or one of its
	   parents: unless author_org is, no walk can make them equal. */
	if (!is_within(identifier, author_org))
		return 0;
	struct ma_dmarc_walk w;
	ma_dmarc_walk(io, identifier, 0, &w);
	if (w.temperror)
		return -1;
	return strcasecmp(w.org, author_org) == 0;
}

static enum ma_dmarc_policy one_step_less(enum ma_dmarc_policy p)
{
	return p == MA_DMARC_P_REJECT ? MA_DMARC_P_QUARANTINE :
	       p == MA_DMARC_P_QUARANTINE ? MA_DMARC_P_NONE : p;
}

struct align_state {
	const struct ma_dmarc_io *io;
	const char *author;
	struct ma_dmarc_walk *author_walk; /* completed on demand */
	int org_failed;
};

/* 1, 0, or -1 (DNS) */
static int aligned(struct align_state *st, const char *identifier, char mode)
{
	if (strcasecmp(identifier, st->author) == 0)
		return 1;
	if (mode == 's')
		return 0;
	/* Both Organizational Domains are suffixes of their names: with no
	   common last label they cannot be equal, and no walk is needed. */
	const char *ta = strrchr(st->author, '.'), *ti = strrchr(identifier, '.');
	if (strcasecmp(ta != NULL ? ta + 1 : st->author, ti != NULL ? ti + 1 : identifier) != 0)
		return 0;
	if (!st->author_walk->complete) {
		if (st->org_failed)
			return -1;
		ma_dmarc_walk(st->io, st->author, 0, st->author_walk);
		if (st->author_walk->temperror) {
			st->org_failed = 1;
			return -1;
		}
	}
	return ma_dmarc_aligned_9989(st->io, st->author, st->author_walk->org, identifier, mode);
}

void ma_dmarc_evaluate_9989(const struct ma_dmarc_io *io, const char *from_domain,
			    enum ma_spf_result spf_result, const char *spf_domain,
			    const struct ma_dkim_sig *sigs, int nsigs, struct ma_dmarc_verdict *out)
{
	struct ma_dmarc_walk wa;
	const struct ma_dmarc_record *rec = NULL;

	memset(out, 0, sizeof(*out));
	out->standard = MA_DMARC_RFC9989;
	out->author_exists = -1;
	out->policy_tag = "p";
	snprintf(out->from_domain, sizeof(out->from_domain), "%s", from_domain);

	/* 4.10.1: the Author Domain's record, else the walk's */
	ma_dmarc_walk(io, from_domain, 1, &wa);
	if (wa.temperror) {
		out->result = MA_DMARC_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "%s", wa.problem);
		/* An identical identifier aligns whatever the record says: a
		   pass then needs no policy (the pipeline accepts it). */
		out->spf_aligned = spf_result == MA_SPF_PASS && spf_domain != NULL &&
				   strcasecmp(spf_domain, from_domain) == 0;
		for (int i = 0; i < nsigs; i++)
			if (sigs[i].result == MA_DKIM_PASS && strcasecmp(sigs[i].domain, from_domain) == 0)
				out->dkim_aligned = 1;
		return;
	}
	if (wa.complete)
		snprintf(out->org_domain, sizeof(out->org_domain), "%s", wa.org);
	if (wa.nfound == 0) {
		out->result = MA_DMARC_NONE;
		snprintf(out->reason, sizeof(out->reason), "%s", wa.problem[0] ? wa.problem : "no DMARC record");
		return;
	}
	if (strcasecmp(wa.found[0].domain, from_domain) == 0) {
		rec = &wa.found[0];
	} else {
		for (int j = 0; j < wa.nfound && rec == NULL; j++)
			if (strcasecmp(wa.found[j].domain, wa.org) == 0)
				rec = &wa.found[j];
		if (rec == NULL) { /* the org has none: the public suffix's (psd=y) */
			for (int j = 0; j < wa.nfound && rec == NULL; j++)
				if (wa.found[j].psd == 'y')
					rec = &wa.found[j];
			out->psd_policy = rec != NULL;
		}
	}
	if (rec == NULL) { /* cannot happen: the org is a found name or below a psd=y one */
		out->result = MA_DMARC_NONE;
		snprintf(out->reason, sizeof(out->reason), "no DMARC record applies");
		return;
	}
	out->record = *rec;
	if (rec->unusable) {
		/* 4.10.1: no DMARC processing; 9.2 names it permerror */
		out->result = MA_DMARC_PERMERROR;
		snprintf(out->reason, sizeof(out->reason), "%s at %s", rec->problem, rec->domain);
		return;
	}
	out->have_record = 1;

	struct align_state st = { .io = io, .author = from_domain, .author_walk = &wa };
	int spf_unknown = 0, dkim_unknown = 0;
	if (spf_domain != NULL && spf_domain[0] != '\0' &&
	    (spf_result == MA_SPF_PASS || spf_result == MA_SPF_TEMPERROR)) {
		int a = aligned(&st, spf_domain, rec->aspf);
		if (a == 1 && spf_result == MA_SPF_PASS)
			out->spf_aligned = 1;
		else if (a != 0)
			spf_unknown = 1;
	}
	for (int i = 0; i < nsigs && !out->dkim_aligned; i++) {
		if (sigs[i].domain[0] == '\0' || sigs[i].result != MA_DKIM_PASS)
			continue;
		int a = aligned(&st, sigs[i].domain, rec->adkim);
		if (a == 1)
			out->dkim_aligned = 1;
		else if (a < 0)
			dkim_unknown = 1;
	}
	if (wa.complete)
		snprintf(out->org_domain, sizeof(out->org_domain), "%s", wa.org);
	if (out->spf_aligned || out->dkim_aligned) {
		out->result = MA_DMARC_PASS;
		out->disposition = MA_DMARC_P_NONE;
		out->policy = rec->p;
		snprintf(out->reason, sizeof(out->reason), "%s aligned",
			 out->spf_aligned && out->dkim_aligned ? "SPF and DKIM" :
			 out->spf_aligned ? "SPF" : "DKIM");
		return;
	}
	/* No pass: a DKIM temperror that would align leaves it unknown too. */
	for (int i = 0; i < nsigs && !dkim_unknown; i++)
		if (sigs[i].domain[0] != '\0' && sigs[i].result == MA_DKIM_TEMPERROR &&
		    aligned(&st, sigs[i].domain, rec->adkim) != 0)
			dkim_unknown = 1;

	/* The policy: p for the Author Domain itself, else sp or np. */
	out->policy = rec->p;
	int exists_unknown = 0;
	if (strcasecmp(rec->domain, from_domain) != 0) {
		if (rec->np != MA_DMARC_P_UNSPECIFIED) {
			out->author_exists = io->exists(io->ctx, from_domain);
			/* unknown: np= may apply, the temperror below keeps it open */
			exists_unknown = out->author_exists < 0;
		}
		if (out->author_exists == 0 || exists_unknown) {
			out->policy = rec->np;
			out->policy_tag = "np";
		} else if (rec->sp != MA_DMARC_P_UNSPECIFIED) {
			out->policy = rec->sp;
			out->policy_tag = "sp";
		}
	}
	out->disposition = out->policy;
	if (rec->testing && out->policy != one_step_less(out->policy)) {
		out->disposition = one_step_less(out->policy);
		out->testing = 1;
	}
	if (exists_unknown) {
		out->result = MA_DMARC_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "DNS failure asking whether %s exists (np=)",
			 from_domain);
		return;
	}
	if (spf_unknown || dkim_unknown) {
		out->result = MA_DMARC_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "aligned %s could not be checked (DNS)",
			 spf_unknown ? "SPF" : "DKIM");
		return;
	}
	out->result = MA_DMARC_FAIL;
	snprintf(out->reason, sizeof(out->reason), "neither SPF nor DKIM aligned with %s", from_domain);
}
