/*
 * milter-auth-report: DMARC aggregate reports (RFC 9990) from the
 * evaluations milter-auth recorded in report_store_dir.
 *
 *   milter-auth-report [-c FILE] send [--dry-run DIR] [--day YYYYMMDD] [--store DIR]...
 *   milter-auth-report [-c FILE] ingest [--maildir DIR]
 *   milter-auth-report [-c FILE] summary [--domain D] [--since YYYYMMDD|Nd] [--json] [--no-ptr]
 *
 * send: for every complete UTC day not yet sent (or the one --day names),
 * one report per Policy Domain, from the store files of every host
 * (dmarc-DAY-HOST.tsv in report_store_dir and each --store DIR: the files
 * of several MX hosts shipped to one place), as RFC 9990 XML, gzipped,
 * mailed through report_sendmail to each mailto: rua address whose size
 * limit it fits and, when the address is outside the policy's
 * Organizational Domain, whose <policy>._report._dmarc.<dest> TXT record
 * authorizes it (RFC 9990 section 4). --dry-run DIR writes the .xml.gz
 * files into DIR and prints where they would go, sending nothing.
 *
 * ingest: the reports other receivers send to our rua= address, from a
 * message on stdin (a Postfix pipe transport) or every message in a
 * Maildir's new/ (moved to cur/ once read), stored in report_received_dir
 * (rua-DAY.tsv, one line per record; a report seen before, same org_name
 * and report_id, is skipped). report_ingest.h says what is refused.
 * summary: per source IP of the received reports, its PTR name, messages,
 * and how DMARC, SPF and DKIM fared, as a table or --json.
 *
 * Exit status: 0; 1 when a report could not be handed over (send: it is
 * tried again next run) or was refused (ingest: 65, EX_DATAERR, for the
 * pipe transport: the message bounces with the reason); 2 for usage or
 * configuration errors.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <hiredis/hiredis.h>

#include "cli.h"
#include "dmarc_report.h"
#include "log.h"
#include "maconf.h"
#include "madmarc.h"
#include "report_ingest.h"
#include "report_redis.h"
#include "report_store.h"
#include "sock.h"
#include "strnum.h"

#define DEFAULT_CONF SYSCONFDIR "/mailward/milter-auth.conf"
#define MAX_STORES 16
/* about 4.5 KB each in memory while a day is reported: see the man page */
#define MAX_EVALS_PER_DAY 1000000

_Noreturn static void usage(void)
{
	fprintf(stderr, "usage: milter-auth-report [-c FILE] send [--dry-run DIR] [--day YYYYMMDD] [--store DIR]...\n"
			"       milter-auth-report [-c FILE] ingest [--maildir DIR]\n"
			"       milter-auth-report [-c FILE] summary [--domain D] [--since YYYYMMDD|Nd] [--json] [--no-ptr]\n");
	exit(2);
}

struct evals {
	struct ma_report_eval **v;
	size_t n, cap;
};

static void evals_add(struct evals *a, struct ma_report_eval *e)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 256;
		struct ma_report_eval **nv = realloc(a->v, a->cap * sizeof(*nv));
		if (nv == NULL)
			mw_msg_fatal("out of memory");
		a->v = nv;
	}
	a->v[a->n++] = e;
}

static void evals_free(struct evals *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* One store line into a; a malformed one is counted, not fatal. */
static void add_line(struct evals *a, const char *line, size_t len, const char *where, unsigned long lineno,
		     unsigned long *bad)
{
	struct mw_buf err = MW_BUF_INIT;
	struct ma_report_eval *e = mw_xcalloc(1, sizeof(*e));
	if (a->n >= MAX_EVALS_PER_DAY || ma_report_eval_parse(line, len, e, &err) < 0) {
		if ((*bad)++ < 10)
			mw_msg_warn("%s:%lu: skipped: %s", where, lineno,
				    a->n >= MAX_EVALS_PER_DAY ? "too many evaluations" : mw_buf_str(&err));
		free(e);
		mw_buf_free(&err);
		return;
	}
	/* domains compare case-insensitively */
	for (char *p = e->policy_domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	evals_add(a, e);
	mw_buf_free(&err);
}

/* Reads one store file's lines into a. */
static void read_store_file(const char *path, struct evals *a, unsigned long *bad)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		mw_msg_warn("%s: %s", path, strerror(errno));
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	while ((len = getline(&line, &cap, f)) > 0)
		add_line(a, line, (size_t)len, path, ++lineno, bad);
	free(line);
	fclose(f);
}

/* report_store = redis: the lines of one day's list */
struct redis_lines {
	struct evals *a;
	unsigned long *bad;
	unsigned long n;
	char where[64];
};

static void redis_line(void *ctx, const char *line, size_t len)
{
	struct redis_lines *r = ctx;
	add_line(r->a, line, len, r->where, ++r->n, r->bad);
}

/* Does key exist? 1, 0, or -1 with err. */
static int redis_exists(struct ma_report_redis_conn *rc, const char *key, struct mw_buf *err)
{
	const char *argv[] = { "EXISTS", key };
	redisReply *r = ma_report_redis_cmd(rc, 2, argv, err);
	if (r == NULL)
		return -1;
	int yes = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return yes;
}

static int cmp_domain(const void *x, const void *y)
{
	const struct ma_report_eval *a = *(const struct ma_report_eval *const *)x;
	const struct ma_report_eval *b = *(const struct ma_report_eval *const *)y;
	int c = strcmp(a->policy_domain, b->policy_domain);
	return c != 0 ? c : (a->ts < b->ts ? -1 : a->ts > b->ts);
}

static int gzip_buf(const char *data, size_t len, struct mw_buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	uLong bound = deflateBound(&z, (uLong)len) + 32;
	unsigned char *buf = malloc(bound);
	if (buf == NULL) {
		deflateEnd(&z);
		return -1;
	}
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)bound;
	int rc = deflate(&z, Z_FINISH);
	size_t n = bound - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	rc = mw_buf_append(out, buf, n);
	free(buf);
	return rc < 0 ? -1 : 0;
}

