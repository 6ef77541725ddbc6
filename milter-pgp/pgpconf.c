#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "acpeer.h"
#include "gpg.h"
#include "inject.h"
#include "keysrc.h"
#include "pgpconf.h"

MW_DNS_CONF_DEFINE(struct mp_settings, dns)

#ifndef MP_DATADIR
#define MP_DATADIR "/usr/share"
#endif

static int parse_trusted(void *target, const char *value, struct mw_buf *err)
{
	struct mp_settings *s = target;
	mw_cidr_list_free(&s->trusted);
	return mw_cidr_list_add(&s->trusted, value, err);
}

static void release_trusted(void *target)
{
	mw_cidr_list_free(&((struct mp_settings *)target)->trusted);
}

static const char *const mixed_modes[] = { "plaintext", "reject", "split", NULL };
static const char *const oversize_modes[] = { "reject", "plaintext", NULL };
static const char *const trust_modes[] = { "local", "tofu", "any", NULL };
static const char *const failure_modes[] = { "tempfail", "plaintext", NULL };
static const char *const ac_prefer_modes[] = { "nopreference", "mutual", NULL };

#define S(field) offsetof(struct mp_settings, field)
const struct mw_conf_key mp_conf_schema[] = {
	{ .name = "socket", .type = MW_CONF_SOCKET, .offset = S(socket),
	  .def = "unix:/var/spool/postfix/mailward/milter-pgp.sock",
	  .help = "where the MTA connects: unix:/path, inet:port@host, inet6:port@host" },
	{ .name = "keyring", .type = MW_CONF_STRING, .offset = S(keyring),
	  .def = "/var/lib/mailward/pgp",
	  .help = "GnuPG home with the recipients' keys and the senders' key pairs (milter-pgp-keys)" },
	{ .name = "passphrase_file", .type = MW_CONF_STRING, .offset = S(passphrase_file), .def = "",
	  .help = "passphrase of the senders' secret keys, a root-only file (empty: keys without one)" },
	{ .name = "tmpdir", .type = MW_CONF_STRING, .offset = S(tmpdir), .def = "/var/tmp",
	  .help = "where message bodies are spooled while they are encrypted" },
	{ .name = "trusted_networks", .type = MW_CONF_CUSTOM, .def = "127.0.0.0/8 ::1",
	  .parse = parse_trusted, .release = release_trusted,
	  .help = "clients whose mail is outbound (encrypted and signed)" },
	{ .name = "outbound_authenticated", .type = MW_CONF_BOOL, .offset = S(outbound_authenticated),
	  .def = "yes", .help = "mail from SMTP AUTH users is outbound" },
	{ .name = "mixed_recipients", .type = MW_CONF_ENUM, .offset = S(mixed), .def = "plaintext",
	  .choices = mixed_modes,
	  .help = "a recipient without a key: plaintext (whole message in clear, logged), reject (550 at RCPT) "
		  "or split (encrypted for the key holders, one plaintext copy re-injected for the others)" },
	{ .name = "reject_mixed_for", .type = MW_CONF_LIST, .offset = S(reject_mixed_for), .def = "",
	  .flags = MW_CONF_MULTI, .help = "senders (address or domain) for whom mixed_recipients = reject" },
	{ .name = "plaintext_mixed_for", .type = MW_CONF_LIST, .offset = S(plaintext_mixed_for), .def = "",
	  .flags = MW_CONF_MULTI, .help = "senders (address or domain) for whom mixed_recipients = plaintext" },
	{ .name = "split_mixed_for", .type = MW_CONF_LIST, .offset = S(split_mixed_for), .def = "",
	  .flags = MW_CONF_MULTI, .help = "senders (address or domain) for whom mixed_recipients = split" },
	{ .name = "reinject", .type = MW_CONF_STRING, .offset = S(reinject), .def = "smtp:127.0.0.1:10026",
	  .help = "where split copies go back to the MTA: smtp:HOST:PORT (the service in "
		  "contrib/postfix/milter-pgp.cf) or sendmail:/usr/sbin/sendmail [ARGUMENT]..." },
	{ .name = "reinject_secret_file", .type = MW_CONF_STRING, .offset = S(reinject_secret_file), .def = "",
	  .help = "secret of the re-injection mark (created when missing; empty: KEYRING/reinject.key)" },
	{ .name = "reinject_timeout", .type = MW_CONF_DURATION, .offset = S(reinject_timeout), .def = "60s",
	  .min = 1000, .max = 600000, .help = "one re-injection at most; then the message is tempfailed" },
	{ .name = "sign", .type = MW_CONF_BOOL, .offset = S(sign), .def = "yes",
	  .help = "sign with the sender's default key when the keyring has its key pair" },
	{ .name = "encrypt_to_sender", .type = MW_CONF_BOOL, .offset = S(encrypt_to_sender), .def = "yes",
	  .help = "also encrypt to the sender's key, so its Sent copy stays readable" },
	{ .name = "hide_recipients", .type = MW_CONF_BOOL, .offset = S(hide_recipients), .def = "no",
	  .help = "leave the recipients' key ids out of the encrypted message (gpg --throw-keyids)" },
	{ .name = "compress", .type = MW_CONF_BOOL, .offset = S(compress), .def = "yes",
	  .help = "compress before encrypting (gpg's default: smaller messages, faster through the MTA; "
		  "no: a compressed message's length tells something of its content)" },
	{ .name = "control_header", .type = MW_CONF_STRING, .offset = S(control_header),
	  .def = "X-Mailward-Encrypt",
	  .help = "header by which a sender asks: require (refuse rather than send in clear) or none" },
	{ .name = "max_message_size", .type = MW_CONF_SIZE, .offset = S(max_message_size),
	  .def = "64m", .min = 1024, .max = 1ULL << 34,
	  .help = "the MTA's size limit (Postfix: message_size_limit): a message larger once encrypted "
		  "(about +37%) is handled as oversize says" },
	{ .name = "oversize", .type = MW_CONF_ENUM, .offset = S(oversize), .def = "reject", .choices = oversize_modes,
	  .help = "a message too big once encrypted: reject (552 5.3.4) or plaintext (sent as is, logged)" },
	{ .name = "password_header", .type = MW_CONF_STRING, .offset = S(password_header),
	  .def = "X-Mailward-Password",
	  .help = "header carrying the password for recipients without a key (from SMTP AUTH users over TLS only)" },
	{ .name = "password_hint_header", .type = MW_CONF_STRING, .offset = S(password_hint_header),
	  .def = "X-Mailward-Password-Hint",
	  .help = "header with a hint about the password, shown in clear in the envelope message" },
	{ .name = "password_subject_tag", .type = MW_CONF_STRING, .offset = S(password_subject_tag),
	  .def = "[secure]",
	  .help = "Subject tag asking for a generated password, sent to the sender alone (empty: none)" },
	{ .name = "password_generated_for", .type = MW_CONF_LIST, .offset = S(password_generated_for), .def = "",
	  .flags = MW_CONF_MULTI,
	  .help = "senders (address or domain) whose mail to recipients without a key always gets a generated password" },
	{ .name = "password_templates", .type = MW_CONF_STRING, .offset = S(password_templates),
	  .def = MP_DATADIR "/mailward/pem/templates",
	  .help = "directory holding one directory of templates per language (body.txt, body.html, password.txt)" },
	{ .name = "password_language", .type = MW_CONF_STRING, .offset = S(password_language), .def = "en",
	  .help = "templates used: en, fr, or any directory added under password_templates" },
	{ .name = "password_kdf_iterations", .type = MW_CONF_UINT, .offset = S(password_kdf_iterations),
	  .def = "600000", .min = 600000, .max = 20000000,
	  .help = "PBKDF2-HMAC-SHA256 rounds for password-encrypted messages (stored in each message)" },
	{ .name = "key_trust", .type = MW_CONF_ENUM, .offset = S(key_trust), .def = "local",
	  .choices = trust_modes,
	  .help = "local (keyring only), tofu (also discovered keys, the first one pinned) or any discovered key" },
	{ .name = "key_lookup", .type = MW_CONF_LIST, .offset = S(key_lookup), .def = "wkd openpgpkey",
	  .help = "where keys are looked for after the keyring, in order (key_trust tofu or any)" },
	{ .name = "key_lookup_failure", .type = MW_CONF_ENUM, .offset = S(key_lookup_failure), .def = "tempfail",
	  .choices = failure_modes,
	  .help = "a lookup that failed or timed out: tempfail (451, the MTA retries) or plaintext (as without a key)" },
	{ .name = "key_lookup_timeout", .type = MW_CONF_DURATION, .offset = S(key_lookup_timeout_ms), .def = "10s",
	  .min = 500, .max = 120000, .help = "one address, every source together" },
	{ .name = "key_cache_ttl", .type = MW_CONF_DURATION, .offset = S(key_cache_ttl_ms), .def = "6h",
	  .min = 1000, .max = 7ULL * 86400 * 1000, .help = "a discovered key is looked up again after this" },
	{ .name = "key_cache_negative_ttl", .type = MW_CONF_DURATION, .offset = S(key_cache_negative_ttl_ms),
	  .def = "30m", .min = 1000, .max = 86400 * 1000, .help = "\"no key\" is remembered this long" },
	{ .name = "wkd_ca_file", .type = MW_CONF_STRING, .offset = S(wkd_ca_file), .def = "",
	  .help = "CA certificates for WKD servers (empty: the system store)" },
	{ .name = "wkd_max_size", .type = MW_CONF_SIZE, .offset = S(wkd_max_size), .def = "256k", .min = 1024,
	  .max = 16 << 20, .help = "a larger WKD reply is refused" },
	{ .name = "wkd_port", .type = MW_CONF_UINT, .offset = S(wkd_port), .def = "443", .min = 1, .max = 65535,
	  .help = "HTTPS port of WKD servers (only tests change it)" },
	{ .name = "protected_headers", .type = MW_CONF_BOOL, .offset = S(protected_headers), .def = "yes",
	  .help = "copy Subject, From, To, Cc, Date... into the signed or encrypted part (RFC 9788); "
		  "no: the part is the original entity alone" },
	{ .name = "protect_subject", .type = MW_CONF_BOOL, .offset = S(protect_subject), .def = "no",
	  .help = "an encrypted message's outer Subject becomes \"[...]\" (the real one is inside; "
		  "needs protected_headers)" },
	{ .name = "autocrypt_for", .type = MW_CONF_LIST, .offset = S(autocrypt_for), .def = "",
	  .flags = MW_CONF_MULTI,
	  .help = "senders (address or domain) whose outgoing mail carries an Autocrypt header with their key" },
	{ .name = "autocrypt_prefer_encrypt", .type = MW_CONF_ENUM, .offset = S(autocrypt_prefer_encrypt),
	  .def = "nopreference", .choices = ac_prefer_modes,
	  .help = "what our Autocrypt headers say: nopreference or mutual (prefer-encrypt=mutual)" },
	{ .name = "autocrypt_learn", .type = MW_CONF_BOOL, .offset = S(autocrypt_learn), .def = "yes",
	  .help = "inbound Autocrypt headers (DMARC or aligned DKIM pass in our Authentication-Results) "
		  "update the peer store, used as a key source with key_trust tofu or any" },
	{ .name = "authserv_id", .type = MW_CONF_STRING, .offset = S(authserv_id), .def = "",
	  .help = "authserv-id of the Authentication-Results that milter-auth adds (empty: the host name, "
		  "milter-auth's default)" },
	MW_DNS_CONF_KEYS(struct mp_settings, dns),
	MW_LOG_CONF_KEYS(struct mp_settings, log),
	MW_DAEMON_CONF_KEYS(struct mp_settings, daemon, "mailward"),
	{ .name = NULL },
};

