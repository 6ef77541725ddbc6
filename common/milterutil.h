/*
 * milterutil: what the milters (milter-auth, milter-pgp) share around
 * libmilter without linking it: the client address of a connection and SMTP
 * reply texts that smfi_setreply() accepts. Pure; nothing to free.
 */
#ifndef MW_MILTERUTIL_H
#define MW_MILTERUTIL_H

#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"

/* The text form of an AF_INET/AF_INET6 address into ip (at least
   INET6_ADDRSTRLEN); "" for anything else (a unix socket, NULL). */
void mw_milter_client_ip(const struct sockaddr *sa, char *ip, size_t size);

/* in as an SMTP reply text: printable ASCII only, '%' doubled (libmilter
   formats it), at most about 900 bytes. Appended to out. */
void mw_milter_reply_text(const char *in, struct mw_buf *out);

#endif
