/* Unit tests for tlspolicyd's pure parts: netstrings, the policy file,
   MTA-STS records and policies, the cache file, the decisions. */
#include "config.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tlspol_cache.h"
#include "tlspol_decide.h"
#include "tlspol_netstring.h"
#include "tlspol_policy.h"
#include "tlspol_sts.h"

/* ------------------------------------------------------------ netstrings */

static const struct {
	const char *in;
	enum tlspol_ns_status want;
	const char *payload;
	size_t consumed;
} ns_cases[] = {
	{ "5:hello,", TLSPOL_NS_OK, "hello", 8 },
	{ "0:,", TLSPOL_NS_OK, "", 3 },
	{ "5:hello,5:again,", TLSPOL_NS_OK, "hello", 8 },
	{ "5:hel", TLSPOL_NS_MORE, NULL, 0 },
	{ "5:hello", TLSPOL_NS_MORE, NULL, 0 },
	{ "12", TLSPOL_NS_MORE, NULL, 0 },
	{ "", TLSPOL_NS_MORE, NULL, 0 },
	{ "5:hello;", TLSPOL_NS_MALFORMED, NULL, 0 },
	{ "05:hello,", TLSPOL_NS_MALFORMED, NULL, 0 },
	{ ":hello,", TLSPOL_NS_MALFORMED, NULL, 0 },
	{ "x:hello,", TLSPOL_NS_MALFORMED, NULL, 0 },
	{ "-5:hello,", TLSPOL_NS_MALFORMED, NULL, 0 },
	{ "1025:", TLSPOL_NS_TOOLONG, NULL, 0 },
	{ "99999999999999999999999999:", TLSPOL_NS_TOOLONG, NULL, 0 },
	{ "1024", TLSPOL_NS_MORE, NULL, 0 },
};

static void test_netstring_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ns_cases) / sizeof(ns_cases[0]); i++) {
		const char *p = NULL;
		size_t plen = 0, consumed = 0;
		enum tlspol_ns_status st = tlspol_ns_decode(ns_cases[i].in, strlen(ns_cases[i].in), 1024, &p, &plen, &consumed);
		if (st != ns_cases[i].want)
			fail_msg("%s: status %d, want %d", ns_cases[i].in, st, ns_cases[i].want);
		if (st == TLSPOL_NS_OK) {
			assert_int_equal(plen, strlen(ns_cases[i].payload));
			assert_memory_equal(p, ns_cases[i].payload, plen);
			assert_int_equal(consumed, ns_cases[i].consumed);
		}
	}
}

static void test_netstring_encode_and_split(void **state)
{
	(void)state;
	struct mw_buf b = MW_BUF_INIT;
	assert_int_equal(tlspol_ns_encode(&b, "OK encrypt", 10), 0);
	assert_string_equal(mw_buf_str(&b), "10:OK encrypt,");
	mw_buf_free(&b);
	const char *n, *k;
	size_t nl, kl;
	assert_int_equal(tlspol_ns_split_request("tlspolicy example.com", 21, &n, &nl, &k, &kl), 0);
	assert_int_equal(nl, 9);
	assert_memory_equal(k, "example.com", kl);
	assert_int_equal(tlspol_ns_split_request("tlspolicy ", 10, &n, &nl, &k, &kl), -1);
	assert_int_equal(tlspol_ns_split_request(" example.com", 12, &n, &nl, &k, &kl), -1);
	assert_int_equal(tlspol_ns_split_request("tlspolicy a b", 13, &n, &nl, &k, &kl), -1);
	assert_int_equal(tlspol_ns_split_request("tlspolicy a\nb", 13, &n, &nl, &k, &kl), -1);
	assert_int_equal(tlspol_ns_split_request("nospace", 7, &n, &nl, &k, &kl), -1);
}

/* ------------------------------------------------------------ policy file */

static void test_policy_file(void **state)
{
	(void)state;
	static const char text[] = "# comment\n"
				   "Example.COM   encrypt\n"
				   "  \n"
				   ".example.net\tsecure   match=.example.net\n"
				   "[relay.example]:587 verify match=relay.example\n"
				   "bank.example dane-only\r\n";
	struct tlspol_policy p;
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(tlspol_policy_parse(&p, "pol", text, sizeof(text) - 1, &err), 0);
	assert_int_equal(p.n, 4);
	const struct tlspol_policy_entry *e = tlspol_policy_lookup(&p, "example.com");
	assert_non_null(e);
	assert_string_equal(e->policy, "encrypt");
	assert_int_equal(e->line, 2);
	assert_null(tlspol_policy_lookup(&p, "sub.example.com"));
	e = tlspol_policy_lookup(&p, "a.b.example.net");
	assert_non_null(e);
	assert_string_equal(e->policy, "secure match=.example.net");
	assert_null(tlspol_policy_lookup(&p, "example.net"));
	e = tlspol_policy_lookup(&p, "[relay.example]:587");
	assert_non_null(e);
	assert_string_equal(e->policy, "verify match=relay.example");
	assert_null(tlspol_policy_lookup(&p, "[relay.example]"));
	assert_non_null(tlspol_policy_lookup(&p, "bank.example"));
	tlspol_policy_free(&p);
	mw_buf_free(&err);
}