static void base64_lines(const unsigned char *p, size_t n, struct mw_buf *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t col = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		mw_buf_putc(out, tab[(v >> 18) & 63]);
		mw_buf_putc(out, tab[(v >> 12) & 63]);
		mw_buf_putc(out, i + 1 < n ? tab[(v >> 6) & 63] : '=');
		mw_buf_putc(out, i + 2 < n ? tab[v & 63] : '=');
		if ((col += 4) >= 76) {
			mw_buf_puts(out, "\n");
			col = 0;
		}
	}
	if (col)
		mw_buf_puts(out, "\n");
}

/* The Submitter: the domain of report_email (our domain). */
static const char *submitter_of(const struct ma_settings *s)
{
	const char *at = strrchr(s->report_email, '@');
	return at != NULL ? at + 1 : s->authserv_id;
}

static void build_message(const struct ma_settings *s, const struct ma_report_meta *meta, const char *policy_domain,
			  const char *to, const char *filename, const struct mw_buf *gz, struct mw_buf *msg)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	mw_buf_printf(msg, "From: %s\nTo: %s\nDate: %s\n", s->report_email, to, date);
	mw_buf_printf(msg, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\n", policy_domain,
		      meta->submitter, meta->report_id);
	mw_buf_printf(msg, "Message-ID: <%s@%s>\n", meta->report_id, meta->submitter);
	mw_buf_puts(msg, "Auto-Submitted: auto-generated\nMIME-Version: 1.0\n"
			 "Content-Type: multipart/mixed; boundary=\"mailward-dmarc-report\"\n\n"
			 "--mailward-dmarc-report\nContent-Type: text/plain; charset=us-ascii\n\n");
	mw_buf_printf(msg, "DMARC aggregate report (RFC 9990) for %s from %s, %lld to %lld.\n\n",
		      policy_domain, meta->submitter, meta->begin, meta->end);
	mw_buf_printf(msg, "--mailward-dmarc-report\nContent-Type: application/gzip; name=\"%s\"\n"
			   "Content-Disposition: attachment; filename=\"%s\"\n"
			   "Content-Transfer-Encoding: base64\n\n", filename, filename);
	base64_lines((const unsigned char *)mw_buf_str(gz), mw_buf_len(gz), msg);
	mw_buf_puts(msg, "--mailward-dmarc-report--\n");
}

