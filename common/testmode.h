/*
 * testmode: what the milters' test mode (-t MESSAGE) shares: reading the
 * message file and feeding it to a milter's message callbacks the way an
 * MTA does, and printing a change on one line.
 *
 * Daemon code only: a file that cannot be read exits with MW_EXIT_CONFIG.
 */
#ifndef MW_TESTMODE_H
#define MW_TESTMODE_H

#include <stddef.h>

/* The file (or "-" for stdin), at most max bytes; the caller frees it. */
char *mw_test_read_file(const char *path, size_t max, size_t *len);

struct mw_test_feed {
	void (*header)(void *ctx, const char *name, const char *value);
	void (*eoh)(void *ctx);
	void (*body)(void *ctx, const unsigned char *data, size_t len);
	void *ctx;
};

/*
 * Each header's name and its value after the colon with folds kept (CRLF),
 * then eoh, then the body with CRLF line ends in chunks of at most 64 KB
 * (as libmilter hands it over). A line that is not a header ends the
 * header section, as Postfix treats it.
 */
void mw_test_feed_message(const char *text, size_t len, const struct mw_test_feed *f);

/* prefix then value on one line: a fold prints as one space. */
void mw_test_print_folded(const char *prefix, const char *value);

/* An envelope address without its angle brackets. */
void mw_test_strip_brackets(const char *addr, char *out, size_t size);

#endif
