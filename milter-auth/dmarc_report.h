/*
 * dmarc_report: DMARC aggregate reports (RFC 9990), the pure part: no I/O.
 *
 *   - struct ma_report_eval: one inbound DMARC evaluation as the store
 *     keeps it, written as one line of text (ma_report_eval_format) and
 *     read back (ma_report_eval_parse: the store is a file others could
 *     write, so the parser is length-checked and fuzzed,
 *     tests/fuzz/fuzz_milter_auth_report.c);
 *   - the report of one Policy Domain and period: the evaluations
 *     aggregated into rows (one per source IP, identifiers and results,
 *     with a count) and written as RFC 9990 XML (ma_report_xml);
 *   - rua= URIs parsed (mailto: only, "!size" limits kept) and the
 *     external-destination rule of RFC 9990 section 4 decided
 *     (ma_report_rua_is_external);
 *   - ma_report_subject_is_report: a message that is itself an aggregate
 *     report is not recorded (no reports about reports).
 *
 * Memory: everything is in the caller's structs and buffers; strings in
 * struct ma_report_eval are fixed-size arrays (values that do not fit are
 * refused by the parser, never truncated silently).
 */
#ifndef MA_DMARC_REPORT_H
#define MA_DMARC_REPORT_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "dmarc_record.h"

#define MA_REPORT_MAX_DKIM 8     /* signatures kept per evaluation */
#define MA_REPORT_LINE_MAX 8192  /* one stored line, at most */

struct ma_report_dkim {
	char domain[MA_DOMAIN_MAX];
	char selector[64];
	char result[16];              /* RFC 8601 2.7.1 word */
};

struct ma_report_eval {
	long long ts;                 /* seconds since the epoch */
	char host[64];                /* which milter-auth host recorded it */
	char source_ip[64];
	char header_from[MA_DOMAIN_MAX];
	char envelope_from[320];      /* domain, or the address with report_keep_localparts */
	char policy_domain[MA_DOMAIN_MAX];
	char discovery[12];           /* "treewalk" or "psl" */
	char p[12], sp[12], np[12];   /* "none" "quarantine" "reject", "" when not published */
	char adkim, aspf, testing;    /* 'r'/'s', 'r'/'s', 'y'/'n' */
	char disposition[12];         /* RFC 9990 ActionDispositionType */
	char dkim_aligned[6], spf_aligned[6]; /* "pass" or "fail" */
	char reason[20];              /* PolicyOverrideType, or "" */
	char reason_comment[64];
	char spf_domain[MA_DOMAIN_MAX];
	char spf_result[12];
	int ndkim;
	struct ma_report_dkim dkim[MA_REPORT_MAX_DKIM];
	char rua[MA_DMARC_RUA_MAX];
};

/* Appends the line (with its "\n") to out. */
void ma_report_eval_format(const struct ma_report_eval *e, struct mw_buf *out);
/* Parses one line (without or with its "\n"); 0, or -1 with why in err. */
int ma_report_eval_parse(const char *line, size_t len, struct ma_report_eval *e, struct mw_buf *err);

/* Who is reporting (report_metadata). */
struct ma_report_meta {
	const char *org_name;
	const char *email;
	const char *submitter;        /* our domain: file name and Subject */
	const char *report_id;
	long long begin, end;
	const char *generator;
};

/*
 * The XML of one report: evals (n of them, all of one Policy Domain and
 * period) aggregated into records. policy_published is taken from the
 * latest evaluation (RFC 9990 2.1: "the final configuration observed").
 * Returns the number of records, and the sum of their counts in *messages.
 */
int ma_report_xml(const struct ma_report_meta *meta, const struct ma_report_eval *const *evals, size_t n,
		  struct mw_buf *out, unsigned long long *messages);

/* The attachment's file name (RFC 9990 2.5.2.2, ".xml.gz"). */
void ma_report_filename(const struct ma_report_meta *meta, const char *policy_domain, struct mw_buf *out);

#define MA_REPORT_MAX_RUA 8
struct ma_rua_uri {
	char mailbox[320];            /* local@domain of a mailto: URI */
	char domain[MA_DOMAIN_MAX];   /* its domain, lower case */
	unsigned long long max_size;  /* from "!10m"; 0 when none */
};

/* The mailto: URIs of a rua= value (others are skipped: we send by mail
   only), at most max. Returns how many. */
int ma_report_rua_parse(const char *rua, struct ma_rua_uri *out, int max);

/* RFC 9990 4: is the destination outside the policy's Organizational
   Domain, so it must be verified? org_of_policy and org_of_dest are the
   Organizational Domains as the tree walk (or the PSL) found them. */
int ma_report_rua_is_external(const char *org_of_policy, const char *org_of_dest);

/* The name to look up for that verification, "<policy>._report._dmarc.<dest>";
   -1 when it exceeds DNS limits (then the URI is not used). */
int ma_report_verify_name(const char *policy_domain, const char *dest_domain, char *out, size_t outlen);

/* Does this Subject field value name an aggregate report
   ("Report Domain: ... Submitter: ...", RFC 9990 2.5.2.2 and RFC 7489)? */
int ma_report_subject_is_report(const char *value);

/* The store's field encoding: a TAB, then s with bytes outside '!'..'~'
   and '%' written %XX; and back: [s, e) decoded into out (outlen), -1 if
   malformed, too long or holding a NUL. */
void ma_report_tsv_put(struct mw_buf *out, const char *s);
int ma_report_tsv_get(const char *s, const char *e, char *out, size_t outlen);

/* XML text with &<>"' escaped and bytes outside printable ASCII dropped. */
void ma_report_xml_escape(struct mw_buf *out, const char *s);

#endif
