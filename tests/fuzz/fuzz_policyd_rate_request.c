/* libFuzzer target: the policy protocol parser, fed the input in pieces
   (as a socket delivers it), and the rules applied to what it parsed. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pr_rule rules[3];
static int nrules;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (nrules == 0) {
		static const char *const text[] = {
			"u: key=sasl_username|sender|client_address limit=250/1h,1000/1d",
			"n: key=client_network/24//64 limit=10/1m count=recipients match=unauthenticated",
			"d: key=recipient_domain|sender_domain|global limit=5/1s count=bytes networks=10.0.0.0/8,::1/128",
		};
		struct mw_buf err = MW_BUF_INIT;
		for (int i = 0; i < 3; i++)
			if (pr_rule_parse(text[i], &rules[nrules], &err) == 0)
				nrules++;
			else
				abort();
		mw_buf_free(&err);
	}
	/* the first byte picks the piece size: 1..256 */
	size_t piece = size > 0 ? (size_t)data[0] + 1 : 1;
	const char *p = size > 0 ? (const char *)data + 1 : (const char *)data;
	size_t left = size > 0 ? size - 1 : 0;
	struct pr_request req;
	struct mw_buf err = MW_BUF_INIT, key = MW_BUF_INIT;
	pr_request_init(&req);
	while (left > 0) {
		size_t n = left < piece ? left : piece;
		size_t used = 0;
		enum pr_parse_status st = pr_request_feed(&req, p, n, &used, &err);
		if (st == PR_BAD)
			break;
		if (st == PR_COMPLETE) {
			if (used > n)
				abort();
			for (int i = 0; i < nrules; i++) {
				enum pr_key_kind kind;
				mw_buf_reset(&key);
				if (pr_rule_key(&rules[i], &req, &key, &kind) == 0 && mw_buf_len(&key) == 0)
					abort();
				if (pr_rule_cost(&rules[i], &req) < 1)
					abort();
			}
			pr_request_reset(&req);
			n = used;
		}
		p += n;
		left -= n;
	}
	pr_request_free(&req);
	mw_buf_free(&err);
	mw_buf_free(&key);
	return 0;
}