static int run_sendmail(const struct ma_settings *s, const char *rcpt, const struct mw_buf *msg)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execl(s->report_sendmail, s->report_sendmail, "-i", "-f", s->report_email, "--", rcpt, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	const char *p = mw_buf_str(msg);
	size_t left = mw_buf_len(msg);
	int ok = mw_sock_write_all(fds[1], p, left) == 0;
	close(fds[1]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/*
 * RFC 9990 4: a destination outside the policy's Organizational Domain
 * must publish "v=DMARC1" at <policy>._report._dmarc.<dest>. 1 authorized,
 * 0 not, -1 temporary failure (try again next run).
 */
static int destination_ok(struct ma_dmarc *dm, struct mw_dns *dns, const char *policy_domain,
			  const struct ma_rua_uri *u, const char **why)
{
	char org_p[MA_DOMAIN_MAX], org_d[MA_DOMAIN_MAX], name[300];
	ma_dmarc_org_domain(dm, policy_domain, org_p, sizeof(org_p));
	ma_dmarc_org_domain(dm, u->domain, org_d, sizeof(org_d));
	if (!ma_report_rua_is_external(org_p, org_d))
		return 1;
	if (ma_report_verify_name(policy_domain, u->domain, name, sizeof(name)) < 0) {
		*why = "verification name too long";
		return 0;
	}
	struct mw_dns_result r;
	enum mw_dns_status st = mw_dns_lookup(dns, name, MW_DNS_T_TXT, NULL, &r);
	int ok = 0;
	if (st == MW_DNS_OK) {
		for (int i = 0; i < r.count && !ok; i++) {
			struct mw_buf txt = MW_BUF_INIT;
			struct ma_dmarc_record rec;
			if (mw_dns_result_txt(&r, i, &txt) == 0 &&
			    ma_dmarc_record_parse(mw_buf_str(&txt), mw_buf_len(&txt), &rec) != MA_DMARC_REC_NOT_DMARC)
				ok = 1;
			mw_buf_free(&txt);
		}
		*why = ok ? "" : "no v=DMARC1 record at the verification name";
	} else if (st == MW_DNS_NXDOMAIN || st == MW_DNS_NODATA || st == MW_DNS_BADNAME) {
		*why = "external destination not authorized (no _report._dmarc record)";
	} else {
		*why = "DNS failure verifying the external destination";
		ok = -1;
	}
	mw_dns_result_free(&r);
	return ok;
}

static void report_id_of(const char *submitter, const char *domain, unsigned day, char *out, size_t outlen)
{
	/* the same for the same domain and day, so a re-send is recognised
	   (RFC 9990 2.5.2.2 asks for the same file name) */
	unsigned long long h = 1469598103934665603ULL;
	for (const char *p = submitter; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ '!') * 1099511628211ULL;
	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	snprintf(out, outlen, "%08u%016llx", day, h);
}

struct send_opts {
	const char *dry_run;
	unsigned day;   /* 0: every complete day not yet sent */
	const char *stores[MAX_STORES];
	int nstores;
};

/* One domain's report for one day: 0 done, -1 to try again next run. */
static int send_one(const struct ma_settings *s, struct ma_dmarc *dm, struct mw_dns *dns,
		    const struct send_opts *o, unsigned day, struct ma_report_eval **ev, size_t n)
{
	const char *domain = ev[0]->policy_domain;
	char rid[64];
	struct ma_report_meta meta = {
		.org_name = s->report_org_name[0] != '\0' ? s->report_org_name : s->authserv_id,
		.email = s->report_email,
		.submitter = submitter_of(s),
		.report_id = rid,
		.begin = (long long)ma_report_day_start(day),
		.end = (long long)ma_report_day_start(day) + 86399,
		.generator = "mailward milter-auth-report",
	};
	report_id_of(meta.submitter, domain, day, rid, sizeof(rid));
	struct mw_buf xml = MW_BUF_INIT, gz = MW_BUF_INIT, fname = MW_BUF_INIT;
	unsigned long long messages;
	int records = ma_report_xml(&meta, (const struct ma_report_eval *const *)ev, n, &xml, &messages);
	int rc = 0;
	if (records < 0 || gzip_buf(mw_buf_str(&xml), mw_buf_len(&xml), &gz) < 0) {
		mw_msg_error("report for %s (%u): cannot build it", domain, day);
		rc = -1;
		goto out;
	}
	ma_report_filename(&meta, domain, &fname);
	mw_msg_info("report domain=%s day=%u records=%d messages=%llu size=%zu file=%s", domain, day, records,
		    messages, mw_buf_len(&gz), mw_buf_str(&fname));

	/* rua= of the latest evaluation: the policy as last seen */
	const struct ma_report_eval *last = ev[0];
	for (size_t i = 1; i < n; i++)
		if (ev[i]->ts >= last->ts)
			last = ev[i];
	struct ma_rua_uri uris[MA_REPORT_MAX_RUA];
	int nuris = ma_report_rua_parse(last->rua, uris, MA_REPORT_MAX_RUA);
	if (nuris == 0)
		mw_msg_warn("report for %s: no mailto: address in rua=%s", domain, last->rua);

	if (o->dry_run != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", o->dry_run, mw_buf_str(&fname));
		FILE *f = fopen(path, "w");
		if (f == NULL || fwrite(mw_buf_str(&gz), 1, mw_buf_len(&gz), f) != mw_buf_len(&gz)) {
			mw_msg_error("%s: %s", path, strerror(errno));
			rc = -1;
		}
		if (f != NULL && fclose(f) != 0)
			rc = -1;
		printf("report %s domain=%s records=%d messages=%llu\n", path, domain, records, messages);
	}
	for (int i = 0; i < nuris; i++) {
		const char *why = "";
		struct mw_buf msg = MW_BUF_INIT;
		build_message(s, &meta, domain, uris[i].mailbox, mw_buf_str(&fname), &gz, &msg);
		int ok = destination_ok(dm, dns, domain, &uris[i], &why);
		if (ok > 0 && mw_buf_failed(&msg)) {
			ok = 0;
			why = "too large to build";
		} else if (ok > 0 && uris[i].max_size > 0 && mw_buf_len(&msg) > uris[i].max_size) {
			ok = 0;
			why = "larger than the rua= size limit";
		} else if (ok > 0 && mw_buf_len(&msg) > s->report_max_size) {
			ok = 0;
			why = "larger than report_max_size";
		}
		if (ok <= 0) {
			mw_msg_warn("report for %s: not sent to %s: %s", domain, uris[i].mailbox, why);
			if (o->dry_run != NULL)
				printf("skip %s %s: %s\n", domain, uris[i].mailbox, why);
			if (ok < 0)
				rc = -1;
		} else if (o->dry_run != NULL) {
			printf("send %s %s size=%zu\n", domain, uris[i].mailbox, mw_buf_len(&msg));
		} else if (run_sendmail(s, uris[i].mailbox, &msg) < 0) {
			mw_msg_error("report for %s: %s failed for %s", domain, s->report_sendmail, uris[i].mailbox);
			rc = -1;
		} else {
			mw_msg_info("report for %s sent to %s", domain, uris[i].mailbox);
		}
		mw_buf_free(&msg);
	}
out:
	mw_buf_free(&xml);
	mw_buf_free(&gz);
	mw_buf_free(&fname);
	return rc;
}

static void sort_days(unsigned *days, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && days[j - 1] > days[j]; j--) {
			unsigned t = days[j];
			days[j] = days[j - 1];
			days[j - 1] = t;
		}
}

/* The days that have store files, in ascending order (at most max). */
static int store_days(const struct send_opts *o, unsigned *days, int max)
{
	int n = 0;
	for (int i = 0; i < o->nstores; i++) {
		DIR *d = opendir(o->stores[i]);
		if (d == NULL)
			continue;
		for (struct dirent *de; (de = readdir(d)) != NULL;) {
			unsigned day;
			int seen = 0;
			if (!ma_report_store_file_day(de->d_name, &day))
				continue;
			for (int j = 0; j < n; j++)
				seen |= days[j] == day;
			if (!seen && n < max)
				days[n++] = day;
		}
		closedir(d);
	}
	sort_days(days, n);
	return n;
}

/* report_store = redis: the days of the retention window with a list,
   added to days (kept unique and ascending). */
static int redis_days(struct ma_report_redis_conn *rc, const struct ma_settings *s, time_t now, unsigned *days, int n,
		      int max, struct mw_buf *err)
{
	for (time_t t = now - (time_t)(s->report_retention_ms / 1000); t <= now + 86400 && n < max; t += 86400) {
		unsigned day = ma_report_day_of(t), seen = 0;
		char key[64];
		if (t > now && day != ma_report_day_of(now))
			break;
		ma_report_redis_eval_key(day, key, sizeof(key));
		int e = redis_exists(rc, key, err);
		if (e < 0)
			return -1;
		for (int j = 0; j < n; j++)
			seen |= days[j] == day;
		if (e && !seen)
			days[n++] = day;
	}
	sort_days(days, n);
	return n;
}

static int cmd_send(struct ma_conf *c, struct send_opts *o)
{
	const struct ma_settings *s = &c->s;
	struct mw_buf err = MW_BUF_INIT;
	int redis = s->report_store == MA_REPORT_STORE_REDIS;
	if (!redis && s->report_store_dir[0] == '\0' && o->nstores == 0) {
		fprintf(stderr, "milter-auth-report: report_store_dir is not set in the configuration\n");
		return 2;
	}
	if (s->report_email[0] == '\0' || strchr(s->report_email, '@') == NULL) {
		fprintf(stderr, "milter-auth-report: report_email (the address reports come from) is not set\n");
		return 2;
	}
	if (!redis && s->report_store_dir[0] != '\0' && o->nstores < MAX_STORES)
		o->stores[o->nstores++] = s->report_store_dir;
	struct ma_report_redis_conn *rconn = NULL;
	if (redis && (rconn = ma_report_redis_conn_open(&s->redis, &err)) == NULL) {
		/* the evaluations stay in Redis: the next run sends them */
		fprintf(stderr, "milter-auth-report: report_store = redis: %s\n", mw_buf_str(&err));
		mw_buf_free(&err);
		return 1;
	}
	struct mw_dns *dns = mw_dns_new(&s->dns, &err);
	struct ma_dmarc *dm = dns != NULL ? ma_dmarc_new(dns, s->public_suffix_list, &err) : NULL;
	if (dm == NULL) {
		fprintf(stderr, "milter-auth-report: %s\n", mw_buf_str(&err));
		return 2;
	}
	time_t now = time(NULL);
	for (int i = 0; i < o->nstores; i++)
		ma_report_store_expire(o->stores[i], s->report_retention_ms / 1000, now);

	unsigned days[400];
	int ndays = o->day ? 1 : store_days(o, days, 400);
	if (o->day)
		days[0] = o->day;
	else if (rconn != NULL && (ndays = redis_days(rconn, s, now, days, ndays, 400, &err)) < 0) {
		fprintf(stderr, "milter-auth-report: report_store = redis: %s\n", mw_buf_str(&err));
		ma_report_redis_conn_close(rconn);
		ma_dmarc_free(dm);
		mw_dns_free(dns);
		mw_buf_free(&err);
		return 1;
	}
	unsigned today = ma_report_day_of(now);
	int rc = 0;
	for (int di = 0; di < ndays; di++) {
		unsigned day = days[di];
		char marker[4096] = "", sent_key[64];
		if (rconn != NULL)
			ma_report_redis_sent_key(day, sent_key, sizeof(sent_key));
		else
			snprintf(marker, sizeof(marker), "%s/sent-%08u", o->stores[0], day);
		if (!o->day && (day >= today || (rconn != NULL ? redis_exists(rconn, sent_key, &err) != 0
							     : access(marker, F_OK) == 0)))
			continue; /* the day is not over, or was sent (or Redis cannot say) */
		struct evals a = { 0 };
		unsigned long bad = 0;
		if (rconn != NULL) {
			struct redis_lines rl = { &a, &bad, 0, "" };
			snprintf(rl.where, sizeof(rl.where), "redis day %08u", day);
			if (ma_report_redis_read_day(rconn, day, redis_line, &rl, &err) < 0) {
				/* nothing sent for the day: the next run tries again */
				mw_msg_error("report_store = redis: day %u: %s", day, mw_buf_str(&err));
				mw_buf_reset(&err);
				evals_free(&a);
				rc = 1;
				continue;
			}
		}
		for (int i = 0; i < o->nstores; i++) {
			DIR *d = opendir(o->stores[i]);
			if (d == NULL) {
				mw_msg_warn("%s: %s", o->stores[i], strerror(errno));
				continue;
			}
			for (struct dirent *de; (de = readdir(d)) != NULL;) {
				unsigned fday;
				char path[4096];
				if (!ma_report_store_file_day(de->d_name, &fday) || fday != day)
					continue;
				snprintf(path, sizeof(path), "%s/%s", o->stores[i], de->d_name);
				read_store_file(path, &a, &bad);
			}
			closedir(d);
		}
		if (bad > 0)
			mw_msg_warn("day %u: %lu malformed store lines skipped", day, bad);
		if (a.n > 0)
			qsort(a.v, a.n, sizeof(*a.v), cmp_domain);
		int day_rc = 0;
		for (size_t i = 0; i < a.n;) {
			size_t j = i;
			while (j < a.n && strcmp(a.v[j]->policy_domain, a.v[i]->policy_domain) == 0)
				j++;
			if (send_one(s, dm, dns, o, day, a.v + i, j - i) < 0)
				day_rc = 1;
			i = j;
		}
		evals_free(&a);
		if (day_rc == 0 && o->dry_run == NULL && !o->day && rconn != NULL) {
			/* the day's mark expires with the day's evaluations */
			char ttl[32];
			snprintf(ttl, sizeof(ttl), "%llu", s->report_retention_ms / 1000 + 86400);
			const char *argv[] = { "SET", sent_key, "1", "EX", ttl };
			redisReply *r = ma_report_redis_cmd(rconn, 5, argv, &err);
			if (r == NULL) {
				mw_msg_error("report_store = redis: cannot mark day %u sent: %s", day, mw_buf_str(&err));
				mw_buf_reset(&err);
			} else {
				freeReplyObject(r);
			}
		} else if (day_rc == 0 && o->dry_run == NULL && !o->day) {
			int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
			if (fd >= 0)
				close(fd);
		}
		rc |= day_rc;
	}
	if (rconn != NULL)
		ma_report_redis_conn_close(rconn);
	ma_dmarc_free(dm);
	mw_dns_free(dns);
	mw_buf_free(&err);
	return rc;
}

/* ------------------------------------------------------------ ingest */

#define RECEIVED_TAG "mwrr1"
#define RECEIVED_FIELDS 15
#define EX_DATAERR_ 65

static int received_file_day(const char *name, unsigned *day)
{
	size_t len = strlen(name);
	if (len != 16 || strncmp(name, "rua-", 4) != 0 || strcmp(name + 12, ".tsv") != 0)
		return 0;
	unsigned d = 0;
	for (int i = 4; i < 12; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		d = d * 10 + (unsigned)(name[i] - '0');
	}
	*day = d;
	return 1;
}

static void received_expire(const char *dir, unsigned long long retention_s)
{
	unsigned oldest = ma_report_day_of(time(NULL) - (time_t)retention_s);
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		unsigned day;
		if (received_file_day(de->d_name, &day) && day < oldest)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static void row_format(const struct ma_rua_row *r, long long now, struct mw_buf *out)
{
	char n1[32], n2[32], n3[32], n4[32];
	snprintf(n1, sizeof(n1), "%lld", now);
	snprintf(n2, sizeof(n2), "%lld", r->begin);
	snprintf(n3, sizeof(n3), "%lld", r->end);
	snprintf(n4, sizeof(n4), "%llu", r->count);
	mw_buf_puts(out, RECEIVED_TAG);
	const char *f[] = { n1, r->format, r->org_name, r->report_id, n2, n3, r->policy_domain, r->source_ip, n4,
			    r->disposition, r->dkim_aligned, r->spf_aligned, r->header_from, r->dkim, r->spf };
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		ma_report_tsv_put(out, f[i]);
	mw_buf_putc(out, '\n');
}

/* 0, or -1 for a line that is not ours (skipped). */
static int row_parse(const char *line, size_t len, struct ma_rua_row *r, long long *received)
{
	const char *st[RECEIVED_FIELDS + 1], *en[RECEIVED_FIELDS + 1];
	int n = 0;
	memset(r, 0, sizeof(*r));
	if (len > 0 && line[len - 1] == '\n')
		len--;
	for (const char *p = line, *stop = line + len; p <= stop && n <= RECEIVED_FIELDS;) {
		const char *tab = memchr(p, '\t', (size_t)(stop - p));
		st[n] = p;
		en[n] = tab != NULL ? tab : stop;
		n++;
		p = en[n - 1] + 1;
		if (tab == NULL)
			break;
	}
	if (n != RECEIVED_FIELDS + 1 || en[0] - st[0] != 5 || memcmp(st[0], RECEIVED_TAG, 5) != 0)
		return -1;
	char n1[32], n2[32], n3[32], n4[32];
	struct {
		char *d;
		size_t l;
	} f[RECEIVED_FIELDS] = {
		{ n1, sizeof(n1) }, { r->format, sizeof(r->format) }, { r->org_name, sizeof(r->org_name) },
		{ r->report_id, sizeof(r->report_id) }, { n2, sizeof(n2) }, { n3, sizeof(n3) },
		{ r->policy_domain, sizeof(r->policy_domain) }, { r->source_ip, sizeof(r->source_ip) },
		{ n4, sizeof(n4) }, { r->disposition, sizeof(r->disposition) },
		{ r->dkim_aligned, sizeof(r->dkim_aligned) }, { r->spf_aligned, sizeof(r->spf_aligned) },
		{ r->header_from, sizeof(r->header_from) }, { r->dkim, sizeof(r->dkim) }, { r->spf, sizeof(r->spf) },
	};
	for (int i = 0; i < RECEIVED_FIELDS; i++)
		if (ma_report_tsv_get(st[i + 1], en[i + 1], f[i].d, f[i].l) < 0)
			return -1;
	unsigned long long a, b, c, d;
	if (mw_parse_uint(n1, 1ULL << 40, &a) < 0 || mw_parse_uint(n2, 1ULL << 40, &b) < 0 ||
	    mw_parse_uint(n3, 1ULL << 40, &c) < 0 || mw_parse_uint(n4, 1ULL << 40, &d) < 0)
		return -1;
	*received = (long long)a;
	r->begin = (long long)b;
	r->end = (long long)c;
	r->count = d;
	return 0;
}

typedef void received_fn(void *ctx, const struct ma_rua_row *r);

static void received_each(const char *dir, received_fn *fn, void *ctx)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		unsigned day;
		char path[4096];
		if (!received_file_day(de->d_name, &day))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		while ((len = getline(&line, &cap, f)) > 0) {
			struct ma_rua_row r;
			long long rec;
			if (row_parse(line, (size_t)len, &r, &rec) == 0)
				fn(ctx, &r);
		}
		free(line);
		fclose(f);
	}
	closedir(d);
}

