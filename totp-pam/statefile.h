/*
 * statefile: one user's TOTP state, and its text form.
 *
 * The file is a strict line format, one "key value" per line (one space),
 * '#' comment lines, no blank lines in the middle of nowhere needed but
 * allowed, every line at most TP_LINE_MAX bytes, the file at most
 * TP_FILE_MAX. Unknown keys, repeated single keys, missing required keys
 * and values out of range are errors ("line N: what"): a file that does
 * not parse is refused whole, never half used.
 *
 *   version 1                       required, first
 *   secret JBSWY3DPEHPK3PXP...      required: base32, 10..64 bytes
 *   algorithm sha1                  sha1 | sha256 | sha512
 *   digits 6                        6 | 7 | 8
 *   step 30                         seconds, 1..300
 *   window 1                        steps either side (overrides window=)
 *   confirmed 1                     0 until the first code was confirmed
 *   last_step 56666666              highest time step accepted (replay)
 *   last_login 1700000000           unix time of the last success
 *   failures 0                      consecutive failures
 *   locked_until 0                  unix time the lockout ends
 *   lockouts 0                      lockouts in a row since the last success
 *                                   (each one twice as long as the last)
 *   created 1700000000              enrollment time
 *   backup pbkdf2-sha256:...        one line per unused backup code
 *   backup_used pbkdf2-sha256:...   a used one (up to 32, the latest), so
 *                                   that its reuse is told from a wrong code
 *   app NAME CREATED LAST_USED HASH one line per app password
 *   rhost ADDR FAILURES BLOCKED_UNTIL LAST_SEEN
 *                                   failures from one client address since
 *                                   its last success (up to 16 addresses)
 *
 * A re-enrollment of a confirmed user waits for its confirmation in
 * pending_* lines; until then the secret and backup codes above stay in
 * force, and confirming moves the pending ones in their place:
 *
 *   pending_secret JBSWY3DP...      base32, 10..64 bytes
 *   pending_algorithm sha1          (the defaults as above)
 *   pending_digits 6
 *   pending_step 30
 *   pending_created 1700000000
 *   pending_backup pbkdf2-sha256:... one line per new backup code
 *
 * Pure: no I/O. A struct tp_state is self-contained (fixed arrays, no
 * pointers): copy it, memset it, and tp_state_wipe() it when done, since
 * it holds the secret.
 */
#ifndef TP_STATEFILE_H
#define TP_STATEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "secret.h"
#include "totp.h"

#define TP_LINE_MAX 512
#define TP_FILE_MAX 32768
#define TP_MAX_BACKUP 32
#define TP_MAX_APPS 32
#define TP_APP_NAME_MAX 64
#define TP_MAX_RHOSTS 16
#define TP_RHOST_MAX 64

struct tp_rhost {
	char addr[TP_RHOST_MAX + 1];      /* tp_rhost_ok() */
	unsigned failures;
	int64_t blocked_until;
	int64_t last_seen;
};

struct tp_app {
	char name[TP_APP_NAME_MAX + 1];   /* [A-Za-z0-9._-]+ */
	int64_t created;
	int64_t last_used;                /* 0: never */
	struct tp_hash hash;
};

/* A new secret and backup codes waiting for confirmation (secret_len 0:
   none). */
struct tp_pending {
	unsigned char secret[TP_SECRET_MAX];
	size_t secret_len;
	enum tp_alg alg;
	int digits;
	unsigned step;
	int64_t created;
	struct tp_hash backup[TP_MAX_BACKUP];
	int nbackup;
};

struct tp_state {
	unsigned char secret[TP_SECRET_MAX];
	size_t secret_len;
	enum tp_alg alg;
	int digits;
	unsigned step;
	int window;                       /* -1: the module's window= */
	int confirmed;
	uint64_t last_step;               /* 0: none accepted yet */
	int64_t last_login;
	unsigned failures;
	int64_t locked_until;
	unsigned lockouts;
	int64_t created;
	struct tp_hash backup[TP_MAX_BACKUP];
	int nbackup;
	struct tp_hash used[TP_MAX_BACKUP];  /* used backup codes, oldest first */
	int nused;
	struct tp_app app[TP_MAX_APPS];
	int napp;
	struct tp_rhost rhost[TP_MAX_RHOSTS];
	int nrhost;
	struct tp_pending pending;
};

/* Defaults: sha1, 6 digits, 30 s, window -1, nothing else. */
void tp_state_init(struct tp_state *st);
void tp_state_wipe(struct tp_state *st);

/* Parses text[0..n); 0, or -1 with "line N: reason" in err (which never
   holds any part of the secret). */
int tp_state_parse(const char *text, size_t n, struct tp_state *st, struct mw_buf *err);
/* Appends the text form (which tp_state_parse reads back identically). */
int tp_state_format(const struct tp_state *st, struct mw_buf *out);

/* Whether addr can be kept as a client address: 1..64 of [A-Za-z0-9.:_%-]
   (an IPv4 or IPv6 address, or a host name). */
int tp_rhost_ok(const char *addr, size_t n);
/* Index of addr's entry, or -1. */
int tp_state_find_rhost(const struct tp_state *st, const char *addr);
/* Whether name is a valid app-password name. */
int tp_app_name_ok(const char *name, size_t n);
/* Index of the app password called name, or -1. */
int tp_state_find_app(const struct tp_state *st, const char *name);
void tp_state_remove_backup(struct tp_state *st, int i);
/* Moves backup code i to the used ones (dropping the oldest used one when
   full). */
void tp_state_use_backup(struct tp_state *st, int i);
void tp_state_remove_app(struct tp_state *st, int i);
/* The state as it will be once the pending enrollment is confirmed: its
   secret, algorithm, digits, step, creation and backup codes, with st's
   replay step, app passwords and window; confirmed 1, no failures, nothing
   pending. st must have a pending enrollment. */
void tp_state_promote_pending(const struct tp_state *st, struct tp_state *out);

/*
 * Import of a google-authenticator-libpam file (~/.google_authenticator):
 * base32 secret on line 1, then '" OPTION ...' lines (TOTP_AUTH, STEP_SIZE,
 * WINDOW_SIZE, DISALLOW_REUSE with used steps, RATE_LIMIT), then 8-digit
 * scratch codes, which become hashed backup codes. HOTP files (HOTP_COUNTER)
 * are refused. The imported state is confirmed (it was in use).
 */
int tp_state_import_ga(const char *text, size_t n, int64_t now, struct tp_state *st, struct mw_buf *err);

#endif
