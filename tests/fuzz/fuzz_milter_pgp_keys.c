/* libFuzzer target: milter-pgp's handling of a WKD reply or an OPENPGPKEY
   rdata (wkd.c: OpenPGP packet framing split into keys), and the WKD/DNS
   names of an address made of the input's first line. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wkd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_keyblock kb[MP_MAX_KEYBLOCKS];
	const char *why = "";
	int n = mp_pgp_keyblocks(data, size, kb, MP_MAX_KEYBLOCKS, &why);
	if (n == 0 || n > MP_MAX_KEYBLOCKS)
		abort();
	size_t end = 0;
	for (int i = 0; i < n; i++) {
		/* consecutive, inside the input, starting with a public key packet */
		if (kb[i].off != end || kb[i].len == 0 || kb[i].off + kb[i].len > size)
			abort();
		end = kb[i].off + kb[i].len;
	}
	if (n > 0 && end != size)
		abort();

	char addr[300];
	size_t alen = size < sizeof(addr) - 1 ? size : sizeof(addr) - 1;
	memcpy(addr, data, alen);
	addr[alen] = '\0';
	addr[strcspn(addr, "\n")] = '\0';
	struct mw_buf a = MW_BUF_INIT, b = MW_BUF_INIT, c = MW_BUF_INIT, d = MW_BUF_INIT;
	if (mp_wkd_urls(addr, &a, &b, &c, &d, &why) == 0) {
		/* nothing but URL-safe characters reaches the path */
		for (const char *p = mw_buf_str(&b); *p != '\0'; p++)
			if (*p <= ' ' || *p == '#' || *p >= 0x7f)
				abort();
		if (strchr(mw_buf_str(&a), '/') != NULL || strchr(mw_buf_str(&c), '/') != NULL)
			abort();
	}
	mp_openpgpkey_name(addr, &a, &why);
	mw_buf_free(&a);
	mw_buf_free(&b);
	mw_buf_free(&c);
	mw_buf_free(&d);
	return 0;
}
