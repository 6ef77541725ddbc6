/*
 * ma-spfcheck: runs the SPF engine alone (no MTA, no message), for the
 * RFC 7208 conformance suite and for admins: prints "RESULT" and, for
 * fail, "explanation: TEXT".
 *   ma-spfcheck -r RESOLVER [-t TIMEOUT_MS] IP HELO SENDER [helo]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spf.h"
#include "strnum.h"

int main(int argc, char **argv)
{
	struct mw_dns_conf dc = { 0 };
	struct mw_buf err = MW_BUF_INIT;
	int opt;

	dc.resolver = "system";
	dc.timeout_ms = 2000;
	dc.budget_ms = 20000;
	dc.trust_anchor = "none";
	while ((opt = getopt(argc, argv, "r:t:")) != -1) {
		unsigned long long v;
		switch (opt) {
		case 'r': dc.resolver = optarg; break;
		case 't':
			if (mw_parse_uint(optarg, 60000, &v) < 0)
				return 2;
			dc.timeout_ms = v;
			break;
		default: return 2;
		}
	}
	if (argc - optind < 3) {
		fprintf(stderr, "usage: ma-spfcheck [-r RESOLVER] [-t MS] IP HELO SENDER [helo]\n");
		return 2;
	}
	struct mw_dns *dns = mw_dns_new(&dc, &err);
	if (dns == NULL) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		return 2;
	}
	struct ma_spf *spf = ma_spf_new(dns, "mx.example.org", &err);
	if (spf == NULL) {
		fprintf(stderr, "%s\n", mw_buf_str(&err));
		return 2;
	}
	struct ma_spf_verdict v;
	struct mw_dns_budget budget;
	ma_spf_verdict_init(&v);
	mw_dns_budget_start(dns, &budget, 0);
	int helo = argc - optind > 3 && strcmp(argv[optind + 3], "helo") == 0;
	ma_spf_check(spf, &budget, helo ? MA_SPF_HELO : MA_SPF_MAILFROM, argv[optind], argv[optind + 1],
		     argv[optind + 2], &v);
	printf("%s\n", ma_spf_result_name(v.result));
	if (mw_buf_len(&v.explanation))
		printf("explanation: %s\n", mw_buf_str(&v.explanation));
	if (mw_buf_len(&v.reason))
		printf("reason: %s\n", mw_buf_str(&v.reason));
	ma_spf_verdict_free(&v);
	ma_spf_free(spf);
	mw_dns_free(dns);
	return 0;
}