int mp_conf_validate(struct mw_conf *cfg, void *target)
{
	struct mp_settings *s = target;
	struct stat st;
	if (s->keyring[0] != '/')
		return mw_conf_fail(cfg, "keyring", "%s: not an absolute path", s->keyring);
	if (stat(s->keyring, &st) < 0 || !S_ISDIR(st.st_mode))
		return mw_conf_fail(cfg, "keyring", "%s: not a directory (create it with milter-pgp-keys)",
				    s->keyring);
	if (s->tmpdir[0] != '/' || stat(s->tmpdir, &st) < 0 || !S_ISDIR(st.st_mode))
		return mw_conf_fail(cfg, "tmpdir", "%s: not a directory", s->tmpdir);
	if (s->passphrase_file[0] != '\0') {
		if (stat(s->passphrase_file, &st) < 0)
			return mw_conf_fail(cfg, "passphrase_file", "%s: cannot read it", s->passphrase_file);
		if ((st.st_mode & 077) != 0)
			return mw_conf_fail(cfg, "passphrase_file", "%s: readable by others (chmod 0600)",
					    s->passphrase_file);
	}
	for (char **p = s->key_lookup; p != NULL && *p != NULL; p++)
		if (strcmp(*p, "wkd") != 0 && strcmp(*p, "openpgpkey") != 0)
			return mw_conf_fail(cfg, "key_lookup", "%s: not wkd or openpgpkey", *p);
	if (s->wkd_ca_file[0] != '\0' && access(s->wkd_ca_file, R_OK) < 0)
		return mw_conf_fail(cfg, "wkd_ca_file", "%s: cannot read it", s->wkd_ca_file);
	if (s->key_cache_negative_ttl_ms > s->key_cache_ttl_ms)
		return mw_conf_fail(cfg, "key_cache_negative_ttl", "longer than key_cache_ttl");
	if (s->control_header[0] == '\0')
		return mw_conf_fail(cfg, "control_header", "empty");
	for (const char *p = s->control_header; *p != '\0'; p++)
		if (*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f)
			return mw_conf_fail(cfg, "control_header", "not a header field name");
	if (mp_ac_conf_validate(cfg, s) < 0)
		return -1;
	struct mw_buf e = MW_BUF_INIT;
	if (mp_inject_check_spec(s->reinject, &e) < 0) {
		int r = mw_conf_fail(cfg, "reinject", "%s", mw_buf_str(&e));
		mw_buf_free(&e);
		return r;
	}
	mw_buf_free(&e);
	if (s->reinject_secret_file[0] != '\0' && s->reinject_secret_file[0] != '/')
		return mw_conf_fail(cfg, "reinject_secret_file", "%s: not an absolute path", s->reinject_secret_file);
	const char *const names[] = { "password_header", "password_hint_header" };
	const char *const values[] = { s->password_header, s->password_hint_header };
	for (int i = 0; i < 2; i++) {
		if (values[i][0] == '\0')
			return mw_conf_fail(cfg, names[i], "empty");
		for (const char *p = values[i]; *p != '\0'; p++)
			if (*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f)
				return mw_conf_fail(cfg, names[i], "not a header field name");
	}
	if (strcasecmp(s->password_header, s->password_hint_header) == 0 ||
	    strcasecmp(s->password_header, s->control_header) == 0)
		return mw_conf_fail(cfg, "password_header", "the same name as another header setting");
	struct mw_buf err = MW_BUF_INIT;
	mp_pw_templates_free(&s->pw);
	if (mp_pw_templates_load(s->password_templates, s->password_language, &s->pw, &err) < 0 &&
	    !mw_conf_is_set(cfg, "password_templates") && !mw_conf_is_set(cfg, "password_language")) {
		/* the default place, not installed (a build tree): everything
		   but password-encrypted messages works, those are tempfailed */
		mw_msg_warn("password-encrypted messages disabled: %s", mw_buf_str(&err));
	} else if (s->pw.body_txt == NULL) {
		int r = mw_conf_fail(cfg, mw_conf_is_set(cfg, "password_language") ? "password_language" :
				     "password_templates", "%s", mw_buf_str(&err));
		mw_buf_free(&err);
		return r;
	}
	mw_buf_free(&err);
	return 0;
}

