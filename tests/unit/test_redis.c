/* Unit tests for common/redis: the redis_servers setting. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis.h"

static void test_good(void **state)
{
	(void)state;
	static const struct {
		const char *in, *canonical;
		int sentinel, naddrs, port0;
		const char *host0, *master;
	} rows[] = {
		{ "127.0.0.1:6379", "127.0.0.1:6379", 0, 1, 6379, "127.0.0.1", "" },
		{ "redis.example:6380", "redis.example:6380", 0, 1, 6380, "redis.example", "" },
		{ "[::1]:6379", "[::1]:6379", 0, 1, 6379, "::1", "" },
		{ "unix:/run/redis/redis.sock", "unix:/run/redis/redis.sock", 0, 1, 0, "/run/redis/redis.sock", "" },
		{ "sentinel:mymaster@10.0.0.1:26379,10.0.0.2:26379", "sentinel:mymaster@10.0.0.1:26379,10.0.0.2:26379",
		  1, 2, 26379, "10.0.0.1", "mymaster" },
		{ "sentinel:m@h1:1 h2:2, [::1]:3", "sentinel:m@h1:1,h2:2,[::1]:3", 1, 3, 1, "h1", "m" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_redis_servers s;
		struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;
		if (mw_redis_servers_parse(rows[i].in, &s, &err) != 0)
			fail_msg("%s: %s", rows[i].in, mw_buf_str(&err));
		assert_int_equal(s.sentinel, rows[i].sentinel);
		assert_int_equal(s.naddrs, rows[i].naddrs);
		assert_int_equal(s.addrs[0].port, rows[i].port0);
		assert_string_equal(s.addrs[0].host, rows[i].host0);
		assert_string_equal(s.master_name, rows[i].master);
		mw_redis_servers_format(&s, &out);
		assert_string_equal(mw_buf_str(&out), rows[i].canonical);
		mw_buf_free(&err);
		mw_buf_free(&out);
	}
}

static void test_bad(void **state)
{
	(void)state;
	static const struct {
		const char *in, *error;
	} rows[] = {
		{ "", "expected host:port, unix:/path or sentinel:MASTERNAME@host:port,..." },
		{ "localhost", "expected host:port in \"localhost\"" },
		{ "localhost:0", "bad port in \"localhost:0\"" },
		{ "localhost:70000", "bad port in \"localhost:70000\"" },
		{ "local host:1", "expected host:port in \"local\"" },
		{ "a:1,b:2", "several servers need Sentinel: write sentinel:MASTERNAME@host:port,..." },
		{ "unix:relative", "expected unix:/absolute/path" },
		{ "sentinel:@h:1", "expected sentinel:MASTERNAME@host:port[,host:port...]" },
		{ "sentinel:m", "expected sentinel:MASTERNAME@host:port[,host:port...]" },
		{ "[::1:6379", "expected [address]:port in \"[::1:6379\"" },
		{ "bad/host:1", "bad host in \"bad/host:1\"" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_redis_servers s;
		struct mw_buf err = MW_BUF_INIT;
		assert_int_equal(mw_redis_servers_parse(rows[i].in, &s, &err), -1);
		if (strcmp(mw_buf_str(&err), rows[i].error) != 0)
			fail_msg("%s: got \"%s\"", rows[i].in, mw_buf_str(&err));
		mw_buf_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
