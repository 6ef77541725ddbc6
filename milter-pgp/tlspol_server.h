/*
 * tlspol_server: the socketmap service on libevent. One event loop reads
 * requests and writes answers; the lookups (DNS, HTTPS) run in a pool of
 * worker threads. Concurrent requests for one destination share one
 * lookup (one fetch), whichever connections they come from. SIGHUP
 * reloads the configuration and the policy file; SIGTERM/SIGINT stop.
 */
#ifndef TLSPOL_SERVER_H
#define TLSPOL_SERVER_H

#include "buf.h"
#include "tlspol_conf.h"
#include "tlspol_lookup.h"

/* Binds the socket (as root, before the privilege drop). */
int tlspol_server_bind(struct tlspol_conf *conf, struct mw_buf *err);
/* Runs until SIGTERM; takes over conf. Returns the exit status. */
int tlspol_server_run(struct tlspol_conf *conf, const char *conf_path, struct tlspol_env *env);

#endif
