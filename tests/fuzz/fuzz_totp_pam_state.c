/*
 * libFuzzer target: totp-pam's state-file parser. Whatever parses must
 * format and parse back to the same text (so the module never writes a
 * file it cannot read), and a refusal must leave no secret behind.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "statefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tp_state st, st2;
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT, out2 = MW_BUF_INIT;
	if (tp_state_parse((const char *)data, size, &st, &err) == 0) {
		if (tp_state_format(&st, &out) < 0)
			abort();
		if (tp_state_parse(mw_buf_str(&out), out.len, &st2, &err) < 0)
			abort(); /* we wrote what we cannot read */
		if (tp_state_format(&st2, &out2) < 0 || out.len != out2.len || memcmp(out.data, out2.data, out.len) != 0)
			abort();
	} else if (st.secret_len != 0 || st.nbackup != 0 || st.napp != 0 || mw_buf_len(&err) == 0) {
		abort();
	}
	mw_buf_free(&err);
	mw_buf_free(&out);
	mw_buf_free(&out2);
	return 0;
}