struct mp_conf *mp_conf_load(const char *path, struct mw_buf *err)
{
	struct mp_conf *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	c->owner = mw_cli_reload_config(mp_conf_schema, &c->s, path, mp_conf_validate, err);
	if (c->owner == NULL) {
		free(c);
		return NULL;
	}
	atomic_init(&c->refs, 1);
	return c;
}

struct mp_conf *mp_conf_load_cli(const char *path, unsigned cli_flags)
{
	struct mp_conf *c = mw_xcalloc(1, sizeof(*c));
	c->owner = mw_cli_load_config(mp_conf_schema, &c->s, path, cli_flags, mp_conf_validate);
	atomic_init(&c->refs, 1);
	return c;
}

static int uses(char **list, const char *what)
{
	for (char **p = list; p != NULL && *p != NULL; p++)
		if (strcmp(*p, what) == 0)
			return 1;
	return 0;
}

int mp_conf_start(struct mp_conf *c, struct mw_buf *err)
{
	const struct mp_settings *s = &c->s;
	c->home = mp_gpg_home_new(s->keyring, s->passphrase_file, err);
	if (c->home == NULL)
		return -1;
	struct mw_buf path = MW_BUF_INIT;
	if (s->reinject_secret_file[0] != '\0')
		mw_buf_puts(&path, s->reinject_secret_file);
	else
		mw_buf_printf(&path, "%s/reinject.key", s->keyring);
	c->inject = mp_inject_new(s->reinject, mw_buf_str(&path), (unsigned)s->reinject_timeout, err);
	mw_buf_free(&path);
	if (c->inject == NULL)
		return -1;
	if (s->key_trust == MP_TRUST_LOCAL || s->key_lookup == NULL || s->key_lookup[0] == NULL)
		return 0;
	struct mp_keysrc_conf kc = {
		.trust = s->key_trust,
		.wkd = uses(s->key_lookup, "wkd"),
		.openpgpkey = uses(s->key_lookup, "openpgpkey"),
		.keyring = s->keyring,
		.gpg_home = mp_gpg_home_path(c->home),
		.timeout_ms = s->key_lookup_timeout_ms,
		.ttl_ms = s->key_cache_ttl_ms,
		.negative_ttl_ms = s->key_cache_negative_ttl_ms,
		.ca_file = s->wkd_ca_file,
		.max_size = s->wkd_max_size,
		.port = (unsigned)s->wkd_port,
		.dns = &s->dns,
	};
	c->keysrc = mp_keysrc_new(&kc, err);
	return c->keysrc != NULL ? 0 : -1;
}

