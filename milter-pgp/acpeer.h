/*
 * acpeer: Autocrypt Level 1 in milter-pgp (milter-pgp.conf(5), AUTOCRYPT):
 * the peer store and its configuration; the message side is acmsg.h, the
 * pure parsers autocrypt.h. What the three do together:
 *
 *   - outbound, for senders in autocrypt_for: an Autocrypt header with the
 *     sender's key (the key pair it signs with, the user id of the From
 *     address and one encryption subkey), only when the From field is that
 *     one address and the envelope sender; any Autocrypt header the message
 *     had is replaced;
 *   - inbound: a message's Autocrypt header updates the peer store only when
 *     the message has exactly one From address, exactly one valid Autocrypt
 *     header for it, and the topmost Authentication-Results field of our
 *     authserv_id shows dmarc=pass for the From domain or dkim=pass aligned
 *     with it (milter-auth, earlier in smtpd_milters, removed forgeries of
 *     that id); the key must be valid with an encryption subkey and a user
 *     id of that address (gpg's verdict, nothing imported); an effective
 *     date (min(Date, now)) older than the stored one changes nothing;
 *   - the store as a key source for recipients (key_trust tofu or any),
 *     after the keyring and before WKD and OPENPGPKEY; an expired key is
 *     not used.
 *
 * The store: KEYRING/mailward-autocrypt/, per address (lower-cased, with
 * any byte outside [a-z0-9.@_+-] as %XX) NAME.peer (text lines "addr",
 * "last_seen", "autocrypt_timestamp", "prefer_encrypt", "fpr", "expires")
 * and NAME.pgp (the key as received, given to gpg as a recipient file).
 * Writers hold an flock on mailward-autocrypt/.lock; each file is written
 * to a temporary file, fsynced and renamed, so a reader sees the old or the
 * new one, never a part, and the store survives restarts.
 *
 * Thread-safe; every function may be called from any milter thread.
 */
#ifndef MP_ACPEER_H
#define MP_ACPEER_H

#include <stdio.h>

#include "autocrypt.h"
#include "buf.h"
#include "conf.h"
#include "pgpconf.h"
#include "pins.h"

struct mp_gpg;

struct mp_ac_peer {
	char addr[MP_AC_ADDR_MAX];
	long long last_seen, timestamp, expires; /* expires 0: never */
	int mutual;
	char fpr[MP_FPR_MAX + 1];
	char key_path[1024];
};

/* The schema's defaults that need the system (authserv_id: the host name,
   as milter-auth's). 0 or mw_conf_fail(). */
int mp_ac_conf_validate(struct mw_conf *cfg, struct mp_settings *s);

/* Learns addr's key from an Autocrypt header h (the message already
   judged, acmsg.h) with the effective date eff: 1 learned, 0 not (why:
   static text), -1 failed (err). A key that is not usable is not stored;
   when it is the stored key (now revoked or expired) the peer is forgotten. */
int mp_ac_peer_learn(struct mp_conf *c, const char *addr, long long eff, const struct mp_ac_header *h,
		     const char **why, struct mw_buf *err);

/* 1 when sender (an address) is in autocrypt_for (address or domain). */
int mp_ac_wanted(const struct mp_conf *c, const char *sender);

/* A recipient's key from the store (key_trust tofu or any): 1 found and
   added to g's recipients (when g is given), 0 none, -1 error (err). */
int mp_ac_recipient(struct mp_conf *c, struct mp_gpg *g, const char *addr, struct mw_buf *err);

/* The store: 1 found, 0 none; -1 with err. */
int mp_ac_peer_get(const char *keyring, const char *addr, struct mp_ac_peer *p, struct mw_buf *err);
/* milter-pgp-keys autocrypt list / forget: exit statuses. */
int mp_ac_peer_list(const char *keyring, FILE *out);
int mp_ac_peer_forget(const char *keyring, const char *addr, struct mw_buf *err);

#endif
