/*
 * Unit tests for policyd-rate's pure logic: the policy protocol parser,
 * rules, overrides, the GCRA arithmetic and the memory store, decisions
 * and replies.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "decide.h"
#include "gcra.h"
#include "request.h"
#include "rules.h"

static const char REQ[] = "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\n"
			  "client_address=192.0.2.7\nsender=Alice@Example.org\nsasl_username=alice\n"
			  "recipient_count=3\nsize=12345\nqueue_id=4ABC\n\n";

static void test_request_whole_and_bytewise(void **state)
{
	(void)state;
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct pr_request r;
		struct mw_buf err = MW_BUF_INIT;
		pr_request_init(&r);
		enum pr_parse_status st = PR_NEED_MORE;
		size_t used = 0, len = strlen(REQ);
		if (bytewise) {
			size_t i = 0;
			while (i < len && st == PR_NEED_MORE) {
				st = pr_request_feed(&r, REQ + i, 1, &used, &err);
				i++;
			}
			assert_int_equal(i, len);
		} else {
			st = pr_request_feed(&r, REQ, len, &used, &err);
			assert_int_equal(used, len);
		}
		assert_int_equal(st, PR_COMPLETE);
		assert_string_equal(r.protocol_state, "END-OF-MESSAGE");
		assert_string_equal(r.client_address, "192.0.2.7");
		assert_string_equal(r.sasl_username, "alice");
		assert_int_equal(r.recipient_count, 3);
		assert_int_equal(r.size, 12345);
		assert_string_equal(r.queue_id, "4ABC");
		assert_null(r.helo_name);
		pr_request_free(&r);
		mw_buf_free(&err);
	}
}

static void test_request_pipelined_and_crlf(void **state)
{
	(void)state;
	struct pr_request r;
	struct mw_buf err = MW_BUF_INIT;
	char two[1024];
	snprintf(two, sizeof(two), "%s%s", REQ, "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n");
	pr_request_init(&r);
	size_t used;
	assert_int_equal(pr_request_feed(&r, two, strlen(two), &used, &err), PR_COMPLETE);
	assert_int_equal(used, strlen(REQ));
	pr_request_reset(&r);
	size_t used2;
	assert_int_equal(pr_request_feed(&r, two + used, strlen(two) - used, &used2, &err), PR_COMPLETE);
	assert_string_equal(r.protocol_state, "RCPT");
	pr_request_free(&r);
	mw_buf_free(&err);
}

static void test_request_bad(void **state)
{
	(void)state;
	char longline[PR_MAX_LINE + 100];
	memset(longline, 'x', sizeof(longline) - 1);
	longline[0] = 'a';
	longline[1] = '=';
	longline[sizeof(longline) - 1] = '\0';
	struct mw_buf many = MW_BUF_INIT;
	for (int i = 0; i < PR_MAX_ATTRS + 5; i++)
		mw_buf_printf(&many, "x%d=y\n", i);
	static const struct {
		const char *text, *why;
	} rows[] = {
		{ "no equals sign\n\n", "attribute without" },
		{ "=value\n\n", "attribute without" },
		{ "\n", "empty request" },
		{ "recipient_count=lots\n\n", "recipient_count is not a number" },
		{ "size=-1\n\n", "size is not a number" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pr_request r;
		struct mw_buf err = MW_BUF_INIT;
		size_t used;
		pr_request_init(&r);
		assert_int_equal(pr_request_feed(&r, rows[i].text, strlen(rows[i].text), &used, &err), PR_BAD);
		assert_non_null(strstr(mw_buf_str(&err), rows[i].why));
		pr_request_free(&r);
		mw_buf_free(&err);
	}
	struct pr_request r;
	struct mw_buf err = MW_BUF_INIT;
	size_t used;
	pr_request_init(&r);
	assert_int_equal(pr_request_feed(&r, longline, strlen(longline), &used, &err), PR_BAD);
	assert_non_null(strstr(mw_buf_str(&err), "line longer than"));
	pr_request_reset(&r);
	mw_buf_reset(&err);
	assert_int_equal(pr_request_feed(&r, many.data, mw_buf_len(&many), &used, &err), PR_BAD);
	assert_non_null(strstr(mw_buf_str(&err), "more than"));
	pr_request_reset(&r);
	mw_buf_reset(&err);
	assert_int_equal(pr_request_feed(&r, "a=b\0c\n\n", 7, &used, &err), PR_BAD);
	pr_request_free(&r);
	mw_buf_free(&err);
	mw_buf_free(&many);
}

static void test_rules(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *error; /* NULL: valid */
	} rows[] = {
		{ "per-user: key=sasl_username limit=250/1h,1000/1d", NULL },
		{ "r: key=sasl_username|sender|client_address limit=10/m count=recipients action=reject match=any", NULL },
		{ "net: key=client_network/24//48 limit=100/1m match=unauthenticated networks=0.0.0.0/0,::/0", NULL },
		{ "g: key=global limit=100000/1d count=bytes action=hold", NULL },
		{ "nocolon key=sender limit=1/1h", "expected \"NAME: key=... limit=...\"" },
		{ "r: limit=1/1h", "key= is missing" },
		{ "r: key=sender", "limit= is missing" },
		{ "r: key=nobody limit=1/1h", "unknown key \"nobody\"" },
		{ "r: key=sender limit=0/1h", "the count must be a whole number from 1" },
		{ "r: key=sender limit=10", "expected COUNT/PERIOD" },
		{ "r: key=sender limit=10/fortnight", "the period must be a duration" },
		{ "r: key=sender limit=1/1h count=parcels", "count=parcels" },
		{ "r: key=sender limit=1/1h action=explode", "action=explode" },
		{ "r: key=sender limit=1/1h colour=red", "unknown field \"colour\"" },
		{ "r: key=client_network/33 limit=1/1h", "client_network wants" },
		{ "r: key=sender limit=1/1h networks=notanet", "is not an IP address" },
		{ "r: key=sender limit=1/1h,2/1h,3/1h,4/1h,5/1h", "at most 4 limits" },
		{ "bad name!: key=sender limit=1/1h", "expected \"NAME" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pr_rule r;
		struct mw_buf err = MW_BUF_INIT;
		int ret = pr_rule_parse(rows[i].text, &r, &err);
		if (rows[i].error == NULL && ret != 0)
			fail_msg("\"%s\": %s", rows[i].text, mw_buf_str(&err));
		if (rows[i].error != NULL && (ret == 0 || strstr(mw_buf_str(&err), rows[i].error) == NULL))
			fail_msg("\"%s\": got \"%s\"", rows[i].text, mw_buf_str(&err));
		pr_rule_free(&r);
		mw_buf_free(&err);
	}
}

