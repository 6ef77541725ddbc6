/*
 * tlspol_fetch: fetches an MTA-STS policy (RFC 8461 3.3) with libcurl:
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt, the name resolved through
 * common/dns like every other name (libcurl is pinned to that address and
 * never resolves anything itself), the certificate verified against the
 * system store or ca_file, no redirects, HTTP 200 with text/plain, and
 * hard limits on size and time.
 *
 * tlspol_fetch_https() is the same for any path on any host (milter-pgp's
 * WKD key lookups use it).
 *
 * Blocking: runs in a worker thread. tlspol_fetch_global_init() once at
 * start-up, before threads. Nothing logs.
 */
#ifndef TLSPOL_FETCH_H
#define TLSPOL_FETCH_H

#include "buf.h"
#include "dns.h"

struct tlspol_fetch_conf {
	const char *ca_file;            /* NULL or "": system store */
	unsigned long long timeout_ms;
	unsigned long long max_size;
	unsigned port;                  /* 443 */
};

int tlspol_fetch_global_init(struct mw_buf *err);

/* The policy body into body; 0, or -1 with the reason in err. */
int tlspol_fetch(struct mw_dns *dns, const struct tlspol_fetch_conf *fc, const char *domain,
		 struct mw_buf *body, struct mw_buf *err);

/* GET https://HOST/PATH (PATH starts with "/", may hold a query) under the
   same rules; media_type NULL accepts any. 0 on HTTP 200, else -1 with
   err, and *status the HTTP status: 0 when no HTTP answer came, -1 when
   the connection was refused or TLS failed (a certificate not valid). */
int tlspol_fetch_https(struct mw_dns *dns, const struct tlspol_fetch_conf *fc, const char *host,
		       const char *path, const char *media_type, long *status, struct mw_buf *body,
		       struct mw_buf *err);

#endif