struct ingest_ctx {
	struct mw_buf lines;
	char org[256], id[256]; /* of the report being looked for */
	int seen;
	long long now;
};

static void collect_row(void *ctx, const struct ma_rua_row *r)
{
	struct ingest_ctx *c = ctx;
	row_format(r, c->now, &c->lines);
}

static void find_dup(void *ctx, const struct ma_rua_row *r)
{
	struct ingest_ctx *c = ctx;
	if (strcmp(r->org_name, c->org) == 0 && strcmp(r->report_id, c->id) == 0)
		c->seen = 1;
}

/* One message: 0 stored (or a duplicate), -1 refused (reason logged). */
static int ingest_one(const struct ma_settings *s, const char *what, const char *msg, size_t len)
{
	struct ingest_ctx c = { .now = (long long)time(NULL) };
	struct mw_buf err = MW_BUF_INIT;
	mw_buf_init(&c.lines, 0);
	int n = ma_report_ingest_message(msg, len, (size_t)s->report_max_size * 10, collect_row, &c, &err);
	if (n < 0) {
		mw_msg_warn("%s: %s", what, mw_buf_str(&err));
		fprintf(stderr, "milter-auth-report: %s\n", mw_buf_str(&err));
		mw_buf_free(&err);
		mw_buf_free(&c.lines);
		return -1;
	}
	/* a report seen before is not counted twice (RFC 9990 2.5.3) */
	struct ma_rua_row first;
	long long rec;
	const char *l = mw_buf_str(&c.lines);
	const char *nl = strchr(l, '\n');
	if (nl != NULL && row_parse(l, (size_t)(nl - l + 1), &first, &rec) == 0) {
		snprintf(c.org, sizeof(c.org), "%s", first.org_name);
		snprintf(c.id, sizeof(c.id), "%s", first.report_id);
		received_each(s->report_received_dir, find_dup, &c);
	}
	if (c.seen) {
		mw_msg_info("%s: report %s from %s seen before: skipped", what, c.id, c.org);
	} else {
		char path[4096];
		snprintf(path, sizeof(path), "%s/rua-%08u.tsv", s->report_received_dir, ma_report_day_of(time(NULL)));
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0 || flock(fd, LOCK_EX) < 0 ||
		    write(fd, mw_buf_str(&c.lines), mw_buf_len(&c.lines)) != (ssize_t)mw_buf_len(&c.lines)) {
			mw_msg_error("%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			mw_buf_free(&err);
			mw_buf_free(&c.lines);
			return -2;
		}
		close(fd);
		mw_msg_info("%s: %d report(s) from %s stored", what, n, first.org_name);
	}
	mw_buf_free(&err);
	mw_buf_free(&c.lines);
	return 0;
}

