/*
 * spf: milter-auth's SPF engine (RFC 7208), libspf2 driven through the
 * common resolver (common/dns) as its DNS layer.
 *
 * One struct ma_spf per process, shared by every milter thread. A check runs
 * within the message's DNS budget: DNS trouble (timeout, SERVFAIL, budget
 * spent) is MA_SPF_TEMPERROR, never a permanent result.
 *
 * Memory: the caller owns the struct ma_spf_verdict; ma_spf_verdict_init()
 * before a check and ma_spf_verdict_free() after it. The dns passed to
 * ma_spf_new() must outlive the engine.
 */
#ifndef MA_SPF_H
#define MA_SPF_H

#include "buf.h"
#include "dns.h"

enum ma_spf_result {
	MA_SPF_NONE,
	MA_SPF_NEUTRAL,
	MA_SPF_PASS,
	MA_SPF_FAIL,
	MA_SPF_SOFTFAIL,
	MA_SPF_TEMPERROR,
	MA_SPF_PERMERROR,
};

enum ma_spf_identity {
	MA_SPF_MAILFROM, /* RFC 7208 2.4: MAIL FROM, or postmaster@HELO when empty */
	MA_SPF_HELO,     /* RFC 7208 2.3 */
};

struct ma_spf_verdict {
	enum ma_spf_result result;
	struct mw_buf domain;      /* the domain that was checked */
	struct mw_buf explanation; /* MA_SPF_FAIL: the domain's exp= text, or our default */
	struct mw_buf reason;      /* why, for logs and A-R comments: the mechanism that
				      matched, or the error */
};

struct ma_spf;

/* receiver: our host name (the %{r} macro). NULL with err on failure. */
struct ma_spf *ma_spf_new(struct mw_dns *dns, const char *receiver, struct mw_buf *err);
void ma_spf_free(struct ma_spf *spf);

void ma_spf_verdict_init(struct ma_spf_verdict *v);
void ma_spf_verdict_free(struct ma_spf_verdict *v);

/*
 * Checks one identity of a connection: ip is the client's address as text
 * (IPv4 or IPv6), helo the HELO/EHLO argument, sender the MAIL FROM address
 * without angle brackets ("" for the null sender). Thread-safe. Fills out
 * and returns out->result. budget may be NULL.
 */
enum ma_spf_result ma_spf_check(struct ma_spf *spf, struct mw_dns_budget *budget,
				enum ma_spf_identity which, const char *ip, const char *helo,
				const char *sender, struct ma_spf_verdict *out);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"
   (the RFC 8601 result names). */
const char *ma_spf_result_name(enum ma_spf_result r);

#endif
