/* libFuzzer target: tlspolicyd's policy file. Accepted or refused with a
   "name:line:" message; every entry found again by lookup. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspol_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlspol_policy p;
	struct mw_buf err = MW_BUF_INIT;
	if (tlspol_policy_parse(&p, "fuzz", (const char *)data, size, &err) == 0) {
		for (size_t i = 0; i < p.n; i++) {
			if (tlspol_policy_lookup(&p, p.v[i].dest) != &p.v[i])
				abort();
			if (tlspol_policy_check(p.v[i].policy, &err) != 0)
				abort();
		}
		tlspol_policy_free(&p);
	} else if (strncmp(mw_buf_str(&err), "fuzz:", 5) != 0) {
		abort();
	}
	mw_buf_free(&err);
	return 0;
}