static const struct {
	const char *text, *err;
} bad_policy[] = {
	{ "example.com\n", "pol:1: no policy after the destination" },
	{ "a.example encrypt\nexample.com bogus\n", "pol:2: unknown TLS policy \"bogus\"" },
	{ "example.com encrypt match=x\n", "pol:1: match= only goes with fingerprint, verify or secure" },
	{ "example.com secure colour=red\n", "pol:1: unknown attribute \"colour\"" },
	{ "example.com secure match\n", "pol:1: expected attribute=value" },
	{ "example.com fingerprint\n", "pol:1: fingerprint needs match=" },
	{ "exa mple.com encrypt\n", "pol:1: unknown TLS policy \"mple.com\"" },
	{ "ex..ample.com encrypt\n", "pol:1: bad destination" },
	{ "ex/ample.com encrypt\n", "pol:1: bad destination" },
	{ "[relay.example:25 encrypt\n", "pol:1: bad destination" },
	{ "[relay.example]:99999 encrypt\n", "pol:1: bad destination" },
	{ "a.example may\n\nA.example encrypt\n", "pol:3: a.example is already listed at line 1" },
};

static void test_policy_file_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_policy) / sizeof(bad_policy[0]); i++) {
		struct tlspol_policy p;
		struct mw_buf err = MW_BUF_INIT;
		if (tlspol_policy_parse(&p, "pol", bad_policy[i].text, strlen(bad_policy[i].text), &err) == 0)
			fail_msg("accepted: %s", bad_policy[i].text);
		if (strncmp(mw_buf_str(&err), bad_policy[i].err, strlen(bad_policy[i].err)) != 0)
			fail_msg("%s: got \"%s\", want \"%s...\"", bad_policy[i].text, mw_buf_str(&err), bad_policy[i].err);
		mw_buf_free(&err);
	}
}

/* ------------------------------------------------------------ MTA-STS */

static const struct {
	const char *txt;
	int want;
	const char *id;
} txt_cases[] = {
	{ "v=STSv1; id=20160831085700Z;", 1, "20160831085700Z" },
	{ "v=STSv1;id=abc", 1, "abc" },
	{ "v=STSv1 ;  id=abc ; ", 1, "abc" },
	{ "v=STSv1; id=abc; ext=1;", 1, "abc" },
	{ "v=STSv1; ext=1; id=X9", 1, "X9" },
	{ "v=spf1 -all", 0, NULL },
	{ "v=STSv10; id=abc", 0, NULL },
	{ "V=STSv1; id=abc", 0, NULL },
	{ "v=STSv1;", -1, NULL },
	{ "v=STSv1; id=", -1, NULL },
	{ "v=STSv1; id=a_b", -1, NULL },
	{ "v=STSv1; id=a; id=b", -1, NULL },
	{ "v=STSv1; id=123456789012345678901234567890123", -1, NULL },
	{ "v=STSv1; id=abc x", -1, NULL },
};

static void test_sts_txt(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(txt_cases) / sizeof(txt_cases[0]); i++) {
		char id[TLSPOL_STS_ID_MAX + 1] = "";
		int r = tlspol_sts_txt_parse(txt_cases[i].txt, strlen(txt_cases[i].txt), id);
		if (r != txt_cases[i].want)
			fail_msg("\"%s\": %d, want %d", txt_cases[i].txt, r, txt_cases[i].want);
		if (r == 1)
			assert_string_equal(id, txt_cases[i].id);
	}
}

