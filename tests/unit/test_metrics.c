/* Unit tests for common/metrics: exposition text, the HTTP request end,
   metrics_listen's check, and the scrape thread on a loopback socket. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "metrics.h"

static const unsigned long long bounds[] = { 1000, 10000 };

static void test_histogram(void **state)
{
	(void)state;
	struct mw_histogram h = { .bounds_us = bounds, .nbounds = 2 };
	static const unsigned long long obs[] = { 500, 1000, 1001, 20000 };
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		mw_histogram_observe(&h, obs[i]);
	struct mw_buf out = MW_BUF_INIT;
	mw_metrics_histogram(&out, "x_seconds", "Help.", &h);
	assert_string_equal(mw_buf_str(&out), "# HELP x_seconds Help.\n# TYPE x_seconds histogram\n"
					      "x_seconds_bucket{le=\"0.001\"} 2\n"
					      "x_seconds_bucket{le=\"0.01\"} 3\n"
					      "x_seconds_bucket{le=\"+Inf\"} 4\n"
					      "x_seconds_sum 0.022501\n"
					      "x_seconds_count 4\n");
	mw_buf_free(&out);
}

static void test_request_complete(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int complete;
	} rows[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 1 },
		{ "GET /metrics HTTP/1.0\n\n", 1 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n", 0 },
		{ "GET /metrics HTTP/1.1\r\n", 0 },
		{ "", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(mw_metrics_request_complete(rows[i].in, strlen(rows[i].in)), rows[i].complete);
}

static void test_check_listen(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int ok;
	} rows[] = {
		{ "inet:9102@127.0.0.1", 0 },
		{ "inet6:9102@::1", 0 },
		{ "unix:/run/metrics.sock", -1 },
		{ "inet:99999@127.0.0.1", -1 },
		{ "nonsense", -1 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_buf err = MW_BUF_INIT;
		int r = mw_metrics_check_listen(rows[i].in, &err);
		if (r != rows[i].ok)
			fail_msg("%s: got %d (%s)", rows[i].in, r, mw_buf_str(&err));
		mw_buf_free(&err);
	}
}

static void fill(struct mw_buf *out, void *ctx)
{
	mw_buf_printf(out, "x_total %d\n", *(int *)ctx);
}

/* A scrape whose request comes in two pieces gets one whole answer. */
static void test_serve(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 8), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	static int value = 42;
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(mw_metrics_serve(l, fill, &value, &err), 0);
	for (int round = 0; round < 2; round++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_true(write(c, "GET /metrics HTTP/1.1\r\n", 23) == 23);
		usleep(20000);
		assert_true(write(c, "Host: x\r\n\r\n", 11) == 11);
		char buf[1024];
		size_t got = 0;
		ssize_t n;
		while (got < sizeof(buf) - 1 && (n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		close(c);
		assert_non_null(strstr(buf, "HTTP/1.0 200 OK\r\n"));
		assert_non_null(strstr(buf, "Content-Length: 11\r\n"));
		assert_non_null(strstr(buf, "\r\n\r\nx_total 42\n"));
	}
	mw_buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_request_complete),
		cmocka_unit_test(test_check_listen),
		cmocka_unit_test(test_serve),
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
