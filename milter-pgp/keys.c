/*
 * milter-pgp-keys: manage the keyring that milter-pgp.conf names.
 *
 *   milter-pgp-keys [-c FILE] import FILE...       armored or binary, many keys per file
 *   milter-pgp-keys [-c FILE] export [ADDR|FPR]    armored public keys on stdout
 *   milter-pgp-keys [-c FILE] list                 keys, validity, expiry, default marker
 *   milter-pgp-keys [-c FILE] delete FPR           a key (and its secret part)
 *   milter-pgp-keys [-c FILE] generate ADDR [ed25519|rsa3072|rsa4096]
 *   milter-pgp-keys [-c FILE] default ADDR FPR     the key pair ADDR signs with
 *   milter-pgp-keys [-c FILE] refresh | pin ADDR [FPR] | accept ADDR | publish-wkd DIR [DOMAIN...]
 *                                                  (keys_found.h)
 *   milter-pgp-keys [-c FILE] at-rest on|off ADDR  inbound encryption at rest (atrest.h)
 *
 * Run as root, it works as the owner of the keyring directory, so the files
 * it writes stay readable by milter-pgp after its privilege drop.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gpgme.h>

#include "atrest.h"
#include "acpeer.h"
#include "daemon.h"
#include "gpg.h"
#include "keys_found.h"
#include "log.h"
#include "pgpconf.h"

#define DEFAULT_CONFIG SYSCONFDIR "/mailward/milter-pgp.conf"
#define DEFAULTS_FILE "mailward-defaults"

static const char usage_text[] =
	"usage: milter-pgp-keys [-c FILE] import FILE...\n"
	"       milter-pgp-keys [-c FILE] export [ADDR|FPR]\n"
	"       milter-pgp-keys [-c FILE] list\n"
	"       milter-pgp-keys [-c FILE] delete FPR\n"
	"       milter-pgp-keys [-c FILE] generate ADDR [ed25519|rsa3072|rsa4096]\n"
	"       milter-pgp-keys [-c FILE] default ADDR FPR\n"
	"       milter-pgp-keys [-c FILE] refresh\n"
	"       milter-pgp-keys [-c FILE] pin ADDR [FPR]\n"
	"       milter-pgp-keys [-c FILE] accept ADDR\n"
	"       milter-pgp-keys [-c FILE] publish-wkd DIR [DOMAIN...]\n"
	"       milter-pgp-keys [-c FILE] at-rest on|off ADDR\n"
	"       milter-pgp-keys [-c FILE] autocrypt list|forget ADDR\n";

static struct mp_conf *conf;
static gpgme_ctx_t ctx;

static _Noreturn void usage(void)
{
	fputs(usage_text, stderr);
	exit(MW_EXIT_CONFIG);
}

static _Noreturn void die(const char *what, gpgme_error_t e)
{
	fprintf(stderr, "milter-pgp-keys: %s: %s\n", what, gpgme_strerror(e));
	exit(1);
}

static gpgme_error_t passphrase_cb(void *hook, const char *uid_hint, const char *info, int prev_bad, int fd)
{
	const char *pass = hook;
	(void)uid_hint;
	(void)info;
	if (prev_bad || pass == NULL)
		return gpgme_error(GPG_ERR_CANCELED);
	if (gpgme_io_writen(fd, pass, strlen(pass)) < 0 || gpgme_io_writen(fd, "\n", 1) < 0)
		return gpgme_error(GPG_ERR_CANCELED);
	return 0;
}

static char *passphrase;

static void read_passphrase(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", path, f == NULL ? strerror(errno) : "empty");
		exit(1);
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	passphrase = mw_xstrdup(line);
	explicit_bzero(line, sizeof(line));
}

/* Root works as the keyring's owner: gpg's files must stay the daemon's. */
static void become_owner(const char *keyring)
{
	struct stat st;
	struct mw_buf err = MW_BUF_INIT;
	if (geteuid() != 0 || stat(keyring, &st) < 0 || st.st_uid == 0)
		return;
	struct passwd *pw = getpwuid(st.st_uid);
	if (pw == NULL || mw_drop_privileges(pw->pw_name, NULL, &err) < 0) {
		fprintf(stderr, "milter-pgp-keys: cannot become the keyring's owner (uid %ld): %s\n",
			(long)st.st_uid, mw_buf_str(&err));
		exit(1);
	}
}

