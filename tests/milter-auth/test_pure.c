/*
 * Unit tests for milter-auth's pure logic: header parsing, SPF record
 * grammar and macros, DKIM body length, DMARC evaluation. Tables of rows.
 */
#include "config.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hdrparse.h"
#include "madkim.h"
#include "madmarc.h"
#include "spf_record.h"

static void test_from(void **state)
{
	(void)state;
	/* domain NULL: an error (a DMARC permerror); mailboxes as far as the
	   parser got. The issue-17 rows are the spoofs that once passed. */
	static const struct {
		const char *value;
		const char *domain;
		int mailboxes;
	} rows[] = {
		{ " alice@example.org", "example.org", 1 },
		{ " Alice <alice@Example.ORG>", "example.org", 1 },
		{ " \"Doe, John\" (boss) <j@a.example>", "a.example", 1 },
		{ " \"quoted@fake.example\" <x@real.example>", "real.example", 1 },
		{ " =?utf-8?q?x@evil.example?= <ceo@paypal.example>", "paypal.example", 1 },
		{ " =?utf-8?q?J=C3=B6rg_<x@evil.example>?= <j@x.example>", "x.example", 1 },
		{ " John Q. Public <jqp@example.com>", "example.com", 1 },
		{ " team: a@g.example;", "g.example", 1 },
		{ " , a@b.example,", "b.example", 1 },
		{ " <@route.example,@r2.example:user@final.example>", "final.example", 1 },
		{ " a . b @ c . example (comment)", "c.example", 1 },
		{ " \"a\\\"b\"@c.example", "c.example", 1 },
		{ " a@one.example, b@two.example", NULL, 2 },
		{ " a@one.example, b@ONE.example", NULL, 2 },
		{ " team: a@g.example, b@g.example;", NULL, 2 },
		{ " undisclosed-recipients:;", NULL, 0 },
		{ " nobody", NULL, 0 },
		{ "", NULL, 0 },
		{ " ceo@paypal.example bob@evil.example", NULL, 1 },
		{ " ceo@paypal.example@evil.example", NULL, 1 },
		{ " <bob@evil.example> <ceo@paypal.example>", NULL, 1 },
		{ " ceo@paypal", NULL, 1 },
		{ " Alice <alice@example.org.>", NULL, 0 },
		{ " x@[192.0.2.1]", NULL, 0 },
		{ " x@exa mple.org (comment) ", NULL, 1 },
		{ " \"unterminated <a@b.example>", NULL, 0 },
		{ " a@b.example (unterminated comment", NULL, 1 },
		{ " x@bad..example", NULL, 0 },
		{ " x@-bad.example", NULL, 1 },
		{ " .a@b.example", NULL, 0 },
		{ " john doe@example.com", NULL, 0 },
		{ " <>", NULL, 0 },
		{ " a@b.example\x01", NULL, 1 },
		{ " team: a@g.example", NULL, 1 },
		{ " a: b: c@d.example;;", NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ma_from f;
		int r = ma_from_parse(rows[i].value, strlen(rows[i].value), &f);
		if ((r == 0) != (rows[i].domain != NULL) || f.mailboxes != rows[i].mailboxes ||
		    (r == 0 && strcmp(f.domain, rows[i].domain) != 0) || (r < 0 && f.error == NULL))
			fail_msg("row %zu \"%s\": r %d mailboxes %d domain \"%s\" error %s", i,
				 rows[i].value, r, f.mailboxes, f.domain, f.error ? f.error : "-");
	}
	/* a NUL inside the domain (the value as the MTA hands it, with its length) */
	static const char nul[] = " ceo@paypal\0.example";
	struct ma_from f;
	assert_int_equal(ma_from_parse(nul, sizeof(nul) - 1, &f), -1);
	assert_string_equal(f.error, "NUL in the From field");
	/* and cut at the NUL, as a C string: a single label */
	assert_int_equal(ma_from_parse(nul, strlen(nul), &f), -1);
	assert_string_equal(f.error, "single-label domain");
}

static void test_ar_authserv_id(void **state)
{
	(void)state;
	static const struct {
		const char *value, *id;
	} rows[] = {
		{ " mx.example.org; spf=pass", "mx.example.org" },
		{ " MX.Example.ORG (comment); dkim=none", "mx.example.org" },
		{ " (leading comment) mx.example.org 1; none", "mx.example.org" },
		{ " \"quoted.example\"; spf=pass", "quoted.example" },
		{ "mx.example.org;", "mx.example.org" },
		{ "  ; spf=pass", NULL },
		{ "", NULL },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char id[64];
		int r = ma_ar_authserv_id(rows[i].value, strlen(rows[i].value), id, sizeof(id));
		if (rows[i].id == NULL) {
			assert_int_equal(r, -1);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(id, rows[i].id);
		}
	}
	char tiny[4];
	assert_int_equal(ma_ar_authserv_id(" toolong.example;", 17, tiny, sizeof(tiny)), -1);
}

static void test_dkim_tag(void **state)
{
	(void)state;
	char out[64];
	const char *sig = " v=1; a=rsa-sha256;\r\n d = ex\r\n ample.org ; s=sel; b=ab c";
	assert_int_equal(ma_dkim_tag(sig, strlen(sig), "d", out, sizeof(out)), 0);
	assert_string_equal(out, "example.org");
	assert_int_equal(ma_dkim_tag(sig, strlen(sig), "b", out, sizeof(out)), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(ma_dkim_tag(sig, strlen(sig), "x", out, sizeof(out)), -1);
	assert_int_equal(ma_dkim_tag("garbage", 7, "d", out, sizeof(out)), -1);
}

static void test_spf_record_check(void **state)
{
	(void)state;
	static const struct {
		const char *record;
		int valid;
	} rows[] = {
		{ "v=spf1", 1 },
		{ "v=spf1 -all", 1 },
		{ "V=SPF1 +A MX:example.com/24//64 ?ptr ~exists:%{i}.bl.example.com -all", 1 },
		{ "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com -all", 1 },
		{ "v=spf1 redirect=_spf.example.com", 1 },
		{ "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all", 1 },
		{ "v=spf1 a:foo:bar/baz.example.com", 1 },
		{ "v=spf1 exists:%{l1r+-}.%{d}", 1 },
		{ "v=spf1 a:example.com.", 1 },
		{ "v=spf10", 0 },
		{ "v=spf1 all:example.com", 0 },
		{ "v=spf1 include", 0 },
		{ "v=spf1 include:", 0 },
		{ "v=spf1 a:museum", 0 },           /* no dot before the top label */
		{ "v=spf1 a:example.123", 0 },      /* all-numeric top label */
		{ "v=spf1 exists:example.com/24", 0 },
		{ "v=spf1 ip4:1.2.3.4/33", 0 },
		{ "v=spf1 ip4:1.2.3.4/032", 0 },
		{ "v=spf1 ip4:1.2.3", 0 },
		{ "v=spf1 ip6:1.2.3.4", 0 },
		{ "v=spf1 ip6:::1/129", 0 },
		{ "v=spf1 a//129", 0 },
		{ "v=spf1 redirect=a.example.com redirect=b.example.com", 0 },
		{ "v=spf1 exp=a.example.com exp=b.example.com", 0 },
		{ "v=spf1 redirect:example.com", 0 },
		{ "v=spf1 foo", 0 },
		{ "v=spf1 a:%{x}.example.com", 0 },  /* unknown macro letter */
		{ "v=spf1 a:%{c}.example.com", 0 },  /* c only in explanations */
		{ "v=spf1 a:%{d0}.example.com", 0 }, /* zero parts */
		{ "v=spf1 a:%.example.com", 0 },
		{ "v=spf1 ip4:1.2.3.4 \x01", 0 },
		{ "v=spf1 a:\xc3\xa9.example.com", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf why = MW_BUF_INIT;
		int r = ma_spf_record_check(rows[i].record, strlen(rows[i].record), &why);
		if ((r == 0) != rows[i].valid)
			fail_msg("\"%s\": %s (%s)", rows[i].record, r == 0 ? "accepted" : "refused", mw_buf_str(&why));
		if (r < 0)
			assert_true(mw_buf_len(&why) > 0);
		mw_buf_free(&why);
	}
}

static void test_spf_normalize(void **state)
{
	(void)state;
	static const struct {
		const char *record;
		int v6;
		const char *want;
	} rows[] = {
		{ "v=spf1 redirect=x.example.com ~all", 0, "v=spf1 ~all redirect=x.example.com" },
		{ "v=spf1 moo=cow -all", 0, "v=spf1 -all" },
		{ "v=spf1 -ip4:1.1.1.1/0", 0, "v=spf1 -ip4:0.0.0.0/1 -ip4:128.0.0.0/1" },
		{ "v=spf1 ip6:::/0", 1, "v=spf1 ip6:::/1 ip6:8000::/1" },
		{ "v=spf1 a/0 -all", 0, "v=spf1 include:%{d}" MA_SPF_ANY_A4 " -all" },
		{ "v=spf1 a/0 -all", 1, "v=spf1 a -all" },
		{ "v=spf1 ~mx:e.example.com//0", 1, "v=spf1 ~include:e.example.com" MA_SPF_ANY_MX6 },
		{ "v=spf1 a:e.example.com/24//0", 0, "v=spf1 a:e.example.com/24" },
		{ "v=spf1 exp=e.example.com -all", 0, "v=spf1 exp=e.example.com -all" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf out = MW_BUF_INIT;
		assert_int_equal(ma_spf_record_normalize(rows[i].record, strlen(rows[i].record), rows[i].v6, &out), 0);
		if (strcmp(mw_buf_str(&out), rows[i].want) != 0)
			fail_msg("\"%s\": got \"%s\"", rows[i].record, mw_buf_str(&out));
		mw_buf_free(&out);
	}
}

static void test_spf_expand(void **state)
{
	(void)state;
	struct ma_spf_macros m = {
		.sender = "strong-bad@email.example.com", .local = "strong-bad",
		.sender_domain = "email.example.com", .domain = "email.example.com",
		.helo = "mx.example.org", .receiver = "mx.receiver.example", .now = 1000,
	};
	inet_pton(AF_INET, "192.0.2.3", m.addr);
	/* RFC 7208 7.4 examples */
	static const struct {
		const char *in, *out;
		int exp;
	} rows[] = {
		{ "%{s}", "strong-bad@email.example.com", 0 },
		{ "%{o}", "email.example.com", 0 },
		{ "%{d}", "email.example.com", 0 },
		{ "%{d4}", "email.example.com", 0 },
		{ "%{d3}", "email.example.com", 0 },
		{ "%{d2}", "example.com", 0 },
		{ "%{d1}", "com", 0 },
		{ "%{dr}", "com.example.email", 0 },
		{ "%{d2r}", "example.email", 0 },
		{ "%{l}", "strong-bad", 0 },
		{ "%{l-}", "strong.bad", 0 },
		{ "%{lr}", "strong-bad", 0 },
		{ "%{lr-}", "bad.strong", 0 },
		{ "%{l1r-}", "strong", 0 },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com", 0 },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com", 0 },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com", 0 },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net", 0 },
		{ "%{S}", "strong-bad%40email.example.com", 0 },
		{ "%%%_%-", "% %20", 0 },
		{ "%{i} is not allowed by %{d}", "192.0.2.3 is not allowed by email.example.com", 1 },
		{ "%{c} at %{t} via %{r}", "192.0.2.3 at 1000 via mx.receiver.example", 1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf out = MW_BUF_INIT;
		if (ma_spf_expand(rows[i].in, strlen(rows[i].in), rows[i].exp, &m, &out) != 0)
			fail_msg("\"%s\": refused", rows[i].in);
		if (strcmp(mw_buf_str(&out), rows[i].out) != 0)
			fail_msg("\"%s\": got \"%s\" want \"%s\"", rows[i].in, mw_buf_str(&out), rows[i].out);
		mw_buf_free(&out);
	}
	struct mw_buf out = MW_BUF_INIT;
	assert_int_equal(ma_spf_expand("%{i} x", 6, 0, &m, &out), -1); /* space outside exp */
	assert_int_equal(ma_spf_expand("%{c}", 4, 0, &m, &out), -1);
	assert_int_equal(ma_spf_expand("%{z}", 4, 1, &m, &out), -1);
	assert_int_equal(ma_spf_expand("%", 1, 1, &m, &out), -1);
	mw_buf_free(&out);
	/* IPv6 %{i}: dotted nibbles */
	m.v6 = 1;
	inet_pton(AF_INET6, "2001:db8::cb01", m.addr);
	assert_int_equal(ma_spf_expand("%{ir}.%{v}", 10, 0, &m, &out), 0);
	assert_string_equal(mw_buf_str(&out),
			    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6");
	mw_buf_free(&out);
}

static void test_dkim_canon_length(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		unsigned long long simple, relaxed;
	} rows[] = {
		{ "", 2, 0 },
		{ "\r\n", 2, 0 },
		{ "\r\n\r\n", 2, 0 },
		{ "Hello\r\n", 7, 7 },
		{ "Hello", 7, 7 },
		{ "Hello  world \t\r\n\r\n\r\n", 16, 13 },
		{ "  lead\r\n", 8, 7 },
		{ "a\r\n\r\nb\r\n", 8, 8 },
		{ "a\r\n \r\n", 6, 3 },
		{ "bare\nlf\n", 10, 10 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		for (int relaxed = 0; relaxed < 2; relaxed++) {
			struct ma_dkim_canon c;
			ma_dkim_canon_init(&c, relaxed);
			/* fed one byte at a time: chunk borders must not matter */
			for (const char *p = rows[i].body; *p != '\0'; p++)
				ma_dkim_canon_feed(&c, (const unsigned char *)p, 1);
			unsigned long long want = relaxed ? rows[i].relaxed : rows[i].simple;
			if (ma_dkim_canon_length(&c) != want)
				fail_msg("row %zu %s: got %llu want %llu", i, relaxed ? "relaxed" : "simple",
					 ma_dkim_canon_length(&c), want);
		}
	}
}

static void test_dmarc_evaluate(void **state)
{
	(void)state;
	struct mw_buf err = MW_BUF_INIT;
	struct ma_dmarc *d = ma_dmarc_new(NULL, "/usr/share/publicsuffix/public_suffix_list.dat", &err);
	assert_non_null(d);
	char org[MA_DOMAIN_MAX];
	ma_dmarc_org_domain(d, "a.b.example.co.uk", org, sizeof(org));
	assert_string_equal(org, "example.co.uk");
	ma_dmarc_org_domain(d, "mail.example.com", org, sizeof(org));
	assert_string_equal(org, "example.com");

	struct ma_dmarc_record rec;
	assert_int_equal(ma_dmarc_parse("v=DMARC1; p=reject; sp=none; adkim=s; pct=30", "example.com", &rec), 0);
	assert_int_equal(rec.p, MA_DMARC_P_REJECT);
	assert_int_equal(rec.sp, MA_DMARC_P_NONE);
	assert_int_equal(rec.adkim, 's');
	assert_int_equal(rec.aspf, 'r');
	assert_int_equal(rec.pct, 30);
	assert_int_equal(ma_dmarc_parse("v=DMARC1; p=bogus", "example.com", &rec), -1);

	assert_int_equal(ma_dmarc_parse("v=DMARC1; p=reject; adkim=s", "example.com", &rec), 0);
	struct ma_dkim_sig sig;
	memset(&sig, 0, sizeof(sig));
	sig.result = MA_DKIM_PASS;
	struct ma_dmarc_verdict v;
	static const struct {
		const char *from, *spf_domain, *dkim_d;
		enum ma_spf_result spf;
		int dice;
		enum ma_dmarc_result result;
		enum ma_dmarc_policy disposition;
	} rows[] = {
		{ "example.com", "example.com", "", MA_SPF_PASS, 0, MA_DMARC_PASS, MA_DMARC_P_NONE },
		{ "example.com", "bounce.example.com", "", MA_SPF_PASS, 0, MA_DMARC_PASS, MA_DMARC_P_NONE },
		{ "example.com", "other.example", "", MA_SPF_PASS, 0, MA_DMARC_FAIL, MA_DMARC_P_REJECT },
		{ "example.com", "", "example.com", MA_SPF_NONE, 0, MA_DMARC_PASS, MA_DMARC_P_NONE },
		{ "example.com", "", "mail.example.com", MA_SPF_NONE, 0, MA_DMARC_FAIL, MA_DMARC_P_REJECT },
		{ "example.com", "example.com", "", MA_SPF_TEMPERROR, 0, MA_DMARC_TEMPERROR, MA_DMARC_P_REJECT },
		{ "example.com", "example.com", "", MA_SPF_FAIL, 0, MA_DMARC_FAIL, MA_DMARC_P_REJECT },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(sig.domain, sizeof(sig.domain), "%s", rows[i].dkim_d);
		ma_dmarc_evaluate(d, rows[i].from, MA_DMARC_FOUND, &rec, rows[i].spf, rows[i].spf_domain,
				  &sig, rows[i].dkim_d[0] ? 1 : 0, rows[i].dice, &v);
		if (v.result != rows[i].result || v.disposition != rows[i].disposition)
			fail_msg("row %zu: %s/%s", i, ma_dmarc_result_name(v.result),
				 ma_dmarc_policy_name(v.disposition));
	}
	/* pct sampling: 30% of failures get p, the rest the next weaker policy */
	assert_int_equal(ma_dmarc_parse("v=DMARC1; p=reject; pct=30", "example.com", &rec), 0);
	ma_dmarc_evaluate(d, "example.com", MA_DMARC_FOUND, &rec, MA_SPF_FAIL, "example.com", NULL, 0, 29, &v);
	assert_int_equal(v.disposition, MA_DMARC_P_REJECT);
	ma_dmarc_evaluate(d, "example.com", MA_DMARC_FOUND, &rec, MA_SPF_FAIL, "example.com", NULL, 0, 30, &v);
	assert_int_equal(v.disposition, MA_DMARC_P_QUARANTINE);
	assert_true(v.sampled_out);
	/* sp applies to a subdomain covered by the org domain's record */
	assert_int_equal(ma_dmarc_parse("v=DMARC1; p=none; sp=quarantine", "example.com", &rec), 0);
	ma_dmarc_evaluate(d, "sub.example.com", MA_DMARC_FOUND, &rec, MA_SPF_FAIL, "sub.example.com", NULL, 0, 0, &v);
	assert_int_equal(v.policy, MA_DMARC_P_QUARANTINE);
	ma_dmarc_evaluate(d, "example.com", MA_DMARC_FOUND, &rec, MA_SPF_FAIL, "example.com", NULL, 0, 0, &v);
	assert_int_equal(v.policy, MA_DMARC_P_NONE);
	/* no record / DNS trouble */
	memset(&rec, 0, sizeof(rec));
	ma_dmarc_evaluate(d, "example.com", MA_DMARC_NOTFOUND, &rec, MA_SPF_FAIL, "example.com", NULL, 0, 0, &v);
	assert_int_equal(v.result, MA_DMARC_NONE);
	ma_dmarc_evaluate(d, "example.com", MA_DMARC_LOOKUP_TEMPERROR, &rec, MA_SPF_PASS, "example.com", NULL, 0, 0, &v);
	assert_int_equal(v.result, MA_DMARC_TEMPERROR);
	ma_dmarc_free(d);
	mw_buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_ar_authserv_id),
		cmocka_unit_test(test_dkim_tag),
		cmocka_unit_test(test_spf_record_check),
		cmocka_unit_test(test_spf_normalize),
		cmocka_unit_test(test_spf_expand),
		cmocka_unit_test(test_dkim_canon_length),
		cmocka_unit_test(test_dmarc_evaluate),
	};
	return cmocka_run_group_tests_name("milter-auth", tests, NULL, NULL);
}
