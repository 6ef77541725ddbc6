/*
 * spf_record: RFC 7208 checks milter-auth makes itself, around libspf2:
 * domain name validity (4.3) and record syntax (4.6, 12), where libspf2 is
 * more lenient than the RFC. Pure functions, no allocation; fuzzed.
 */
#ifndef MA_SPF_RECORD_H
#define MA_SPF_RECORD_H

#include <stddef.h>

/* 1 if domain is a valid multi-label domain name (RFC 7208 4.3), else 0. */
int ma_spf_domain_is_valid(const char *domain);

#endif
