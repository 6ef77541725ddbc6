/*
 * log: the daemons' logger, with a ladder of levels.
 *
 *   mw_msg_debug  detail for troubleshooting (only with log_level = debug)
 *   mw_msg_info   normal events: one line per message, per request, per login
 *   mw_msg_warn   something recoverable went wrong
 *   mw_msg_error  something failed; the daemon carries on
 *   mw_msg_fatal  cannot continue: logs and exits (status 1; _status picks it)
 *   mw_msg_panic  internal inconsistency (a bug): logs and aborts
 *
 * Only mw_msg_fatal* and mw_msg_panic end the process, so library code that
 * must never exit (the PAM module) does not link this module at all.
 *
 * Convention: a line about one message starts with its queue id and a colon,
 * as Postfix does ("4ABC123: dkim=pass ..."), so one grep follows a message
 * through the MTA's log and ours.
 *
 * Every line is sanitized before output: control characters and non-ASCII
 * bytes become \xHH and lines are capped at MW_LOG_LINE_MAX, so text from
 * the network can never forge a log line. Thread-safe; nothing allocated.
 */
#ifndef MW_LOG_H
#define MW_LOG_H

#include <stdarg.h>

#include <stddef.h>

#include "buf.h"
#include "conf.h"

#define MW_LOG_LINE_MAX 2048

enum mw_log_level {
	MW_LOG_DEBUG,
	MW_LOG_INFO,
	MW_LOG_WARN,
	MW_LOG_ERROR,
	MW_LOG_FATAL,
	MW_LOG_PANIC,
};

/* Where lines go (bit mask). */
#define MW_LOG_TO_STDERR 1
#define MW_LOG_TO_SYSLOG 2

/* progname is kept by reference: pass a string that outlives the process. */
void mw_log_init(const char *progname, int destinations, int syslog_facility);
void mw_log_set_destinations(int destinations);
void mw_log_set_level(enum mw_log_level level);
enum mw_log_level mw_log_get_level(void);

/* Names used in config files: "debug", "info", "warning", "error". */
int mw_log_parse_level(const char *name, enum mw_log_level *level_r);
/* "mail", "daemon", "auth", "authpriv", "local0".."local7". */
int mw_log_parse_facility(const char *name, int *facility_r);
void mw_log_set_facility(int facility);

void mw_msg_debug(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_msg_info(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_msg_warn(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_msg_error(const char *fmt, ...) MW_PRINTF(1, 2);
_Noreturn void mw_msg_fatal(const char *fmt, ...) MW_PRINTF(1, 2);
_Noreturn void mw_msg_fatal_status(int status, const char *fmt, ...) MW_PRINTF(2, 3);
_Noreturn void mw_msg_panic(const char *fmt, ...) MW_PRINTF(1, 2);
void mw_msg_vlog(enum mw_log_level level, const char *fmt, va_list ap) MW_PRINTF(2, 0);

/* The log_* keys of every daemon's configuration (conf.h schema entries). */
struct mw_log_conf {
	int level;    /* index into mw_log_level_names == enum mw_log_level */
	int facility; /* index into mw_log_facility_names */
};
extern const char *const mw_log_level_names[];    /* "debug" "info" "warning" "error" */
extern const char *const mw_log_facility_names[]; /* "mail" "daemon" ... "local7" */
#define MW_LOG_CONF_KEYS(T, M)                                                   \
	{ .name = "log_level", .type = MW_CONF_ENUM, .offset = offsetof(T, M.level), \
	  .def = "info", .choices = mw_log_level_names,                                    \
	  .help = "debug, info, warning or error" },                                       \
	{ .name = "syslog_facility", .type = MW_CONF_ENUM,                                 \
	  .offset = offsetof(T, M.facility), .def = "mail",                        \
	  .choices = mw_log_facility_names, .help = "syslog facility" }
/* Applies a loaded struct mw_log_conf (level and facility). */
void mw_log_apply_conf(const struct mw_log_conf *conf);

/* True when debug lines would be written (skip building expensive ones). */
int mw_log_debug_enabled(void);

/*
 * Allocation that cannot fail: on out-of-memory the daemon logs and exits
 * (the service manager restarts it). Daemons only; never in the PAM module.
 */
void *mw_xmalloc(size_t n);
void *mw_xcalloc(size_t n, size_t size);
void *mw_xrealloc(void *p, size_t n);
char *mw_xstrdup(const char *s);
char *mw_xstrndup(const char *s, size_t n);

#endif