static int read_all(int fd, size_t max, struct mw_buf *out)
{
	char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (mw_buf_len(out) + (size_t)n > max || mw_buf_append(out, chunk, (size_t)n) < 0)
			return -1;
	}
	return n < 0 ? -1 : 0;
}

static int cmd_ingest(const struct ma_settings *s, const char *maildir)
{
	if (s->report_received_dir[0] == '\0') {
		fprintf(stderr, "milter-auth-report: report_received_dir is not set in the configuration\n");
		return 2;
	}
	received_expire(s->report_received_dir, s->report_retention_ms / 1000);
	/* the message: the attachment, base64 (4/3) and the rest */
	size_t max_msg = (size_t)s->report_max_size * 2;
	if (maildir == NULL) {
		struct mw_buf m = MW_BUF_INIT;
		if (read_all(0, max_msg, &m) < 0) {
			fprintf(stderr, "milter-auth-report: refused: message larger than %zu bytes\n", max_msg);
			mw_buf_free(&m);
			return EX_DATAERR_;
		}
		int rc = ingest_one(s, "stdin", mw_buf_str(&m), mw_buf_len(&m));
		mw_buf_free(&m);
		return rc == -1 ? EX_DATAERR_ : rc == -2 ? 75 : 0;
	}
	char newdir[4096];
	snprintf(newdir, sizeof(newdir), "%s/new", maildir);
	DIR *d = opendir(newdir);
	if (d == NULL) {
		fprintf(stderr, "milter-auth-report: %s: %s\n", newdir, strerror(errno));
		return 2;
	}
	int rc = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096], dest[4200];
		snprintf(path, sizeof(path), "%s/%s", newdir, de->d_name);
		snprintf(dest, sizeof(dest), "%s/cur/%s:2,S", maildir, de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct mw_buf m = MW_BUF_INIT;
		int r = read_all(fd, max_msg, &m);
		close(fd);
		if (r < 0) {
			mw_msg_warn("%s: refused: message larger than %zu bytes", path, max_msg);
			rc = 1;
		} else if ((r = ingest_one(s, path, mw_buf_str(&m), mw_buf_len(&m))) == -2) {
			rc = 1;
			mw_buf_free(&m);
			continue; /* left in new/: tried again */
		} else if (r < 0) {
			rc = 1;
		}
		mw_buf_free(&m);
		if (rename(path, dest) < 0)
			mw_msg_warn("%s: cannot move to cur/: %s", path, strerror(errno));
	}
	closedir(d);
	return rc;
}

