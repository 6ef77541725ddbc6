/* libFuzzer target: the DKIM canonicalization of our Ed25519 signer
   (dksign.c). Properties: feeding a body in two pieces gives the same
   bytes as feeding it whole; every line of the output ends in CRLF. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dksign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void canon(const uint8_t *d, size_t n, size_t split, int relaxed, struct mw_buf *out)
{
	struct ma_body_canon c;
	ma_body_canon_init(&c, relaxed);
	ma_body_canon_feed(&c, d, split);
	ma_body_canon_feed(&c, d + split, n - split);
	ma_body_canon_end(&c);
	mw_buf_append(out, c.out.data, mw_buf_len(&c.out));
	ma_body_canon_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % size;
	data++;
	size--;
	if (split > size)
		split = size;
	for (int relaxed = 0; relaxed < 2; relaxed++) {
		struct mw_buf whole = MW_BUF_INIT, parts = MW_BUF_INIT;
		canon(data, size, 0, relaxed, &whole);
		canon(data, size, split, relaxed, &parts);
		if (mw_buf_len(&whole) != mw_buf_len(&parts) ||
		    memcmp(mw_buf_str(&whole), mw_buf_str(&parts), mw_buf_len(&whole)) != 0)
			abort();
		size_t n = mw_buf_len(&whole);
		if (n > 0 && (n < 2 || whole.data[n - 2] != '\r' || whole.data[n - 1] != '\n'))
			abort();
		for (size_t i = 0; i < n; i++)
			if (whole.data[i] == '\n' && (i == 0 || whole.data[i - 1] != '\r'))
				abort();
		mw_buf_free(&whole);
		mw_buf_free(&parts);
		struct mw_buf h = MW_BUF_INIT;
		ma_header_canon((const char *)data, size, relaxed, &h);
		mw_buf_free(&h);
	}
	return 0;
}
