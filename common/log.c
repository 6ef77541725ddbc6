#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static const char *log_progname = "mailward";
static int log_destinations = MW_LOG_TO_STDERR;
static int log_facility = LOG_MAIL;
static enum mw_log_level log_level = MW_LOG_INFO;
static int syslog_opened;

static const char *const level_names[] = {
	[MW_LOG_DEBUG] = "debug",
	[MW_LOG_INFO] = "info",
	[MW_LOG_WARN] = "warning",
	[MW_LOG_ERROR] = "error",
	[MW_LOG_FATAL] = "fatal",
	[MW_LOG_PANIC] = "panic",
};

static const int syslog_priorities[] = {
	[MW_LOG_DEBUG] = LOG_DEBUG,
	[MW_LOG_INFO] = LOG_INFO,
	[MW_LOG_WARN] = LOG_WARNING,
	[MW_LOG_ERROR] = LOG_ERR,
	[MW_LOG_FATAL] = LOG_CRIT,
	[MW_LOG_PANIC] = LOG_CRIT,
};

static void open_syslog(void)
{
	if (syslog_opened)
		closelog();
	openlog(log_progname, LOG_PID | LOG_NDELAY, log_facility);
	syslog_opened = 1;
}

void mw_log_init(const char *progname, int destinations, int syslog_facility)
{
	log_progname = progname;
	log_destinations = destinations;
	log_facility = syslog_facility;
	if (destinations & MW_LOG_TO_SYSLOG)
		open_syslog();
}

void mw_log_set_destinations(int destinations)
{
	log_destinations = destinations;
	if ((destinations & MW_LOG_TO_SYSLOG) && !syslog_opened)
		open_syslog();
}

void mw_log_set_facility(int facility)
{
	if (facility == log_facility)
		return;
	log_facility = facility;
	if (syslog_opened)
		open_syslog();
}

void mw_log_set_level(enum mw_log_level level)
{
	log_level = level;
}

enum mw_log_level mw_log_get_level(void)
{
	return log_level;
}

int mw_log_debug_enabled(void)
{
	return log_level <= MW_LOG_DEBUG;
}

int mw_log_parse_level(const char *name, enum mw_log_level *level_r)
{
	for (int i = MW_LOG_DEBUG; i <= MW_LOG_ERROR; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level_r = (enum mw_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warn") == 0) {
		*level_r = MW_LOG_WARN;
		return 0;
	}
	return -1;
}

const char *const mw_log_level_names[] = { "debug", "info", "warning", "error", NULL };
const char *const mw_log_facility_names[] = {
	"mail", "daemon", "auth", "authpriv", "user", "local0", "local1", "local2",
	"local3", "local4", "local5", "local6", "local7", NULL,
};
/* Same order as mw_log_facility_names. */
static const int facility_values[] = {
	LOG_MAIL, LOG_DAEMON, LOG_AUTH, LOG_AUTHPRIV, LOG_USER, LOG_LOCAL0, LOG_LOCAL1,
	LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7,
};

int mw_log_parse_facility(const char *name, int *facility_r)
{
	for (size_t i = 0; mw_log_facility_names[i] != NULL; i++) {
		if (strcasecmp(name, mw_log_facility_names[i]) == 0) {
			*facility_r = facility_values[i];
			return 0;
		}
	}
	return -1;
}

void mw_log_apply_conf(const struct mw_log_conf *conf)
{
	if (conf->level >= MW_LOG_DEBUG && conf->level <= MW_LOG_ERROR)
		mw_log_set_level((enum mw_log_level)conf->level);
	if (conf->facility >= 0 &&
	    (size_t)conf->facility < sizeof(facility_values) / sizeof(facility_values[0]))
		mw_log_set_facility(facility_values[conf->facility]);
}

/* Escapes what must not reach a log verbatim; works in place into out. */
static size_t sanitize(const char *in, size_t inlen, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f) {
			if (o + 1 >= outsize)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= outsize)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

void mw_msg_vlog(enum mw_log_level level, const char *fmt, va_list ap)
{
	char raw[MW_LOG_LINE_MAX];
	char line[MW_LOG_LINE_MAX];
	int saved_errno = errno;

	if (level < log_level && level < MW_LOG_FATAL)
		return;
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n < 0)
		n = 0;
	size_t rawlen = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;
	sanitize(raw, rawlen, line, sizeof(line));

	if (log_destinations & MW_LOG_TO_SYSLOG) {
		if (level == MW_LOG_INFO)
			syslog(syslog_priorities[level], "%s", line);
		else
			syslog(syslog_priorities[level], "%s: %s", level_names[level], line);
	}
	if (log_destinations & MW_LOG_TO_STDERR) {
		/* One write per line so lines from threads never interleave. */
		char out[MW_LOG_LINE_MAX + 128];
		int m;
		if (level == MW_LOG_INFO)
			m = snprintf(out, sizeof(out), "%s[%ld]: %s\n", log_progname,
				     (long)getpid(), line);
		else
			m = snprintf(out, sizeof(out), "%s[%ld]: %s: %s\n", log_progname,
				     (long)getpid(), level_names[level], line);
		if (m > 0) {
			size_t len = (size_t)m < sizeof(out) ? (size_t)m : sizeof(out) - 1;
			ssize_t w = write(STDERR_FILENO, out, len);
			(void)w;
		}
	}
	errno = saved_errno;
}

#define DEFINE_LOGGER(name, level)              \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		mw_msg_vlog(level, fmt, ap);    \
		va_end(ap);                     \
	}

DEFINE_LOGGER(mw_msg_debug, MW_LOG_DEBUG)
DEFINE_LOGGER(mw_msg_info, MW_LOG_INFO)
DEFINE_LOGGER(mw_msg_warn, MW_LOG_WARN)
DEFINE_LOGGER(mw_msg_error, MW_LOG_ERROR)

void mw_msg_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_msg_vlog(MW_LOG_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

void mw_msg_fatal_status(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_msg_vlog(MW_LOG_FATAL, fmt, ap);
	va_end(ap);
	exit(status);
}

void mw_msg_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mw_msg_vlog(MW_LOG_PANIC, fmt, ap);
	va_end(ap);
	abort();
}

void *mw_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		mw_msg_fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *mw_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		mw_msg_fatal("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *mw_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		mw_msg_fatal("out of memory allocating %zu bytes", n);
	return q;
}

char *mw_xstrdup(const char *s)
{
	return mw_xstrndup(s, strlen(s));
}

char *mw_xstrndup(const char *s, size_t n)
{
	n = strnlen(s, n);
	char *p = mw_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
