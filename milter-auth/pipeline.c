#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hdrparse.h"
#include "log.h"
#include "masign.h"
#include "pipeline.h"
#include "mametrics.h"
#include "report_store.h"

#define MAX_SIGS 64

struct ma_msg {
	struct ma_engines *e;  /* the configuration's */
	struct ma_conf *conf;
	/* connection */
	char client_ip[64];
	char client_name[256];
	struct mw_buf helo;
	int trusted;            /* client in trusted_networks */
	/* message */
	struct mw_buf sender;
	struct mw_buf auth_user;
	int nrcpt;
	int nheaders;
	int from_count;
	struct mw_buf from;     /* the first From field's value */
	int ar_count;           /* Authentication-Results fields seen */
	int dkim_headers;       /* DKIM-Signature fields seen */
	char first_sig_d[MA_DOMAIN_MAX]; /* d= of the first, parsed by us */
	int *forged;            /* their indexes that claim our authserv-id: */
	int nforged, forged_cap; /* every one, however many (never capped) */
	struct ma_dkim_msg *dkim;
	int dkim_nosig;
	/* outbound (authenticated or trusted client): signing, see below */
	struct ma_sign_msg *sign;
	int nsign;              /* signatures being made */
	int origip;             /* X-Originating-IP fields seen */
	struct mw_buf sign_note;
	int is_report;          /* Subject of a DMARC aggregate report: not recorded */
};

/* ------------------------------------------------------------ outcome */

void ma_outcome_init(struct ma_outcome *o)
{
	memset(o, 0, sizeof(*o));
	mw_buf_init(&o->text, 2048);
	mw_buf_init(&o->log, 8192);
}

void ma_outcome_free(struct ma_outcome *o)
{
	for (int i = 0; i < o->nchanges; i++) {
		free(o->changes[i].name);
		free(o->changes[i].value);
	}
	free(o->changes);
	o->changes = NULL;
	o->nchanges = o->changes_cap = 0;
	mw_buf_free(&o->text);
	mw_buf_free(&o->log);
}

static void add_change(struct ma_outcome *o, int add, const char *name, const char *value, int index)
{
	if (o->nchanges == o->changes_cap) {
		o->changes_cap = o->changes_cap ? o->changes_cap * 2 : 8;
		o->changes = mw_xrealloc(o->changes, (size_t)o->changes_cap * sizeof(*o->changes));
	}
	struct ma_change *c = &o->changes[o->nchanges++];
	c->add = add;
	c->name = mw_xstrdup(name);
	c->value = value != NULL ? mw_xstrdup(value) : NULL;
	c->index = index;
}

static void set_action(struct ma_outcome *o, enum ma_action a, const char *rcode, const char *xcode)
{
	o->action = a;
	snprintf(o->rcode, sizeof(o->rcode), "%s", rcode);
	snprintf(o->xcode, sizeof(o->xcode), "%s", xcode);
	mw_buf_reset(&o->text);
}

/* ------------------------------------------------------------ message */

struct ma_msg *ma_msg_new(struct ma_conf *conf)
{
	struct ma_msg *m = mw_xcalloc(1, sizeof(*m));
	m->conf = ma_conf_ref(conf);
	m->e = &conf->e;
	mw_buf_init(&m->helo, 1024);
	mw_buf_init(&m->sender, 2048);
	mw_buf_init(&m->auth_user, 1024);
	mw_buf_init(&m->from, 8192);
	mw_buf_init(&m->sign_note, 4096);
	return m;
}

static void reset_message(struct ma_msg *m)
{
	mw_buf_reset(&m->sender);
	mw_buf_reset(&m->auth_user);
	mw_buf_reset(&m->from);
	m->nrcpt = m->nheaders = m->from_count = m->ar_count = m->nforged = 0;
	m->dkim_headers = 0;
	m->first_sig_d[0] = '\0';
	m->dkim_nosig = 0;
	ma_sign_msg_free(m->sign);
	m->sign = NULL;
	m->nsign = m->origip = 0;
	mw_buf_reset(&m->sign_note);
	m->is_report = 0;
	if (m->dkim != NULL) {
		ma_dkim_msg_free(m->dkim);
		m->dkim = NULL;
	}
}

