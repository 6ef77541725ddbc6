/*
 * pgpconf: milter-pgp's configuration (milter-pgp.conf(5)): the schema, the
 * struct it fills, and the checks across keys.
 *
 * A loaded configuration is immutable and shared by every milter thread
 * through a reference count: SIGHUP loads a new one and swaps it in;
 * messages in flight keep the one they started with.
 */
#ifndef MP_PGPCONF_H
#define MP_PGPCONF_H

#include <stdatomic.h>

#include "cidr.h"
#include "conf.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "pwmode.h"

enum mp_mixed { MP_MIXED_PLAINTEXT, MP_MIXED_REJECT, MP_MIXED_SPLIT };
enum mp_oversize { MP_OVERSIZE_REJECT, MP_OVERSIZE_PLAINTEXT };

struct mp_settings {
	char *socket;
	char *keyring;                 /* GnuPG home holding the keys */
	char *passphrase_file;         /* "" : the secret keys have none */
	char *tmpdir;                  /* message bodies are spooled here */
	struct mw_cidr_list trusted;   /* trusted_networks: outbound sources */
	int outbound_authenticated;    /* SMTP AUTH users send outbound mail */
	int mixed;                     /* mixed_recipients: enum mp_mixed */
	char **reject_mixed_for;       /* senders (address or domain) with reject */
	char **plaintext_mixed_for;    /* senders with plaintext */
	char **split_mixed_for;        /* senders with split */
	char *reinject;                /* inject.h: smtp:HOST:PORT or sendmail:/PATH ... */
	char *reinject_secret_file;    /* "" : KEYRING/reinject.key */
	unsigned long long reinject_timeout; /* ms */
	int sign;                      /* sign with the sender's key */
	int encrypt_to_sender;
	int hide_recipients;           /* throw key ids */
	int compress;                  /* let gpg compress before encrypting */
	char *control_header;          /* X-Mailward-Encrypt */
	/* recipient keys beyond the keyring (keysrc.h) */
	int key_trust;                 /* enum mp_key_trust */
	char **key_lookup;             /* wkd, openpgpkey */
	int key_lookup_failure;        /* 0 tempfail, 1 plaintext */
	unsigned long long key_lookup_timeout_ms;
	unsigned long long key_cache_ttl_ms, key_cache_negative_ttl_ms;
	char *wkd_ca_file;
	unsigned long long wkd_max_size;
	unsigned long long wkd_port;
	struct mw_dns_conf dns;
	unsigned long long max_message_size; /* the MTA's limit (message_size_limit) */
	int oversize;                  /* enum mp_oversize: too big once encrypted */
	/* password-encrypted envelopes (pwmode.h) */
	char *password_header;         /* X-Mailward-Password */
	char *password_hint_header;    /* X-Mailward-Password-Hint */
	char *password_subject_tag;    /* [secure]; "" : no tag */
	char **password_generated_for; /* senders with a generated password by default */
	char *password_templates;      /* directory of the language directories */
	char *password_language;
	unsigned long long password_kdf_iterations; /* PBKDF2 rounds (pem.h) */
	struct mp_pw_templates pw;     /* read by mp_conf_validate(), owned */
	/* Autocrypt (acpeer.h) */
	char **autocrypt_for;          /* senders (address or domain) whose mail carries their key */
	int autocrypt_prefer_encrypt;  /* 1: prefer-encrypt=mutual */
	int autocrypt_learn;           /* inbound headers update the peer store */
	char *authserv_id;             /* of milter-auth's Authentication-Results */
	struct mw_log_conf log;
	struct mw_daemon_conf daemon;
	/* protected headers (prothdr.h) */
	int protected_headers;
	int protect_subject;           /* outer Subject "[...]" when encrypted */
};

struct mp_gpg_home;
struct mp_keysrc;
struct mp_inject;

struct mp_conf {
	struct mp_settings s;
	struct mw_conf *owner;    /* owns the strings in s */
	struct mp_gpg_home *home; /* built by mp_conf_start() */
	struct mp_keysrc *keysrc; /* key_trust tofu|any: built by mp_conf_start() */
	struct mp_inject *inject; /* built by mp_conf_start(): "reinject" (inject.h) */
	atomic_int refs;
};

extern const struct mw_conf_key mp_conf_schema[];

int mp_conf_validate(struct mw_conf *cfg, void *target);
/* NULL with "file:line: message" in err. */
struct mp_conf *mp_conf_load(const char *path, struct mw_buf *err);
/* -n / -C exit here; a bad file exits 2. */
struct mp_conf *mp_conf_load_cli(const char *path, unsigned cli_flags);
/* After the privilege drop: the GnuPG home (gpg.h). 0 or -1 with err. */
int mp_conf_start(struct mp_conf *c, struct mw_buf *err);
struct mp_conf *mp_conf_ref(struct mp_conf *c);
void mp_conf_unref(struct mp_conf *c);

/* The mixed_recipients mode for this envelope sender. */
enum mp_mixed mp_conf_mixed_for(const struct mp_conf *c, const char *sender);
/* 1 when mail from sender gets a generated password by default. */
int mp_conf_password_generated_for(const struct mp_conf *c, const char *sender);

#endif
