/*
 * tlspol_sts: the text formats of MTA-STS (RFC 8461), parsed strictly.
 *
 *   _mta-sts.example.com TXT "v=STSv1; id=20240101T000000;"     (3.1)
 *
 *   version: STSv1                                           (3.2, served at
 *   mode: enforce | testing | none                            https://mta-sts.
 *   mx: mx1.example.com                                       DOMAIN/.well-known/
 *   mx: *.example.net                                         mta-sts.txt)
 *   max_age: 604800
 *
 * Unknown fields are ignored, as the RFC says; a missing or invalid
 * required field makes the whole policy invalid. Pure functions, no I/O.
 * Memory: a struct tlspol_sts_policy owns its mx strings
 * (tlspol_sts_policy_free()).
 */
#ifndef TLSPOL_STS_H
#define TLSPOL_STS_H

#include <stddef.h>

#include "buf.h"

#define TLSPOL_STS_ID_MAX 32
#define TLSPOL_STS_MAX_AGE_MAX 31557600ULL /* one year, RFC 8461 3.2 */
#define TLSPOL_STS_MAX_MX 64
#define TLSPOL_STS_POLICY_MAX (64 * 1024) /* RFC 8461 3.3: senders may cap at 64 KiB */

enum tlspol_sts_mode { TLSPOL_STS_NONE, TLSPOL_STS_TESTING, TLSPOL_STS_ENFORCE };

struct tlspol_sts_policy {
	enum tlspol_sts_mode mode;
	unsigned long long max_age; /* seconds */
	char *mx[TLSPOL_STS_MAX_MX]; /* lowercased patterns: "mx.example.com", "*.example.net" */
	int nmx;
};

/*
 * One TXT record's text: 1 if it is an STSv1 record, its id copied to
 * id[TLSPOL_STS_ID_MAX + 1]; 0 if it does not start with "v=STSv1" (not an
 * MTA-STS record: ignore it); -1 if it starts so but is invalid.
 */
int tlspol_sts_txt_parse(const char *txt, size_t len, char *id);

/* The policy file body. 0, or -1 with err saying what is wrong. */
int tlspol_sts_policy_parse(const char *text, size_t len, struct tlspol_sts_policy *out, struct mw_buf *err);
void tlspol_sts_policy_free(struct tlspol_sts_policy *p);
int tlspol_sts_policy_copy(struct tlspol_sts_policy *dst, const struct tlspol_sts_policy *src);

const char *tlspol_sts_mode_name(enum tlspol_sts_mode mode);
int tlspol_sts_mode_parse(const char *s, enum tlspol_sts_mode *mode);

/* The Postfix policy for an enforced policy:
   "secure match=mx1.example.com:.example.net servername=hostname". */
int tlspol_sts_postfix_policy(const struct tlspol_sts_policy *p, struct mw_buf *out);

/* Whether host (lowercased, no trailing dot) matches an mx pattern:
   "*.example.net" matches exactly one more label. */
int tlspol_sts_mx_match(const char *pattern, const char *host);

#endif
