/*
 * pins: key_trust = tofu's state, one small file in the keyring directory
 * (mailward-pins), one line per address:
 *
 *   ADDR PINNED_FPR [CHANGED_FPR]
 *
 * PINNED_FPR is the first key seen for ADDR; CHANGED_FPR a different key
 * seen since, refused until an admin accepts it (milter-pgp-keys accept).
 * Every change rewrites the file whole (a temporary file renamed over it,
 * after fsync) under an flock of mailward-pins.lock, so concurrent writers
 * (milter threads, milter-pgp-keys) never lose an update and a full disk
 * never leaves it empty. Lines that do not parse are kept as they are.
 */
#ifndef MP_PINS_H
#define MP_PINS_H

#include "buf.h"

#define MP_FPR_MAX 64

/* 1 with the pinned (and changed, or "") fingerprints, 0 when addr has no
   pin, -1 when the file cannot be read (err). */
int mp_pins_get(const char *dir, const char *addr, char pinned[MP_FPR_MAX + 1], char changed[MP_FPR_MAX + 1],
		struct mw_buf *err);
/* Sets addr's line (changed may be "" or NULL; pinned NULL removes it). */
int mp_pins_set(const char *dir, const char *addr, const char *pinned, const char *changed, struct mw_buf *err);
/* Under the lock: no pin yet -> pins fpr (returns 1); pinned to fpr -> 1;
   pinned to another -> records fpr as the changed key, returns 0; -1. */
int mp_pins_check(const char *dir, const char *addr, const char *fpr, char pinned[MP_FPR_MAX + 1],
		  struct mw_buf *err);
/* The whole file's contents (for listing); "" when there is none. */
int mp_pins_read(const char *dir, struct mw_buf *out, struct mw_buf *err);

#endif
