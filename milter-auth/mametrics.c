#include "config.h"

#include "mametrics.h"
#include "metrics.h"
#include "pipeline.h"

#define NSPF (MA_SPF_PERMERROR + 1)
#define NDKIM (MA_DKIM_PERMERROR + 1)
#define NDMARC (MA_DMARC_PERMERROR + 1)
#define NACTION (MA_QUARANTINE + 1)

/* the pipeline at end of message: DNS answers dominate (cached: under a
   millisecond; a cold DMARC tree walk: tens to hundreds) */
static const unsigned long long bounds_us[] = { 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
						100000, 250000, 1000000, 5000000 };

static struct {
	atomic_ullong messages, skipped, too_many_headers;
	atomic_ullong spf[NSPF], dkim[NDKIM], dmarc[NDMARC], action[NACTION];
	atomic_ullong signatures, dns_errors, report_store_errors;
} n;

static struct mw_histogram latency = { .bounds_us = bounds_us, .nbounds = sizeof(bounds_us) / sizeof(bounds_us[0]) };

static void add(atomic_ullong *c, unsigned long long v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void ma_metrics_message(const struct ma_metrics_msg *m)
{
	add(&n.messages, 1);
	if (m->verdict == MA_M_SKIPPED)
		add(&n.skipped, 1);
	else if (m->verdict == MA_M_TOO_MANY_HEADERS)
		add(&n.too_many_headers, 1);
	if (m->spf >= 0 && m->spf < NSPF)
		add(&n.spf[m->spf], 1);
	for (int i = 0; i < m->nsigs; i++)
		if ((int)m->sigs[i].result >= 0 && (int)m->sigs[i].result < NDKIM)
			add(&n.dkim[m->sigs[i].result], 1);
	if (m->dmarc >= 0 && m->dmarc < NDMARC)
		add(&n.dmarc[m->dmarc], 1);
	if (m->action >= 0 && m->action < NACTION)
		add(&n.action[m->action], 1);
	if (m->signatures > 0)
		add(&n.signatures, (unsigned long long)m->signatures);
	if (m->dns_error)
		add(&n.dns_errors, 1);
	mw_histogram_observe(&latency, m->us);
}

void ma_metrics_report_store_error(unsigned long long v)
{
	add(&n.report_store_errors, v);
}

unsigned long long ma_metrics_report_store_errors(void)
{
	return atomic_load(&n.report_store_errors);
}

static void counter(struct mw_buf *out, const char *name, const char *help, atomic_ullong *c)
{
	mw_metrics_head(out, name, "counter", help);
	mw_buf_printf(out, "%s %llu\n", name, atomic_load(c));
}

void ma_metrics_text(struct mw_buf *out, void *unused)
{
	static const char *const actions[NACTION] = { "accept", "reject", "tempfail", "quarantine" };
	(void)unused;
	counter(out, "milter_auth_messages_total", "Messages that reached end of message.", &n.messages);
	mw_metrics_head(out, "milter_auth_unverified_total", "counter",
			"Messages not verified: outbound (authenticated or trusted), or too many headers (refused).");
	mw_buf_printf(out, "milter_auth_unverified_total{reason=\"outbound\"} %llu\n"
			   "milter_auth_unverified_total{reason=\"too_many_headers\"} %llu\n",
		      atomic_load(&n.skipped), atomic_load(&n.too_many_headers));
	mw_metrics_head(out, "milter_auth_spf_total", "counter", "SPF verdicts (MAIL FROM) by result.");
	for (int i = 0; i < NSPF; i++)
		mw_buf_printf(out, "milter_auth_spf_total{result=\"%s\"} %llu\n",
			      ma_spf_result_name((enum ma_spf_result)i), atomic_load(&n.spf[i]));
	mw_metrics_head(out, "milter_auth_dkim_total", "counter", "DKIM signatures verified, by result.");
	for (int i = 0; i < NDKIM; i++)
		mw_buf_printf(out, "milter_auth_dkim_total{result=\"%s\"} %llu\n",
			      ma_dkim_result_name((enum ma_dkim_result)i), atomic_load(&n.dkim[i]));
	mw_metrics_head(out, "milter_auth_dmarc_total", "counter", "DMARC verdicts by result.");
	for (int i = 0; i < NDMARC; i++)
		mw_buf_printf(out, "milter_auth_dmarc_total{result=\"%s\"} %llu\n",
			      ma_dmarc_result_name((enum ma_dmarc_result)i), atomic_load(&n.dmarc[i]));
	mw_metrics_head(out, "milter_auth_actions_total", "counter", "Messages by action.");
	for (int i = 0; i < NACTION; i++)
		mw_buf_printf(out, "milter_auth_actions_total{action=\"%s\"} %llu\n", actions[i],
			      atomic_load(&n.action[i]));
	counter(out, "milter_auth_signatures_total", "DKIM signatures made.", &n.signatures);
	counter(out, "milter_auth_dns_errors_total", "Messages with a DNS failure in a verdict (temperror).",
		&n.dns_errors);
	counter(out, "milter_auth_report_store_errors_total",
		"DMARC evaluations the report store could not record.", &n.report_store_errors);
	mw_metrics_histogram(out, "milter_auth_latency_seconds", "Time in the pipeline at end of message.",
			     &latency);
}
