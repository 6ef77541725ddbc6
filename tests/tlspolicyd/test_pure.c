/* Unit tests for tlspolicyd's pure parts: netstrings, the policy file,
   MTA-STS records and policies, the cache file, the decisions. */
#include "config.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tlspol_cache.h"
#include "tlspol_decide.h"
#include "tlspol_netstring.h"
#include "tlspol_policy.h"
#include "tlspol_sts.h"

int main(void)
{
	const struct CMUnitTest tests[] = {
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
