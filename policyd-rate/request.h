/*
 * request: the Postfix SMTP access policy delegation protocol
 * (SMTPD_POLICY_README): requests are "name=value" lines ending with an
 * empty line; replies are "action=..." and an empty line.
 *
 * The parser is incremental (fed whatever the socket delivered) and
 * bounded: a line longer than PR_MAX_LINE, more than PR_MAX_ATTRS
 * attributes or a request over PR_MAX_REQUEST bytes is an error, and the
 * connection is to be closed. Pure: no I/O; fuzzed.
 *
 * Memory: a struct pr_request is the caller's; its strings point into its
 * own buffer and live until pr_request_reset() or pr_request_free().
 */
#ifndef PR_REQUEST_H
#define PR_REQUEST_H

#include <stddef.h>

#include "buf.h"

#define PR_MAX_LINE 4096
#define PR_MAX_ATTRS 128
#define PR_MAX_REQUEST 65536

/* The attributes policyd-rate reads. */
struct pr_request {
	const char *request;          /* "smtpd_access_policy" */
	const char *protocol_state;   /* RCPT, DATA, END-OF-MESSAGE, ... */
	const char *client_address;
	const char *client_name;
	const char *helo_name;
	const char *sender;
	const char *recipient;
	const char *sasl_username;
	const char *queue_id;
	const char *instance;
	unsigned long long recipient_count;
	unsigned long long size;
	int nattrs;
	struct mw_buf text; /* the raw request, NUL-separated values */
};

enum pr_parse_status {
	PR_NEED_MORE,   /* no complete request yet */
	PR_COMPLETE,    /* a request ended; *used bytes were consumed */
	PR_BAD,         /* malformed: close the connection (err says why) */
};

void pr_request_init(struct pr_request *r);
void pr_request_reset(struct pr_request *r);
void pr_request_free(struct pr_request *r);

/*
 * Consumes bytes of data (len) into r. Returns PR_COMPLETE when an empty
 * line ended a request (with *used set to the bytes consumed, the rest
 * belonging to the next request), PR_NEED_MORE when all bytes were
 * consumed without completing one, or PR_BAD with err.
 */
enum pr_parse_status pr_request_feed(struct pr_request *r, const char *data, size_t len, size_t *used,
				     struct mw_buf *err);

/* The domain part of an address ("" for none; points into addr). */
const char *pr_domain_of(const char *addr);

#endif
