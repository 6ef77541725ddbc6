/*
 * inject: hands a complete message back to the MTA (re-injection), for the
 * plaintext copy of mixed_recipients = split and for messages milter-pgp
 * writes itself (e.g. a generated password sent to the sender).
 *
 * Where it goes is the configuration's "reinject" (milter-pgp.conf(5)):
 *   smtp:HOST:PORT        SMTP (libcurl) to a loopback smtpd service, the
 *                         Postfix content-filter way (FILTER_README):
 *                         contrib/postfix/milter-pgp.cf's 127.0.0.1:10026
 *   sendmail:PATH [ARG]... the MTA's sendmail(1) command: -i -f SENDER --
 *                         RCPT... is appended, the message on its stdin
 *
 * The loop mark: every injected message gets a first header field
 * MP_INJECT_HEADER: "v=1; t=UNIXTIME; mac=HEX", an HMAC-SHA256 under the
 * installation's secret (reinject_secret_file) over the time, the envelope
 * sender, the envelope recipients (lowercased, sorted) and a SHA-256 of the
 * body (CRs and trailing line ends ignored). milter-pgp passes a message
 * whose mark checks (mp_inject_check) without processing it again, and
 * deletes the field either way. A client cannot forge the mark without the
 * secret; replaying one from a copy only re-sends that same body to those
 * same recipients, within a day.
 *
 * Failure: every function returns 0 (or 1 said) or -1 with the reason in
 * err; a failed injection delivered nothing that the caller must undo
 * unless the MTA lost its reply (then at worst one duplicate: the caller
 * tempfails its own transaction, so nothing is lost).
 *
 * Threads: mp_inject_global_init() once before any thread starts; a
 * struct mp_inject is immutable after mp_inject_new() and shared by every
 * thread; each send uses its own connection or process.
 * Memory: the caller owns everything it passes; mp_inject_new()'s result is
 * freed with mp_inject_free() (the secret is wiped).
 */
#ifndef MP_INJECT_H
#define MP_INJECT_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

#define MP_INJECT_HEADER "X-Mailward-Reinjected"
#define MP_INJECT_MAX_AGE 86400 /* seconds a mark stays valid */

struct mp_inject;

int mp_inject_global_init(struct mw_buf *err);

/* 0 when spec is a valid "reinject" value (for the configuration check). */
int mp_inject_check_spec(const char *spec, struct mw_buf *err);

/* secret_file: the per-installation secret (at least 32 bytes); created
   (mode 0600, 32 random bytes, hex) when it does not exist. timeout_ms:
   the whole injection. */
struct mp_inject *mp_inject_new(const char *spec, const char *secret_file, unsigned timeout_ms, struct mw_buf *err);
void mp_inject_free(struct mp_inject *inj);
/* The spec, for logs. */
const char *mp_inject_describe(const struct mp_inject *inj);

/*
 * Injects a complete message (header fields, an empty line, the body; line
 * ends LF or CRLF) for sender ("" is the null sender <>) and the nrcpts
 * recipients (bare addresses, no angle brackets), with the loop mark
 * prepended. fd: read from offset 0 to its end; buf: len bytes.
 */
int mp_inject_fd(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts, int fd,
		 struct mw_buf *err);
int mp_inject_buf(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts,
		  const char *msg, size_t len, struct mw_buf *err);

/*
 * Checks the value of a MP_INJECT_HEADER field against the transaction it
 * came with: the envelope and the body as the milter received it (no
 * header). 1: made by this installation for exactly this, less than
 * MP_INJECT_MAX_AGE old; 0: not (the reason in err); never -1.
 */
int mp_inject_check(const struct mp_inject *inj, const char *value, const char *sender, const char *const *rcpts,
		    size_t nrcpts, const void *body, size_t body_len, time_t now, struct mw_buf *err);

#endif