struct mp_conf *mp_conf_ref(struct mp_conf *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void mp_conf_unref(struct mp_conf *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
		mp_keysrc_unref(c->keysrc);
		mp_gpg_home_free(c->home);
		mp_pw_templates_free(&c->s.pw);
		mp_inject_free(c->inject);
		mw_conf_free(c->owner);
		free(c);
	}
}

static int listed(char **list, const char *what)
{
	if (list == NULL)
		return 0;
	for (char **p = list; *p != NULL; p++) {
		const char *x = (*p)[0] == '@' ? *p + 1 : *p;
		if (strcasecmp(x, what) == 0)
			return 1;
	}
	return 0;
}

enum mp_mixed mp_conf_mixed_for(const struct mp_conf *c, const char *sender)
{
	const struct mp_settings *s = &c->s;
	const char *at = strrchr(sender, '@');
	/* an address listed wins over its domain */
	if (listed(s->reject_mixed_for, sender))
		return MP_MIXED_REJECT;
	if (listed(s->plaintext_mixed_for, sender))
		return MP_MIXED_PLAINTEXT;
	if (listed(s->split_mixed_for, sender))
		return MP_MIXED_SPLIT;
	if (at != NULL && listed(s->reject_mixed_for, at + 1))
		return MP_MIXED_REJECT;
	if (at != NULL && listed(s->plaintext_mixed_for, at + 1))
		return MP_MIXED_PLAINTEXT;
	if (at != NULL && listed(s->split_mixed_for, at + 1))
		return MP_MIXED_SPLIT;
	return (enum mp_mixed)s->mixed;
}

int mp_conf_password_generated_for(const struct mp_conf *c, const char *sender)
{
	const char *at = strrchr(sender, '@');
	return listed(c->s.password_generated_for, sender) ||
	       (at != NULL && listed(c->s.password_generated_for, at + 1));
}
