/* libFuzzer target: Autocrypt's parsers of message text (autocrypt.h): the
   input is at once an Autocrypt header value, an Authentication-Results
   value and a Date value; a parsed header is written back and parsed again. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autocrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *d, const char *from)
{
	return strcmp(d, from) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* not NUL-terminated: the parsers must stay within size */
	char *text = malloc(size ? size : 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	struct mp_ac_header h;
	const char *why = NULL;
	if (mp_ac_parse(text, size, &h, &why) == 0) {
		if (h.keydata == NULL || h.keylen == 0 || strchr(h.addr, '@') == NULL)
			abort();
		/* what we would send for it parses back to the same */
		struct mw_buf v = MW_BUF_INIT;
		struct mp_ac_header h2;
		mp_ac_header_value(h.addr, h.mutual, h.keydata, h.keylen, &v);
		if (mp_ac_parse(mw_buf_str(&v), mw_buf_len(&v), &h2, &why) != 0 || strcmp(h2.addr, h.addr) != 0 ||
		    h2.mutual != h.mutual || h2.keylen != h.keylen || memcmp(h2.keydata, h.keydata, h.keylen) != 0)
			abort();
		mp_ac_header_free(&h2);
		mw_buf_free(&v);
		mp_ac_header_free(&h);
	} else if (why == NULL) {
		abort();
	}
	enum mp_ac_ar v = mp_ac_ar_verdict(text, size, "mx.example.org", "example.org", same);
	if (v < MP_AC_AR_OTHER || v > MP_AC_AR_DKIM)
		abort();
	long long t;
	(void)mp_ac_date(text, size, &t);
	free(text);
	return 0;
}
