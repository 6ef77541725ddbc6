/*
 * milterutil: what the milters (milter-auth, milter-pgp) share around
 * libmilter without linking it: the client address of a connection, the
 * sender of MAIL FROM, SMTP reply texts that smfi_setreply() accepts and
 * the authserv-id both agree on. Pure but for gethostname(); nothing to
 * free.
 */
#ifndef MW_MILTERUTIL_H
#define MW_MILTERUTIL_H

#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"

/* The text form of an AF_INET/AF_INET6 address into ip (at least
   INET6_ADDRSTRLEN); "" for anything else (a unix socket, NULL). */
void mw_milter_client_ip(const struct sockaddr *sa, char *ip, size_t size);

/* As mw_milter_client_ip(), but where the connection gives none (the MTA
   connects over a unix socket) the {client_addr} macro's value (may be NULL)
   instead, cut at size - 1 bytes. */
void mw_milter_client_ip_or(const struct sockaddr *sa, const char *client_addr, char *ip, size_t size);

/* The sender from MAIL FROM's first argument (may be NULL: ""), without the
   angle brackets around it, cut at size - 1 bytes, into out. */
void mw_milter_sender(const char *arg, char *out, size_t size);

/* The authserv-id of Authentication-Results fields, as milter-auth writes
   and milter-pgp reads them: *id itself, or the host name when *id is ""
   (then *id is replaced by a malloc'ed copy, the old one freed). 0, or -1
   with the reason in err (no host name; spaces, quotes, ';', '(' or
   non-ASCII in it). */
int mw_milter_authserv_id(char **id, struct mw_buf *err);

/* in as an SMTP reply text: printable ASCII only, '%' doubled (libmilter
   formats it), at most about 900 bytes. Appended to out. */
void mw_milter_reply_text(const char *in, struct mw_buf *out);

#endif
