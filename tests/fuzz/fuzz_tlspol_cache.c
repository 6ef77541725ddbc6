/* libFuzzer target: tlspolicyd's cache file. Whatever loads writes out in
   a form that loads back to the same thing. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspol_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlspol_cache *a = tlspol_cache_new(1000), *b = tlspol_cache_new(1000);
	struct mw_buf one = MW_BUF_INIT, two = MW_BUF_INIT;
	size_t bad = 0;
	tlspol_cache_parse(a, (const char *)data, size, &bad);
	tlspol_cache_format(a, &one);
	tlspol_cache_parse(b, mw_buf_str(&one), mw_buf_len(&one), &bad);
	if (bad != 0 || tlspol_cache_count(a) != tlspol_cache_count(b))
		abort();
	tlspol_cache_format(b, &two);
	if (one.len != two.len || memcmp(mw_buf_str(&one), mw_buf_str(&two), one.len) != 0)
		abort();
	tlspol_cache_free(a);
	tlspol_cache_free(b);
	mw_buf_free(&one);
	mw_buf_free(&two);
	return 0;
}
