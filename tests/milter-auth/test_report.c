/*
 * Unit tests for the pure part of the DMARC aggregate reports
 * (milter-auth/dmarc_report.c, RFC 9990): the store line round trip and
 * what its parser refuses, rua= URIs with size limits, the
 * external-destination name (RFC 9990 4), report Subjects (no reports
 * about reports), and the records of a report: grouping and counts.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dmarc_report.h"

static void sample(struct ma_report_eval *e, const char *ip, const char *disposition)
{
	memset(e, 0, sizeof(*e));
	e->ts = 1764547200;
	snprintf(e->host, sizeof(e->host), "mx1");
	snprintf(e->source_ip, sizeof(e->source_ip), "%s", ip);
	snprintf(e->header_from, sizeof(e->header_from), "example.com");
	snprintf(e->envelope_from, sizeof(e->envelope_from), "bounce@example.com");
	snprintf(e->policy_domain, sizeof(e->policy_domain), "example.com");
	snprintf(e->discovery, sizeof(e->discovery), "treewalk");
	snprintf(e->p, sizeof(e->p), "reject");
	e->adkim = e->aspf = 'r';
	e->testing = 'n';
	snprintf(e->disposition, sizeof(e->disposition), "%s", disposition);
	snprintf(e->dkim_aligned, sizeof(e->dkim_aligned), "fail");
	snprintf(e->spf_aligned, sizeof(e->spf_aligned), "fail");
	snprintf(e->spf_domain, sizeof(e->spf_domain), "example.com");
	snprintf(e->spf_result, sizeof(e->spf_result), "softfail");
	e->ndkim = 1;
	snprintf(e->dkim[0].domain, sizeof(e->dkim[0].domain), "example.com");
	snprintf(e->dkim[0].selector, sizeof(e->dkim[0].selector), "s1");
	snprintf(e->dkim[0].result, sizeof(e->dkim[0].result), "fail");
	snprintf(e->rua, sizeof(e->rua), "mailto:dmarc@example.com");
}

static void test_line_round_trip(void **state)
{
	(void)state;
	struct ma_report_eval a, b;
	struct mw_buf line = MW_BUF_INIT, err = MW_BUF_INIT;
	sample(&a, "192.0.2.1", "reject");
	/* a message-controlled value with a TAB, a newline and a '%' */
	snprintf(a.reason_comment, sizeof(a.reason_comment), "x\ty\nz%%");
	snprintf(a.reason, sizeof(a.reason), "other");
	ma_report_eval_format(&a, &line);
	assert_int_equal(strchr(mw_buf_str(&line), '\n') - mw_buf_str(&line), (long)mw_buf_len(&line) - 1);
	assert_int_equal(ma_report_eval_parse(mw_buf_str(&line), mw_buf_len(&line), &b, &err), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	mw_buf_free(&line);
	mw_buf_free(&err);
}

static void test_line_refused(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		const char *why;
	} rows[] = {
		{ "", "empty" },
		{ "mwdr1\t1", "too few fields" },
		{ "mwdr2\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\treject\t\t\tr\tr\tn"
		  "\treject\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com", "unknown version" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\tbogus\t\t\tr\tr\tn"
		  "\treject\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com", "bad policy" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\treject\t\t\tr\tr\tn"
		  "\tdiscard\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com", "bad disposition" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\treject\t\t\tr\tr\tn"
		  "\treject\tfail\tfail\t\t\texample.com\tfail\td/s/great\tmailto:a@example.com", "bad DKIM result" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\treject\t\t\tr\tr\tn"
		  "\treject\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com\textra", "a field too many" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample%00.com\texample.com\texample.com\ttreewalk\treject\t\t\tr"
		  "\tr\tn\treject\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com", "an encoded NUL" },
		{ "mwdr1\t1764547200\tmx1\t192.0.2.1\texample.com\texample.com\texample.com\ttreewalk\treject\t\t\tr\tr\tn"
		  "\treject\tfail\tfail\t\t\texample.com\tfail\t\tmailto:a@example.com", "valid (control row)" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ma_report_eval e;
		struct mw_buf err = MW_BUF_INIT;
		int rc = ma_report_eval_parse(rows[i].line, strlen(rows[i].line), &e, &err);
		int want = i + 1 == sizeof(rows) / sizeof(rows[0]) ? 0 : -1;
		if (rc != want)
			fail_msg("%s: got %d (%s)", rows[i].why, rc, mw_buf_str(&err));
		mw_buf_free(&err);
	}
}

