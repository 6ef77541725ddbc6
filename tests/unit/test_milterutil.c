/* Unit tests for common/milterutil: one row per input. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "milterutil.h"

static void test_sender(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t size;
		const char *want;
	} rows[] = {
		{ "<a@example.org>", 64, "a@example.org" },
		{ "a@example.org", 64, "a@example.org" },
		{ "<>", 64, "" },
		{ "<", 64, "<" },
		{ ">", 64, ">" },
		{ "<a@b", 64, "<a@b" },
		{ "", 64, "" },
		{ NULL, 64, "" },
		{ "<abcdef>", 4, "abc" }, /* cut at size - 1 */
		{ "abcdef", 1, "" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char out[64];
		memset(out, 'x', sizeof(out));
		mw_milter_sender(rows[i].in, out, rows[i].size);
		assert_string_equal(out, rows[i].want);
	}
}

static void test_client_ip_or(void **state)
{
	(void)state;
	char ip[INET6_ADDRSTRLEN];
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	inet_pton(AF_INET, "192.0.2.7", &in4.sin_addr);
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);

	mw_milter_client_ip_or((struct sockaddr *)&in4, "198.51.100.1", ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.7");
	mw_milter_client_ip_or((struct sockaddr *)&in6, NULL, ip, sizeof(ip));
	assert_string_equal(ip, "2001:db8::7");
	/* no address from the connection (unix socket): the macro's */
	mw_milter_client_ip_or(NULL, "198.51.100.1", ip, sizeof(ip));
	assert_string_equal(ip, "198.51.100.1");
	mw_milter_client_ip_or(NULL, NULL, ip, sizeof(ip));
	assert_string_equal(ip, "");
}

/* Both milters take the authserv-id through one rule: the host name when
   unset, no spaces, quotes, ';' or '(' (they would end the field's id). */
static void test_authserv_id(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int ok;
	} rows[] = {
		{ "mx.example.org", 1 }, { "mx", 1 },     { "bad id", 0 },   { "x;y", 0 },
		{ "a(b", 0 },            { "q\"", 0 },    { "tab\there", 0 }, { "caf\xc3\xa9", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *id = strdup(rows[i].in);
		struct mw_buf err = MW_BUF_INIT;
		int r = mw_milter_authserv_id(&id, &err);
		if ((r == 0) != rows[i].ok)
			fail_msg("%s: got %d (%s)", rows[i].in, r, mw_buf_str(&err));
		assert_string_equal(id, rows[i].in);
		mw_buf_free(&err);
		free(id);
	}
	char host[256];
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	char *id = strdup("");
	struct mw_buf err = MW_BUF_INIT;
	assert_int_equal(mw_milter_authserv_id(&id, &err), 0);
	assert_string_equal(id, host);
	mw_buf_free(&err);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sender),
		cmocka_unit_test(test_client_ip_or),
		cmocka_unit_test(test_authserv_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