/* ------------------------------------------------------------ summary */

struct source {
	char ip[64];
	char ptr[256];
	unsigned long long count, dmarc_pass, dmarc_fail, spf_pass, spf_fail, dkim_pass, dkim_fail;
	char domains[256]; /* header_from domains seen, joined by ',' (first few) */
};

struct summary {
	const char *domain;
	long long since;
	struct source *v;
	size_t n, cap;
	unsigned long long rows;
};

static int result_passes(const char *list, const char *word)
{
	/* "domain/result,domain/result": any with result == word */
	size_t wl = strlen(word);
	for (const char *p = list; (p = strchr(p, '/')) != NULL; p++)
		if (strncmp(p + 1, word, wl) == 0 && (p[1 + wl] == ',' || p[1 + wl] == '\0'))
			return 1;
	return 0;
}

static void summarize_row(void *ctx, const struct ma_rua_row *r)
{
	struct summary *S = ctx;
	if (S->domain != NULL && strcasecmp(S->domain, r->policy_domain) != 0 && strcasecmp(S->domain, r->header_from) != 0)
		return;
	if (S->since > 0 && r->end <= S->since) /* a period ending at T is before T */
		return;
	struct source *src = NULL;
	for (size_t i = 0; i < S->n && src == NULL; i++)
		if (strcmp(S->v[i].ip, r->source_ip) == 0)
			src = &S->v[i];
	if (src == NULL) {
		if (S->n == S->cap) {
			S->cap = S->cap ? S->cap * 2 : 64;
			struct source *nv = realloc(S->v, S->cap * sizeof(*nv));
			if (nv == NULL)
				mw_msg_fatal("out of memory");
			S->v = nv;
		}
		src = &S->v[S->n++];
		memset(src, 0, sizeof(*src));
		snprintf(src->ip, sizeof(src->ip), "%s", r->source_ip);
	}
	S->rows++;
	src->count += r->count;
	int dmarc = strcmp(r->dkim_aligned, "pass") == 0 || strcmp(r->spf_aligned, "pass") == 0;
	*(dmarc ? &src->dmarc_pass : &src->dmarc_fail) += r->count;
	*(result_passes(r->spf, "pass") ? &src->spf_pass : &src->spf_fail) += r->count;
	*(result_passes(r->dkim, "pass") ? &src->dkim_pass : &src->dkim_fail) += r->count;
	if (strstr(src->domains, r->header_from) == NULL && strlen(src->domains) + strlen(r->header_from) + 2 < sizeof(src->domains))
		snprintf(src->domains + strlen(src->domains), sizeof(src->domains) - strlen(src->domains), "%s%s",
			 src->domains[0] ? "," : "", r->header_from);
}

