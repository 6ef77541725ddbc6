/*
 * atrest: who asked for inbound encryption at rest (milter-pgp(8)).
 *
 * KEYRING/mailward-atrest lists the local users who want the mail that
 * reaches them stored encrypted to their own key: one address per line,
 * '#' starts a comment. `milter-pgp-keys at-rest on|off ADDR` edits it:
 * the file is rewritten whole (a temporary file, fsync, rename) under an
 * flock of mailward-atrest.lock, so a full disk never leaves it empty and
 * two writers never lose an update. milter-pgp reads it at each inbound
 * message (a missing file: nobody opted in), so a change applies to the
 * next message without a reload.
 *
 * Memory: struct mp_atrest owns its text (mp_atrest_free()); at most
 * 16 MB, a larger file is an error (the caller tempfails).
 */
#ifndef MP_ATREST_H
#define MP_ATREST_H

#include "buf.h"

struct mp_atrest {
	struct mw_buf text; /* the file, lines as written */
};

/* 0 (an empty list when there is no file), or -1 with err. */
int mp_atrest_load(const char *dir, struct mp_atrest *a, struct mw_buf *err);
void mp_atrest_free(struct mp_atrest *a);
/* 1 when addr (any case) opted in. */
int mp_atrest_has(const struct mp_atrest *a, const char *addr);
/* The next address from *pos (0 at first) into out (longer ones are
   skipped); 1, or 0 at the end. */
int mp_atrest_next(const struct mp_atrest *a, size_t *pos, char *out, size_t size);
/* Opts addr in (on) or out; 0, or -1 with err (not an address, I/O). */
int mp_atrest_set(const char *dir, const char *addr, int on, struct mw_buf *err);

#endif