static void open_keyring(const char *config_path)
{
	struct mw_buf err = MW_BUF_INIT;
	conf = mp_conf_load_cli(config_path, 0);
	if (conf->s.passphrase_file[0] != '\0')
		read_passphrase(conf->s.passphrase_file); /* as root: the file is root's */
	become_owner(conf->s.keyring);
	if (mp_gpg_global_init(&err) < 0 || mp_conf_start(conf, &err) < 0) {
		fprintf(stderr, "milter-pgp-keys: %s\n", mw_buf_str(&err));
		exit(1);
	}
	gpgme_error_t e;
	if ((e = gpgme_new(&ctx)) != 0 ||
	    (e = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, NULL, mp_gpg_home_path(conf->home))) != 0 ||
	    (e = gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK)) != 0)
		die("GPGME", e);
	gpgme_set_passphrase_cb(ctx, passphrase_cb, passphrase);
	gpgme_set_armor(ctx, 1);
	gpgme_set_offline(ctx, 1);
}

static int cmd_import(int argc, char **argv)
{
	int bad = 0;
	if (argc < 1)
		usage();
	for (int i = 0; i < argc; i++) {
		gpgme_data_t d;
		gpgme_error_t e = gpgme_data_new_from_file(&d, argv[i], 1);
		if (e != 0) {
			fprintf(stderr, "milter-pgp-keys: %s: %s\n", argv[i], gpgme_strerror(e));
			bad = 1;
			continue;
		}
		e = gpgme_op_import(ctx, d);
		gpgme_data_release(d);
		gpgme_import_result_t r = e == 0 ? gpgme_op_import_result(ctx) : NULL;
		if (r == NULL || r->considered == 0) {
			fprintf(stderr, "milter-pgp-keys: %s: no OpenPGP key in it%s%s\n", argv[i], e ? ": " : "",
				e ? gpgme_strerror(e) : "");
			bad = 1;
			continue;
		}
		printf("%s: %d key(s): %d imported, %d unchanged, %d secret, %d refused\n", argv[i], r->considered,
		       r->imported, r->unchanged, r->secret_imported, r->not_imported);
		if (r->not_imported > 0)
			bad = 1;
	}
	return bad;
}

static int cmd_export(int argc, char **argv)
{
	gpgme_data_t d;
	gpgme_error_t e;
	if (argc > 1)
		usage();
	if ((e = gpgme_data_new(&d)) != 0 || (e = gpgme_op_export(ctx, argc ? argv[0] : NULL, 0, d)) != 0)
		die("export", e);
	size_t len;
	char *text = gpgme_data_release_and_get_mem(d, &len);
	if (len == 0) {
		fprintf(stderr, "milter-pgp-keys: no key matches\n");
		gpgme_free(text);
		return 1;
	}
	fwrite(text, 1, len, stdout);
	gpgme_free(text);
	return 0;
}

static void read_defaults(struct mw_buf *b)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/" DEFAULTS_FILE, mp_gpg_home_path(conf->home));
	FILE *f = fopen(path, "re");
	char line[512];
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		mw_buf_puts(b, line);
	fclose(f);
}

static int is_default(const struct mw_buf *defaults, const char *addr, const char *fpr)
{
	char want[600];
	snprintf(want, sizeof(want), "%s %s\n", addr, fpr);
	const char *s = mw_buf_str(defaults);
	for (const char *p = s; (p = strcasestr(p, want)) != NULL; p++)
		if (p == s || p[-1] == '\n')
			return 1;
	return 0;
}

