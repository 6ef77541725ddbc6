/* libFuzzer target: milter-auth's DMARC report store lines (the parser
   milter-auth-report reads store files with) and rua= URI lists. A line
   that parses must survive format -> parse unchanged. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ma_report_eval a, b;
	struct mw_buf err = MW_BUF_INIT, line = MW_BUF_INIT;
	if (ma_report_eval_parse((const char *)data, size, &a, &err) == 0) {
		ma_report_eval_format(&a, &line);
		mw_buf_reset(&err);
		if (ma_report_eval_parse(mw_buf_str(&line), mw_buf_len(&line), &b, &err) != 0 ||
		    memcmp(&a, &b, sizeof(a)) != 0)
			abort();
		struct mw_buf xml = MW_BUF_INIT;
		const struct ma_report_eval *ev[2] = { &a, &b };
		struct ma_report_meta meta = { "org", "r@example.org", "example.org", "id", 0, 86399, NULL };
		unsigned long long n;
		if (ma_report_xml(&meta, ev, 2, &xml, &n) != 1 || n != 2)
			abort();
		mw_buf_free(&xml);
	}
	char rua[1024];
	size_t n = size < sizeof(rua) - 1 ? size : sizeof(rua) - 1;
	memcpy(rua, data, n);
	rua[n] = '\0';
	struct ma_rua_uri uris[MA_REPORT_MAX_RUA];
	int k = ma_report_rua_parse(rua, uris, MA_REPORT_MAX_RUA);
	if (k < 0 || k > MA_REPORT_MAX_RUA)
		abort();
	for (int i = 0; i < k; i++)
		if (strchr(uris[i].mailbox, '@') == NULL || uris[i].domain[0] == '\0')
			abort();
	ma_report_subject_is_report(rua);
	mw_buf_free(&err);
	mw_buf_free(&line);
	return 0;
}
