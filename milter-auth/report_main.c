/*
 * milter-auth-report: DMARC aggregate reports (RFC 9990) from the
 * evaluations milter-auth recorded in report_store_dir.
 *
 *   milter-auth-report [-c FILE] send [--dry-run DIR] [--day YYYYMMDD] [--store DIR]...
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
 * Exit status: 0, 1 when a report could not be handed over (it is tried
 * again next run), 2 for usage or configuration errors.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.h"
#include "dmarc_report.h"
#include "log.h"
#include "maconf.h"
#include "madmarc.h"
#include "report_store.h"
#include "strnum.h"

#define DEFAULT_CONF SYSCONFDIR "/mailward/milter-auth.conf"
#define MAX_STORES 16
#define MAX_EVALS_PER_DAY 5000000

static void usage(void)
{
	fprintf(stderr, "usage: milter-auth-report [-c FILE] send [--dry-run DIR] [--day YYYYMMDD] [--store DIR]...\n");
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

/* Reads one store file's lines into a; malformed lines are counted, not fatal. */
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
	struct mw_buf err = MW_BUF_INIT;
	unsigned long lineno = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		struct ma_report_eval *e = mw_xcalloc(1, sizeof(*e));
		mw_buf_reset(&err);
		if (a->n >= MAX_EVALS_PER_DAY || ma_report_eval_parse(line, (size_t)len, e, &err) < 0) {
			if ((*bad)++ < 10)
				mw_msg_warn("%s:%lu: skipped: %s", path, lineno,
					    a->n >= MAX_EVALS_PER_DAY ? "too many evaluations" : mw_buf_str(&err));
			free(e);
			continue;
		}
		/* domains compare case-insensitively */
		for (char *p = e->policy_domain; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p + 32);
		evals_add(a, e);
	}
	free(line);
	mw_buf_free(&err);
	fclose(f);
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
	mw_buf_append(out, buf, n);
	free(buf);
	return 0;
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
	int ok = 1;
	while (left > 0) {
		ssize_t w = write(fds[1], p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ok = 0;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
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
		if (ok > 0 && uris[i].max_size > 0 && mw_buf_len(&msg) > uris[i].max_size) {
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
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && days[j - 1] > days[j]; j--) {
			unsigned t = days[j];
			days[j] = days[j - 1];
			days[j - 1] = t;
		}
	return n;
}

static int cmd_send(struct ma_conf *c, struct send_opts *o)
{
	const struct ma_settings *s = &c->s;
	struct mw_buf err = MW_BUF_INIT;
	if (s->report_store_dir[0] == '\0' && o->nstores == 0) {
		fprintf(stderr, "milter-auth-report: report_store_dir is not set in the configuration\n");
		return 2;
	}
	if (s->report_email[0] == '\0' || strchr(s->report_email, '@') == NULL) {
		fprintf(stderr, "milter-auth-report: report_email (the address reports come from) is not set\n");
		return 2;
	}
	if (s->report_store_dir[0] != '\0' && o->nstores < MAX_STORES)
		o->stores[o->nstores++] = s->report_store_dir;
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
	unsigned today = ma_report_day_of(now);
	int rc = 0;
	for (int di = 0; di < ndays; di++) {
		unsigned day = days[di];
		char marker[4096];
		snprintf(marker, sizeof(marker), "%s/sent-%08u", o->stores[0], day);
		if (!o->day && (day >= today || access(marker, F_OK) == 0))
			continue; /* the day is not over, or was sent */
		struct evals a = { 0 };
		unsigned long bad = 0;
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
		if (day_rc == 0 && o->dry_run == NULL && !o->day) {
			int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
			if (fd >= 0)
				close(fd);
		}
		rc |= day_rc;
	}
	ma_dmarc_free(dm);
	mw_dns_free(dns);
	mw_buf_free(&err);
	return rc;
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
	} else {
		usage();
	}
	ma_conf_unref(c);
	return rc;
}