static void print_time(const char *label, long t)
{
	char day[32] = "never";
	if (t > 0) {
		time_t tt = (time_t)t;
		struct tm tm;
		gmtime_r(&tt, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	}
	printf(" %s=%s", label, day);
}

/* 1 when addr has a usable encryption key (what milter-pgp would use). */
static int usable_key(const char *addr)
{
	struct mw_buf err = MW_BUF_INIT;
	struct mp_gpg *g = mp_gpg_new(conf->home, &err);
	int k = g != NULL ? mp_gpg_recipient(g, addr, 0, &err) : -1;
	if (k < 0)
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", addr, mw_buf_str(&err));
	mp_gpg_free(g);
	mw_buf_free(&err);
	return k;
}

/* The opted-in users, each with whether milter-pgp can encrypt for them. */
static void list_atrest(void)
{
	struct mp_atrest a;
	struct mw_buf err = MW_BUF_INIT;
	if (mp_atrest_load(conf->s.keyring, &a, &err) < 0) {
		fprintf(stderr, "milter-pgp-keys: %s\n", mw_buf_str(&err));
		exit(1);
	}
	char addr[512];
	size_t pos = 0;
	while (mp_atrest_next(&a, &pos, addr, sizeof(addr)))
		printf("at-rest <%s> %s\n", addr, usable_key(addr) == 1 ? "on" : "on, no usable key: delivered in clear");
	mp_atrest_free(&a);
	mw_buf_free(&err);
}

static int cmd_at_rest(int argc, char **argv)
{
	struct mw_buf err = MW_BUF_INIT;
	if (argc != 2 || (strcmp(argv[0], "on") != 0 && strcmp(argv[0], "off") != 0))
		usage();
	int on = strcmp(argv[0], "on") == 0;
	if (mp_atrest_set(conf->s.keyring, argv[1], on, &err) < 0) {
		fprintf(stderr, "milter-pgp-keys: at-rest: %s\n", mw_buf_str(&err));
		return 1;
	}
	if (!on) {
		printf("at-rest <%s> off\n", argv[1]);
	} else if (usable_key(argv[1]) == 1) {
		printf("at-rest <%s> on\n", argv[1]);
	} else {
		/* opted in all the same: the key may be imported next */
		printf("at-rest <%s> on, no usable key: delivered in clear until one is imported\n", argv[1]);
	}
	mw_buf_free(&err);
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		usage();
	struct mw_buf defaults = MW_BUF_INIT;
	read_defaults(&defaults);
	gpgme_error_t e;
	gpgme_key_t k;
	/* which keys have a secret part */
	struct mw_buf secret = MW_BUF_INIT;
	if ((e = gpgme_op_keylist_start(ctx, NULL, 1)) != 0)
		die("list", e);
	while (gpgme_op_keylist_next(ctx, &k) == 0) {
		mw_buf_printf(&secret, "%s\n", k->fpr);
		gpgme_key_release(k);
	}
	gpgme_op_keylist_end(ctx);
	if ((e = gpgme_op_keylist_start(ctx, NULL, 0)) != 0)
		die("list", e);
	while ((e = gpgme_op_keylist_next(ctx, &k)) == 0) {
		const char *state = k->revoked ? "revoked" : k->expired ? "expired" : k->disabled ? "disabled"
				    : k->invalid ? "invalid" : !k->can_encrypt ? "no-encryption-key" : "ok";
		int has_secret = strstr(mw_buf_str(&secret), k->fpr) != NULL;
		printf("%s %s%s", k->fpr, state, has_secret ? " key-pair" : "");
		print_time("created", k->subkeys->timestamp);
		long exp = 0;
		for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next)
			if (s->can_encrypt && s->expires > 0 && (exp == 0 || s->expires < exp))
				exp = s->expires;
		if (k->subkeys->expires > 0 && (exp == 0 || k->subkeys->expires < exp))
			exp = k->subkeys->expires;
		print_time("expires", exp);
		putchar('\n');
		for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next) {
			const char *email = u->email != NULL && u->email[0] ? u->email : u->uid;
			printf("  <%s>%s%s\n", email, u->revoked ? " revoked" : "",
			       has_secret && is_default(&defaults, email, k->fpr) ? " default" : "");
		}
		gpgme_key_release(k);
	}
	if (gpgme_err_code(e) != GPG_ERR_EOF)
		die("list", e);
	mw_buf_free(&secret);
	mw_buf_free(&defaults);
	mp_keys_list_pins(conf);
	list_atrest();
	return 0;
}

