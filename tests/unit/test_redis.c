/* Unit tests for common/redis: the redis_servers and redis_mode settings;
   common/redis_cluster: key slots, slot maps, redirections. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis.h"
#include "redis_cluster.h"

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

/* redis_mode against redis_servers, auto resolved as before the setting. */
static void test_mode(void **state)
{
	(void)state;
	static const struct {
		const char *servers;
		int mode, database, want; /* want: resolved mode, or -1 */
		const char *error;
	} rows[] = {
		{ "127.0.0.1:6379", MW_REDIS_AUTO, 0, MW_REDIS_SINGLE, "" },
		{ "sentinel:m@h:1,h:2", MW_REDIS_AUTO, 0, MW_REDIS_SENTINEL, "" },
		{ "a:1,b:2", MW_REDIS_AUTO, 0, -1,
		  "several servers need Sentinel (sentinel:MASTERNAME@host:port,...) or redis_mode = cluster" },
		{ "a:1,b:2", MW_REDIS_CLUSTER, 0, MW_REDIS_CLUSTER, "" },
		{ "a:1", MW_REDIS_CLUSTER, 0, MW_REDIS_CLUSTER, "" },
		{ "a:1", MW_REDIS_CLUSTER, 3, -1, "Redis Cluster has only database 0: remove redis_database" },
		{ "unix:/run/r.sock", MW_REDIS_CLUSTER, 0, -1,
		  "redis_mode = cluster needs host:port seed nodes (cluster nodes redirect to TCP addresses)" },
		{ "sentinel:m@h:1", MW_REDIS_CLUSTER, 0, -1,
		  "redis_mode = cluster takes seed nodes host:port,..., not Sentinels" },
		{ "a:1", MW_REDIS_SENTINEL, 0, -1,
		  "redis_mode = sentinel needs redis_servers = sentinel:MASTERNAME@host:port,..." },
		{ "sentinel:m@h:1", MW_REDIS_SINGLE, 0, -1, "redis_mode = single, but redis_servers names Sentinels" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_redis_conf c;
		struct mw_buf err = MW_BUF_INIT;
		memset(&c, 0, sizeof(c));
		assert_int_equal(mw_redis_servers_parse(rows[i].servers, &c.servers, &err), 0);
		c.mode = rows[i].mode;
		c.database = (unsigned long long)rows[i].database;
		int r = mw_redis_conf_check(&c, &err);
		if (rows[i].want < 0) {
			assert_int_equal(r, -1);
			if (strcmp(mw_buf_str(&err), rows[i].error) != 0)
				fail_msg("row %zu: got \"%s\"", i, mw_buf_str(&err));
		} else {
			if (r != 0)
				fail_msg("row %zu: %s", i, mw_buf_str(&err));
			assert_int_equal(c.mode, rows[i].want);
		}
		mw_buf_free(&err);
	}
}

/* Slots as redis-server 7.0 computes them (redis-cli cluster keyslot),
   hash tag corner cases included. */
static void test_keyslot(void **state)
{
	(void)state;
	static const struct {
		const char *key;
		unsigned slot;
	} rows[] = {
		{ "foo", 12182 }, { "bar", 5061 }, { "123456789", 12739 },
		{ "{user1000}.following", 3443 }, { "{user1000}.followers", 3443 },
		{ "foo{}{bar}", 8363 },      /* empty first tag: the whole key */
		{ "foo{{bar}}zap", 4015 },   /* the tag is "{bar" */
		{ "foo{bar}{zap}", 5061 },   /* the first tag only: "bar" */
		{ "{}", 15257 }, { "{", 4092 }, { "}", 12090 }, { "", 0 }, { "a{b", 13340 },
		{ "{a}{b}", 15495 }, { "x{}y{z}", 15453 },
		{ "mw:rate:{per-user:sasl_username:u1@example.org}", 9408 },
		{ "totp:{alice}:checks", 749 },
	};
	assert_int_equal(mw_redis_crc16("123456789", 9), 0x31c3);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (mw_redis_keyslot(rows[i].key, strlen(rows[i].key)) != rows[i].slot)
			fail_msg("%s: %u, not %u", rows[i].key, mw_redis_keyslot(rows[i].key, strlen(rows[i].key)),
				 rows[i].slot);
}

static void test_redirect(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int kind;
		unsigned slot;
		const char *host;
		int port;
	} rows[] = {
		{ "MOVED 3999 127.0.0.1:6381", MW_REDIS_MOVED, 3999, "127.0.0.1", 6381 },
		{ "ASK 0 10.0.0.2:7000", MW_REDIS_ASK, 0, "10.0.0.2", 7000 },
		{ "MOVED 16383 ::1:7001", MW_REDIS_MOVED, 16383, "::1", 7001 },
		{ "MOVED 12 [::1]:7001", MW_REDIS_MOVED, 12, "::1", 7001 },
		{ "MOVED 16384 127.0.0.1:1", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "MOVED 1 127.0.0.1:0", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "MOVED 1 127.0.0.1", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "MOVED 1 :6379", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "MOVED x h:1", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "NOSCRIPT No matching script", MW_REDIS_NO_REDIRECT, 0, "", 0 },
		{ "MOVED", MW_REDIS_NO_REDIRECT, 0, "", 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned slot = 0;
		struct mw_redis_addr a;
		memset(&a, 0, sizeof(a));
		int k = (int)mw_redis_redirect_parse(rows[i].text, strlen(rows[i].text), &slot, &a);
		if (k != rows[i].kind)
			fail_msg("%s: kind %d", rows[i].text, k);
		if (k != MW_REDIS_NO_REDIRECT) {
			assert_int_equal(slot, rows[i].slot);
			assert_string_equal(a.host, rows[i].host);
			assert_int_equal(a.port, rows[i].port);
		}
	}
}

/* A reply as Redis sent it, through hiredis's own reader. */
static redisReply *parse_resp(const char *text)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	redisReaderFeed(rd, text, strlen(text));
	assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
	assert_non_null(reply);
	redisReaderFree(rd);
	return reply;
}