void ma_msg_next(struct ma_msg *m)
{
	reset_message(m);
}

void ma_msg_free(struct ma_msg *m)
{
	if (m == NULL)
		return;
	reset_message(m);
	free(m->forged);
	ma_conf_unref(m->conf);
	mw_buf_free(&m->helo);
	mw_buf_free(&m->sender);
	mw_buf_free(&m->auth_user);
	mw_buf_free(&m->from);
	mw_buf_free(&m->sign_note);
	free(m);
}

void ma_msg_connect(struct ma_msg *m, const char *client_ip, const char *client_name)
{
	snprintf(m->client_ip, sizeof(m->client_ip), "%s", client_ip != NULL ? client_ip : "");
	snprintf(m->client_name, sizeof(m->client_name), "%s", client_name != NULL ? client_name : "");
	m->trusted = mw_cidr_list_match_text(&m->conf->s.trusted, m->client_ip) == 1;
}

void ma_msg_helo(struct ma_msg *m, const char *helo)
{
	mw_buf_set(&m->helo, helo != NULL ? helo : "");
}

void ma_msg_mail(struct ma_msg *m, const char *sender, const char *auth_user)
{
	reset_message(m);
	mw_buf_set(&m->sender, sender != NULL ? sender : "");
	mw_buf_set(&m->auth_user, auth_user != NULL ? auth_user : "");
}

void ma_msg_rcpt(struct ma_msg *m, const char *rcpt)
{
	(void)rcpt;
	m->nrcpt++;
}

static int skipped(const struct ma_msg *m)
{
	return m->trusted || (m->conf->s.skip_authenticated && mw_buf_len(&m->auth_user) > 0);
}

static void outbound_header(struct ma_msg *m, const char *name, const char *value);
static void outbound_eom(struct ma_msg *m, struct ma_outcome *o);

/* Past max_headers a message is refused at eom (too_many_headers); what
   the verdict depends on is still counted for every header: forged copies
   of our A-R (removed whatever happens) and From fields. */
static void note_forged(struct ma_msg *m)
{
	if (m->nforged == m->forged_cap) {
		m->forged_cap = m->forged_cap ? m->forged_cap * 2 : 8;
		m->forged = mw_xrealloc(m->forged, (size_t)m->forged_cap * sizeof(*m->forged));
	}
	m->forged[m->nforged++] = m->ar_count;
}

static int too_many_headers(const struct ma_msg *m)
{
	return m->nheaders > (int)m->conf->s.max_headers;
}

void ma_msg_header(struct ma_msg *m, const char *name, const char *value)
{
	outbound_header(m, name, value);
	if (m->nheaders < INT_MAX)
		m->nheaders++;
	if (strcasecmp(name, "Authentication-Results") == 0) {
		char id[256];
		m->ar_count++;
		if (ma_ar_authserv_id(value, strlen(value), id, sizeof(id)) == 0 &&
		    strcasecmp(id, m->conf->s.authserv_id) == 0)
			note_forged(m);
	} else if (strcasecmp(name, "From") == 0) {
		if (m->from_count++ == 0)
			mw_buf_set(&m->from, value);
	}
	if (too_many_headers(m))
		return; /* nothing more is read: the message is refused */
	if (mw_log_debug_enabled()) {
		struct mw_buf v = MW_BUF_INIT;
		mw_buf_append_printable(&v, value, strlen(value), 300);
		mw_msg_debug("header %s: [%s]", name, mw_buf_str(&v));
		mw_buf_free(&v);
	}
	if (strcasecmp(name, "DKIM-Signature") == 0) {
		char d[MA_DOMAIN_MAX];
		if (m->dkim_headers++ == 0 && ma_dkim_tag(value, strlen(value), "d", d, sizeof(d)) == 0)
			ma_domain_normalize(d, strlen(d), m->first_sig_d, sizeof(m->first_sig_d));
	} else if (strcasecmp(name, "Subject") == 0) {
		m->is_report |= ma_report_subject_is_report(value); /* no reports about reports */
	}
	if (skipped(m))
		return;
	if (m->dkim == NULL)
		m->dkim = ma_dkim_msg_new(m->e->dkim, "message");
	if (m->dkim != NULL)
		ma_dkim_msg_header(m->dkim, name, value);
}