static void test_sts_policy(void **state)
{
	(void)state;
	static const char text[] = "version: STSv1\r\nmode: enforce\r\nmx: MX1.example.com\r\n"
				   "mx: *.example.net\r\nunknown_field: whatever\r\nmax_age: 604800\r\n";
	struct tlspol_sts_policy p;
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;
	assert_int_equal(tlspol_sts_policy_parse(text, sizeof(text) - 1, &p, &err), 0);
	assert_int_equal(p.mode, TLSPOL_STS_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.nmx, 2);
	assert_string_equal(p.mx[0], "mx1.example.com");
	assert_int_equal(tlspol_sts_postfix_policy(&p, &out), 0);
	assert_string_equal(mw_buf_str(&out), "secure match=mx1.example.com:.example.net servername=hostname");
	tlspol_sts_policy_free(&p);
	/* LF line ends, mode none needs no mx */
	static const char none[] = "version: STSv1\nmode: none\nmax_age: 0\n";
	assert_int_equal(tlspol_sts_policy_parse(none, sizeof(none) - 1, &p, &err), 0);
	assert_int_equal(p.mode, TLSPOL_STS_NONE);
	tlspol_sts_policy_free(&p);
	assert_true(tlspol_sts_mx_match("*.example.net", "mx.example.net"));
	assert_false(tlspol_sts_mx_match("*.example.net", "a.mx.example.net"));
	assert_false(tlspol_sts_mx_match("*.example.net", "example.net"));
	assert_true(tlspol_sts_mx_match("mx.example.net", "mx.example.net"));
	mw_buf_free(&err);
	mw_buf_free(&out);
}

static const struct {
	const char *text, *err;
} bad_sts[] = {
	{ "mode: enforce\nmx: a.example\nmax_age: 1\n", "no version field" },
	{ "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "line 1: version is not STSv1" },
	{ "version: STSv1\nmode: enforced\nmx: a.example\nmax_age: 1\n", "line 2: mode is not enforce" },
	{ "version: STSv1\nmode: enforce\nmax_age: 1\n", "mode enforce without any mx field" },
	{ "version: STSv1\nmode: testing\nmx: a.example\n", "no max_age field" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "line 4: max_age is not" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "line 4: max_age is not" },
	{ "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "line 3: bad mx pattern" },
	{ "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "line 3: bad mx pattern" },
	{ "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", "line 3: bad mx pattern" },
	{ "version: STSv1\nmode: enforce\nmx: -\nmax_age: 1\n", "line 3: bad mx pattern" },
	{ "version: STSv1\nmode: enforce\nmx: a.-b.example\nmax_age: 1\n", "line 3: bad mx pattern" },
	{ "version: STSv1\ngarbage\n", "line 2: expected \"name: value\"" },
};

static void test_sts_policy_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_sts) / sizeof(bad_sts[0]); i++) {
		struct tlspol_sts_policy p;
		struct mw_buf err = MW_BUF_INIT;
		if (tlspol_sts_policy_parse(bad_sts[i].text, strlen(bad_sts[i].text), &p, &err) == 0)
			fail_msg("accepted: %s", bad_sts[i].text);
		if (strncmp(mw_buf_str(&err), bad_sts[i].err, strlen(bad_sts[i].err)) != 0)
			fail_msg("got \"%s\", want \"%s...\"", mw_buf_str(&err), bad_sts[i].err);
		mw_buf_free(&err);
	}
}

/* ------------------------------------------------------------ cache */

static void make_entry(struct tlspol_cache_entry *e, const char *domain, const char *id, time_t expires)
{
	struct mw_buf err = MW_BUF_INIT;
	static const char text[] = "version: STSv1\nmode: enforce\nmx: mx.a.example\nmx: *.b.example\nmax_age: 86400\n";
	memset(e, 0, sizeof(*e));
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->fetched = 1000;
	e->expires = expires;
	assert_int_equal(tlspol_sts_policy_parse(text, sizeof(text) - 1, &e->policy, &err), 0);
	mw_buf_free(&err);
}

