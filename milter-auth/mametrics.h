/*
 * mametrics: milter-auth's counters and latency histogram, and their
 * Prometheus text (metrics_listen, off by default; common/metrics.h serves
 * it over HTTP).
 *
 * One set per process, kept across SIGHUP reloads (Prometheus counters
 * never go back). libmilter runs callbacks on many threads: every counter
 * is a C11 atomic, added to with relaxed ordering (they are statistics,
 * not synchronisation). No memory is owned.
 */
#ifndef MA_METRICS_H
#define MA_METRICS_H

#include <stdatomic.h>

#include "buf.h"
#include "madkim.h"
#include "madmarc.h"
#include "spf.h"

enum ma_metric_verdict { MA_M_VERIFIED, MA_M_SKIPPED, MA_M_TOO_MANY_HEADERS };

/* What one message's end of message adds up. */
struct ma_metrics_msg {
	enum ma_metric_verdict verdict;
	int spf;                 /* enum ma_spf_result, -1: not checked */
	int dmarc;               /* enum ma_dmarc_result, -1: not evaluated (From unusable: permerror) */
	const struct ma_dkim_sig *sigs;
	int nsigs;
	int action;              /* enum ma_action */
	int signatures;          /* DKIM-Signature headers added */
	int dns_error;           /* a verdict was a temperror */
	unsigned long long us;   /* time in the pipeline at end of message */
};

void ma_metrics_message(const struct ma_metrics_msg *m);
/* An evaluation the DMARC report store could not record (report_store.h). */
void ma_metrics_report_store_error(unsigned long long n);
unsigned long long ma_metrics_report_store_errors(void);
/* The Prometheus text of all of them, appended to out. */
void ma_metrics_text(struct mw_buf *out, void *unused);

#endif