static void test_rua(void **state)
{
	(void)state;
	struct ma_rua_uri u[MA_REPORT_MAX_RUA];
	/* other schemes, no domain and two '@' (b%40c@) are skipped */
	int n = ma_report_rua_parse(" mailto:a@Example.COM!10m , https://x.example/r, mailto:b%40c@d.example,"
				    "mailto:g%2Eh@d.example!2k, mailto:nodomain, mailto:e@f.example?subject=x", u,
				    MA_REPORT_MAX_RUA);
	assert_int_equal(n, 3);
	assert_string_equal(u[0].mailbox, "a@Example.COM");
	assert_string_equal(u[0].domain, "example.com");
	assert_int_equal(u[0].max_size, 10ULL * 1024 * 1024);
	assert_string_equal(u[1].mailbox, "g.h@d.example");
	assert_string_equal(u[1].domain, "d.example");
	assert_int_equal(u[1].max_size, 2048);
	assert_string_equal(u[2].mailbox, "e@f.example");
	assert_int_equal(u[2].max_size, 0);
	/* at most max */
	assert_int_equal(ma_report_rua_parse("mailto:a@x.example,mailto:b@x.example", u, 1), 1);
}

static void test_external(void **state)
{
	(void)state;
	char name[300];
	assert_false(ma_report_rua_is_external("example.com", "example.com"));
	assert_true(ma_report_rua_is_external("example.com", "reports.example"));
	assert_int_equal(ma_report_verify_name("blue.example.com", "red.example.net", name, sizeof(name)), 0);
	assert_string_equal(name, "blue.example.com._report._dmarc.red.example.net"); /* RFC 9990 4 */
	char longd[250];
	memset(longd, 'a', sizeof(longd) - 1);
	longd[sizeof(longd) - 1] = '\0';
	assert_int_equal(ma_report_verify_name(longd, "x.example", name, sizeof(name)), -1);
}

static void test_subject(void **state)
{
	(void)state;
	assert_true(ma_report_subject_is_report(" Report Domain: example.com Submitter: google.com Report-ID: <1>"));
	assert_true(ma_report_subject_is_report(" Report\r\n Domain: example.com\r\n Submitter: x.example"));
	assert_false(ma_report_subject_is_report(" Re: Report Domain: example.com Submitter: x"));
	assert_false(ma_report_subject_is_report(" Report Domain: example.com"));
	assert_false(ma_report_subject_is_report(" Reporting Domain: a Submitter: b"));
}

static void test_xml_records(void **state)
{
	(void)state;
	struct ma_report_eval e[5];
	const struct ma_report_eval *p[5];
	sample(&e[0], "192.0.2.1", "reject");
	sample(&e[1], "192.0.2.2", "reject");
	sample(&e[2], "192.0.2.1", "reject");
	sample(&e[3], "192.0.2.1", "none");
	sample(&e[4], "192.0.2.1", "reject");
	snprintf(e[4].envelope_from, sizeof(e[4].envelope_from), "other@EXAMPLE.com"); /* same domain */
	e[3].ts++;
	snprintf(e[3].p, sizeof(e[3].p), "none"); /* the latest policy is the one published */
	for (int i = 0; i < 5; i++)
		p[i] = &e[i];
	struct ma_report_meta meta = { "Org <&>", "r@example.org", "example.org", "id1", 1764460800, 1764547199,
				       "gen" };
	struct mw_buf x = MW_BUF_INIT;
	unsigned long long msgs;
	assert_int_equal(ma_report_xml(&meta, p, 5, &x, &msgs), 3);
	assert_int_equal(msgs, 5);
	const char *s = mw_buf_str(&x);
	assert_non_null(strstr(s, "<org_name>Org &lt;&amp;&gt;</org_name>"));
	assert_non_null(strstr(s, "<p>none</p>"));
	assert_non_null(strstr(s, "<count>3</count>"));
	assert_null(strstr(s, "bounce@"));   /* domains only, never the local part */
	assert_non_null(strstr(s, "<envelope_from>example.com</envelope_from>"));
	mw_buf_free(&x);
	struct mw_buf f = MW_BUF_INIT;
	ma_report_filename(&meta, "example.com", &f);
	assert_string_equal(mw_buf_str(&f), "example.org!example.com!1764460800!1764547199!id1.xml.gz");
	mw_buf_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_round_trip),
		cmocka_unit_test(test_line_refused),
		cmocka_unit_test(test_rua),
		cmocka_unit_test(test_external),
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_xml_records),
	};
	return cmocka_run_group_tests_name("milter-auth-report", tests, NULL, NULL);
}
