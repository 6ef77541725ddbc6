/*
 * Unit tests for common/dns against a real DNS server on loopback
 * (tests/lib/with-dns exports MW_TEST_DNS=127.0.0.1@PORT), serving dns.zone.
 */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conf.h"
#include "dns.h"

static struct mw_dns *dns;      /* dns_timeout 1s */
static struct mw_dns *fast_dns; /* dns_timeout 300ms, for timeout tests */

static struct mw_dns *make(unsigned timeout_ms)
{
	struct mw_dns_conf c = { 0 };
	struct mw_buf err = MW_BUF_INIT;
	c.resolver = getenv("MW_TEST_DNS");
	c.timeout_ms = timeout_ms;
	c.budget_ms = 10000;
	c.trust_anchor = "none";
	struct mw_dns *d = mw_dns_new(&c, &err);
	if (d == NULL)
		fprintf(stderr, "mw_dns_new: %s\n", mw_buf_str(&err));
	mw_buf_free(&err);
	return d;
}

static int setup(void **state)
{
	(void)state;
	if (getenv("MW_TEST_DNS") == NULL) {
		fprintf(stderr, "MW_TEST_DNS is not set: run through tests/lib/with-dns\n");
		return -1;
	}
	dns = make(1000);
	fast_dns = make(300);
	return dns != NULL && fast_dns != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	mw_dns_free(dns);
	mw_dns_free(fast_dns);
	return 0;
}

