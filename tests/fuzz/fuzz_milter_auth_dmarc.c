/* libFuzzer target: milter-auth's DMARC record parser (RFC 9989 4.7/4.8)
   and the tree walk's targets for whatever name the input is. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_record.h"
#include "dmarc_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ma_dmarc_record r;
	/* Not NUL-terminated: the parser takes a length. */
	enum ma_dmarc_parse st = ma_dmarc_record_parse((const char *)data, size, &r);
	if (st != MA_DMARC_REC_OK && st != MA_DMARC_REC_UNUSABLE && st != MA_DMARC_REC_NOT_DMARC)
		abort();
	if (st == MA_DMARC_REC_OK && r.p == MA_DMARC_P_UNSPECIFIED)
		abort();
	if (r.pct < 0 || r.pct > 100 || (r.adkim != 'r' && r.adkim != 's') || (r.aspf != 'r' && r.aspf != 's') ||
	    (r.psd != 'y' && r.psd != 'n' && r.psd != 'u') || memchr(r.problem, '\0', sizeof(r.problem)) == NULL)
		abort();

	char name[MA_DOMAIN_MAX];
	size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
	memcpy(name, data, n);
	name[n] = '\0';
	char names[MA_DMARC_WALK_MAX][MA_DOMAIN_MAX];
	int k = ma_dmarc_walk_targets(name, names);
	if (k < 0 || k > MA_DMARC_WALK_MAX)
		abort();
	for (int i = 1; i < k; i++) /* each a proper suffix of the one before */
		if (strlen(names[i]) >= strlen(names[i - 1]))
			abort();
	return 0;
}
