/*
 * keysrc: recipient keys found outside the local keyring, for key_trust =
 * tofu | any (milter-pgp.conf(5)). After the keyring (gpg.c), in order:
 *
 *  1. WKD (draft-koch-openpgp-webkey-service): the advanced method at
 *     openpgpkey.DOMAIN when that name exists, else the direct method at
 *     DOMAIN, over HTTPS with certificate checks (tlspol_fetch.c, the
 *     names resolved through common/dns), a size and a time limit; a 404
 *     is "no key", and so is, on the direct method's host only (the
 *     domain's web site, which often has no WKD), a refused connection or
 *     a certificate not valid for it; on the advanced method's host, set
 *     up for WKD, those are failures;
 *  2. DNS OPENPGPKEY (RFC 7929) through common/dns, used only when the
 *     answer is DNSSEC-secure.
 *
 * A reply is split into keys (wkd.c) and each is judged by gpg without
 * importing it: only a key that is not expired, revoked or disabled, with a
 * valid encryption subkey and a user id of exactly that address, is used.
 * It is stored as KEYRING/mailward-found/FPR.pgp and given to gpg as a
 * recipient file at encryption; the admin's keyring is never written.
 *
 * key_trust = tofu: the first key found for an address is pinned (pins.h);
 * a different one later is refused, logged, and recorded for
 * milter-pgp-keys accept.
 *
 * Results are cached per address: found keys for key_cache_ttl, "no key"
 * for key_cache_negative_ttl (shorter), failures for a minute at most.
 * Lookups start when the recipient is known (mp_keysrc_prefetch at RCPT)
 * in a thread of their own; concurrent lookups of one address share one
 * fetch; mp_keysrc_get() waits at most key_lookup_timeout from the
 * lookup's start. A lookup that fails or runs out of time is MP_KEY_FAILED,
 * never "no key": the caller tempfails (or sends in clear only when
 * key_lookup_failure = plaintext says so).
 *
 * Thread-safe. The keysrc is reference-counted: lookup threads hold a
 * reference, so a reload may drop the old configuration at any time.
 */
#ifndef MP_KEYSRC_H
#define MP_KEYSRC_H

#include <gpgme.h>

#include "buf.h"
#include "dns.h"
#include "pins.h"

enum mp_key_trust { MP_TRUST_LOCAL, MP_TRUST_TOFU, MP_TRUST_ANY };
enum mp_key_state { MP_KEY_NONE, MP_KEY_FOUND, MP_KEY_FAILED };

struct mp_keysrc_conf {
	int trust;                       /* enum mp_key_trust */
	int wkd, openpgpkey;             /* the sources in use */
	const char *keyring;             /* pins and found keys live here */
	const char *gpg_home;            /* what gpg is given (gpg.h) */
	unsigned long long timeout_ms;   /* one address, every source */
	unsigned long long ttl_ms, negative_ttl_ms;
	const char *ca_file;             /* "" : the system store */
	unsigned long long max_size;     /* one WKD reply */
	unsigned port;                   /* 443; tests use another */
	const struct mw_dns_conf *dns;
};

struct mp_keysrc;

struct mp_key_found {
	enum mp_key_state state;
	char fpr[MP_FPR_MAX + 1];
	char source[16];                 /* wkd-advanced, wkd-direct, openpgpkey */
	struct mw_buf path;              /* FOUND: the key file */
	struct mw_buf detail;            /* why not, for the log */
};

void mp_key_found_init(struct mp_key_found *f);
void mp_key_found_free(struct mp_key_found *f);

/* NULL with err (resolver, libcurl). conf's strings must outlive it. */
struct mp_keysrc *mp_keysrc_new(const struct mp_keysrc_conf *conf, struct mw_buf *err);
void mp_keysrc_unref(struct mp_keysrc *ks);

/* Starts the lookup of addr in the background unless cached or running. */
void mp_keysrc_prefetch(struct mp_keysrc *ks, const char *addr);
/* The key of addr, waiting for a running lookup at most until its time is up. */
void mp_keysrc_get(struct mp_keysrc *ks, const char *addr, struct mp_key_found *out);
/* A fresh lookup now, in this thread, no cache (milter-pgp-keys refresh and
   pin). With pin_check 0 the pins are neither read nor written. */
void mp_keysrc_lookup(struct mp_keysrc *ks, const char *addr, int pin_check, struct mp_key_found *out);

/* The key's usable encryption subkey's expiry (0 never) in *expires; 1 when
   k (not expired, revoked or disabled, a valid encryption subkey, a valid
   user id of exactly addr) is usable for addr, else 0 with why. Also for
   the Autocrypt peer store (acpeer.h). */
int mp_keysrc_usable_for(gpgme_key_t k, const char *addr, long *expires, const char **why);

#endif
