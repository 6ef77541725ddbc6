/* libFuzzer target: the rule syntax (a "rule =" value) and the overrides
   file, both written by the admin. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct mw_buf err = MW_BUF_INIT;

	struct pr_rule r;
	memset(&r, 0, sizeof(r));
	if (pr_rule_parse(text, &r, &err) == 0) {
		if (r.nkeys < 1 || r.nkeys > PR_MAX_KEYS || r.nwindows < 1 || r.nwindows > PR_MAX_WINDOWS)
			abort();
		for (int i = 0; i < r.nwindows; i++)
			if (r.windows[i].limit == 0 || r.windows[i].period_ms == 0)
				abort();
		pr_rule_free(&r);
	}
	mw_buf_reset(&err);

	struct pr_overrides o;
	memset(&o, 0, sizeof(o));
	if (pr_overrides_parse("fuzz", (const char *)data, size, &o, &err) == 0) {
		for (size_t i = 0; i < o.n; i++)
			if (pr_overrides_find(&o, o.items[i].rule, o.items[i].key) == NULL)
				abort();
		pr_overrides_free(&o);
	}
	mw_buf_free(&err);
	free(text);
	return 0;
}