void ma_msg_eoh(struct ma_msg *m)
{
	if (m->sign != NULL)
		m->nsign = ma_sign_msg_eoh(m->sign, &m->sign_note);
	if (m->dkim != NULL && !too_many_headers(m)) {
		/* the From domain's signatures are verified first */
		struct ma_from f;
		int ok = m->from_count == 1 && !mw_buf_failed(&m->from) &&
			 ma_from_parse(mw_buf_str(&m->from), mw_buf_len(&m->from), &f) == 0;
		unsigned long long max = m->conf->s.dkim_max_signatures;
		m->dkim_nosig = ma_dkim_msg_eoh(m->dkim, ok ? f.domain : NULL,
						(int)(max < MAX_SIGS ? max : MAX_SIGS));
	} else {
		m->dkim_nosig = 1;
	}
}

void ma_msg_body(struct ma_msg *m, const unsigned char *data, size_t len)
{
	if (m->nsign > 0)
		ma_sign_msg_body(m->sign, data, len);
	if (m->dkim != NULL && !m->dkim_nosig && !too_many_headers(m))
		ma_dkim_msg_body(m->dkim, data, len);
}

int ma_msg_wants_body(const struct ma_msg *m)
{
	return (m->dkim != NULL && !m->dkim_nosig && !too_many_headers(m)) || m->nsign > 0;
}

/* ------------------------------------------------------------ verdicts */

/* Appends an RFC 8601 comment: printable ASCII only, parentheses and
   backslashes escaped, capped. */
static void ar_comment(struct mw_buf *b, const char *text)
{
	size_t n = 0;
	mw_buf_puts(b, " (");
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0' && n < 200; p++, n++) {
		if (*p == '(' || *p == ')' || *p == '\\')
			mw_buf_putc(b, '\\');
		mw_buf_putc(b, *p >= 0x20 && *p < 0x7f ? *p : '?');
	}
	mw_buf_putc(b, ')');
}

/* A property value: as is when it is a plain token (or an address),
   quoted otherwise. */
static void ar_value(struct mw_buf *b, const char *v)
{
	int plain = v[0] != '\0';
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("()<>,;:\\\"/[]?=", *p) != NULL)
			plain = 0;
	if (plain) {
		mw_buf_puts(b, v);
		return;
	}
	mw_buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			mw_buf_putc(b, '\\');
		mw_buf_putc(b, *p >= 0x20 && *p < 0x7f ? *p : '?');
	}
	mw_buf_putc(b, '"');
}

struct verdicts {
	struct ma_spf_verdict spf;       /* MAIL FROM (or postmaster@HELO) */
	struct ma_spf_verdict spf_helo;  /* HELO, when checked */
	int helo_checked;
	struct ma_dkim_sig sigs[MAX_SIGS];
	int nsigs;
	struct ma_from from;
	int from_problem;                /* zero/several From, or no domain */
	char from_problem_text[128];
	struct ma_dmarc_verdict dmarc;
	int dmarc_override;
};