static double elapsed_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_a_and_aaaa(void **state)
{
	(void)state;
	struct mw_dns_result r;
	assert_int_equal(mw_dns_lookup(dns, "a.test", MW_DNS_T_A, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.security, MW_DNS_INSECURE);
	unsigned seen = 0;
	for (int i = 0; i < r.count; i++) {
		struct in_addr a;
		assert_int_equal(mw_dns_result_a(&r, i, &a), 0);
		if (a.s_addr == inet_addr("192.0.2.1"))
			seen |= 1;
		if (a.s_addr == inet_addr("192.0.2.2"))
			seen |= 2;
	}
	assert_int_equal(seen, 3);
	/* out of range and wrong-type accessors refuse */
	struct in_addr a;
	struct in6_addr a6;
	assert_int_equal(mw_dns_result_a(&r, 2, &a), -1);
	assert_int_equal(mw_dns_result_aaaa(&r, 0, &a6), -1);
	mw_dns_result_free(&r);

	assert_int_equal(mw_dns_lookup(dns, "a.test", MW_DNS_T_AAAA, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.count, 1);
	assert_int_equal(mw_dns_result_aaaa(&r, 0, &a6), 0);
	char text[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET6, &a6, text, sizeof(text));
	assert_string_equal(text, "2001:db8::1");
	mw_dns_result_free(&r);
}

static void test_mx_txt_ptr_tlsa(void **state)
{
	(void)state;
	struct mw_dns_result r;
	struct mw_buf b = MW_BUF_INIT;

	assert_int_equal(mw_dns_lookup(dns, "mx.test", MW_DNS_T_MX, NULL, &r), MW_DNS_OK);
	unsigned pref;
	assert_int_equal(mw_dns_result_mx(&r, 0, &pref, &b), 0);
	assert_int_equal(pref, 10);
	assert_string_equal(mw_buf_str(&b), "mail.a.test");
	mw_dns_result_free(&r);

	/* several character-strings in one TXT record join without spaces */
	mw_buf_reset(&b);
	assert_int_equal(mw_dns_lookup(dns, "txt.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.count, 1);
	assert_int_equal(mw_dns_result_txt(&r, 0, &b), 0);
	assert_string_equal(mw_buf_str(&b), "v=spf1 -all");
	mw_dns_result_free(&r);

	/* a 300-byte TXT record comes as two strings over TCP-sized answers */
	mw_buf_reset(&b);
	assert_int_equal(mw_dns_lookup(dns, "long.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(mw_dns_result_txt(&r, 0, &b), 0);
	assert_int_equal(mw_buf_len(&b), 300);
	mw_dns_result_free(&r);

	mw_buf_reset(&b);
	assert_int_equal(mw_dns_lookup(dns, "1.2.0.192.in-addr.arpa", MW_DNS_T_PTR, NULL, &r),
			 MW_DNS_OK);
	assert_int_equal(mw_dns_result_ptr(&r, 0, &b), 0);
	assert_string_equal(mw_buf_str(&b), "a.test");
	mw_dns_result_free(&r);

	assert_int_equal(mw_dns_lookup(dns, "_25._tcp.mx.test", MW_DNS_T_TLSA, NULL, &r), MW_DNS_OK);
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t len;
	assert_int_equal(mw_dns_result_tlsa(&r, 0, &usage, &selector, &mtype, &data, &len), 0);
	assert_int_equal(usage, 3);
	assert_int_equal(selector, 1);
	assert_int_equal(mtype, 1);
	assert_int_equal(len, 32);
	assert_int_equal(data[0], 0x01);
	assert_int_equal(data[31], 0xef);
	mw_dns_result_free(&r);
	mw_buf_free(&b);
}

static void test_cname_followed_and_packet(void **state)
{
	(void)state;
	struct mw_dns_result r;
	assert_int_equal(mw_dns_lookup(dns, "cname.test", MW_DNS_T_A, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.count, 2);
	size_t len = 0;
	const unsigned char *pkt = mw_dns_result_packet(&r, &len);
	assert_non_null(pkt);
	assert_true(len > 12);
	/* a response (QR set), rcode 0, one question */
	assert_true(pkt[2] & 0x80);
	assert_int_equal(pkt[3] & 0x0f, 0);
	assert_int_equal(pkt[4] << 8 | pkt[5], 1);
	mw_dns_result_free(&r);
}

static void test_negative_answers(void **state)
{
	(void)state;
	struct mw_dns_result r;
	assert_int_equal(mw_dns_lookup(dns, "nothere.test", MW_DNS_T_A, NULL, &r), MW_DNS_NXDOMAIN);
	assert_false(mw_dns_status_is_temporary(r.status));
	mw_dns_result_free(&r);
	assert_int_equal(mw_dns_lookup(dns, "a.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_NODATA);
	assert_int_equal(r.count, 0);
	mw_dns_result_free(&r);
}

static void test_servfail_is_temporary(void **state)
{
	(void)state;
	struct mw_dns_result r;
	assert_int_equal(mw_dns_lookup(dns, "fail.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_SERVFAIL);
	assert_true(mw_dns_status_is_temporary(r.status));
	assert_string_equal(mw_dns_status_name(r.status), "servfail");
	mw_dns_result_free(&r);
}

static void test_timeout_is_bounded_and_temporary(void **state)
{
	(void)state;
	struct mw_dns_result r;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mw_dns_lookup(fast_dns, "slow.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_TIMEOUT);
	double took = elapsed_since(&t0);
	/* cut at our 300 ms, not libunbound's own retries (about 17 s) */
	assert_true(took >= 0.25 && took < 1.5);
	assert_true(mw_dns_status_is_temporary(r.status));
	mw_dns_result_free(&r);

	/* the forwarder that timed out is still asked afterwards */
	for (int i = 0; i < 5; i++) {
		mw_dns_lookup(fast_dns, "slow.test", MW_DNS_T_A, NULL, &r);
		mw_dns_result_free(&r);
	}
	assert_int_equal(mw_dns_lookup(fast_dns, "b.test", MW_DNS_T_A, NULL, &r), MW_DNS_OK);
	mw_dns_result_free(&r);
}

static void test_message_budget(void **state)
{
	(void)state;
	struct mw_dns_budget budget;
	struct mw_dns_result r;
	struct timespec t0;

	mw_dns_budget_start(dns, &budget, 400);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* lookup timeout is 1 s, but only 400 ms are left for this message */
	assert_int_equal(mw_dns_lookup(dns, "slow.test", MW_DNS_T_MX, &budget, &r), MW_DNS_TIMEOUT);
	double took = elapsed_since(&t0);
	assert_true(took >= 0.35 && took < 0.9);
	mw_dns_result_free(&r);
	/* the budget is spent: no further lookup is even sent */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mw_dns_lookup(dns, "c.test", MW_DNS_T_A, &budget, &r), MW_DNS_TIMEOUT);
	assert_true(elapsed_since(&t0) < 0.05);
	assert_true(budget.exhausted);
	assert_int_equal(mw_dns_budget_left_ms(&budget), 0);
	mw_dns_result_free(&r);
	/* a fresh budget answers again */
	mw_dns_budget_start(dns, &budget, 0);
	assert_true(mw_dns_budget_left_ms(&budget) > 9000);
	assert_int_equal(mw_dns_lookup(dns, "c.test", MW_DNS_T_A, &budget, &r), MW_DNS_OK);
	mw_dns_result_free(&r);
}

static void test_bad_names(void **state)
{
	(void)state;
	static const char *const names[] = {
		"", ".", "a..test", ".a.test",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", /* 64 */
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct mw_dns_result r;
		assert_int_equal(mw_dns_lookup(dns, names[i], MW_DNS_T_A, NULL, &r), MW_DNS_BADNAME);
		mw_dns_result_free(&r);
	}
	/* 63 is fine (and absent) */
	struct mw_dns_result r;
	assert_int_equal(mw_dns_lookup(dns,
				       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
				       MW_DNS_T_A, NULL, &r),
			 MW_DNS_NXDOMAIN);
	mw_dns_result_free(&r);
	/* a trailing dot is allowed */
	assert_int_equal(mw_dns_lookup(dns, "a.test.", MW_DNS_T_A, NULL, &r), MW_DNS_OK);
	mw_dns_result_free(&r);
}

/* Many threads share one resolver; slow lookups must not hold up fast ones. */
struct worker {
	int id;
	int wrong;
	double slowest_fast;
	char why[300];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 40; i++) {
		struct mw_dns_result r;
		int slow = (w->id % 4 == 0) && (i % 10 == 0); /* 1 s timeouts */
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		enum mw_dns_status st = mw_dns_lookup(dns, slow ? "slow.test" : "a.test",
						      MW_DNS_T_A, NULL, &r);
		double took = elapsed_since(&t0);
		/* a name that timed out before may come back as libunbound's cached
		   SERVFAIL: both are temporary, which is all a verdict needs */
		if (slow ? !mw_dns_status_is_temporary(st) : (st != MW_DNS_OK || r.count != 2)) {
			w->wrong++;
			snprintf(w->why, sizeof(w->why), "%s: %s after %.3fs (%s)",
				 slow ? "slow.test" : "a.test", mw_dns_status_name(st), took, r.error);
		}
		if (!slow && took > w->slowest_fast)
			w->slowest_fast = took;
		mw_dns_result_free(&r);
	}
	return NULL;
}

static void test_threads_share_one_resolver(void **state)
{
	(void)state;
	pthread_t tids[8];
	struct worker ws[8];
	for (int i = 0; i < 8; i++) {
		ws[i] = (struct worker){ .id = i };
		assert_int_equal(pthread_create(&tids[i], NULL, worker_main, &ws[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(tids[i], NULL);
	for (int i = 0; i < 8; i++) {
		if (ws[i].wrong != 0)
			fail_msg("thread %d: %d wrong, last %s", i, ws[i].wrong, ws[i].why);
		/* answers come back while other threads wait out 1 s timeouts:
		   no lookup queues behind a slow one */
		if (ws[i].slowest_fast >= 0.5)
			fail_msg("thread %d: a cached lookup took %.3fs", i, ws[i].slowest_fast);
	}
}

/* DNSSEC through a zone signed by tests/lib/dnssec-zone, its key as the
   trust anchor: signed answers are secure, a tampered one is bogus and a
   temporary failure, names outside the anchored zone insecure. */
static void test_dnssec(void **state)
{
	(void)state;
	const char *anchor = getenv("MW_TEST_DNSSEC_ANCHOR");
	assert_non_null(anchor); /* dns.sh always signs the zone */
	struct mw_dns_conf c = { 0 };
	struct mw_buf err = MW_BUF_INIT, b = MW_BUF_INIT;
	c.resolver = getenv("MW_TEST_DNS");
	c.timeout_ms = 2000;
	c.budget_ms = 10000;
	c.trust_anchor = (char *)anchor;
	struct mw_dns *v = mw_dns_new(&c, &err);
	if (v == NULL)
		fail_msg("mw_dns_new: %s", mw_buf_str(&err));
	struct mw_dns_result r;

	assert_int_equal(mw_dns_lookup(v, "good.dnssec.example", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.security, MW_DNS_SECURE);
	assert_int_equal(mw_dns_result_txt(&r, 0, &b), 0);
	assert_string_equal(mw_buf_str(&b), "signed");
	mw_dns_result_free(&r);
	/* again, from mailward's cache: still secure */
	assert_int_equal(mw_dns_lookup(v, "good.dnssec.example", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.security, MW_DNS_SECURE);
	mw_dns_result_free(&r);

	assert_int_equal(mw_dns_lookup(v, "bogus.dnssec.example", MW_DNS_T_TXT, NULL, &r), MW_DNS_SERVFAIL);
	assert_int_equal(r.security, MW_DNS_BOGUS);
	assert_true(r.error[0] != '\0');
	mw_dns_result_free(&r);

	assert_int_equal(mw_dns_lookup(v, "txt.test", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.security, MW_DNS_INSECURE);
	mw_dns_result_free(&r);

	/* without the anchor the same signed answer is merely insecure */
	assert_int_equal(mw_dns_lookup(dns, "good.dnssec.example", MW_DNS_T_TXT, NULL, &r), MW_DNS_OK);
	assert_int_equal(r.security, MW_DNS_INSECURE);
	mw_dns_result_free(&r);
	mw_dns_free(v);
	mw_buf_free(&err);
	mw_buf_free(&b);
}

static void test_resolver_setting(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		const char *error;
	} rows[] = {
		{ "system", NULL },
		{ "127.0.0.1", NULL },
		{ "127.0.0.1@5353 ::1", NULL },
		{ "192.0.2.1, 192.0.2.2@53", NULL },
		{ "dns.example", "\"dns.example\" is not an IP address (write system, or ip[@port] ...)" },
		{ "127.0.0.1@0", "bad port in \"127.0.0.1@0\"" },
		{ "127.0.0.1@99999", "bad port in \"127.0.0.1@99999\"" },
		{ "", "expected system, or one or more ip[@port]" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_dns_conf c = { 0 };
		struct mw_buf err = MW_BUF_INIT;
		int r = mw_dns_conf_set_resolver(&c, rows[i].value, &err);
		if (rows[i].error == NULL) {
			assert_int_equal(r, 0);
			assert_string_equal(c.resolver, rows[i].value);
		} else {
			assert_int_equal(r, -1);
			assert_string_equal(mw_buf_str(&err), rows[i].error);
		}
		mw_dns_conf_clear_resolver(&c);
		mw_buf_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_and_aaaa),
		cmocka_unit_test(test_mx_txt_ptr_tlsa),
		cmocka_unit_test(test_cname_followed_and_packet),
		cmocka_unit_test(test_negative_answers),
		cmocka_unit_test(test_servfail_is_temporary),
		cmocka_unit_test(test_timeout_is_bounded_and_temporary),
		cmocka_unit_test(test_message_budget),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_threads_share_one_resolver),
		cmocka_unit_test(test_resolver_setting),
		cmocka_unit_test(test_dnssec),
	};
	return cmocka_run_group_tests_name("dns", tests, setup, teardown);
}
