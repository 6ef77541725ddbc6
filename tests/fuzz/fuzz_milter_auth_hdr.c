/* libFuzzer target: what milter-auth parses in headers itself (From
   mailboxes, the Authentication-Results authserv-id, DKIM tags). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdrparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Not NUL-terminated on purpose: the parsers take lengths. A copy
	   with a NUL for the functions that need one. */
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct ma_from f;
	if (ma_from_parse((const char *)data, size, &f) == 0 && strlen(f.domain) >= MA_DOMAIN_MAX)
		abort(); /* the From parser's own properties: fuzz_milter_auth_from */
	char id[64];
	if (ma_ar_authserv_id((const char *)data, size, id, sizeof(id)) == 0 && strlen(id) >= sizeof(id))
		abort();
	char d[MA_DOMAIN_MAX];
	ma_dkim_tag((const char *)data, size, "d", d, sizeof(d));
	char norm[MA_DOMAIN_MAX];
	ma_domain_normalize(text, size, norm, sizeof(norm));
	free(text);
	return 0;
}