static gpgme_key_t get_key(const char *fpr, int secret)
{
	gpgme_key_t k = NULL;
	gpgme_error_t e = gpgme_get_key(ctx, fpr, &k, secret);
	if (e != 0) {
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", fpr,
			gpgme_err_code(e) == GPG_ERR_EOF ? "no such key (give the full fingerprint)" : gpgme_strerror(e));
		exit(1);
	}
	return k;
}

static int cmd_delete(int argc, char **argv)
{
	if (argc != 1)
		usage();
	gpgme_key_t k = get_key(argv[0], 0);
	gpgme_error_t e = gpgme_op_delete_ext(ctx, k, GPGME_DELETE_ALLOW_SECRET | GPGME_DELETE_FORCE);
	gpgme_key_release(k);
	if (e != 0)
		die("delete", e);
	printf("%s deleted\n", argv[0]);
	return 0;
}

/* Rewrites the defaults file with ADDR's line replaced, under a lock, via
   a temporary file and rename: never a half-written file. */
static void set_default(const char *addr, const char *fpr)
{
	char path[1024], tmp[1100], lockp[1100];
	snprintf(path, sizeof(path), "%s/" DEFAULTS_FILE, mp_gpg_home_path(conf->home));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(lockp, sizeof(lockp), "%s.lock", path);
	int lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", lockp, strerror(errno));
		exit(1);
	}
	FILE *in = fopen(path, "re");
	FILE *out = fopen(tmp, "we");
	char line[512];
	if (out == NULL) {
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", tmp, strerror(errno));
		exit(1);
	}
	while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
		size_t n = strlen(addr);
		if (strncasecmp(line, addr, n) == 0 && line[n] == ' ')
			continue;
		fputs(line, out);
	}
	fprintf(out, "%s %s\n", addr, fpr);
	if (in != NULL)
		fclose(in);
	if (fflush(out) != 0 || fsync(fileno(out)) < 0 || fclose(out) != 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "milter-pgp-keys: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(lock);
}

static int uid_has(gpgme_key_t k, const char *addr)
{
	for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next)
		if (u->email != NULL && strcasecmp(u->email, addr) == 0)
			return 1;
	return 0;
}

static int cmd_default(int argc, char **argv)
{
	if (argc != 2)
		usage();
	gpgme_key_t k = get_key(argv[1], 1);
	if (!uid_has(k, argv[0]) || k->revoked || k->expired || !k->can_sign) {
		fprintf(stderr, "milter-pgp-keys: %s is not a usable signing key pair of %s\n", argv[1], argv[0]);
		gpgme_key_release(k);
		return 1;
	}
	set_default(argv[0], k->fpr);
	printf("%s signs with %s\n", argv[0], k->fpr);
	gpgme_key_release(k);
	return 0;
}

static int has_key_pair(const char *addr)
{
	char pattern[600];
	gpgme_key_t k;
	int n = 0;
	snprintf(pattern, sizeof(pattern), "<%s>", addr);
	if (gpgme_op_keylist_start(ctx, pattern, 1) != 0)
		return 0;
	while (gpgme_op_keylist_next(ctx, &k) == 0) {
		n++;
		gpgme_key_release(k);
	}
	gpgme_op_keylist_end(ctx);
	return n;
}

