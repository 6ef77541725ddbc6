/* libFuzzer target: MTA-STS TXT records and policy files (tlspolicyd).
   A parsed policy has what RFC 8461 requires and yields a Postfix policy
   that tlspolicyd's own policy checker accepts. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspol_policy.h"
#include "tlspol_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[TLSPOL_STS_ID_MAX + 1];
	int r = tlspol_sts_txt_parse((const char *)data, size, id);
	if (r == 1 && (strlen(id) == 0 || strlen(id) > TLSPOL_STS_ID_MAX))
		abort();
	struct tlspol_sts_policy p;
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;
	if (tlspol_sts_policy_parse((const char *)data, size, &p, &err) == 0) {
		if (p.max_age > TLSPOL_STS_MAX_AGE_MAX || (p.mode != TLSPOL_STS_NONE && p.nmx == 0))
			abort();
		if (p.nmx > 0) {
			tlspol_sts_postfix_policy(&p, &out);
			if (tlspol_policy_check(mw_buf_str(&out), &err) != 0)
				abort();
		}
		tlspol_sts_policy_free(&p);
	} else if (mw_buf_len(&err) == 0) {
		abort();
	}
	mw_buf_free(&err);
	mw_buf_free(&out);
	return 0;
}
