#include "config.h"

#include <string.h>

#include "spf_record.h"

int ma_spf_domain_is_valid(const char *domain)
{
	size_t len = strlen(domain), label = 0;
	int labels = 0;

	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (domain[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (++label == 1)
			labels++;
		if (label > 63)
			return 0;
	}
	return label > 0 && labels >= 2;
}
