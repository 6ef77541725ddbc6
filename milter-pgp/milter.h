/*
 * milter: milter-pgp's libmilter callbacks around msg.h.
 *
 * mp_milter_setup() binds the socket (as root, before the privilege drop);
 * mp_milter_run() runs libmilter until mp_milter_stop(). The running
 * configuration is swapped by mp_milter_set_conf() (SIGHUP); each
 * connection keeps a reference to the one it started with.
 */
#ifndef MP_MILTER_H
#define MP_MILTER_H

#include "buf.h"
#include "pgpconf.h"

int mp_milter_setup(struct mp_conf *conf, struct mw_buf *err);
void mp_milter_set_conf(struct mp_conf *conf);
int mp_milter_run(void);
void mp_milter_stop(void);

#endif
