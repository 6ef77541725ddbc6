/*
 * server: policyd-rate's event loop (libevent): the policy socket with
 * thousands of persistent connections, the control socket, the metrics
 * listener, signals. Requests are answered in order per connection; a
 * connection waits for its store answer without blocking any other.
 */
#ifndef PR_SERVER_H
#define PR_SERVER_H

#include <event2/event.h>

#include "prconf.h"

/* Binds every socket (as root, before dropping privileges); 0 or -1. */
int pr_server_bind(struct pr_conf *conf, struct mw_buf *err);
/*
 * The pieces pr_server_run() is made of, for the whole-loop fuzz target:
 * init sets the server up on base (its store, no socket); adopt serves
 * one connected socket as a policy client, exactly as if it had been
 * accepted; connections counts the policy clients not yet freed.
 */
void pr_server_init(struct event_base *base, struct pr_conf *conf, const char *conf_path);
void pr_server_adopt(int fd);
unsigned long long pr_server_connections(void);
/* Runs until SIGTERM; conf_path is re-read on SIGHUP. Returns the exit status. */
int pr_server_run(struct pr_conf *conf, const char *conf_path);

#endif
