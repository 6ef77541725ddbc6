/*
 * ma_from_parse() on the command line, for the differential test against
 * Python's email.headerregistry (from-parse.py): each input line is one
 * From value in hex; each output line is "ok LOCAL-HEX DOMAIN" or
 * "err MAILBOXES REASON".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdrparse.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int main(void)
{
	static char line[1 << 20], value[1 << 19];
	while (fgets(line, sizeof(line), stdin) != NULL) {
		size_t n = strcspn(line, "\r\n"), len = 0;
		for (size_t i = 0; i + 1 < n; i += 2) {
			int hi = hexval(line[i]), lo = hexval(line[i + 1]);
			if (hi < 0 || lo < 0) {
				fprintf(stderr, "from-parse: bad hex\n");
				return 2;
			}
			value[len++] = (char)(hi * 16 + lo);
		}
		struct ma_from f;
		if (ma_from_parse(value, len, &f) == 0) {
			printf("ok ");
			for (const unsigned char *p = (const unsigned char *)f.local; *p != '\0'; p++)
				printf("%02x", *p);
			printf("%s %s\n", f.local[0] == '\0' ? "-" : "", f.domain);
		} else {
			printf("err %d %s\n", f.mailboxes, f.error);
		}
	}
	return 0;
}
