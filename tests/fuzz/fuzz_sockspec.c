/* libFuzzer target: socket specifications (common/sock). A spec that
   parses must print in canonical form and parse back to the same thing. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct mw_sockspec a, b;
	struct mw_buf err = MW_BUF_INIT, canon = MW_BUF_INIT;
	if (mw_sock_parse(text, &a, &err) == 0) {
		mw_sock_format(&a, &canon);
		if (mw_sock_parse(mw_buf_str(&canon), &b, &err) != 0)
			abort();
		if (a.kind != b.kind || a.port != b.port || strcmp(a.path, b.path) != 0 ||
		    strcmp(a.host, b.host) != 0)
			abort();
	} else if (mw_buf_len(&err) == 0) {
		abort();
	}
	mw_buf_free(&err);
	mw_buf_free(&canon);
	free(text);
	return 0;
}
