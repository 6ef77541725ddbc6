/*
 * tlspol_netstring: the netstring framing of Postfix's socketmap protocol
 * (socketmap_table(5)): "LEN:PAYLOAD," where LEN is decimal, no leading
 * zeros. A request payload is "MAPNAME KEY"; a reply payload is
 * "OK value", "NOTFOUND ", "TEMP reason", "TIMEOUT reason" or "PERM reason".
 *
 * The decoder works on bytes already read (incrementally: "need more" until
 * a whole netstring is there) and refuses anything longer than the caller's
 * limit as soon as the length prefix shows it, before it is read.
 * Nothing here allocates except into the caller's buffers.
 */
#ifndef TLSPOL_NETSTRING_H
#define TLSPOL_NETSTRING_H

#include <stddef.h>

#include "buf.h"

/* A request: map name and key, at most this long (a domain is <= 255). */
#define TLSPOL_NETSTRING_MAX 1024

enum tlspol_ns_status {
	TLSPOL_NS_OK,       /* a netstring: *payload / *plen, *consumed bytes used */
	TLSPOL_NS_MORE,     /* a valid prefix: read more */
	TLSPOL_NS_TOOLONG,  /* the length prefix is over the limit */
	TLSPOL_NS_MALFORMED,
};

enum tlspol_ns_status tlspol_ns_decode(const char *data, size_t len, size_t max,
				       const char **payload, size_t *plen, size_t *consumed);

/* Appends "LEN:PAYLOAD," to out. */
int tlspol_ns_encode(struct mw_buf *out, const char *payload, size_t plen);

/*
 * Splits a request payload "MAPNAME KEY" (one space; the key may not be
 * empty nor hold control bytes). Pointers into payload. 0 or -1.
 */
int tlspol_ns_split_request(const char *payload, size_t plen, const char **name, size_t *nlen,
			    const char **key, size_t *klen);

#endif