static int cmd_generate(int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		usage();
	const char *addr = argv[0];
	const char *algo = argc > 1 ? argv[1] : "ed25519";
	const char *sub;
	if (strchr(addr, '@') == NULL || strchr(addr, '<') != NULL || strchr(addr, ' ') != NULL) {
		fprintf(stderr, "milter-pgp-keys: %s: give a bare address, user@domain\n", addr);
		return MW_EXIT_CONFIG;
	}
	if (strcmp(algo, "ed25519") == 0)
		sub = "cv25519";
	else if (strcmp(algo, "rsa3072") == 0 || strcmp(algo, "rsa4096") == 0)
		sub = algo;
	else
		usage();
	int first = has_key_pair(addr) == 0;
	char userid[600];
	snprintf(userid, sizeof(userid), "<%s>", addr);
	unsigned nopass = passphrase == NULL ? GPGME_CREATE_NOPASSWD : 0;
	gpgme_error_t e = gpgme_op_createkey(ctx, userid, algo, 0, 0, NULL,
					     GPGME_CREATE_SIGN | GPGME_CREATE_CERT | GPGME_CREATE_FORCE | nopass);
	if (e != 0)
		die("generate", e);
	gpgme_genkey_result_t r = gpgme_op_genkey_result(ctx);
	char *fpr = mw_xstrdup(r->fpr);
	gpgme_key_t k = get_key(fpr, 1);
	e = gpgme_op_createsubkey(ctx, k, sub, 0, 0, GPGME_CREATE_ENCR | nopass);
	gpgme_key_release(k);
	if (e != 0)
		die("generate the encryption subkey", e);
	printf("%s: key pair %s (%s)%s\n", addr, fpr, algo, first ? ", default" : "");
	if (first)
		set_default(addr, fpr);
	free(fpr);
	return 0;
}

static int cmd_refresh(int argc, char **argv) { return mp_keys_refresh(conf, ctx, argc, argv); }
static int cmd_pin(int argc, char **argv) { return mp_keys_pin(conf, ctx, argc, argv); }
static int cmd_accept(int argc, char **argv) { return mp_keys_accept(conf, ctx, argc, argv); }
static int cmd_publish_wkd(int argc, char **argv) { return mp_keys_publish_wkd(conf, ctx, argc, argv); }

/* The Autocrypt peer store (acpeer.h). */
static int cmd_autocrypt(int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return mp_ac_peer_list(conf->s.keyring, stdout);
	if (argc == 2 && strcmp(argv[0], "forget") == 0) {
		struct mw_buf err = MW_BUF_INIT;
		int r = mp_ac_peer_forget(conf->s.keyring, argv[1], &err);
		if (r < 0)
			fprintf(stderr, "milter-pgp-keys: %s\n", mw_buf_str(&err));
		else
			printf("<%s> forgotten\n", argv[1]);
		mw_buf_free(&err);
		return r < 0 ? 1 : 0;
	}
	usage();
}

int main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG;
	int opt;
	mw_log_init("milter-pgp-keys", MW_LOG_TO_STDERR, 0);
	while ((opt = getopt(argc, argv, "+c:")) != -1) {
		if (opt == 'c')
			config_path = optarg;
		else
			usage();
	}
	if (optind >= argc)
		usage();
	const char *cmd = argv[optind];
	int n = argc - optind - 1;
	char **args = argv + optind + 1;
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "import", cmd_import }, { "export", cmd_export }, { "list", cmd_list },
		{ "delete", cmd_delete }, { "generate", cmd_generate }, { "default", cmd_default },
		{ "refresh", cmd_refresh }, { "pin", cmd_pin }, { "accept", cmd_accept },
		{ "publish-wkd", cmd_publish_wkd }, { "at-rest", cmd_at_rest }, { "autocrypt", cmd_autocrypt },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) == 0) {
			open_keyring(config_path);
			fflush(stdout);
			int rc = cmds[i].fn(n, args);
			fflush(stdout);
			gpgme_release(ctx);
			mp_conf_unref(conf);
			return rc;
		}
	}
	usage();
}
