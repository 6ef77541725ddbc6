/*
 * redis_cluster: Redis Cluster for policyd-rate and totp-pam (Debian 12's
 * hiredis 0.14 has no cluster support and there is no hiredis-cluster).
 *
 *   redis_mode = cluster
 *   redis_servers = 10.0.0.1:6379,10.0.0.2:6379      seed nodes, any of them
 *
 * What is here, written once for both components:
 *   - the hash slot of a key: CRC16 (XMODEM) of the key, or of its first
 *     non-empty {hash tag}, modulo 16384, as the cluster specification says;
 *   - the slot map: which master serves each slot, from CLUSTER SHARDS
 *     (Redis 7) or CLUSTER SLOTS (older), parsed with every field checked
 *     (a reply from the network; tests/fuzz/fuzz_redis_slotmap.c);
 *   - MOVED and ASK error replies parsed;
 *   - a synchronous client (totp-pam inside PAM, the admin commands) that
 *     routes each command by its key, keeps one connection per master,
 *     follows MOVED (and reloads the map) and ASK (ASKING, then once).
 * policyd-rate's asynchronous client (policyd-rate/store.c) uses the same
 * slot map, slots and redirection parser on its event loop.
 *
 * Library code: never logs, never exits. Memory: a slot map is a plain
 * caller-owned struct; a struct mw_redis_cluster borrows the conf's strings
 * (they must outlive it) and owns its connections (mw_redis_cluster_free);
 * replies returned are the caller's (freeReplyObject).
 */
#ifndef MW_REDIS_CLUSTER_H
#define MW_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "redis.h"

#define MW_REDIS_SLOTS 16384
#define MW_REDIS_MAX_NODES 64 /* masters a map may name (append-only) */

struct redisReply;
struct redisContext;

/* CRC16-XMODEM, the cluster's checksum ("123456789" -> 0x31c3). */
uint16_t mw_redis_crc16(const char *buf, size_t len);
/* The slot of a key, hash tags honoured. */
unsigned mw_redis_keyslot(const char *key, size_t len);

struct mw_redis_slotmap {
	struct mw_redis_addr nodes[MW_REDIS_MAX_NODES]; /* masters seen; indexes stay stable */
	int nnodes;
	int16_t slot[MW_REDIS_SLOTS];                    /* index into nodes; -1: no master */
};

/* No nodes, no slots. */
void mw_redis_slotmap_init(struct mw_redis_slotmap *m);
/* The index of addr in m->nodes, added if new; -1 when full. */
int mw_redis_slotmap_node(struct mw_redis_slotmap *m, const struct mw_redis_addr *addr);

/*
 * A CLUSTER SHARDS or CLUSTER SLOTS reply into m: every slot is first set
 * to -1, then the ranges the reply gives a master for point at that
 * master (its node added to m->nodes if new). An empty address means the
 * node that answered (asked). Returns the number of slots covered, or -1
 * with err for a reply of the wrong shape (then m's slots are all -1).
 */
int mw_redis_slotmap_from_shards(struct mw_redis_slotmap *m, const struct redisReply *r,
				 const struct mw_redis_addr *asked, struct mw_buf *err);
int mw_redis_slotmap_from_slots(struct mw_redis_slotmap *m, const struct redisReply *r,
				const struct mw_redis_addr *asked, struct mw_buf *err);

enum mw_redis_redirect { MW_REDIS_NO_REDIRECT, MW_REDIS_MOVED, MW_REDIS_ASK };
/* "MOVED 3999 127.0.0.1:6381" or "ASK 3999 [::1]:6381": which, its slot and
   where to; MW_REDIS_NO_REDIRECT for any other error text. */
enum mw_redis_redirect mw_redis_redirect_parse(const char *text, size_t len, unsigned *slot,
					       struct mw_redis_addr *to);

/*
 * Loads the slot map: asks the nodes m already knows, then the seeds of
 * conf, in turn, until one answers with a map covering at least one
 * slot (CLUSTER SHARDS, or CLUSTER SLOTS where that is unknown). Blocking,
 * each connection and command within conf's timeout. 0, or -1 with err.
 */
int mw_redis_slotmap_load(const struct mw_redis_conf *conf, struct mw_redis_slotmap *m, struct mw_buf *err);

/* A synchronous cluster client. */
struct mw_redis_cluster;
struct mw_redis_cluster *mw_redis_cluster_new(const struct mw_redis_conf *conf);
void mw_redis_cluster_free(struct mw_redis_cluster *cl);
/* Runs argv on the master of key's slot, following MOVED and ASK (at most
   5 hops). The reply (error replies other than redirections included, as
   hiredis gives them), or NULL with err when no node could be reached or
   a connection broke (then the command may or may not have run). */
struct redisReply *mw_redis_cluster_command(struct mw_redis_cluster *cl, const char *key, size_t keylen,
					    int argc, const char **argv, struct mw_buf *err);
/* The map the client uses, loaded first if need be; NULL with err. */
const struct mw_redis_slotmap *mw_redis_cluster_map(struct mw_redis_cluster *cl, struct mw_buf *err);
/* A connection to node i of the map (authenticated), NULL with err; the
   client keeps it. */
struct redisContext *mw_redis_cluster_node(struct mw_redis_cluster *cl, int i, struct mw_buf *err);

#endif