/* Two masters; one range of the first served by an unknown endpoint ("?"),
   an empty address meaning the node asked. */
static const char SLOTS_REPLY[] =
	"*3\r\n"
	"*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
	"*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nir\r\n"
	"*3\r\n:5461\r\n:10922\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n"
	"*3\r\n:10923\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7002\r\n$2\r\nid\r\n";

static void test_slots(void **state)
{
	(void)state;
	struct mw_redis_slotmap *m = malloc(sizeof(*m));
	struct mw_redis_addr asked = { "10.9.9.9", 7001 };
	struct mw_buf err = MW_BUF_INIT;
	mw_redis_slotmap_init(m);
	redisReply *r = parse_resp(SLOTS_REPLY);
	assert_int_equal(mw_redis_slotmap_from_slots(m, r, &asked, &err), 10923);
	freeReplyObject(r);
	assert_int_equal(m->nnodes, 2);
	assert_string_equal(m->nodes[m->slot[0]].host, "127.0.0.1");
	assert_int_equal(m->nodes[m->slot[5460]].port, 7000);
	assert_string_equal(m->nodes[m->slot[5461]].host, "10.9.9.9");
	assert_int_equal(m->nodes[m->slot[10922]].port, 7001);
	assert_int_equal(m->slot[10923], -1);
	assert_int_equal(m->slot[16383], -1);
	/* a range past 16383 is refused whole */
	r = parse_resp("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	assert_int_equal(mw_redis_slotmap_from_slots(m, r, &asked, &err), -1);
	assert_int_equal(m->slot[0], -1);
	freeReplyObject(r);
	mw_buf_free(&err);
	free(m);
}

/* CLUSTER SHARDS as redis 7.0 sends it (RESP2): the failed master's shard
   stays unserved, the other's replica is skipped. */
static const char SHARDS_REPLY[] =
	"*2\r\n"
	"*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:299\r\n$5\r\nnodes\r\n*2\r\n"
	"*10\r\n$2\r\nid\r\n$1\r\na\r\n$4\r\nport\r\n:7003\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"
	"$4\r\nrole\r\n$7\r\nreplica\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
	"*12\r\n$2\r\nid\r\n$1\r\nb\r\n$4\r\nport\r\n:7000\r\n$2\r\nip\r\n$9\r\n127.0.0.2\r\n"
	"$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$6\r\nonline\r\n"
	"*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*1\r\n"
	"*10\r\n$2\r\nid\r\n$1\r\nc\r\n$4\r\nport\r\n:7001\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"
	"$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$4\r\nfail\r\n";

static void test_shards(void **state)
{
	(void)state;
	struct mw_redis_slotmap *m = malloc(sizeof(*m));
	struct mw_buf err = MW_BUF_INIT;
	mw_redis_slotmap_init(m);
	redisReply *r = parse_resp(SHARDS_REPLY);
	assert_int_equal(mw_redis_slotmap_from_shards(m, r, NULL, &err), 200);
	freeReplyObject(r);
	assert_int_equal(m->nnodes, 1);
	assert_int_equal(m->nodes[m->slot[0]].port, 7000);
	assert_string_equal(m->nodes[m->slot[299]].host, "127.0.0.1"); /* the endpoint, not the ip */
	assert_int_equal(m->slot[100], -1);
	assert_int_equal(m->slot[300], -1);
	mw_buf_free(&err);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_keyslot),
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_shards),
	};
	return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
