/* libFuzzer target: milter-auth-report ingest, a whole message: MIME
   parts, base64, gzip, zip, and the aggregate report XML (libxml2). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report_ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void row(void *ctx, const struct ma_rua_row *r)
{
	if (r->source_ip[0] == '\0' || memchr(r->dkim, '\0', sizeof(r->dkim)) == NULL)
		abort();
	(*(int *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_buf err = MW_BUF_INIT;
	int rows = 0;
	int n = ma_report_ingest_message((const char *)data, size, 1 << 20, row, &rows, &err);
	if (n < 0 && mw_buf_len(&err) == 0)
		abort();
	mw_buf_reset(&err);
	ma_report_ingest_xml((const char *)data, size, row, &rows, &err);
	mw_buf_free(&err);
	return 0;
}