static void parse_req(struct pr_request *r, const char *text)
{
	struct mw_buf err = MW_BUF_INIT;
	size_t used;
	pr_request_init(r);
	assert_int_equal(pr_request_feed(r, text, strlen(text), &used, &err), PR_COMPLETE);
	mw_buf_free(&err);
}

static void test_rule_keys(void **state)
{
	(void)state;
	struct pr_request auth, anon, v6;
	parse_req(&auth, REQ);
	parse_req(&anon, "protocol_state=RCPT\nclient_address=192.0.2.77\nsender=bob@Other.example\n"
			 "recipient=carol@Dest.example\n\n");
	parse_req(&v6, "client_address=2001:db8:1:2:3::9\n\n");
	static const struct {
		const char *rule;
		int which; /* 0 auth, 1 anon, 2 v6 */
		const char *key; /* NULL: does not apply */
	} rows[] = {
		{ "r: key=sasl_username limit=1/1h", 0, "alice" },
		{ "r: key=sasl_username limit=1/1h", 1, NULL },
		{ "r: key=sasl_username|sender limit=1/1h", 1, "bob@other.example" },
		{ "r: key=sender_domain limit=1/1h", 0, "example.org" },
		{ "r: key=recipient_domain limit=1/1h", 1, "dest.example" },
		{ "r: key=client_network/24 limit=1/1h", 1, "192.0.2.0/24" },
		{ "r: key=client_network/24//48 limit=1/1h", 2, "2001:db8:1::/48" },
		{ "r: key=client_address limit=1/1h match=unauthenticated", 0, NULL },
		{ "r: key=client_address limit=1/1h match=unauthenticated", 1, "192.0.2.77" },
		{ "r: key=global limit=1/1h match=authenticated", 0, "*" },
		{ "r: key=global limit=1/1h networks=198.51.100.0/24", 0, NULL },
		{ "r: key=global limit=1/1h networks=192.0.2.0/24", 0, "*" },
	};
	const struct pr_request *reqs[] = { &auth, &anon, &v6 };
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pr_rule r;
		struct mw_buf err = MW_BUF_INIT, key = MW_BUF_INIT;
		enum pr_key_kind kind;
		assert_int_equal(pr_rule_parse(rows[i].rule, &r, &err), 0);
		int ret = pr_rule_key(&r, reqs[rows[i].which], &key, &kind);
		if (rows[i].key == NULL) {
			if (ret == 0)
				fail_msg("row %zu: applies as \"%s\"", i, mw_buf_str(&key));
		} else {
			assert_int_equal(ret, 0);
			if (strcmp(mw_buf_str(&key), rows[i].key) != 0)
				fail_msg("row %zu: got \"%s\"", i, mw_buf_str(&key));
		}
		pr_rule_free(&r);
		mw_buf_free(&err);
		mw_buf_free(&key);
	}
	struct pr_rule r;
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(pr_rule_parse("r: key=sender limit=1/1h count=recipients", &r, &err), 0);
	assert_int_equal(pr_rule_cost(&r, &auth), 3);
	assert_int_equal(pr_rule_parse("r: key=sender limit=1/1h count=bytes", &r, &err), 0);
	assert_int_equal(pr_rule_cost(&r, &auth), 12345);
	assert_int_equal(pr_rule_cost(&r, &anon), 1);
	mw_buf_free(&err);
	pr_request_free(&auth);
	pr_request_free(&anon);
	pr_request_free(&v6);
}

