/*
 * store: one user's state file on disk, shared by pam_totp.so and
 * totp-admin so both lock and write it the same way.
 *
 *   DIR/USER          the state (statefile.h format), root-owned, 0600
 *   DIR/.USER.lock    flock()ed for the whole read-verify-write
 *   DIR/.USER.tmp     the next version, renamed over DIR/USER
 *
 * Every file is opened relative to the directory's descriptor with
 * O_NOFOLLOW. The directory must be root's and not writable by group or
 * other; the state file must be a regular file of root's with no group or
 * other permissions and one link. A save is write temp, fsync, rename,
 * fsync directory: a crash or a full disk leaves the old file or the new
 * one, never a torn one.
 *
 * Library code: never logs, never exits; errors go to a caller's
 * struct mw_buf (never any part of the state's contents).
 */
#ifndef TP_STORE_H
#define TP_STORE_H

#include "buf.h"
#include "statefile.h"

#define TP_USER_MAX 128

struct tp_store {
	int dir_fd;             /* -1 when closed */
	int lock_fd;            /* -1 when not locked */
	char user[TP_USER_MAX + 1];
};

#define TP_STORE_INIT { -1, -1, "" }

/* A user name we make a file name of: 1..128 bytes of [A-Za-z0-9._@+-],
   not starting with '.' or '-'. */
int tp_user_name_ok(const char *user);

/* Opens and checks the directory; 0 or -1. */
int tp_store_open(struct tp_store *s, const char *dir, const char *user, struct mw_buf *err);
/* flock(LOCK_EX) on the user's lock file, trying for up to timeout_ms:
   0 locked; -1 not (held by another process past timeout_ms, or refused);
   1 when the directory cannot be written (read-only, full) and holds no
   lock file yet: nothing can be recorded, and no other process can change
   the state either. */
int tp_store_lock(struct tp_store *s, unsigned timeout_ms, struct mw_buf *err);
/* 1 loaded, 0 no state file (not enrolled), -1 refused or unreadable. */
int tp_store_load(struct tp_store *s, struct tp_state *st, struct mw_buf *err);
/* Atomic replace; 0 or -1 (the old file is then untouched). */
int tp_store_save(struct tp_store *s, const struct tp_state *st, struct mw_buf *err);
/* Removes the state file (2FA off); 0, or -1. A missing file is 0. */
int tp_store_remove(struct tp_store *s, struct mw_buf *err);
/* Unlocks and closes; safe to call twice. */
void tp_store_close(struct tp_store *s);

#endif
