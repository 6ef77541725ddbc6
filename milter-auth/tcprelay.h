/*
 * tcprelay: milter-auth's own TCP front door for inet:/inet6: sockets.
 *
 * The milter protocol is a stream of small messages. Over loopback TCP,
 * Postfix's Nagle algorithm (it sends a macro packet, then a command)
 * meets the receiver's delayed ACK, and each exchange can stall for 40 ms:
 * OpenDKIM on an inet: socket runs at a fifth of its unix-socket speed.
 * libmilter neither sets TCP_NODELAY nor lets us reach the sockets it
 * accepts, so for TCP we accept the connections ourselves (TCP_NODELAY,
 * and TCP_QUICKACK after every read, which Linux clears again) and relay
 * each one to libmilter listening on a private unix socket.
 *
 * One thread accepts; one thread per connection relays (libmilter itself
 * uses one per connection too), at most max_connections at once (lowered
 * to what the descriptor limit allows): past it a new connection is
 * closed at once, so the MTA applies its milter_default_action (Postfix:
 * tempfail), and one line is logged. Nothing is returned that needs
 * freeing.
 */
#ifndef MA_TCPRELAY_H
#define MA_TCPRELAY_H

#include "buf.h"
#include "sock.h"

/* Binds the TCP listener (as root) and prepares the private directory for
   libmilter's unix socket, owned by user (may be ""): unix_spec receives
   "unix:/path" for smfi_setconn(). 0 or -1 with err. */
int ma_tcprelay_prepare(const struct mw_sockspec *tcp, const char *user, int max_connections,
			struct mw_buf *unix_spec, struct mw_buf *err);
/* Starts accepting (after libmilter listens). */
int ma_tcprelay_start(struct mw_buf *err);
/* Removes the private socket and its directory. */
void ma_tcprelay_cleanup(void);

#endif