static int cmp_source(const void *x, const void *y)
{
	const struct source *a = x, *b = y;
	return a->count < b->count ? 1 : a->count > b->count ? -1 : strcmp(a->ip, b->ip);
}

static void ptr_name(struct mw_dns *dns, const char *ip, char *out, size_t outlen)
{
	unsigned char a[16];
	char name[128];
	size_t n = 0;
	snprintf(out, outlen, "-");
	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 15; i >= 0; i--) {
			name[n++] = hex[a[i] & 15];
			name[n++] = '.';
			name[n++] = hex[a[i] >> 4];
			name[n++] = '.';
		}
		snprintf(name + n, sizeof(name) - n, "ip6.arpa");
	} else {
		return;
	}
	struct mw_dns_result r;
	if (mw_dns_lookup(dns, name, MW_DNS_T_PTR, NULL, &r) == MW_DNS_OK) {
		struct mw_buf h = MW_BUF_INIT;
		if (mw_dns_result_ptr(&r, 0, &h) == 0) {
			struct mw_buf p = MW_BUF_INIT;
			mw_buf_append_printable(&p, mw_buf_str(&h), mw_buf_len(&h), outlen - 1);
			snprintf(out, outlen, "%s", mw_buf_str(&p));
			mw_buf_free(&p);
		}
		mw_buf_free(&h);
	}
	mw_dns_result_free(&r);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int cmd_summary(const struct ma_settings *s, const char *domain, long long since, int json, int ptr)
{
	if (s->report_received_dir[0] == '\0') {
		fprintf(stderr, "milter-auth-report: report_received_dir is not set in the configuration\n");
		return 2;
	}
	struct summary S = { .domain = domain, .since = since };
	received_each(s->report_received_dir, summarize_row, &S);
	if (S.n > 0)
		qsort(S.v, S.n, sizeof(*S.v), cmp_source);
	struct mw_dns *dns = NULL;
	struct mw_buf err = MW_BUF_INIT;
	if (ptr && S.n > 0 && (dns = mw_dns_new(&s->dns, &err)) == NULL)
		mw_msg_warn("no PTR names: %s", mw_buf_str(&err));
	for (size_t i = 0; i < S.n; i++)
		if (dns != NULL)
			ptr_name(dns, S.v[i].ip, S.v[i].ptr, sizeof(S.v[i].ptr));
		else
			snprintf(S.v[i].ptr, sizeof(S.v[i].ptr), "-");
	if (json) {
		printf("[");
		for (size_t i = 0; i < S.n; i++) {
			const struct source *x = &S.v[i];
			printf("%s\n {\"source_ip\": ", i ? "," : "");
			json_str(x->ip);
			printf(", \"ptr\": ");
			json_str(x->ptr);
			printf(", \"header_from\": ");
			json_str(x->domains);
			printf(", \"count\": %llu, \"dmarc\": {\"pass\": %llu, \"fail\": %llu}, "
			       "\"spf\": {\"pass\": %llu, \"fail\": %llu}, \"dkim\": {\"pass\": %llu, \"fail\": %llu}}",
			       x->count, x->dmarc_pass, x->dmarc_fail, x->spf_pass, x->spf_fail, x->dkim_pass, x->dkim_fail);
		}
		printf("%s]\n", S.n ? "\n" : "");
	} else {
		printf("%-39s %-30s %8s %11s %11s %11s  %s\n", "SOURCE IP", "PTR", "MESSAGES", "DMARC p/f", "SPF p/f",
		       "DKIM p/f", "FROM");
		for (size_t i = 0; i < S.n; i++) {
			const struct source *x = &S.v[i];
			char d[32], sp[32], dk[32];
			snprintf(d, sizeof(d), "%llu/%llu", x->dmarc_pass, x->dmarc_fail);
			snprintf(sp, sizeof(sp), "%llu/%llu", x->spf_pass, x->spf_fail);
			snprintf(dk, sizeof(dk), "%llu/%llu", x->dkim_pass, x->dkim_fail);
			printf("%-39s %-30s %8llu %11s %11s %11s  %s\n", x->ip, x->ptr, x->count, d, sp, dk, x->domains);
		}
	}
	free(S.v);
	mw_dns_free(dns);
	mw_buf_free(&err);
	return 0;
}

