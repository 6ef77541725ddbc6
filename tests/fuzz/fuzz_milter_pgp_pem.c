/* libFuzzer target: the password-encrypted envelope's parser (pem.h), as
   milter-pgp-pem open meets it in a page, a reply.html or a mail body. Low
   iteration counts go on through the KDF and AES-GCM with a fixed password
   (which must fail: the fuzzer cannot forge the tag). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mp_pem_params p;
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;
	int r = mp_pem_parse(data, size, &p, &err);
	if (r == 0) {
		if (p.version != 1 || p.iterations < MP_PEM_MIN_ITERATIONS || p.iterations > MP_PEM_MAX_ITERATIONS ||
		    p.ct.len < 16 || p.ct.len > size || (strcmp(p.kind, "message") != 0 && strcmp(p.kind, "reply") != 0))
			abort();
	} else if (err.len == 0) {
		abort(); /* every refusal says why */
	}
	if (r == 0 && p.iterations <= 2000) {
		mw_buf_reset(&err);
		if (mp_pem_open("fuzz", data, size, &out, &err) == 0 || out.len != 0)
			abort();
	}
	mp_pem_params_free(&p);
	mw_buf_free(&err);
	mw_buf_free(&out);
	return 0;
}
