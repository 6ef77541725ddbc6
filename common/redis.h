/*
 * redis: where a component's Redis is, and a connection to its master.
 *
 *   redis_servers = 127.0.0.1:6379                       one server
 *   redis_servers = unix:/run/redis/redis.sock           one server, unix socket
 *   redis_servers = sentinel:mymaster@10.0.0.1:26379,10.0.0.2:26379
 *                         ask these Sentinels for the master of "mymaster"
 *   redis_mode = cluster
 *   redis_servers = 10.0.0.1:6379,10.0.0.2:6379          Redis Cluster seed nodes
 *                         (redis_cluster.h)
 *
 * redis_mode = auto (the default) | single | sentinel | cluster; auto means
 * sentinel with a "sentinel:" list, else single, as before the setting
 * existed.
 *
 * plus redis_username / redis_password (ACL user, or the legacy password
 * alone), redis_database and redis_timeout (connect and command timeout).
 *
 * Library code: it neither logs nor exits, so the PAM module uses it too.
 * Shared by policyd-rate and totp-pam. Debian 12's hiredis (0.14) has no
 * TLS, so neither has this module; tunnel with stunnel or spiped if Redis
 * is not on a trusted network.
 *
 * Memory: mw_redis_servers_parse() fills a caller-owned struct that
 * mw_redis_servers_clear() releases; a redisContext returned by
 * mw_redis_connect() is the caller's (redisFree()).
 */
#ifndef MW_REDIS_H
#define MW_REDIS_H

#include <stddef.h>

#include "buf.h"
#include "conf.h"

#define MW_REDIS_MAX_SENTINELS 16

struct mw_redis_addr {
	char host[256]; /* address or name; a unix socket path when port == 0 */
	int port;
};

struct mw_redis_servers {
	int sentinel;                 /* 1: addrs are Sentinels of master_name */
	char master_name[128];
	struct mw_redis_addr addrs[MW_REDIS_MAX_SENTINELS];
	int naddrs;
};

enum mw_redis_mode { MW_REDIS_AUTO, MW_REDIS_SINGLE, MW_REDIS_SENTINEL, MW_REDIS_CLUSTER };

struct mw_redis_conf {
	struct mw_redis_servers servers;  /* redis_servers */
	int mode;                         /* redis_mode: enum mw_redis_mode */
	char *username;                   /* redis_username ("" = none) */
	char *password;                   /* redis_password ("" = none) */
	unsigned long long database;      /* redis_database */
	unsigned long long timeout_ms;    /* redis_timeout */
};

int mw_redis_servers_parse(const char *value, struct mw_redis_servers *out, struct mw_buf *err);
/* Checks redis_mode against redis_servers and resolves auto: 0, or -1
   with err. Call it once the whole configuration is read. */
int mw_redis_conf_check(struct mw_redis_conf *conf, struct mw_buf *err);
extern const char *const mw_redis_mode_names[];

/* "host:port", "unix:/path" or "sentinel:name@h:p,h:p" again. */
void mw_redis_servers_format(const struct mw_redis_servers *s, struct mw_buf *out);

/*
 * Connects to the master: directly, or by asking each Sentinel in turn
 * (SENTINEL get-master-addr-by-name) and then checking with ROLE that the
 * server named really is a master (after a failover a Sentinel may lag).
 * Authenticates and selects the database. NULL with the reason in err.
 */
struct redisContext *mw_redis_connect(const struct mw_redis_conf *conf, struct mw_buf *err);

/* A connection to addr, authenticated, database selected; NULL with err. */
struct redisContext *mw_redis_connect_addr(const struct mw_redis_conf *conf, const struct mw_redis_addr *addr,
					   struct mw_buf *err);

/* Runs a command given as argv on a blocking connection: the reply (the
   caller frees it), or NULL with the reason appended to err; an error
   reply is turned into NULL too. */
struct redisReply *mw_redis_command(struct redisContext *c, int argc, const char **argv, struct mw_buf *err);

/* The master's address (without connecting to it); 0 or -1 with err. */
int mw_redis_discover_master(const struct mw_redis_conf *conf, struct mw_redis_addr *master,
			     struct mw_buf *err);

/* The redis_* entries of a conf.h schema for a struct mw_redis_conf member;
   put MW_REDIS_CONF_DEFINE(T, M) once before the schema. */
#define MW_REDIS_CONF_KEYS(T, M, default_servers)                                            \
	{ .name = "redis_servers", .type = MW_CONF_CUSTOM, .def = default_servers,          \
	  .parse = mw_redis_conf_parse_servers_##M,                                         \
	  .help = "host:port, unix:/path, sentinel:MASTER@host:port,host:port, or cluster seeds host:port,host:port" }, \
	{ .name = "redis_mode", .type = MW_CONF_ENUM, .offset = offsetof(T, M.mode),        \
	  .def = "auto", .choices = mw_redis_mode_names,                                    \
	  .help = "single, sentinel, cluster, or auto (sentinel: list -> sentinel, else single)" }, \
	{ .name = "redis_username", .type = MW_CONF_STRING,                                 \
	  .offset = offsetof(T, M.username), .def = "",                                     \
	  .help = "Redis ACL user (empty: the default user)" },                             \
	{ .name = "redis_password", .type = MW_CONF_STRING,                                 \
	  .offset = offsetof(T, M.password), .def = "", .flags = MW_CONF_SECRET,            \
	  .help = "Redis password (empty: none)" },                                         \
	{ .name = "redis_database", .type = MW_CONF_UINT,                                   \
	  .offset = offsetof(T, M.database), .def = "0", .max = 15 },                       \
	{ .name = "redis_timeout", .type = MW_CONF_DURATION,                                \
	  .offset = offsetof(T, M.timeout_ms), .def = "500ms", .min = 10, .max = 60000,     \
	  .help = "connect and command timeout" }

#define MW_REDIS_CONF_DEFINE(T, M)                                                           \
	static int mw_redis_conf_parse_servers_##M(void *target, const char *value,          \
						   struct mw_buf *err)                       \
	{                                                                                    \
		return mw_redis_servers_parse(value, &((T *)target)->M.servers, err);       \
	}

#endif