static unsigned parse_day(const char *s)
{
	if (strcmp(s, "today") == 0)
		return ma_report_day_of(time(NULL));
	if (strcmp(s, "yesterday") == 0)
		return ma_report_day_of(time(NULL) - 86400);
	unsigned long long v;
	if (strlen(s) != 8 || mw_parse_uint(s, 99991231, &v) < 0 || v < 19700101)
		usage();
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	const char *conf = DEFAULT_CONF;
	int i = 1;
	mw_log_init("milter-auth-report", MW_LOG_TO_STDERR, 0);
	if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		conf = argv[i + 1];
		i += 2;
	}
	if (i >= argc)
		usage();
	const char *cmd = argv[i++];
	struct ma_conf *c = ma_conf_load_cli(conf, 0);
	int rc;
	if (strcmp(cmd, "send") == 0) {
		struct send_opts o = { 0 };
		for (; i < argc; i++) {
			if (strcmp(argv[i], "--dry-run") == 0 && i + 1 < argc) {
				o.dry_run = argv[++i];
			} else if (strcmp(argv[i], "--day") == 0 && i + 1 < argc) {
				o.day = parse_day(argv[++i]);
			} else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc && o.nstores < MAX_STORES - 1) {
				o.stores[o.nstores++] = argv[++i];
			} else {
				usage();
			}
		}
		rc = cmd_send(c, &o);
	} else if (strcmp(cmd, "ingest") == 0) {
		const char *maildir = NULL;
		for (; i < argc; i++) {
			if (strcmp(argv[i], "--maildir") == 0 && i + 1 < argc)
				maildir = argv[++i];
			else
				usage();
		}
		rc = cmd_ingest(&c->s, maildir);
	} else if (strcmp(cmd, "summary") == 0) {
		const char *domain = NULL;
		long long since = 0;
		int json = 0, ptr = 1;
		for (; i < argc; i++) {
			if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc) {
				domain = argv[++i];
			} else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
				const char *v = argv[++i];
				size_t vl = strlen(v);
				unsigned long long n;
				if (vl > 1 && v[vl - 1] == 'd' && mw_parse_uint_n(v, vl - 1, 100000, &n) == 0)
					since = (long long)time(NULL) - (long long)n * 86400;
				else
					since = (long long)ma_report_day_start(parse_day(v));
			} else if (strcmp(argv[i], "--json") == 0) {
				json = 1;
			} else if (strcmp(argv[i], "--no-ptr") == 0) {
				ptr = 0;
			} else {
				usage();
			}
		}
		rc = cmd_summary(&c->s, domain, since, json, ptr);
	} else {
		usage();
	}
	ma_conf_unref(c);
	return rc;
}
