/* libFuzzer target: SPF record checks, the rewrite for libspf2, and macro
   expansion. A record we accept must rewrite into one we accept again. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_buf why = MW_BUF_INIT, out = MW_BUF_INIT;
	const char *text = (const char *)data;

	if (ma_spf_record_check(text, size, &why) == 0) {
		for (int v6 = 0; v6 < 2; v6++) {
			mw_buf_reset(&out);
			if (ma_spf_record_normalize(text, size, v6, &out) != 0)
				abort();
			mw_buf_reset(&why);
			if (ma_spf_record_check(out.data, mw_buf_len(&out), &why) != 0)
				abort(); /* our rewrite must stay within the grammar */
		}
	} else if (mw_buf_len(&why) == 0) {
		abort();
	}
	struct ma_spf_macros m = { .sender = "a@b.example", .local = "a", .sender_domain = "b.example",
				   .domain = "b.example", .helo = "h.example", .receiver = "r.example" };
	mw_buf_reset(&out);
	ma_spf_expand(text, size, 1, &m, &out);
	mw_buf_reset(&out);
	ma_spf_expand(text, size, 0, &m, &out);
	mw_buf_free(&why);
	mw_buf_free(&out);
	return 0;
}
