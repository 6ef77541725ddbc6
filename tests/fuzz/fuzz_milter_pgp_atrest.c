/* libFuzzer target: milter-pgp's encryption at rest opt-in list (atrest.h),
   a file in the keyring directory. Every address the walker yields must be
   found by the lookup, and the walk must end. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "atrest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_atrest a;
	char addr[512];
	size_t pos = 0, n = 0;
	mw_buf_init(&a.text, 0);
	if (mw_buf_append(&a.text, data, size) < 0)
		abort();
	(void)mp_atrest_has(&a, "bob@example.net");
	while (mp_atrest_next(&a, &pos, addr, sizeof(addr))) {
		if (!mp_atrest_has(&a, addr) || ++n > size)
			abort();
	}
	mp_atrest_free(&a);
	return 0;
}
