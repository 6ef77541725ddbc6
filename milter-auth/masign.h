/*
 * masign: outbound DKIM signing (RFC 6376; Ed25519 per RFC 8463) of the mail
 * our users and trusted networks send; dksign.c makes the signatures.
 *
 * A struct ma_signer belongs to one configuration (built with it, shared
 * read-only by every milter thread, freed with it, so SIGHUP swaps tables
 * and keys without touching messages in flight). It reads the KeyTable,
 * SigningTable and sender login map (parsed by keytable.c) and loads every
 * private key at once: a missing, unreadable, group/world-readable, foreign
 * or unusable key (RSA under 2048 bits, another algorithm) is an error
 * naming the table's file and line. Keys stay in memory only, wiped at free.
 *
 * A struct ma_sign_msg follows one message: headers are kept until the
 * end of the headers (only then is the From known, which picks the keys),
 * then fed to one signer (dksign.c) per signature. Results are returned
 * as strings the caller frees.
 */
#ifndef MA_MASIGN_H
#define MA_MASIGN_H

#include <stddef.h>

#include "buf.h"
#include "hdrparse.h"

struct ma_signer_conf {
	const char *key_table;        /* "" : no signing */
	const char *signing_table;    /* [refile:|file:]PATH */
	const char *login_maps;       /* "" : login must be an address in the From domain */
	char **sign_headers;          /* header names to sign (all instances) */
	char **oversign_headers;      /* names signed once more than present */
	int header_relaxed, body_relaxed;
	unsigned long long ttl_s;     /* x= this many seconds after t=; 0: none */
	const char *daemon_user;      /* key files may belong to it, root or us */
};

struct ma_signer;
struct ma_sign_msg;

/* Also built with no key table when sender_login_check needs the From
   of authenticated mail: it then signs nothing. NULL with err. */
struct ma_signer *ma_signer_new(const struct ma_signer_conf *c, struct mw_buf *err);
void ma_signer_free(struct ma_signer *s);
/* Keys loaded (for the startup log). */
int ma_signer_nkeys(const struct ma_signer *s);

/* 1: login may send as local@domain; 0: no (why in reason). */
int ma_signer_login_allowed(const struct ma_signer *s, const char *login, const char *local,
			    const char *domain, struct mw_buf *reason);

/* For milter-auth-keygen --check: the p= value (base64) of a private key
   given as text (PEM, base64 DER, base64 raw Ed25519); 0, or -1 if the
   text holds no RSA or Ed25519 key. */
int ma_sign_key_public(const char *text, size_t len, struct mw_buf *p, int *ed25519, int *bits);

/* NULL when the signer is NULL (no signing configured). */
struct ma_sign_msg *ma_sign_msg_new(struct ma_signer *s, const char *id);
void ma_sign_msg_free(struct ma_sign_msg *m);
/* Every header, as received (value after the colon, folds kept). */
void ma_sign_msg_header(struct ma_sign_msg *m, const char *name, const char *value);

/* What the message's From fields say (parsed at eoh). */
struct ma_sign_from {
	int count;          /* From fields */
	int ok;             /* exactly one From field holding exactly one mailbox */
	struct ma_from from;
	/* the local part lower-cased for the tables ("" when longer than the
	   64 octets of RFC 5321 4.5.3.1.1) */
	char local[65];
};
/* Ends the headers: parses From, picks the keys. Returns how many
   signatures will be made (0: none; why in note, when there is a reason
   worth logging). */
int ma_sign_msg_eoh(struct ma_sign_msg *m, struct mw_buf *note);
const struct ma_sign_from *ma_sign_msg_from(const struct ma_sign_msg *m);
void ma_sign_msg_body(struct ma_sign_msg *m, const unsigned char *data, size_t len);
/* Makes the signatures: fills values[] with DKIM-Signature values (a
   leading space, folded with "\n\t"; the caller frees them) and what
   signed in note ("d=example.org s=rsa a=rsa-sha256 ..."). Returns how
   many. */
int ma_sign_msg_eom(struct ma_sign_msg *m, char **values, int max, struct mw_buf *note);

#endif
