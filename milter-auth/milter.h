/*
 * milter: the libmilter side of milter-auth. The callbacks only translate
 * between libmilter and the pipeline (pipeline.h); the configuration they
 * use is the current one at connect time, swapped on SIGHUP.
 */
#ifndef MA_MILTER_H
#define MA_MILTER_H

#include "buf.h"
#include "maconf.h"

/* Registers the callbacks and opens the listening socket (as root);
   0, or -1 with err. */
int ma_milter_setup(struct ma_conf *conf, struct mw_buf *err);
/* Makes conf the configuration of new connections (takes a reference;
   drops the previous one). */
void ma_milter_set_conf(struct ma_conf *conf);
/* Runs libmilter (blocks until ma_milter_stop()); 0 or -1. */
int ma_milter_run(void);
void ma_milter_stop(void);

#endif
