/*
 * keytable: the three tables that decide outbound DKIM signing, parsed from
 * their text with no I/O (masign.c reads the files and the keys):
 *
 *   - the KeyTable, in OpenDKIM's format: "NAME DOMAIN:SELECTOR:/path/key"
 *     (DOMAIN "%" means the domain of the header From);
 *   - the SigningTable, in OpenDKIM's formats: "refile:" (patterns with '*'
 *     matched against the whole From address, tried in file order) or
 *     "file:" (exact keys tried as OpenDKIM does: user@host, host,
 *     user@.parent..., .parent..., user@*, *). "PATTERN KEYNAME [SIGNER]";
 *     the first pattern that matches wins and every row written with that
 *     same pattern signs (two rows: RSA and Ed25519, dual signing);
 *   - the sender login map, in the format of Postfix's
 *     smtpd_sender_login_maps: "user@domain  login[, login...]" or
 *     "@domain  login[, login...]"; the full address is tried first.
 *
 * Lines: '#' starts a comment, blank lines are skipped, fields are split at
 * spaces and tabs. Every error is "FILE:LINE: what is wrong" in err. Tables
 * own their strings; ma_*_free() releases them. Limits: lines of
 * MA_KT_MAX_LINE bytes, MA_KT_MAX_ROWS rows per table. Matching is
 * case-insensitive (domains and, as OpenDKIM does, local parts).
 * Fuzzed by tests/fuzz/fuzz_milter_auth_keytable.c.
 */
#ifndef MA_KEYTABLE_H
#define MA_KEYTABLE_H

#include <stddef.h>

#include "buf.h"

#define MA_KT_MAX_LINE 8192
#define MA_KT_MAX_ROWS 100000

struct ma_key_row {
	char *name;
	char *domain;     /* lower-cased; "%" = the From domain */
	char *selector;
	char *path;       /* absolute path of the private key */
	int line;
};

struct ma_keytable {
	struct ma_key_row *rows;
	int n;
};

struct ma_sign_row {
	char *pattern;    /* lower-cased */
	int key;          /* index into the key table */
	char *signer;     /* i= ("%" replaced by the From domain), or NULL */
	int line;
};

struct ma_signtable {
	int refile;       /* 1: wildcard patterns; 0: OpenDKIM's file lookups */
	struct ma_sign_row *rows;
	int n;
};

struct ma_login_row {
	char *key;        /* "user@domain" or "@domain", lower-cased */
	char **logins;    /* NULL-terminated */
};

struct ma_loginmap {
	struct ma_login_row *rows;
	int n;
};

/* fname names the file in error messages. 0, or -1 with err. */
int ma_keytable_parse(const char *text, size_t len, const char *fname, struct ma_keytable *kt,
		      struct mw_buf *err);
void ma_keytable_free(struct ma_keytable *kt);

/* spec: "refile:PATH", "file:PATH" or "PATH" (file, as OpenDKIM); sets
   *path to where the file name starts in spec. */
int ma_signtable_kind(const char *spec, const char **path);
int ma_signtable_parse(const char *text, size_t len, const char *fname, int refile,
		       const struct ma_keytable *kt, struct ma_signtable *st, struct mw_buf *err);
void ma_signtable_free(struct ma_signtable *st);
/* The rows that sign for local@domain (both already lower-cased): fills
   up to max row indexes, returns how many. */
int ma_signtable_match(const struct ma_signtable *st, const char *local, const char *domain,
		       int *rows, int max);
/* '*' matches any run of characters, everything else itself
   (case-insensitive). Exported for the tests. */
int ma_wildcard_match(const char *pattern, const char *text);

int ma_loginmap_parse(const char *text, size_t len, const char *fname, struct ma_loginmap *lm,
		      struct mw_buf *err);
void ma_loginmap_free(struct ma_loginmap *lm);
/* 1: login owns local@domain; 0: the address has owners, login is not one
   of them; -1: nobody owns it (Postfix refuses both). */
int ma_loginmap_check(const struct ma_loginmap *lm, const char *login, const char *local,
		      const char *domain);

#endif
