/*
 * report_store: where milter-auth records every inbound DMARC evaluation
 * for the aggregate reports (report_store_dir in milter-auth.conf), and
 * where milter-auth-report reads them back.
 *
 * An append-only text file per host and UTC day,
 *
 *   <report_store_dir>/dmarc-YYYYMMDD-<host>.tsv
 *
 * one line per evaluation (dmarc_report.h's format), written with one
 * write(2) on an O_APPEND descriptor, so lines from many milter threads
 * never interleave. The host in the name lets several MX hosts ship their
 * files into one directory (rsync, a shared file system) without clashing:
 * `milter-auth-report send` reads every host's file of a day and sends one
 * report per Policy Domain and day whose counts add up.
 *
 * Retention: files older than report_retention (default 30 days) are
 * deleted when the day changes and by every `milter-auth-report` run.
 * Privacy: the store keeps domains only, never local parts, unless
 * report_keep_localparts = yes. Only evaluations under a DMARC record
 * with a rua= tag are kept (nobody else asked for reports), and never
 * those of messages that are themselves aggregate reports (the Subject of
 * one, and a DMARC pass as RFC 9990 requires of reports: a spoof that
 * borrows the Subject is still recorded; the pipeline decides).
 *
 * With report_store = redis the same lines go into one Redis shared by
 * every MX host instead (report_redis.h), written by a thread of their own.
 *
 * A failure to write is logged (at most once a minute), counted in the
 * metrics, and never touches the mail. Thread-safe.
 */
#ifndef MA_REPORT_STORE_H
#define MA_REPORT_STORE_H

#include <time.h>

#include "buf.h"
#include "dmarc_report.h"
#include "madkim.h"
#include "madmarc.h"
#include "redis.h"
#include "spf.h"

struct ma_report_store;

/* Checks that dir is a writable directory; host "" means this host's name.
   NULL with err. */
struct ma_report_store *ma_report_store_open(const char *dir, const char *host, unsigned long long retention_s,
					     int keep_localparts, struct mw_buf *err);
/* report_store = redis (report_redis.h): the same evaluations, in the
   Redis of conf, whose strings must outlive the store. NULL with err. */
struct ma_report_store *ma_report_store_open_redis(const struct mw_redis_conf *conf, const char *host,
						   unsigned long long retention_s, int keep_localparts,
						   struct mw_buf *err);
/* Redis: writes what is still queued first (bounded by redis_timeout). */
void ma_report_store_close(struct ma_report_store *st);

/* Appends one evaluation. */
void ma_report_store_add(struct ma_report_store *st, const struct ma_report_eval *e);

/*
 * The pipeline's one call after a DMARC verdict: turns it into a struct
 * ma_report_eval and appends it when it is worth reporting (a record with
 * rua=, a pass or fail). not_enforced: dmarc_enforce = no or an override
 * domain kept the policy from being applied.
 */
void ma_report_store_note(struct ma_report_store *st, const char *client_ip, const char *sender,
			  const struct ma_spf_verdict *spf, const struct ma_dkim_sig *sigs, int nsigs,
			  const struct ma_dmarc_verdict *dmarc, int not_enforced);

/* Deletes the store files of days before now - retention_s; returns how
   many were deleted. */
int ma_report_store_expire(const char *dir, unsigned long long retention_s, time_t now);

/* Is name a store file? Its day (YYYYMMDD as a number) in *day. */
int ma_report_store_file_day(const char *name, unsigned *day);

/* YYYYMMDD of a time (UTC), and the start of that day. */
unsigned ma_report_day_of(time_t t);
time_t ma_report_day_start(unsigned day);

#endif
