/* libFuzzer target: Redis Cluster replies from the network (common/
   redis_cluster): the bytes go through hiredis's own reply reader, then
   the CLUSTER SHARDS and CLUSTER SLOTS parsers, the MOVED/ASK parser and
   the key slot. A parsed map must only name nodes it holds. */
#include "config.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const struct mw_redis_slotmap *m, int n)
{
	int covered = 0;
	for (int i = 0; i < MW_REDIS_SLOTS; i++) {
		if (m->slot[i] < -1 || m->slot[i] >= m->nnodes)
			abort();
		covered += m->slot[i] >= 0;
	}
	if (n >= 0 && n != covered)
		abort();
	if (n < 0 && covered != 0)
		abort();
	for (int k = 0; k < m->nnodes; k++)
		if (m->nodes[k].port < 1 || m->nodes[k].port > 65535 || m->nodes[k].host[0] == '\0')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mw_redis_slotmap map;
	struct mw_redis_addr asked = { "127.0.0.1", 7000 }, to;
	unsigned slot;

	if (mw_redis_keyslot((const char *)data, size) >= MW_REDIS_SLOTS)
		abort();
	if (mw_redis_redirect_parse((const char *)data, size, &slot, &to) != MW_REDIS_NO_REDIRECT &&
	    (slot >= MW_REDIS_SLOTS || to.port < 1 || to.host[0] == '\0'))
		abort();

	redisReader *rd = redisReaderCreate();
	if (rd == NULL)
		return 0;
	redisReaderFeed(rd, (const char *)data, size);
	void *reply = NULL;
	for (int i = 0; i < 4 && redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL; i++) {
		struct mw_buf err = MW_BUF_INIT;
		mw_redis_slotmap_init(&map);
		check_map(&map, mw_redis_slotmap_from_shards(&map, reply, &asked, &err));
		mw_redis_slotmap_init(&map);
		check_map(&map, mw_redis_slotmap_from_slots(&map, reply, i % 2 ? NULL : &asked, &err));
		const redisReply *r = reply;
		if (r->type == REDIS_REPLY_ERROR &&
		    mw_redis_redirect_parse(r->str, r->len, &slot, &to) != MW_REDIS_NO_REDIRECT && slot >= MW_REDIS_SLOTS)
			abort();
		freeReplyObject(reply);
		reply = NULL;
		mw_buf_free(&err);
	}
	redisReaderFree(rd);
	return 0;
}
