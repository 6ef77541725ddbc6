#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "strnum.h"

int mw_parse_uint_n(const char *s, size_t n, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > max / 10)
			return -1;
		v *= 10;
		if (d > max - v)
			return -1;
		v += d;
	}
	*out = v;
	return 0;
}

int mw_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	return mw_parse_uint_n(s, strlen(s), max, out);
}

/* Splits "123unit" into the number and the unit suffix. */
static int split_number(const char *s, unsigned long long *v, const char **unit)
{
	size_t n = strspn(s, "0123456789");
	if (mw_parse_uint_n(s, n, UINT64_MAX, v) < 0)
		return -1;
	*unit = s + n;
	return 0;
}

static int mul_checked(unsigned long long v, unsigned long long m, unsigned long long max,
		       unsigned long long *out)
{
	if (m != 0 && v > max / m)
		return -1;
	*out = v * m;
	return 0;
}

int mw_parse_duration_ms(const char *s, unsigned long long max_ms, unsigned long long *ms_r)
{
	static const struct {
		const char *unit;
		unsigned long long ms;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }, { "w", 604800000 },
	};
	unsigned long long v;
	const char *unit;

	if (split_number(s, &v, &unit) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(unit, units[i].unit) == 0)
			return mul_checked(v, units[i].ms, max_ms, ms_r);
	return -1;
}

int mw_parse_size(const char *s, unsigned long long max, unsigned long long *bytes_r)
{
	unsigned long long v, m;
	const char *unit;

	if (split_number(s, &v, &unit) < 0)
		return -1;
	switch (unit[0]) {
	case '\0': m = 1; break;
	case 'k': case 'K': m = 1024ULL; unit++; break;
	case 'm': case 'M': m = 1024ULL * 1024; unit++; break;
	case 'g': case 'G': m = 1024ULL * 1024 * 1024; unit++; break;
	case 'b': case 'B': m = 1; break;
	default: return -1;
	}
	if ((unit[0] == 'b' || unit[0] == 'B') && unit[1] == '\0')
		unit++;
	if (unit[0] != '\0')
		return -1;
	return mul_checked(v, m, max, bytes_r);
}

int mw_parse_bool(const char *s, int *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = 0;
			return 0;
		}
	}
	return -1;
}

void mw_format_duration_ms(unsigned long long ms, char *out, size_t outlen)
{
	static const struct {
		const char *unit;
		unsigned long long ms;
	} units[] = {
		{ "w", 604800000 }, { "d", 86400000 }, { "h", 3600000 },
		{ "m", 60000 }, { "s", 1000 },
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(out, outlen, "%llu%s", ms / units[i].ms, units[i].unit);
			return;
		}
	}
	if (ms == 0)
		snprintf(out, outlen, "0s");
	else
		snprintf(out, outlen, "%llums", ms);
}
