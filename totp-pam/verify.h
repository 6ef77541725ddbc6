/*
 * verify: what a typed code or password means for one user's state.
 *
 * Pure decisions on a struct tp_state, no I/O: the PAM module and
 * totp-admin read the state (statefile, store), ask tp_match(), and write
 * back what tp_commit_*() changed. Matching never changes the state, so a
 * caller can try several readings of one typed string (forward_pass) and
 * count one failure.
 *
 * Rules:
 *  - a TOTP code is accepted for a time step in [now-window, now+window]
 *    that is newer than the last step accepted (replay refusal), so a code
 *    works once, and an older code never works after a newer one did;
 *  - a code that matches a step outside the window (up to skew_steps
 *    further) is refused, and its offset reported for the log;
 *  - a backup code works once (its hash moves to the used ones);
 *  - only guesses count towards a lockout: a wrong code, a code outside the
 *    window; not a replay of a code that was valid, nor a used backup code
 *    (a client reconnecting in parallel with one code must not lock its
 *    owner out);
 *  - max_failures consecutive failures lock the user out for lockout
 *    seconds, each further lockout without a success in between twice as
 *    long, up to lockout_max; while locked out nothing is checked, a right
 *    code included;
 *  - failures are counted per client address too: rhost_max_failures from
 *    one address since its last success block that address (for this user)
 *    for rhost_lockout seconds, while the user's own lockout needs
 *    max_failures (set it higher) from all addresses together;
 *  - app passwords are never counted as failures: at 75 bits they cannot
 *    be guessed, and a client with an old saved one must not lock its
 *    owner out.
 */
#ifndef TP_VERIFY_H
#define TP_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "statefile.h"

struct tp_policy {
	int window;             /* steps either side, unless the state sets its own */
	int skew_steps;         /* diagnosis only: how far beyond the window to look */
	unsigned max_failures;  /* 0: never lock out */
	unsigned lockout_s;     /* the first lockout; each next one in a row twice as long */
	unsigned lockout_max_s; /* ... up to this (0: lockout_s, no back-off) */
	unsigned rhost_max_failures; /* failures from one address that block it (0: off) */
	unsigned rhost_lockout_s;    /* for this long */
};

enum tp_outcome {
	TP_ACCEPT_CODE,
	TP_ACCEPT_BACKUP,
	TP_REJECT_REPLAY,       /* the code of a step already used (or older) */
	TP_REJECT_BACKUP_USED,  /* a backup code used before */
	TP_REJECT_SKEW,         /* right code, wrong time: see skew_steps */
	TP_REJECT_BAD,          /* matches nothing */
	TP_REJECT_MALFORMED,    /* neither a code nor a backup code */
	TP_ERROR,               /* a hash could not be computed */
};

struct tp_result {
	enum tp_outcome outcome;
	uint64_t step;          /* ACCEPT_CODE, REPLAY, SKEW: the matching step */
	int64_t skew_steps;     /* SKEW: matching step minus the current step */
	int backup_index;       /* ACCEPT_BACKUP */
};

const char *tp_outcome_name(enum tp_outcome o);
int tp_effective_window(const struct tp_state *st, const struct tp_policy *pol);

/* 1 if locked out at now. */
int tp_locked(const struct tp_state *st, int64_t now);

/* 1 if otp[0..n) has the form of a code or a backup code (a guess, which
   counts towards a lockout if wrong), 0 if it is neither. */
int tp_is_guess(const struct tp_state *st, const char *otp, size_t n);

/* Reads otp[0..n) as a code or backup code; fills r. Never changes st. */
void tp_match(const struct tp_state *st, const struct tp_policy *pol, int64_t now, const char *otp, size_t n,
	      struct tp_result *r);

/* After an accepted r: the step remembered, the backup code spent,
   failures reset, last_login set. */
void tp_commit_success(struct tp_state *st, const struct tp_result *r, int64_t now);
/* How long the n-th lockout in a row lasts (n >= 1): seconds. */
int64_t tp_lockout_length(const struct tp_policy *pol, unsigned n);
/* After a refusal: one more failure; 1 if that started a lockout. */
int tp_commit_failure(struct tp_state *st, const struct tp_policy *pol, int64_t now);

/* The end of addr's block, or 0 if it is not blocked at now. */
int64_t tp_rhost_blocked(const struct tp_state *st, const char *addr, int64_t now);
/* One more failure from addr (a valid tp_rhost_ok address; the entry seen
   longest ago makes room when all are taken); 1 if that blocked it. */
int tp_commit_rhost_failure(struct tp_state *st, const struct tp_policy *pol, const char *addr, int64_t now);
/* A success from addr: its count starts again. */
void tp_commit_rhost_success(struct tp_state *st, const char *addr);

/* 1 and *index_r if typed[0..n) is one of st's app passwords, 0 if not,
   -1 on a hash error. Every entry is checked. */
int tp_match_app(const struct tp_state *st, const char *typed, size_t n, int *index_r);
void tp_commit_app(struct tp_state *st, int index, int64_t now);

/*
 * forward_pass: the ways typed[0..n) can be "password then one-time code":
 * the last `digits` digits (a TOTP code), the last 11 ("xxxxx-xxxxx") or 10
 * characters (a backup code), the last 8 digits (an imported scratch code).
 * Fills up to 4 splits, most likely first; returns how many. The password
 * part may be empty.
 */
struct tp_split {
	size_t pass_len;        /* typed[0..pass_len) is the password */
	size_t otp_off, otp_len;
};
int tp_split_forward(const char *typed, size_t n, int digits, struct tp_split out[4]);

#endif