/* 250 per hour: the 250th message of a burst passes, the 251st does not;
   then capacity returns one message every 14.4 s, not all at once. */
static void test_gcra_boundary_and_sliding(void **state)
{
	(void)state;
	struct pr_window w[2] = { { 250, 3600000 }, { 1000, 86400000 } };
	double tat[2] = { 0, 0 };
	double now = 1.7e15;
	struct pr_gcra_result res;
	for (int i = 1; i <= 250; i++) {
		pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
		if (!res.allowed)
			fail_msg("message %d refused", i);
	}
	assert_int_equal(res.used[0], 250);
	pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
	assert_false(res.allowed);
	assert_int_equal(res.denied_window, 0);
	assert_int_equal(res.retry_ms, 14400);
	/* a refused request does not count */
	pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
	assert_false(res.allowed);
	/* 14.4 s later exactly one more fits, not two */
	now += 14400000.0;
	pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
	assert_true(res.allowed);
	pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
	assert_false(res.allowed);
	/* check only: no counting */
	now += 14400000.0;
	pr_gcra_apply(now, 1, w, 2, tat, 0, &res);
	assert_true(res.allowed);
	pr_gcra_apply(now, 1, w, 2, tat, 1, &res);
	assert_true(res.allowed);
	/* a cost larger than what is left is refused whole */
	now += 10 * 14400000.0;
	pr_gcra_apply(now, 11, w, 2, tat, 1, &res);
	assert_false(res.allowed);
	pr_gcra_apply(now, 10, w, 2, tat, 1, &res);
	assert_true(res.allowed);
	/* the daily window binds once the hourly one is generous */
	struct pr_window d[2] = { { 1000, 3600000 }, { 3, 86400000 } };
	double t2[2] = { 0, 0 };
	for (int i = 0; i < 3; i++) {
		pr_gcra_apply(now, 1, d, 2, t2, 1, &res);
		assert_true(res.allowed);
	}
	pr_gcra_apply(now, 1, d, 2, t2, 1, &res);
	assert_false(res.allowed);
	assert_int_equal(res.denied_window, 1);
	assert_int_equal(res.retry_ms, 28800000);
}

