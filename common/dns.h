/*
 * dns: the one resolver of every mailward component, on libunbound.
 *
 * One struct mw_dns per process, shared by all threads: one libunbound
 * context, so one cache. Configured by one line,
 *
 *   dns_resolver = system                 (forwarders from /etc/resolv.conf)
 *   dns_resolver = 127.0.0.1@5353 ::1     (these forwarders; port after @)
 *
 * and the time limits that keep the mail path fast: every lookup gives up
 * after dns_timeout (libunbound's own retries would take about 17 s), and a
 * per-message budget (struct mw_dns_budget) caps the total time one message
 * may spend in DNS across all its lookups. A lookup that runs out of time
 * returns MW_DNS_TIMEOUT: callers must treat it, like MW_DNS_SERVFAIL, as a
 * temporary failure, never as "no record".
 *
 * DNSSEC: with a trust anchor (dns_trust_anchor = auto | none | FILE; auto
 * uses /usr/share/dns/root.key when dns_resolver = system), every result says
 * whether it was secure, insecure or bogus; a bogus answer is a SERVFAIL.
 *
 * Cache: answers (including NXDOMAIN and NODATA, never failures) are kept
 * for their TTL, at most MW_DNS_CACHE_TTL_MAX, in a cache of our own in
 * front of libunbound's, shared by all threads: a warm lookup costs a hash
 * probe instead of a round trip through libunbound's worker thread.
 *
 * Memory: a struct mw_dns_result is the caller's; mw_dns_lookup() fills it
 * and mw_dns_result_free() releases what it holds. Accessors copy into the
 * caller's buffers or return pointers valid until mw_dns_result_free().
 * Nothing here logs or exits.
 */
#ifndef MW_DNS_H
#define MW_DNS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "conf.h"

/* RR types we look up (values from RFC 1035 and successors). */
#define MW_DNS_T_A 1
#define MW_DNS_T_NS 2
#define MW_DNS_T_CNAME 5
#define MW_DNS_T_PTR 12
#define MW_DNS_T_MX 15
#define MW_DNS_T_TXT 16
#define MW_DNS_T_AAAA 28
#define MW_DNS_T_SPF 99
#define MW_DNS_T_TLSA 52

enum mw_dns_status {
	MW_DNS_OK,       /* at least one record of the type asked for */
	MW_DNS_NODATA,   /* the name exists, no record of that type */
	MW_DNS_NXDOMAIN, /* the name does not exist */
	MW_DNS_SERVFAIL, /* server failure, refused, or DNSSEC bogus: temporary */
	MW_DNS_TIMEOUT,  /* no answer within the lookup's time: temporary */
	MW_DNS_BADNAME,  /* not a valid domain name (empty label, label > 63, ...) */
	MW_DNS_ERROR,    /* local failure (out of memory, resolver broken): temporary */
};

enum mw_dns_security {
	MW_DNS_INSECURE, /* not validated (no trust anchor, or unsigned zone) */
	MW_DNS_SECURE,   /* DNSSEC validated */
	MW_DNS_BOGUS,    /* DNSSEC validation failed (status is MW_DNS_SERVFAIL) */
};

#define MW_DNS_CACHE_ENTRIES 8192
#define MW_DNS_CACHE_TTL_MAX 3600  /* seconds */
#define MW_DNS_NEGATIVE_TTL_MAX 300

/* Resolver settings: the values of the dns_* keys of every daemon. */
struct mw_dns_conf {
	char *resolver;                 /* dns_resolver */
	unsigned long long timeout_ms;  /* dns_timeout: one lookup */
	unsigned long long budget_ms;   /* dns_message_budget: all lookups of one message */
	char *trust_anchor;             /* dns_trust_anchor */
	unsigned long long cache_size;  /* dns_cache_size (bytes) */
};

/* The dns_* entries of a conf.h schema, for a struct mw_dns_conf member. */
#define MW_DNS_CONF_KEYS(T, M)                                                         \
	{ .name = "dns_resolver", .type = MW_CONF_CUSTOM,                                      \
	  .offset = offsetof(T, M.resolver), .def = "system",                          \
	  .parse = mw_dns_conf_parse_resolver_##M, .release = mw_dns_conf_free_resolver_##M, \
	  .help = "system, or forwarders as ip[@port] ..." },                                  \
	{ .name = "dns_timeout", .type = MW_CONF_DURATION,                                     \
	  .offset = offsetof(T, M.timeout_ms), .def = "5s", .min = 100, .max = 60000,   \
	  .help = "one DNS lookup gives up after this long (a temporary failure)" },            \
	{ .name = "dns_message_budget", .type = MW_CONF_DURATION,                              \
	  .offset = offsetof(T, M.budget_ms), .def = "15s", .min = 100, .max = 300000,  \
	  .help = "all DNS lookups for one message together" },                                 \
	{ .name = "dns_trust_anchor", .type = MW_CONF_STRING,                                  \
	  .offset = offsetof(T, M.trust_anchor), .def = "auto",                        \
	  .help = "auto, none, or a DNSSEC root trust anchor file" },                           \
	{ .name = "dns_cache_size", .type = MW_CONF_SIZE,                                      \
	  .offset = offsetof(T, M.cache_size), .def = "4m", .min = 0,                   \
	  .max = 1024ULL * 1024 * 1024, .help = "DNS cache size (shared by all threads)" }