static void build_ar(const struct ma_msg *m, const struct verdicts *v, struct mw_buf *ar)
{
	const struct ma_settings *s = &m->conf->s;
	const char *sender = mw_buf_str(&m->sender);

	mw_buf_puts(ar, s->authserv_id);
	mw_buf_puts(ar, ";\n\tspf=");
	mw_buf_puts(ar, ma_spf_result_name(v->spf.result));
	if (mw_buf_len(&v->spf.reason))
		ar_comment(ar, mw_buf_str(&v->spf.reason));
	if (sender[0] != '\0') {
		mw_buf_puts(ar, " smtp.mailfrom=");
		ar_value(ar, strchr(sender, '@') != NULL ? sender : mw_buf_str(&v->spf.domain));
	} else {
		mw_buf_puts(ar, " smtp.helo=");
		ar_value(ar, mw_buf_str(&m->helo));
	}
	if (v->helo_checked) {
		mw_buf_puts(ar, ";\n\tspf=");
		mw_buf_puts(ar, ma_spf_result_name(v->spf_helo.result));
		mw_buf_puts(ar, " smtp.helo=");
		ar_value(ar, mw_buf_str(&m->helo));
	}
	if (v->nsigs == 0)
		mw_buf_puts(ar, ";\n\tdkim=none");
	for (int i = 0; i < v->nsigs; i++) {
		const struct ma_dkim_sig *g = &v->sigs[i];
		mw_buf_puts(ar, ";\n\tdkim=");
		mw_buf_puts(ar, ma_dkim_result_name(g->result));
		if (g->result != MA_DKIM_PASS && g->reason[0] != '\0')
			ar_comment(ar, g->reason);
		if (g->domain[0] != '\0') {
			mw_buf_puts(ar, " header.d=");
			ar_value(ar, g->domain);
		}
		if (g->selector[0] != '\0') {
			mw_buf_puts(ar, " header.s=");
			ar_value(ar, g->selector);
		}
		if (g->b[0] != '\0') {
			mw_buf_puts(ar, " header.b=");
			ar_value(ar, g->b);
		}
	}
	mw_buf_puts(ar, ";\n\tdmarc=");
	if (v->from_problem) {
		mw_buf_puts(ar, "permerror");
		ar_comment(ar, v->from_problem_text);
		return;
	}
	const struct ma_dmarc_verdict *d = &v->dmarc;
	mw_buf_puts(ar, ma_dmarc_result_name(d->result));
	if (d->have_record) {
		struct mw_buf c = MW_BUF_INIT;
		ma_dmarc_ar_comment(d, v->dmarc_override, &c);
		ar_comment(ar, mw_buf_str(&c));
		mw_buf_free(&c);
	} else if (d->reason[0] != '\0' && d->result != MA_DMARC_PASS) {
		ar_comment(ar, d->reason);
	}
	mw_buf_puts(ar, " header.from=");
	ar_value(ar, d->from_domain);
	const char *pol = ma_dmarc_ar_policy(d);
	if (pol != NULL) {
		mw_buf_puts(ar, " policy.dmarc=");
		mw_buf_puts(ar, pol);
	}
}

static void check_from(const struct ma_msg *m, struct verdicts *v)
{
	if (m->from_count == 0) {
		v->from_problem = 1;
		snprintf(v->from_problem_text, sizeof(v->from_problem_text), "no From field");
		return;
	}
	if (m->from_count > 1) {
		v->from_problem = 1;
		snprintf(v->from_problem_text, sizeof(v->from_problem_text), "%d From fields", m->from_count);
		return;
	}
	if (mw_buf_failed(&m->from)) {
		v->from_problem = 1;
		snprintf(v->from_problem_text, sizeof(v->from_problem_text), "From field too long");
		return;
	}
	/* RFC 7489 6.6.1: not exactly one mailbox with a usable domain is a
	   permerror, handled by malformed_from (reject by default) */
	if (ma_from_parse(mw_buf_str(&m->from), mw_buf_len(&m->from), &v->from) < 0) {
		v->from_problem = 1;
		snprintf(v->from_problem_text, sizeof(v->from_problem_text), "From field: %s",
			 v->from.error);
	}
}

static int overridden(const struct ma_settings *s, const char *domain)
{
	if (s->dmarc_override_domains == NULL)
		return 0;
	for (char **d = s->dmarc_override_domains; *d != NULL; d++)
		if (strcasecmp(*d, domain) == 0)
			return 1;
	return 0;
}