static void test_memstore(void **state)
{
	(void)state;
	struct pr_memstore *s = pr_memstore_new(1000);
	struct pr_window w = { 2, 60000 };
	struct pr_gcra_result res;
	double now = 1.7e15;
	pr_memstore_check(s, "r:a", &w, 1, 1, 1, now, &res);
	assert_true(res.allowed);
	pr_memstore_check(s, "r:a", &w, 1, 1, 1, now, &res);
	assert_true(res.allowed);
	pr_memstore_check(s, "r:a", &w, 1, 1, 1, now, &res);
	assert_false(res.allowed);
	pr_memstore_check(s, "r:b", &w, 1, 1, 1, now, &res);
	assert_true(res.allowed);
	/* refund: the second counted message is given back */
	pr_memstore_refund(s, "r:a", &w, 1, 1);
	pr_memstore_check(s, "r:a", &w, 1, 1, 1, now, &res);
	assert_true(res.allowed);
	assert_int_equal(pr_memstore_size(s), 2);
	assert_int_equal(pr_memstore_reset(s, "r:", 1), 2);
	assert_int_equal(pr_memstore_size(s), 0);
	/* entries expire once their windows are empty again */
	pr_memstore_check(s, "r:c", &w, 1, 1, 1, now, &res);
	pr_memstore_check(s, "r:d", &w, 1, 1, 0, now + 120e6, &res); /* a lookup sweeps the chain */
	pr_memstore_free(s);
	/* full: the store refuses to track more, it never fails the request */
	struct pr_memstore *tiny = pr_memstore_new(1);
	pr_memstore_check(tiny, "x:1", &w, 1, 1, 1, now, &res);
	pr_memstore_check(tiny, "x:2", &w, 1, 1, 1, now, &res);
	assert_true(res.allowed);
	assert_int_equal(pr_memstore_size(tiny), 1);
	pr_memstore_free(tiny);
}

static void test_overrides(void **state)
{
	(void)state;
	const char text[] = "# overrides\n"
			    "alice per-user 1000/1h\n"
			    "Bob@Example.org  *   exempt   # the boss\n"
			    "\n"
			    "example.net per-domain 5/1m,20/1h\n";
	struct pr_overrides o;
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(pr_overrides_parse("o.map", text, sizeof(text) - 1, &o, &err), 0);
	assert_int_equal(o.n, 3);
	const struct pr_override *x = pr_overrides_find(&o, "per-user", "alice");
	assert_non_null(x);
	assert_int_equal(x->windows[0].limit, 1000);
	assert_null(pr_overrides_find(&o, "per-domain", "alice"));
	x = pr_overrides_find(&o, "anything", "bob@example.org");
	assert_true(x != NULL && x->exempt);
	x = pr_overrides_find(&o, "per-domain", "example.net");
	assert_true(x != NULL && x->nwindows == 2);
	pr_overrides_free(&o);
	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "alice per-user\n", "o.map:1: expected KEY RULE LIMITS" },
		{ "x\nalice per-user 10/1h extra\n", "o.map:1: expected" },
		{ "alice per-user ten/1h\n", "o.map:1: limit" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mw_buf_reset(&err);
		assert_int_equal(pr_overrides_parse("o.map", bad[i].text, strlen(bad[i].text), &o, &err), -1);
		if (strstr(mw_buf_str(&err), bad[i].error) == NULL)
			fail_msg("\"%s\": got \"%s\"", bad[i].text, mw_buf_str(&err));
	}
	mw_buf_free(&err);
}

static void test_retry_text(void **state)
{
	(void)state;
	static const struct {
		long long ms;
		const char *text;
	} rows[] = {
		{ 0, "1 s" }, { 400, "1 s" }, { 59000, "59 s" }, { 60000, "1 min" }, { 720000, "12 min" },
		{ 3600000, "1 h" }, { 3900000, "1 h 5 min" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf b = MW_BUF_INIT;
		pr_format_retry(rows[i].ms, &b);
		assert_string_equal(mw_buf_str(&b), rows[i].text);
		mw_buf_free(&b);
	}
	struct mw_buf b = MW_BUF_INIT;
	struct pr_window w = { 250, 3600000 };
	pr_window_describe(&w, PR_COUNT_MESSAGES, &b);
	assert_string_equal(mw_buf_str(&b), "250 messages per hour");
	mw_buf_reset(&b);
	struct pr_window w2 = { 5000, 2 * 86400000ULL };
	pr_window_describe(&w2, PR_COUNT_RECIPIENTS, &b);
	assert_string_equal(mw_buf_str(&b), "5000 recipients per 2 days");
	mw_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_whole_and_bytewise),
		cmocka_unit_test(test_request_pipelined_and_crlf),
		cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_rule_keys),
		cmocka_unit_test(test_gcra_boundary_and_sliding),
		cmocka_unit_test(test_memstore),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_retry_text),
	};
	return cmocka_run_group_tests_name("policyd-rate", tests, NULL, NULL);
}
