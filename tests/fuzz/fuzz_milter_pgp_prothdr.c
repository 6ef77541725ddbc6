/* libFuzzer target: milter-pgp's protected headers (prothdr.h). The input
   is a header section, "Name:value" per line (a line starting with a blank
   continues the field), the first byte choosing hp and the obscured
   Subject. The output ends with CRLF; an hp parameter is added exactly
   when the Content-Type has none. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prothdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum mp_hp hp = (enum mp_hp)(data[0] % 3);
	int obscure = (data[0] >> 2) & 1;
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct mp_field f[MAX_FIELDS];
	int n = 0;
	char *p = text;
	while (*p != '\0' && n < MAX_FIELDS) {
		char *end = p;
		/* the field runs to a newline not followed by a blank */
		while (*end != '\0' && !(end[0] == '\n' && end[1] != ' ' && end[1] != '\t'))
			end++;
		char *colon = memchr(p, ':', (size_t)(end - p));
		int last = *end == '\0';
		*end = '\0';
		if (colon != NULL && colon > p && memchr(p, '\n', (size_t)(colon - p)) == NULL) {
			*colon = '\0';
			f[n++] = (struct mp_field){ p, colon + 1 };
		}
		if (last)
			break;
		p = end + 1;
	}
	struct mw_buf b = MW_BUF_INIT;
	enum mp_hp got = mp_prothdr_entity(&b, f, n, hp, NULL, obscure);
	size_t len = mw_buf_len(&b);
	const char *out = mw_buf_str(&b);
	if (len < 2 || memcmp(out + len - 2, "\r\n", 2) != 0)
		abort();
	if (hp == MP_HP_NONE && got != MP_HP_NONE)
		abort();
	/* the parameter is skipped exactly when the Content-Type had one */
	int had = 0, ct = 0;
	for (int i = 0; i < n && !ct; i++)
		if (strcasecmp(f[i].name, "Content-Type") == 0) {
			ct = 1;
			had = mp_prothdr_has_hp(f[i].value, strlen(f[i].value));
		}
	if (hp != MP_HP_NONE && (got == MP_HP_NONE) != had)
		abort();
	mw_buf_free(&b);
	free(text);
	return 0;
}