static void decide(const struct ma_msg *m, struct verdicts *v, struct ma_outcome *o)
{
	const struct ma_settings *s = &m->conf->s;
	const struct ma_dmarc_verdict *d = &v->dmarc;

	set_action(o, MA_ACCEPT, "", "");
	if (v->from_problem) {
		if (s->malformed_from == MA_MALFORMED_REJECT) {
			set_action(o, MA_REJECT, "550", "5.7.1");
			mw_buf_printf(&o->text, "Message rejected: %s (RFC 5322 requires exactly one "
				      "From field with an address)", v->from_problem_text);
		} else if (s->malformed_from == MA_MALFORMED_QUARANTINE) {
			set_action(o, MA_QUARANTINE, "", "");
			mw_buf_printf(&o->text, "malformed From: %s", v->from_problem_text);
		}
		return;
	}
	int enforce = s->dmarc_enforce && !v->dmarc_override;
	if (enforce && d->result == MA_DMARC_FAIL && d->disposition == MA_DMARC_P_REJECT) {
		set_action(o, MA_REJECT, "550", "5.7.1");
		mw_buf_printf(&o->text, "Message rejected: the DMARC policy of %s is to reject mail "
			      "that fails authentication (SPF %s, DKIM %s)", d->record.domain,
			      ma_spf_result_name(v->spf.result),
			      v->nsigs == 0 ? "none" : d->dkim_aligned ? "pass" : "not aligned or failed");
		return;
	}
	if (enforce && s->dns_tempfail && d->result == MA_DMARC_TEMPERROR &&
	    !(d->spf_aligned || d->dkim_aligned) &&
	    (!d->have_record || d->disposition == MA_DMARC_P_REJECT ||
	     d->disposition == MA_DMARC_P_QUARANTINE)) {
		set_action(o, MA_TEMPFAIL, "451", "4.7.1");
		mw_buf_printf(&o->text, "Temporary DNS failure while checking the DMARC policy of %s; "
			      "try again later", d->from_domain);
		return;
	}
	if (enforce && d->result == MA_DMARC_FAIL && d->disposition == MA_DMARC_P_QUARANTINE) {
		if (s->quarantine_action == MA_QUARANTINE_HOLD) {
			set_action(o, MA_QUARANTINE, "", "");
			mw_buf_printf(&o->text, "DMARC policy of %s: quarantine", d->record.domain);
		} else {
			struct mw_buf h = MW_BUF_INIT;
			mw_buf_printf(&h, " DMARC policy of %s: quarantine", d->record.domain);
			add_change(o, 1, s->quarantine_header, mw_buf_str(&h), 0);
			mw_buf_free(&h);
		}
		return;
	}
	if (s->spf_reject_fail && !d->have_record && d->result != MA_DMARC_TEMPERROR &&
	    v->spf.result == MA_SPF_FAIL) {
		/* RFC 7372: 5.7.23, with the domain's explanation (RFC 7208 8.4) */
		set_action(o, MA_REJECT, "550", "5.7.23");
		if (mw_buf_len(&v->spf.explanation))
			mw_buf_append_printable(&o->text, v->spf.explanation.data,
						mw_buf_len(&v->spf.explanation), 400);
		else
			mw_buf_printf(&o->text, "SPF of %s does not allow %s to send its mail",
				      mw_buf_str(&v->spf.domain), m->client_ip);
	}
}

