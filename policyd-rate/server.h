/*
 * server: policyd-rate's event loop (libevent): the policy socket with
 * thousands of persistent connections, the control socket, the metrics
 * listener, signals. Requests are answered in order per connection; a
 * connection waits for its store answer without blocking any other.
 */
#ifndef PR_SERVER_H
#define PR_SERVER_H

#include "prconf.h"

/* Binds every socket (as root, before dropping privileges); 0 or -1. */
int pr_server_bind(struct pr_conf *conf, struct mw_buf *err);
/* Runs until SIGTERM; conf_path is re-read on SIGHUP. Returns the exit status. */
int pr_server_run(struct pr_conf *conf, const char *conf_path);

#endif
