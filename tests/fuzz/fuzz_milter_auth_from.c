/* libFuzzer target: milter-auth's From parser (hdrparse.c), with the
   properties DMARC relies on. The differential half (against Python's
   email.headerregistry) is tests/milter-auth/from-parse.py, which runs
   the same parser over generated cases. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdrparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_domain(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n >= MA_DOMAIN_MAX || strchr(d, '.') == NULL || d[0] == '.' || d[n - 1] == '.' ||
	    strstr(d, "..") != NULL)
		abort();
	for (const unsigned char *p = (const unsigned char *)d; *p != '\0'; p++)
		if ((*p >= 'A' && *p <= 'Z') || *p <= ' ' || *p == 0x7f || strchr("@<>()[]\\\",;:", *p) != NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ma_from f, g;
	int r = ma_from_parse((const char *)data, size, &f);

	if ((r == 0) != (f.error == NULL) || f.mailboxes < 0)
		abort();
	if (r < 0) {
		if (f.domain[0] != '\0')
			abort();
		return 0;
	}
	if (f.mailboxes != 1 || strlen(f.local) >= MA_LOCAL_MAX)
		abort();
	check_domain(f.domain);

	char *buf = malloc(size + 64 + MA_DOMAIN_MAX);
	if (buf == NULL)
		return 0;
	/* comments around an accepted field change nothing */
	memcpy(buf, "(c) ", 4);
	memcpy(buf + 4, data, size);
	memcpy(buf + 4 + size, " (c)", 4);
	if (ma_from_parse(buf, size + 8, &g) != 0 || strcmp(g.domain, f.domain) != 0)
		abort();
	/* a second mailbox is always refused */
	memcpy(buf + size, ", a@b.example", 13);
	memcpy(buf, data, size);
	if (ma_from_parse(buf, size + 13, &g) == 0)
		abort();
	/* the domain alone, as an address, gives the same domain back */
	size_t n = strlen(f.domain);
	memcpy(buf, "x@", 2);
	memcpy(buf + 2, f.domain, n);
	if (ma_from_parse(buf, n + 2, &g) != 0 || strcmp(g.domain, f.domain) != 0)
		abort();
	free(buf);
	return 0;
}