static void log_line(const struct ma_msg *m, const char *qid, const struct verdicts *v, int skip,
		     const struct ma_outcome *o, struct mw_buf *log)
{
	/* Postfix names a client without reverse DNS "[address]" */
	mw_buf_printf(log, "%s: client=%s[%s] helo=", qid,
		      m->client_name[0] && m->client_name[0] != '[' ? m->client_name : "unknown", m->client_ip);
	mw_buf_append_printable(log, m->helo.data, mw_buf_len(&m->helo), 100);
	mw_buf_puts(log, " from=<");
	mw_buf_append_printable(log, m->sender.data, mw_buf_len(&m->sender), 200);
	mw_buf_puts(log, ">");
	if (too_many_headers(m)) {
		mw_buf_printf(log, " refused: %d header fields (max_headers %llu)", m->nheaders,
			      m->conf->s.max_headers);
	} else if (skip) {
		if (mw_buf_len(&m->auth_user)) {
			mw_buf_puts(log, " skipped: authenticated as ");
			mw_buf_append_printable(log, m->auth_user.data, mw_buf_len(&m->auth_user), 100);
		} else {
			mw_buf_puts(log, " skipped: trusted network");
		}
	} else {
		mw_buf_printf(log, " spf=%s", ma_spf_result_name(v->spf.result));
		if (v->helo_checked)
			mw_buf_printf(log, " spf.helo=%s", ma_spf_result_name(v->spf_helo.result));
		if (v->nsigs == 0)
			mw_buf_puts(log, " dkim=none");
		for (int i = 0; i < v->nsigs; i++)
			mw_buf_printf(log, " dkim=%s(d=%s s=%s)", ma_dkim_result_name(v->sigs[i].result),
				      v->sigs[i].domain, v->sigs[i].selector);
		if (m->dkim != NULL && ma_dkim_msg_skipped(m->dkim) > 0)
			mw_buf_printf(log, " dkim.skipped=%d(over dkim_max_signatures or %d body hashes)",
				      ma_dkim_msg_skipped(m->dkim), MA_DKIM_MAX_BODY_HASHES);
		if (v->from_problem)
			mw_buf_printf(log, " dmarc=permerror(%s)", v->from_problem_text);
		else {
			mw_buf_printf(log, " dmarc=%s(from=%s p=%s dis=%s%s",
				      ma_dmarc_result_name(v->dmarc.result), v->dmarc.from_domain,
				      v->dmarc.have_record ? ma_dmarc_policy_name(v->dmarc.policy) : "-",
				      ma_dmarc_policy_name(v->dmarc.result == MA_DMARC_FAIL ? v->dmarc.disposition
											   : MA_DMARC_P_NONE),
				      v->dmarc_override ? " override" : "");
			ma_dmarc_log_detail(&v->dmarc, log);
			mw_buf_putc(log, ')');
		}
	}
	if (m->nforged)
		mw_buf_printf(log, " removed=%d forged A-R", m->nforged);
	switch (o->action) {
	case MA_ACCEPT: mw_buf_puts(log, " action=accept"); break;
	case MA_REJECT: mw_buf_printf(log, " action=reject %s %s", o->rcode, o->xcode); break;
	case MA_TEMPFAIL: mw_buf_printf(log, " action=tempfail %s %s", o->rcode, o->xcode); break;
	case MA_QUARANTINE: mw_buf_puts(log, " action=quarantine"); break;
	}
}

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/* The metrics (mametrics.h) of one message. */
static void count(const struct verdicts *v, int skip, int too_many, const struct ma_outcome *out,
		  unsigned long long start)
{
	int verified = !skip && !too_many, dns_error = 0, signatures = 0;
	for (int i = 0; i < out->nchanges; i++)
		signatures += out->changes[i].add && strcasecmp(out->changes[i].name, "DKIM-Signature") == 0;
	for (int i = 0; verified && i < v->nsigs; i++)
		dns_error |= v->sigs[i].result == MA_DKIM_TEMPERROR;
	if (verified)
		dns_error |= v->spf.result == MA_SPF_TEMPERROR || v->spf_helo.result == MA_SPF_TEMPERROR ||
			     (!v->from_problem && v->dmarc.result == MA_DMARC_TEMPERROR);
	struct ma_metrics_msg mm = {
		.verdict = too_many ? MA_M_TOO_MANY_HEADERS : skip ? MA_M_SKIPPED : MA_M_VERIFIED,
		.spf = verified ? (int)v->spf.result : -1,
		.dmarc = !verified ? -1 : v->from_problem ? (int)MA_DMARC_PERMERROR : (int)v->dmarc.result,
		.sigs = v->sigs,
		.nsigs = verified ? v->nsigs : 0,
		.action = (int)out->action,
		.signatures = signatures,
		.dns_error = dns_error,
		.us = (now_ns() - start) / 1000,
	};
	ma_metrics_message(&mm);
}

