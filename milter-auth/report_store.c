#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mametrics.h"
#include "report_redis.h"
#include "report_store.h"

struct ma_report_store {
	struct ma_report_redis *redis; /* report_store = redis; else the file store: */
	char *dir;
	char host[64];
	unsigned long long retention_s;
	int keep_localparts;
	pthread_mutex_t lock;
	int fd;                /* today's file, -1 until the first write */
	unsigned day;          /* its day */
	time_t last_warning;
};

unsigned ma_report_day_of(time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	return (unsigned)((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday);
}

time_t ma_report_day_start(unsigned day)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)(day / 10000) - 1900;
	tm.tm_mon = (int)(day / 100 % 100) - 1;
	tm.tm_mday = (int)(day % 100);
	return timegm(&tm);
}

int ma_report_store_file_day(const char *name, unsigned *day)
{
	size_t len = strlen(name);
	if (len < 20 || strncmp(name, "dmarc-", 6) != 0 || name[14] != '-' || strcmp(name + len - 4, ".tsv") != 0)
		return 0;
	unsigned d = 0;
	for (int i = 6; i < 14; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		d = d * 10 + (unsigned)(name[i] - '0');
	}
	*day = d;
	return 1;
}

int ma_report_store_expire(const char *dir, unsigned long long retention_s, time_t now)
{
	unsigned oldest = ma_report_day_of(now - (time_t)retention_s);
	DIR *d = opendir(dir);
	int n = 0;
	if (d == NULL)
		return 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		unsigned day;
		if (!ma_report_store_file_day(de->d_name, &day) || day >= oldest)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static struct ma_report_store *new_store(const char *host, unsigned long long retention_s, int keep_localparts)
{
	struct ma_report_store *st = mw_xcalloc(1, sizeof(*st));
	char name[256] = "";
	if (host == NULL || host[0] == '\0') {
		if (gethostname(name, sizeof(name)) < 0)
			snprintf(name, sizeof(name), "localhost");
		name[sizeof(name) - 1] = '\0';
		host = name;
	}
	/* the host goes into a file name: letters, digits, '.', '_' only */
	size_t n = 0;
	for (const char *p = host; *p != '\0' && n + 1 < sizeof(st->host); p++) {
		char c = *p;
		st->host[n++] = (char)(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
					c == '.' || c == '_') ? c : '_');
	}
	st->host[n] = '\0';
	st->retention_s = retention_s;
	st->keep_localparts = keep_localparts;
	st->fd = -1;
	pthread_mutex_init(&st->lock, NULL);
	return st;
}

struct ma_report_store *ma_report_store_open(const char *dir, const char *host, unsigned long long retention_s,
					     int keep_localparts, struct mw_buf *err)
{
	struct stat sb;
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		mw_buf_printf(err, "report_store_dir %s: not a directory", dir);
		return NULL;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		mw_buf_printf(err, "report_store_dir %s: not writable by this user (%s)", dir, strerror(errno));
		return NULL;
	}
	struct ma_report_store *st = new_store(host, retention_s, keep_localparts);
	st->dir = mw_xstrdup(dir);
	return st;
}

struct ma_report_store *ma_report_store_open_redis(const struct mw_redis_conf *conf, const char *host,
						   unsigned long long retention_s, int keep_localparts,
						   struct mw_buf *err)
{
	struct ma_report_redis *r = ma_report_redis_new(conf, retention_s, err);
	if (r == NULL)
		return NULL;
	struct ma_report_store *st = new_store(host, retention_s, keep_localparts);
	st->redis = r;
	return st;
}

void ma_report_store_close(struct ma_report_store *st)
{
	if (st == NULL)
		return;
	ma_report_redis_free(st->redis);
	if (st->fd >= 0)
		close(st->fd);
	pthread_mutex_destroy(&st->lock);
	free(st->dir);
	free(st);
}

static void warn_limited(struct ma_report_store *st, time_t now, const char *what)
{
	if (now - st->last_warning >= 60) {
		st->last_warning = now;
		mw_msg_warn("DMARC report store %s: %s (evaluations are not recorded)", st->dir, what);
	}
}