/*
 * The custom dns_resolver parser for a given target type: put
 * MW_DNS_CONF_DEFINE(type, member) once in the component's config file
 * before its schema.
 */
#define MW_DNS_CONF_DEFINE(T, M)                                                       \
	static int mw_dns_conf_parse_resolver_##M(void *target, const char *value,        \
						     struct mw_buf *err)                      \
	{                                                                                      \
		return mw_dns_conf_set_resolver(&((T *)target)->M, value, err);       \
	}                                                                                      \
	static void mw_dns_conf_free_resolver_##M(void *target)                            \
	{                                                                                      \
		mw_dns_conf_clear_resolver(&((T *)target)->M);                         \
	}

/* Validates "system" or a list of ip[@port] and stores it. */
int mw_dns_conf_set_resolver(struct mw_dns_conf *conf, const char *value, struct mw_buf *err);
void mw_dns_conf_clear_resolver(struct mw_dns_conf *conf);

/* A per-message time budget. */
struct mw_dns_budget {
	struct timespec deadline; /* CLOCK_MONOTONIC */
	int exhausted;            /* set once a lookup was cut short by it */
};

/* Fresh resolver, or NULL with err. conf is copied. */
struct mw_dns *mw_dns_new(const struct mw_dns_conf *conf, struct mw_buf *err);
void mw_dns_free(struct mw_dns *dns);

/* Starts a budget of the configured dns_message_budget (or total_ms if > 0). */
void mw_dns_budget_start(const struct mw_dns *dns, struct mw_dns_budget *budget, unsigned total_ms);
/* Milliseconds left in the budget (0 when spent). */
unsigned mw_dns_budget_left_ms(const struct mw_dns_budget *budget);

struct mw_dns_result {
	enum mw_dns_status status;
	enum mw_dns_security security;
	int rcode;          /* DNS response code, when an answer came */
	int count;          /* records of the type asked for */
	unsigned ttl;
	int type;
	int cached;         /* answered from mailward's own cache */
	struct mw_dns_answer *ans; /* private, shared and reference-counted */
	char error[128];    /* human-readable cause for SERVFAIL/ERROR/BADNAME/TIMEOUT */
};

/*
 * Looks up name/type within min(dns_timeout, what budget has left); budget
 * may be NULL. Always fills res (even on failure) and returns its status.
 * Thread-safe; blocks only the calling thread.
 */
enum mw_dns_status mw_dns_lookup(struct mw_dns *dns, const char *name, int type,
				 struct mw_dns_budget *budget, struct mw_dns_result *res);
void mw_dns_result_free(struct mw_dns_result *res);

/* Record i (0 <= i < count) decoded, appended to out; 0 or -1 if malformed.
   TXT: the character-strings of one record concatenated (as SPF and DKIM want). */
int mw_dns_result_txt(const struct mw_dns_result *res, int i, struct mw_buf *out);
int mw_dns_result_a(const struct mw_dns_result *res, int i, struct in_addr *out);
int mw_dns_result_aaaa(const struct mw_dns_result *res, int i, struct in6_addr *out);
int mw_dns_result_mx(const struct mw_dns_result *res, int i, unsigned *preference, struct mw_buf *host);
int mw_dns_result_ptr(const struct mw_dns_result *res, int i, struct mw_buf *host);
int mw_dns_result_tlsa(const struct mw_dns_result *res, int i, uint8_t *usage, uint8_t *selector,
		       uint8_t *mtype, const unsigned char **data, size_t *len);
/* The raw rdata of record i. */
int mw_dns_result_rdata(const struct mw_dns_result *res, int i, const unsigned char **data, size_t *len);
/* The whole DNS answer message in wire format (what libopendkim's query
   service returns), or NULL when no answer came. */
const unsigned char *mw_dns_result_packet(const struct mw_dns_result *res, size_t *len);

const char *mw_dns_status_name(enum mw_dns_status status);
/* True for statuses that mean "try again later". */
int mw_dns_status_is_temporary(enum mw_dns_status status);

#endif