void ma_msg_eom(struct ma_msg *m, const char *qid, int dice, struct ma_outcome *out)
{
	unsigned long long t0 = now_ns(), t1;
	const struct ma_settings *s = &m->conf->s;
	struct verdicts *v = mw_xcalloc(1, sizeof(*v));
	struct mw_dns_budget budget;
	int skip = skipped(m), too_many = 0;
	unsigned long long start = t0;

	if (qid == NULL || qid[0] == '\0')
		qid = "NOQUEUE";
	ma_spf_verdict_init(&v->spf);
	ma_spf_verdict_init(&v->spf_helo);
	set_action(out, MA_ACCEPT, "", "");

	/* Forged copies of our own header go, whatever else happens: last
	   first, so the indexes of the others stay valid. */
	for (int i = m->nforged - 1; i >= 0; i--)
		add_change(out, 0, "Authentication-Results", NULL, m->forged[i]);

	if (too_many_headers(m)) {
		too_many = 1;
		/* Refused, not tempfailed: the same message would be refused again
		   on every retry. Never accepted unchecked. */
		set_action(out, MA_REJECT, "552", "5.3.4");
		mw_buf_printf(&out->text, "Message refused: %d header fields, more than the %llu this "
			      "server checks", m->nheaders, s->max_headers);
	} else if (!skip) {
		mw_dns_budget_start(m->e->dns, &budget, 0);
		const char *sender = mw_buf_str(&m->sender);
		const char *helo = mw_buf_str(&m->helo);
		ma_spf_check(m->e->spf, &budget, MA_SPF_MAILFROM, m->client_ip, helo, sender, &v->spf);
		if (s->spf_helo && helo[0] != '\0' && sender[0] != '\0') {
			v->helo_checked = 1;
			ma_spf_check(m->e->spf, &budget, MA_SPF_HELO, m->client_ip, helo, sender, &v->spf_helo);
		}
		t1 = now_ns();
		out->spf_ns = t1 - t0;
		t0 = t1;
		if (m->dkim != NULL && !m->dkim_nosig)
			v->nsigs = ma_dkim_msg_eom(m->dkim, &budget, v->sigs,
						   (int)(s->dkim_max_signatures < MAX_SIGS ? s->dkim_max_signatures : MAX_SIGS));
		t1 = now_ns();
		out->dkim_ns = t1 - t0;
		t0 = t1;
		if (v->nsigs == 0 && m->dkim_headers > 0) {
			/* libopendkim dropped signatures it could not parse at all:
			   still a signed message, RFC 8601 calls it neutral */
			v->nsigs = 1;
			v->sigs[0].result = MA_DKIM_NEUTRAL;
			snprintf(v->sigs[0].domain, sizeof(v->sigs[0].domain), "%s", m->first_sig_d);
			snprintf(v->sigs[0].reason, sizeof(v->sigs[0].reason), "signature could not be parsed");
		}
		check_from(m, v);
		if (!v->from_problem) {
			const char *fd = v->from.domain;
			if (dice < 0)
				dice = (int)arc4random_uniform(100);
			ma_dmarc_check(m->e->dmarc, &budget, (enum ma_dmarc_standard)s->dmarc_standard, fd,
				       v->spf.result, mw_buf_str(&v->spf.domain), v->sigs, v->nsigs, dice, &v->dmarc);
			v->dmarc_override = overridden(s, fd);
		}
		t1 = now_ns();
		out->dmarc_ns = t1 - t0;
		t0 = t1;
		struct mw_buf ar = MW_BUF_INIT;
		mw_buf_putc(&ar, ' ');
		build_ar(m, v, &ar);
		decide(m, v, out);

		/* DMARC aggregate reports: the evaluation recorded (report_store.h),
		   except that of a genuine report (RFC 9990 asks them to pass) */
		if (!v->from_problem && !(m->is_report && v->dmarc.result == MA_DMARC_PASS))
			ma_report_store_note(m->e->reports, m->client_ip, mw_buf_str(&m->sender), &v->spf, v->sigs,
					     v->nsigs, &v->dmarc, !s->dmarc_enforce || v->dmarc_override);

		add_change(out, 1, "Authentication-Results", mw_buf_str(&ar), 0);
		mw_buf_free(&ar);
	}
	outbound_eom(m, out);
	log_line(m, qid, v, skip, out, &out->log);
	if (mw_buf_len(&m->sign_note)) {
		mw_buf_putc(&out->log, ' ');
		mw_buf_append_printable(&out->log, m->sign_note.data, mw_buf_len(&m->sign_note), 2000);
	}
	out->total_ns = out->spf_ns + out->dkim_ns + out->dmarc_ns + (now_ns() - t0);
	count(v, skip, too_many, out, start);
	ma_spf_verdict_free(&v->spf);
	ma_spf_verdict_free(&v->spf_helo);
	free(v);
}

/* ------------------------------------------------------------ outbound */

/* Mail our users submit (SMTP AUTH) or trusted networks relay: signed,
   its sender checked, its X-Originating-IP handled. */
