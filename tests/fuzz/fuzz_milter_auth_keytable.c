/* libFuzzer target: the signing tables (KeyTable, SigningTable in both
   kinds, sender login map) and lookups in what they parse. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keytable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* First byte: which table; the rest: its text (not NUL-terminated:
	   the parsers take lengths). */
	if (size < 1)
		return 0;
	int which = data[0] % 3;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct mw_buf err = MW_BUF_INIT;
	struct ma_keytable kt;
	static const char keys[] = "k1 example.org:s1:/k1\nk2 %:s2:/k2\n";

	if (which == 0) {
		if (ma_keytable_parse(text, len, "f", &kt, &err) == 0) {
			for (int i = 0; i < kt.n; i++)
				if (kt.rows[i].path[0] != '/')
					abort();
			ma_keytable_free(&kt);
		}
	} else if (which == 1) {
		struct ma_signtable st;
		if (ma_keytable_parse(keys, strlen(keys), "k", &kt, &err) != 0)
			abort();
		for (int refile = 0; refile < 2; refile++) {
			if (ma_signtable_parse(text, len, "f", refile, &kt, &st, &err) == 0) {
				int rows[8];
				int n = ma_signtable_match(&st, "alice", "sub.example.org", rows, 8);
				for (int i = 0; i < n; i++)
					if (rows[i] < 0 || rows[i] >= st.n || st.rows[rows[i]].key >= kt.n)
						abort();
				ma_signtable_free(&st);
			}
		}
		ma_keytable_free(&kt);
	} else {
		struct ma_loginmap lm;
		if (ma_loginmap_parse(text, len, "f", &lm, &err) == 0) {
			(void)ma_loginmap_check(&lm, "alice", "alice", "example.org");
			ma_loginmap_free(&lm);
		}
	}
	/* patterns against text, both from the input */
	char *copy = malloc(size + 1);
	if (copy != NULL) {
		memcpy(copy, data, size);
		copy[size] = '\0';
		char *sep = memchr(copy, '\n', size);
		if (sep != NULL) {
			*sep = '\0';
			(void)ma_wildcard_match(copy, sep + 1);
		}
		free(copy);
	}
	mw_buf_free(&err);
	return 0;
}
