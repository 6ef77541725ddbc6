/* libFuzzer target: milter-pgp's MIME walker. The input's first line is
   the Content-Type value, the rest the body. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nl = memchr(text, '\n', size);
	size_t clen = nl != NULL ? (size_t)(nl - text) : size;
	const char *body = nl != NULL ? nl + 1 : text + size;
	size_t blen = size - (size_t)(body - text);
	struct mp_result r;
	struct mp_ctype ct;

	if (mp_ctype_parse(text, clen, &ct) == 0 &&
	    (strlen(ct.type) >= sizeof(ct.type) || strlen(ct.boundary) >= sizeof(ct.boundary)))
		abort();
	mp_classify(text, clen, body, blen, &r);
	if (r.protection > MP_SMIME || r.max_depth > MP_MAX_DEPTH + 1 || r.parts > MP_MAX_PARTS)
		abort();
	if (r.malformed && r.protection != MP_PLAIN)
		abort(); /* a broken message is never taken as already protected */
	return 0;
}