void ma_report_store_add(struct ma_report_store *st, const struct ma_report_eval *e)
{
	struct mw_buf line = MW_BUF_INIT;
	mw_buf_init(&line, MA_REPORT_LINE_MAX);
	ma_report_eval_format(e, &line);
	if (mw_buf_failed(&line)) {
		mw_buf_free(&line);
		return;
	}
	time_t now = (time_t)e->ts;
	unsigned day = ma_report_day_of(now);
	if (st->redis != NULL) {
		ma_report_redis_push(st->redis, day, mw_buf_str(&line), mw_buf_len(&line));
		mw_buf_free(&line);
		return;
	}
	pthread_mutex_lock(&st->lock);
	if (st->fd < 0 || st->day != day) {
		char path[4096];
		if (st->fd >= 0)
			close(st->fd);
		snprintf(path, sizeof(path), "%s/dmarc-%08u-%s.tsv", st->dir, day, st->host);
		st->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		st->day = day;
		if (st->fd < 0) {
			char why[256];
			snprintf(why, sizeof(why), "cannot open %s: %s", path, strerror(errno));
			warn_limited(st, now, why);
			ma_metrics_report_store_error(1);
		}
		ma_report_store_expire(st->dir, st->retention_s, now);
	}
	if (st->fd >= 0) {
		ssize_t w = write(st->fd, mw_buf_str(&line), mw_buf_len(&line));
		if (w != (ssize_t)mw_buf_len(&line)) {
			char why[256];
			snprintf(why, sizeof(why), "write failed: %s", w < 0 ? strerror(errno) : "short write");
			warn_limited(st, now, why);
			ma_metrics_report_store_error(1);
		}
	}
	pthread_mutex_unlock(&st->lock);
	mw_buf_free(&line);
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

void ma_report_store_note(struct ma_report_store *st, const char *client_ip, const char *sender,
			  const struct ma_spf_verdict *spf, const struct ma_dkim_sig *sigs, int nsigs,
			  const struct ma_dmarc_verdict *v, int not_enforced)
{
	if (st == NULL || !v->have_record || v->record.rua[0] == '\0' ||
	    (v->result != MA_DMARC_PASS && v->result != MA_DMARC_FAIL))
		return;
	struct ma_report_eval *e = mw_xcalloc(1, sizeof(*e));
	e->ts = (long long)time(NULL);
	copy(e->host, sizeof(e->host), st->host);
	copy(e->source_ip, sizeof(e->source_ip), client_ip);
	copy(e->header_from, sizeof(e->header_from), v->from_domain);
	const char *at = strrchr(sender, '@');
	copy(e->envelope_from, sizeof(e->envelope_from), st->keep_localparts || at == NULL ? sender : at + 1);
	copy(e->policy_domain, sizeof(e->policy_domain), v->record.domain);
	copy(e->discovery, sizeof(e->discovery), v->standard == MA_DMARC_RFC7489 ? "psl" : "treewalk");
	copy(e->p, sizeof(e->p), ma_dmarc_policy_name(v->record.p));
	if (v->record.sp != MA_DMARC_P_UNSPECIFIED)
		copy(e->sp, sizeof(e->sp), ma_dmarc_policy_name(v->record.sp));
	if (v->record.np != MA_DMARC_P_UNSPECIFIED)
		copy(e->np, sizeof(e->np), ma_dmarc_policy_name(v->record.np));
	e->adkim = v->record.adkim == 's' ? 's' : 'r';
	e->aspf = v->record.aspf == 's' ? 's' : 'r';
	e->testing = v->record.testing ? 'y' : 'n';
	copy(e->dkim_aligned, sizeof(e->dkim_aligned), v->dkim_aligned ? "pass" : "fail");
	copy(e->spf_aligned, sizeof(e->spf_aligned), v->spf_aligned ? "pass" : "fail");
	/* RFC 9990 ActionDispositionType: "pass" only under an enforcing policy */
	if (v->result == MA_DMARC_PASS) {
		copy(e->disposition, sizeof(e->disposition), v->policy == MA_DMARC_P_NONE ? "none" : "pass");
	} else if (not_enforced) {
		copy(e->disposition, sizeof(e->disposition), "none");
		if (v->policy != MA_DMARC_P_NONE)
			copy(e->reason, sizeof(e->reason), "local_policy");
	} else {
		enum ma_dmarc_policy d = v->disposition;
		copy(e->disposition, sizeof(e->disposition),
		     d == MA_DMARC_P_REJECT ? "reject" : d == MA_DMARC_P_QUARANTINE ? "quarantine" : "none");
		if (v->testing) {
			copy(e->reason, sizeof(e->reason), "policy_test_mode");
		} else if (v->sampled_out) {
			copy(e->reason, sizeof(e->reason), "other");
			copy(e->reason_comment, sizeof(e->reason_comment), "sampled out by pct=");
		}
	}
	if (spf != NULL && mw_buf_len(&spf->domain) > 0) {
		copy(e->spf_domain, sizeof(e->spf_domain), mw_buf_str(&spf->domain));
		copy(e->spf_result, sizeof(e->spf_result), ma_spf_result_name(spf->result));
	}
	for (int i = 0; i < nsigs && e->ndkim < MA_REPORT_MAX_DKIM; i++) {
		if (sigs[i].domain[0] == '\0')
			continue;
		struct ma_report_dkim *k = &e->dkim[e->ndkim++];
		copy(k->domain, sizeof(k->domain), sigs[i].domain);
		copy(k->selector, sizeof(k->selector), sigs[i].selector);
		copy(k->result, sizeof(k->result), ma_dkim_result_name(sigs[i].result));
	}
	copy(e->rua, sizeof(e->rua), v->record.rua);
	ma_report_store_add(st, e);
	free(e);
}