static void test_cache_roundtrip(void **state)
{
	(void)state;
	char dir[] = "/tmp/tlspol-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/cache", dir);
	struct tlspol_cache *c = tlspol_cache_new(100);
	struct tlspol_cache_entry e, got;
	make_entry(&e, "a.example", "id1", time(NULL) + 3600);
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	make_entry(&e, "b.example", "id2", time(NULL) + 3600);
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(tlspol_cache_save(c, path, &err), 0);
	tlspol_cache_free(c);

	c = tlspol_cache_new(100);
	size_t bad = 99;
	assert_int_equal(tlspol_cache_load(c, path, &bad, &err), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(tlspol_cache_count(c), 2);
	assert_int_equal(tlspol_cache_get(c, "a.example", &got), 1);
	assert_string_equal(got.id, "id1");
	assert_int_equal(got.policy.nmx, 2);
	assert_string_equal(got.policy.mx[1], "*.b.example");
	tlspol_cache_entry_free(&got);
	assert_int_equal(tlspol_cache_get(c, "c.example", &got), 0);
	tlspol_cache_free(c);

	/* a missing file is an empty cache; broken lines are skipped, counted */
	c = tlspol_cache_new(100);
	unlink(path);
	assert_int_equal(tlspol_cache_load(c, path, &bad, &err), 0);
	static const char broken[] = "# tlspolicyd MTA-STS cache 1\n"
				     "ok.example id 1 99999999999 enforce 86400 mx.ok.example\n"
				     "bad.example id 1 2 enforce 86400\n"
				     "bad.example i_d 1 2 enforce 86400 mx\n"
				     "bad.example id x 2 enforce 86400 mx\n"
				     "bad.example id 1 2 enforced 86400 mx\n"
				     "bad.example id 1 2 enforce 86400 -\n"
				     "Bad/example id 1 2 none 86400 -\n"
				     "cr.example id 1 99999999999 none 0 -\r\n";
	tlspol_cache_parse(c, broken, sizeof(broken) - 1, &bad);
	assert_int_equal(bad, 7);
	assert_int_equal(tlspol_cache_count(c), 1);
	tlspol_cache_free(c);
	rmdir(dir);
	mw_buf_free(&err);
}

static void test_cache_full(void **state)
{
	(void)state;
	struct tlspol_cache *c = tlspol_cache_new(2);
	struct tlspol_cache_entry e;
	make_entry(&e, "old.example", "1", time(NULL) - 1); /* expired: dropped when full */
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	make_entry(&e, "a.example", "1", time(NULL) + 100);
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	make_entry(&e, "b.example", "1", time(NULL) + 100);
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	make_entry(&e, "c.example", "1", time(NULL) + 100);
	assert_int_equal(tlspol_cache_put(c, &e), -1);
	/* replacing an entry needs no room */
	snprintf(e.domain, sizeof(e.domain), "a.example");
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	tlspol_cache_entry_free(&e);
	assert_int_equal(tlspol_cache_count(c), 2);
	tlspol_cache_free(c);
}

/* ------------------------------------------------------------ decisions */

static void test_sts_plan(void **state)
{
	(void)state;
	struct tlspol_cache_entry e;
	make_entry(&e, "a.example", "id1", 5000); /* fetched at 1000 */
	const time_t day = 86400;
	/* nothing cached */
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_NONE, "", NULL, 2000, day), TLSPOL_STEP_NONE);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_TEMP, "", NULL, 2000, day), TLSPOL_STEP_TEMP);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_FOUND, "id1", NULL, 2000, day), TLSPOL_STEP_FETCH);
	/* cached, in force */
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_FOUND, "id1", &e, 2000, day), TLSPOL_STEP_CACHED);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_FOUND, "id2", &e, 2000, day), TLSPOL_STEP_FETCH);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_TEMP, "", &e, 2000, day), TLSPOL_STEP_CACHED);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_NONE, "", &e, 2000, day), TLSPOL_STEP_CACHED);
	/* due for refresh */
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_FOUND, "id1", &e, 2000, 500), TLSPOL_STEP_FETCH);
	/* expired */
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_FOUND, "id1", &e, 5000, day), TLSPOL_STEP_FETCH);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_TEMP, "", &e, 5000, day), TLSPOL_STEP_TEMP);
	assert_int_equal(tlspol_sts_plan(TLSPOL_TXT_NONE, "", &e, 5000, day), TLSPOL_STEP_NONE);
	tlspol_cache_entry_free(&e);
}

/* The background refresh: when a policy in force is due, and the cache's
   hand-out that marks it tried. */