static int outbound(const struct ma_msg *m)
{
	return m->trusted || mw_buf_len(&m->auth_user) > 0;
}

static void outbound_header(struct ma_msg *m, const char *name, const char *value)
{
	if (!outbound(m))
		return;
	if (strcasecmp(name, "X-Originating-IP") == 0)
		m->origip++;
	if (m->sign == NULL && m->e->signer != NULL)
		m->sign = ma_sign_msg_new(m->e->signer, "sign");
	if (m->sign != NULL)
		ma_sign_msg_header(m->sign, name, value);
}

/* sender_login_check: the header From and the envelope sender must be
   addresses the login owns. 0, or -1 with the reply set. */
static int check_sender_login(struct ma_msg *m, struct ma_outcome *o)
{
	const char *login = mw_buf_str(&m->auth_user);
	struct mw_buf why = MW_BUF_INIT;
	const struct ma_sign_from *f = m->sign != NULL ? ma_sign_msg_from(m->sign) : NULL;
	int ok = 1;

	if (f == NULL || !f->ok) {
		mw_buf_puts(&why, "the message needs exactly one From address");
		ok = 0;
	} else {
		ok = ma_signer_login_allowed(m->e->signer, login, f->local, f->from.domain, &why);
	}
	const char *sender = mw_buf_str(&m->sender);
	const char *at = strrchr(sender, '@');
	if (ok && sender[0] != '\0') {
		char dom[MA_DOMAIN_MAX], local[MA_LOCAL_MAX];
		if (at == NULL || (size_t)(at - sender) >= sizeof(local) ||
		    ma_domain_normalize(at + 1, strlen(at + 1), dom, sizeof(dom)) < 0) {
			mw_buf_puts(&why, "envelope sender without a usable domain");
			ok = 0;
		} else {
			size_t n = (size_t)(at - sender);
			for (size_t i = 0; i < n; i++)
				local[i] = (char)(sender[i] >= 'A' && sender[i] <= 'Z' ? sender[i] - 'A' + 'a'
										 : sender[i]);
			local[n] = '\0';
			ok = ma_signer_login_allowed(m->e->signer, login, local, dom, &why);
		}
	}
	if (!ok) {
		set_action(o, MA_REJECT, "550", "5.7.1");
		mw_buf_puts(&o->text, "Sender address rejected: not owned by the authenticated user (");
		mw_buf_append_printable(&o->text, why.data, mw_buf_len(&why), 300);
		mw_buf_putc(&o->text, ')');
		mw_buf_puts(&m->sign_note, mw_buf_len(&m->sign_note) ? " " : "");
		mw_buf_puts(&m->sign_note, "sender_login_mismatch");
	}
	mw_buf_free(&why);
	return ok ? 0 : -1;
}

static void outbound_eom(struct ma_msg *m, struct ma_outcome *o)
{
	const struct ma_settings *s = &m->conf->s;
	int auth = mw_buf_len(&m->auth_user) > 0;

	if (!outbound(m) || o->action == MA_REJECT || o->action == MA_TEMPFAIL)
		return;
	if (auth && s->sender_login_check && check_sender_login(m, o) < 0)
		return;
	/* X-Originating-IP: an authenticated client's are forgeries (or
	   leaks), removed whatever the setting; a trusted relay's (webmail
	   adding its user's address) stay unless strip. */
	if (m->origip > 0 && (auth || s->originating_ip == MA_ORIGIP_STRIP)) {
		for (int i = m->origip; i >= 1; i--)
			add_change(o, 0, "X-Originating-IP", NULL, i);
	}
	if (auth && s->originating_ip == MA_ORIGIP_ADD) {
		char v[80];
		snprintf(v, sizeof(v), " [%s]", m->client_ip);
		add_change(o, 1, "X-Originating-IP", v, 0);
	}
	if (m->nsign > 0) {
		char *values[8];
		int n = ma_sign_msg_eom(m->sign, values, 8, &m->sign_note);
		for (int i = 0; i < n; i++) {
			add_change(o, 1, "DKIM-Signature", values[i], 0);
			free(values[i]);
		}
	}
}
