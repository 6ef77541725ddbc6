/* libFuzzer target: socketmap netstrings and requests (tlspolicyd). A
   decoded netstring must lie inside the input, and re-encode to the same
   bytes. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspol_netstring.h"
#include "tlspol_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *p, *name, *key;
	size_t plen, consumed, nlen, klen;
	struct mw_buf enc = MW_BUF_INIT, dest = MW_BUF_INIT;
	while (size > 0 && tlspol_ns_decode(in, size, TLSPOL_NETSTRING_MAX, &p, &plen, &consumed) == TLSPOL_NS_OK) {
		if (consumed > size || p < in || p + plen > in + consumed || plen > TLSPOL_NETSTRING_MAX)
			abort();
		mw_buf_reset(&enc);
		tlspol_ns_encode(&enc, p, plen);
		if (enc.len != consumed || memcmp(enc.data, in, consumed) != 0)
			abort();
		if (tlspol_ns_split_request(p, plen, &name, &nlen, &key, &klen) == 0) {
			if (key + klen != p + plen || nlen == 0 || klen == 0)
				abort();
			(void)tlspol_dest_normalize(key, klen, &dest);
		}
		in += consumed;
		size -= consumed;
	}
	mw_buf_free(&enc);
	mw_buf_free(&dest);
	return 0;
}
