/*
 * msg: one message through milter-pgp, whoever drives it (the libmilter
 * callbacks in milter.c, or the test mode in main.c). The body is spooled
 * to an unlinked temporary file, never held in memory.
 *
 * At end of message it decides (see milter-pgp(8)): outbound mail whose
 * recipients all have keys becomes PGP/MIME (RFC 3156) with the original
 * MIME entity inside byte for byte, encrypted to each recipient and the
 * sender, signed in the same pass when the sender has a key pair; mail
 * already protected (PGP/MIME, inline PGP, S/MIME) passes unchanged; the
 * control header is always removed. With mixed_recipients = split, the
 * recipients without a key are removed and get one plaintext copy,
 * re-injected by the caller (inject.h) with the loop mark; a message whose
 * loop mark checks passes unchanged (the mark removed). Inbound mail to
 * users who opted in to encryption at rest (atrest.h) is encrypted to
 * their keys alone, the others split off the same way.
 *
 * Memory: the outcome owns its strings and its body file (closed by
 * mp_outcome_free()).
 */
#ifndef MP_MSG_H
#define MP_MSG_H

#include "buf.h"
#include "pgpconf.h"

enum mp_action { MP_ACCEPT, MP_REJECT, MP_TEMPFAIL };
/* MP_RCPT_SPLIT: removed from the transaction, gets the re-injected copy;
   MP_RCPT_PASSWORD: gets the password-encrypted envelope (pwmode.h);
   MP_RCPT_ATREST*: inbound, opted in to encryption at rest (atrest.h):
   encrypted to their key, or in clear for want of a usable key or because
   it would be too big encrypted */
enum mp_rcpt_state { MP_RCPT_PLAINTEXT, MP_RCPT_ENCRYPTED, MP_RCPT_REJECTED, MP_RCPT_SPLIT, MP_RCPT_PASSWORD,
		     MP_RCPT_ATREST, MP_RCPT_ATREST_NOKEY, MP_RCPT_ATREST_OVERSIZE };

struct mp_reply {
	enum mp_action action; /* MP_ACCEPT: go on */
	char rcode[4];
	char xcode[8];
	struct mw_buf text;
};

struct mp_change {
	int add;       /* 1 add header, 0 delete (value NULL) or change header */
	char *name;
	char *value;   /* add or change: the value (folds as "\n\t") */
	int index;     /* delete or change: 1-based among the fields of that name */
};

struct mp_outcome {
	struct mp_reply reply;
	struct mp_change *changes;
	int nchanges;
	int body_fd;      /* >= 0: replace the body with this file, from offset 0 */
	/* split (mixed_recipients = split): remove these recipients (as the
	   MTA gave them), then inject reinject_fd (a complete message, from
	   offset 0) from reinject_sender to reinject_rcpts with inject.h; if
	   that fails, tempfail (mp_msg_reinject() does both) */
	char **delrcpts;
	int ndelrcpts;
	int reinject_fd;
	char *reinject_sender;
	char **reinject_rcpts;
	int nreinject;
	struct mw_buf log; /* the message's one log line */
};

struct mp_msg;

/* gpg_home: the running configuration's (mp_conf_start()). */
struct mp_msg *mp_msg_new(struct mp_conf *conf);
void mp_msg_free(struct mp_msg *m);
/* Forget the message, keep the connection (next MAIL FROM). */
void mp_msg_next(struct mp_msg *m);

void mp_msg_connect(struct mp_msg *m, const char *client_ip);
void mp_msg_mail(struct mp_msg *m, const char *sender, const char *auth_user);
/* After mp_msg_mail(): the session's TLS version ({tls_version}), NULL or
   "" when the message did not come over TLS. */
void mp_msg_tls(struct mp_msg *m, const char *tls_version);
/* May refuse the recipient (mixed_recipients = reject, or keyring trouble). */
void mp_msg_rcpt(struct mp_msg *m, const char *rcpt, struct mp_reply *r);
void mp_msg_header(struct mp_msg *m, const char *name, const char *value);
void mp_msg_eoh(struct mp_msg *m);
void mp_msg_body(struct mp_msg *m, const unsigned char *data, size_t len);
void mp_msg_eom(struct mp_msg *m, const char *queue_id, struct mp_outcome *o);
/* Injects o's copy (o->reinject_fd >= 0) through the configuration's
   "reinject", after the MTA took the other changes: 0, or -1 when it
   failed and o became a 451 tempfail (changes dropped). */
int mp_msg_reinject(struct mp_msg *m, struct mp_outcome *o);

/* The recipients given so far and what became of them (after eom). */
int mp_msg_nrcpts(const struct mp_msg *m);
const char *mp_msg_rcpt_addr(const struct mp_msg *m, int i);
enum mp_rcpt_state mp_msg_rcpt_state(const struct mp_msg *m, int i);
/* The header fields so far, in order (Autocrypt: acpeer.h), and the
   envelope sender. */
int mp_msg_nheaders(const struct mp_msg *m);
const char *mp_msg_header_name(const struct mp_msg *m, int i);
const char *mp_msg_header_value(const struct mp_msg *m, int i);
const char *mp_msg_sender(const struct mp_msg *m);
/* The original body file (for the test mode's output). */
int mp_msg_body_fd(const struct mp_msg *m);

/* Reads fd from offset 0 to its end, calling fn on each chunk (at most 64
   KB); 0, or -1 when a read or fn fails (errno set). */
int mp_fd_chunks(int fd, int (*fn)(void *ctx, const void *data, size_t len), void *ctx);

void mp_reply_init(struct mp_reply *r);
void mp_reply_free(struct mp_reply *r);
void mp_outcome_init(struct mp_outcome *o);
void mp_outcome_free(struct mp_outcome *o);
/* Drops every change, the bodies and the copy (keeps reply and log). */
void mp_outcome_clear(struct mp_outcome *o);

#endif
