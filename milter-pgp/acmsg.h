/*
 * acmsg: Autocrypt on one message (see acpeer.h for the rules): what an
 * inbound message teaches the peer store, and the header our opted-in
 * senders' mail carries. Called by msg.c at end of message; thread-safe.
 */
#ifndef MP_ACMSG_H
#define MP_ACMSG_H

#include "buf.h"
#include "msg.h"
#include "pgpconf.h"

struct mp_gpg;

/* Inbound message (its fields in order): learns or not, and says which in
   log (" autocrypt=learned" or " autocrypt=ignored(why)"; nothing when the
   message has no Autocrypt header). Never changes the message. */
void mp_ac_inbound(struct mp_conf *c, const struct mp_msg *m, struct mw_buf *log);

/* Outbound message about to be accepted: adds our header to o when the
   sender opted in and has a key pair (" autocrypt=added" in o->log). */
void mp_ac_outbound(struct mp_conf *c, const struct mp_msg *m, struct mp_gpg *g, struct mp_outcome *o);

#endif
