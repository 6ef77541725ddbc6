/*
 * strnum: strict parsing of numbers, durations, sizes and booleans.
 *
 * No atoi/strtol surprises: the whole input must be consumed, no sign, no
 * leading or trailing space, no overflow. Every function returns 0 on
 * success and -1 on bad input, writing nothing to the result then.
 * Nothing is allocated.
 */
#ifndef MW_STRNUM_H
#define MW_STRNUM_H

#include <stddef.h>

/* Decimal digits only, value <= max. The _n form reads exactly n bytes. */
int mw_parse_uint(const char *s, unsigned long long max, unsigned long long *out);
int mw_parse_uint_n(const char *s, size_t n, unsigned long long max, unsigned long long *out);

/*
 * A duration: a number with an optional unit, "ms", "s" (default), "m",
 * "h", "d" or "w": "500ms", "30", "5m", "1h". Result in milliseconds,
 * at most max_ms.
 */
int mw_parse_duration_ms(const char *s, unsigned long long max_ms, unsigned long long *ms_r);

/* A size: a number with an optional unit "k", "m" or "g" (powers of 1024),
   either case, optional trailing "b": "10m", "512k", "100". */
int mw_parse_size(const char *s, unsigned long long max, unsigned long long *bytes_r);

/* yes/no, true/false, on/off, 1/0 (case-insensitive). */
int mw_parse_bool(const char *s, int *b_r);

/* Formats a duration in milliseconds the way mw_parse_duration_ms reads it,
   in the largest unit that divides it exactly ("1h", "90s", "250ms"). */
void mw_format_duration_ms(unsigned long long ms, char *out, size_t outlen);

#endif