static void test_refresh_due(void **state)
{
	(void)state;
	struct tlspol_cache_entry e;
	make_entry(&e, "a.example", "id1", 1000 + 86400); /* fetched at 1000, max_age 86400 */
	const time_t day = 86400, retry = 300;
	assert_false(tlspol_sts_refresh_due(&e, 1000 + 3600, day, retry));
	/* mta_sts_refresh old */
	assert_true(tlspol_sts_refresh_due(&e, 1000 + 3600, 3600, retry));
	/* past half its max_age, even with a long mta_sts_refresh */
	assert_false(tlspol_sts_refresh_due(&e, 1000 + 43199, 7 * day, retry));
	assert_true(tlspol_sts_refresh_due(&e, 1000 + 43200, 7 * day, retry));
	/* expired: not refreshed behind a lookup (the next lookup fetches and waits) */
	assert_false(tlspol_sts_refresh_due(&e, 1000 + day, 3600, retry));
	/* tried lately: not again before retry */
	e.attempted = 1000 + 3600;
	assert_false(tlspol_sts_refresh_due(&e, 1000 + 3600 + 299, 3600, retry));
	assert_true(tlspol_sts_refresh_due(&e, 1000 + 3600 + 300, 3600, retry));
	e.attempted = 0;

	struct tlspol_cache *c = tlspol_cache_new(10);
	assert_int_equal(tlspol_cache_put(c, &e), 0);
	char due[4][256];
	assert_int_equal(tlspol_cache_take_due(c, 1000 + 60, 3600, retry, due, 4), 0);
	assert_int_equal(tlspol_cache_take_due(c, 1000 + 3600, 3600, retry, due, 4), 1);
	assert_string_equal(due[0], "a.example");
	/* handed out once: not again while it may run */
	assert_int_equal(tlspol_cache_take_due(c, 1000 + 3601, 3600, retry, due, 4), 0);
	assert_int_equal(tlspol_cache_claim_refresh(c, "a.example", 1000 + 3601, retry), 0);
	assert_int_equal(tlspol_cache_claim_refresh(c, "a.example", 1000 + 3900, retry), 1);
	assert_int_equal(tlspol_cache_claim_refresh(c, "b.example", 1000 + 3900, retry), 0);
	tlspol_cache_free(c);
	tlspol_cache_entry_free(&e);
}

static void test_decide_sts_and_reply(void **state)
{
	(void)state;
	struct tlspol_cache_entry e;
	struct tlspol_verdict v;
	struct mw_buf r = MW_BUF_INIT;
	make_entry(&e, "a.example", "id1", 5000);
	tlspol_verdict_init(&v);
	tlspol_decide_sts(&e, "fetched", "encrypt", &v);
	tlspol_verdict_reply(&v, &r);
	assert_string_equal(mw_buf_str(&r), "OK secure match=mx.a.example:.b.example servername=hostname");
	e.policy.mode = TLSPOL_STS_TESTING;
	tlspol_decide_sts(&e, "cached", "may", &v);
	mw_buf_reset(&r);
	tlspol_verdict_reply(&v, &r);
	assert_string_equal(mw_buf_str(&r), "OK may");
	assert_non_null(strstr(mw_buf_str(&v.reason), "mta-sts mode testing"));
	tlspol_verdict_set(&v, TLSPOL_ANSWER_TEMP, "DNS lookup failed", "x");
	mw_buf_reset(&r);
	tlspol_verdict_reply(&v, &r);
	assert_string_equal(mw_buf_str(&r), "TEMP DNS lookup failed");
	tlspol_verdict_set(&v, TLSPOL_ANSWER_NOTFOUND, "", "x");
	mw_buf_reset(&r);
	tlspol_verdict_reply(&v, &r);
	assert_string_equal(mw_buf_str(&r), "NOTFOUND ");
	tlspol_verdict_free(&v);
	tlspol_cache_entry_free(&e);
	mw_buf_free(&r);
}

static void test_dest_normalize(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "Example.COM", "example.com" }, { ".example.com", ".example.com" },
		{ "[MX.example.com]:25", "[mx.example.com]:25" }, { "[mx.example.com]", "[mx.example.com]" },
		{ "", NULL }, { ".", NULL }, { "a..b", NULL }, { "a.", NULL }, { "a b", NULL },
		{ "[a]x", NULL }, { "[a]:0", NULL }, { "[a]:", NULL }, { "[]:25", NULL }, { "caf\xc3\xa9.example", NULL },
	};
	struct mw_buf out = MW_BUF_INIT;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = tlspol_dest_normalize(cases[i].in, strlen(cases[i].in), &out);
		if (cases[i].out == NULL) {
			if (r == 0)
				fail_msg("accepted \"%s\"", cases[i].in);
		} else {
			if (r != 0)
				fail_msg("refused \"%s\"", cases[i].in);
			assert_string_equal(mw_buf_str(&out), cases[i].out);
		}
	}
	mw_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netstring_decode),
		cmocka_unit_test(test_netstring_encode_and_split),
		cmocka_unit_test(test_policy_file),
		cmocka_unit_test(test_policy_file_errors),
		cmocka_unit_test(test_sts_txt),
		cmocka_unit_test(test_sts_policy),
		cmocka_unit_test(test_sts_policy_errors),
		cmocka_unit_test(test_cache_roundtrip),
		cmocka_unit_test(test_cache_full),
		cmocka_unit_test(test_sts_plan),
		cmocka_unit_test(test_refresh_due),
		cmocka_unit_test(test_decide_sts_and_reply),
		cmocka_unit_test(test_dest_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
