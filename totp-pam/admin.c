/*
 * totp-admin: turns two-factor on and off for a user and manages the
 * user's backup codes and app passwords, in the same state files (and
 * under the same lock) as pam_totp.so.
 *
 *   totp-admin [-d DIR] enroll USER [--algorithm A] [--digits N] [--step S]
 *                                   [--issuer NAME] [--backup-codes N] [--force]
 *   totp-admin [-d DIR] confirm USER CODE
 *   totp-admin [-d DIR] backup-codes USER [N]
 *   totp-admin [-d DIR] app-password add USER NAME | list USER | revoke USER NAME
 *   totp-admin [-d DIR] status USER
 *   totp-admin [-d DIR] unlock USER
 *   totp-admin [-d DIR] disable USER
 *   totp-admin [-d DIR] import USER PATH [--force]
 *
 * Exit status: 0 done, 1 refused or failed (message on stderr), 2 usage.
 * Secrets (the seed, backup codes, app passwords) are printed once, to
 * stdout, and never stored in clear.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "enroll.h"
#include "secret.h"
#include "store.h"
#include "strnum.h"
#include "verify.h"

#define EXIT_USAGE 2

static const char *state_dir = TP_DEFAULT_DIR;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: totp-admin [-d DIR] COMMAND USER [ARGS]\n"
		"  enroll USER [--algorithm sha1|sha256|sha512] [--digits 6|8] [--step SECONDS]\n"
		"              [--issuer NAME] [--backup-codes N] [--force]\n"
		"  confirm USER CODE             turn it on once the app shows the right code\n"
		"  backup-codes USER [N]         new backup codes (the old ones stop working)\n"
		"  app-password add USER NAME    a new app password for one device\n"
		"  app-password list USER\n"
		"  app-password revoke USER NAME\n"
		"  status USER\n"
		"  unlock USER                   end a lockout after failed codes\n"
		"  disable USER                  turn two-factor off (removes the state)\n"
		"  import USER PATH [--force]    take over a ~/.google_authenticator file\n"
		"  -d DIR   state directory (default %s)\n",
		TP_DEFAULT_DIR);
}

static int die_usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "totp-admin: %s\n", msg);
	usage(stderr);
	return EXIT_USAGE;
}

static int fail(const char *user, const char *what)
{
	fprintf(stderr, "totp-admin: %s%s%s\n", user ? user : "", user ? ": " : "", what);
	return 1;
}

/* Creates the state directory (root's, 0700) if it is missing. */
static int ensure_dir(void)
{
	if (mkdir(state_dir, 0700) == 0 || errno == EEXIST)
		return 0;
	fprintf(stderr, "totp-admin: creating %s: %s\n", state_dir, strerror(errno));
	return -1;
}

/* Opens and locks the user's state; loaded: 1 enrolled, 0 not. */
static int open_locked(struct tp_store *s, const char *user, struct tp_state *st, int *loaded)
{
	struct mw_buf err = MW_BUF_INIT;
	int r = -1;
	if (tp_store_open(s, state_dir, user, &err) < 0 || tp_store_lock(s, 10000, &err) != 0)
		goto out;
	*loaded = tp_store_load(s, st, &err);
	if (*loaded < 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		fail(user, mw_buf_str(&err));
	mw_buf_free(&err);
	return r;
}

static int save(struct tp_store *s, const char *user, const struct tp_state *st)
{
	struct mw_buf err = MW_BUF_INIT;
	int r = tp_store_save(s, st, &err);
	if (r < 0)
		fail(user, mw_buf_str(&err));
	mw_buf_free(&err);
	return r;
}

/* Replaces the backup codes in backup[] (count *nbackup) with n new ones,
   listed in shown (which the caller prints once the state is saved, and
   wipes). */
static int new_backup_codes(struct tp_hash *backup, int *nbackup, int n, struct mw_buf *shown)
{
	struct tp_hash first;
	memset(&first, 0, sizeof(first));
	for (int i = 0; i < n; i++) {
		char code[16], norm[16];
		if (tp_backup_code_new(code, sizeof(code)) < 0)
			return -1;
		int len = tp_backup_code_normalise(code, strlen(code), norm, sizeof(norm));
		/* one salt per batch: a login derives one key, not one per code */
		if (len < 0 || tp_hash_new(norm, (size_t)len, i ? &first : NULL, &backup[i]) < 0)
			return -1;
		if (i == 0)
			first = backup[0];
		mw_buf_printf(shown, "  %s\n", code);
		tp_wipe(code, sizeof(code));
		tp_wipe(norm, sizeof(norm));
	}
	tp_wipe(&first, sizeof(first));
	*nbackup = n;
	return mw_buf_failed(shown) ? -1 : 0;
}

/* new_backup_codes() into st's (or, pending, its pending enrollment's),
   then the state saved. On failure it has said why and wiped shown:
   nothing is printed that does not work. */
static int save_new_backup_codes(struct tp_store *s, const char *user, struct tp_state *st, int pending, int n,
				 struct mw_buf *shown)
{
	struct tp_hash *backup = pending ? st->pending.backup : st->backup;
	int *nbackup = pending ? &st->pending.nbackup : &st->nbackup;
	if (!pending) {
		/* the used ones of the old batch: no longer worth telling apart */
		memset(st->used, 0, sizeof(st->used));
		st->nused = 0;
	}
	if (new_backup_codes(backup, nbackup, n, shown) < 0) {
		mw_buf_wipe(shown);
		fail(user, "could not make backup codes");
		return -1;
	}
	if (save(s, user, st) < 0) {
		mw_buf_wipe(shown);
		return -1;
	}
	return 0;
}

static int parse_int_opt(const char *s, unsigned long long min, unsigned long long max, int *out)
{
	unsigned long long v;
	if (mw_parse_uint(s, max, &v) < 0 || v < min)
		return -1;
	*out = (int)v;
	return 0;
}

static int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "algorithm", required_argument, NULL, 'a' }, { "digits", required_argument, NULL, 'D' },
		{ "step", required_argument, NULL, 's' },      { "issuer", required_argument, NULL, 'i' },
		{ "backup-codes", required_argument, NULL, 'b' }, { "force", no_argument, NULL, 'f' },
		{ "no-qr", no_argument, NULL, 'q' },           { NULL, 0, NULL, 0 },
	};
	enum tp_alg alg = TP_SHA1;
	int digits = 6, step = 30, nbackup = 10, force = 0, qr = 1, c;
	char host[256] = "mailward";
	const char *issuer = NULL;
	optind = 0; /* GNU getopt: start over, argv[0] is the command */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (tp_alg_parse(optarg, strlen(optarg), &alg) < 0)
				return die_usage("--algorithm: sha1, sha256 or sha512");
			break;
		case 'D':
			if (parse_int_opt(optarg, 6, 8, &digits) < 0)
				return die_usage("--digits: 6, 7 or 8");
			break;
		case 's':
			if (parse_int_opt(optarg, 1, TP_STEP_MAX, &step) < 0)
				return die_usage("--step: 1 to 300 seconds");
			break;
		case 'i':
			issuer = optarg;
			break;
		case 'b':
			if (parse_int_opt(optarg, 0, TP_MAX_BACKUP, &nbackup) < 0)
				return die_usage("--backup-codes: 0 to 32");
			break;
		case 'f':
			force = 1;
			break;
		case 'q':
			qr = 0;
			break;
		default:
			return die_usage(NULL);
		}
	}
	if (argc - optind != 1)
		return die_usage("enroll USER");
	const char *user = argv[optind];
	if (issuer == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "mailward");
		host[sizeof(host) - 1] = '\0';
		issuer = host;
	}
	if (ensure_dir() < 0)
		return 1;
	struct tp_store s = TP_STORE_INIT;
	struct tp_state *st = calloc(2, sizeof(*st));
	int loaded = 0, ret = 1;
	if (st == NULL)
		return fail(user, "out of memory");
	if (open_locked(&s, user, st, &loaded) < 0)
		goto out;
	if (loaded && st->confirmed && !force) {
		fail(user, "already enrolled; disable first, or enroll --force to replace the secret");
		goto out;
	}
	/* A confirmed user keeps the secret and backup codes in force until
	   the new ones are confirmed: turning them off now would let a login
	   with nullok in without any code meanwhile. */
	int pending = loaded && st->confirmed;
	struct tp_state *fresh = &st[1];
	tp_state_init(fresh);
	fresh->alg = alg;
	fresh->digits = digits;
	fresh->step = (unsigned)step;
	fresh->secret_len = alg == TP_SHA1 ? 20 : alg == TP_SHA256 ? 32 : 64;
	fresh->created = (int64_t)time(NULL);
	if (tp_random_bytes(fresh->secret, fresh->secret_len) < 0) {
		fail(user, "no randomness");
		goto out;
	}
	if (pending) {
		struct tp_pending *p = &st->pending;
		memset(p, 0, sizeof(*p));
		memcpy(p->secret, fresh->secret, fresh->secret_len);
		p->secret_len = fresh->secret_len;
		p->alg = alg;
		p->digits = digits;
		p->step = (unsigned)step;
		p->created = fresh->created;
	} else {
		/* an enrollment not confirmed yet is replaced; it keeps the app
		   passwords and the replay step */
		if (loaded) {
			memcpy(fresh->app, st->app, sizeof(fresh->app));
			fresh->napp = st->napp;
			fresh->last_step = st->last_step;
		}
		*st = *fresh;
	}
	struct mw_buf codes = MW_BUF_INIT;
	if (save_new_backup_codes(&s, user, st, pending, nbackup, &codes) < 0)
		goto out;
	struct mw_buf uri = MW_BUF_INIT, pic = MW_BUF_INIT, key = MW_BUF_INIT;
	tp_otpauth_uri(issuer, user, fresh, &uri);
	tp_base32_encode(fresh->secret, fresh->secret_len, &key);
	if (pending)
		printf("Two-factor re-enrollment for %s: the current secret and backup codes stay in force "
		       "until this one is confirmed.\n\n", user);
	else
		printf("Two-factor enrollment for %s (not active until confirmed).\n\n", user);
	if (qr && tp_qr_render(mw_buf_str(&uri), isatty(STDOUT_FILENO), &pic) == 0)
		printf("Scan this with an authenticator app:\n\n%s\n", mw_buf_str(&pic));
	printf("Or enter this URI or key by hand:\n  %s\n  key: %s\n  (%s, %d digits, every %d s)\n\n",
	       mw_buf_str(&uri), mw_buf_str(&key), tp_alg_name(alg), digits, step);
	if (nbackup > 0)
		printf("Backup codes, each works once (keep them somewhere safe, they are not shown "
		       "again):\n%s", mw_buf_str(&codes));
	printf("\nThen: totp-admin confirm %s CODE, with the code the app shows.\n", user);
	mw_buf_wipe(&key);
	mw_buf_wipe(&uri);
	mw_buf_wipe(&pic);
	mw_buf_wipe(&codes);
	ret = 0;
out:
	fflush(stdout);
	tp_store_close(&s);
	tp_state_wipe(&st[0]);
	tp_state_wipe(&st[1]);
	free(st);
	return ret;
}

/* The commands that read-modify-write one user's state. */
enum op { OP_CONFIRM, OP_BACKUP, OP_APP_ADD, OP_APP_LIST, OP_APP_REVOKE, OP_STATUS, OP_UNLOCK, OP_DISABLE,
	  OP_IMPORT };

static void print_time(const char *label, int64_t t)
{
	if (t <= 0) {
		printf("%s never\n", label);
		return;
	}
	char buf[64];
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf("%s %s\n", label, buf);
}

static int read_file(const char *path, char *buf, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	*len = 0;
	for (;;) {
		ssize_t k = read(fd, buf + *len, max - *len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			close(fd);
			return -1;
		}
		if (k == 0)
			break;
		*len += (size_t)k;
		if (*len == max) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	}
	close(fd);
	return 0;
}

static int run_op(enum op op, const char *user, const char *arg, int force)
{
	struct tp_store s = TP_STORE_INIT;
	struct tp_state *st = calloc(1, sizeof(*st));
	int loaded = 0, ret = 1;
	int64_t now = (int64_t)time(NULL);
	if (st == NULL)
		return fail(user, "out of memory");
	if (op == OP_IMPORT && ensure_dir() < 0)
		goto out;
	if (open_locked(&s, user, st, &loaded) < 0)
		goto out;
	if (!loaded && op != OP_IMPORT && op != OP_DISABLE) {
		if (op == OP_STATUS) {
			printf("user: %s\nenrolled: no\n", user);
			ret = 0;
		} else {
			fail(user, "not enrolled");
		}
		goto out;
	}
	switch (op) {
	case OP_CONFIRM: {
		struct tp_policy pol = { .window = 1, .skew_steps = 20 };
		struct tp_result r;
		int swap = st->pending.secret_len > 0;
		if (swap) {
			/* the code is the new secret's; its state replaces the old */
			struct tp_state *next = malloc(sizeof(*next));
			if (next == NULL) {
				fail(user, "out of memory");
				goto out;
			}
			tp_state_promote_pending(st, next);
			tp_state_wipe(st);
			*st = *next;
			tp_state_wipe(next);
			free(next);
		}
		tp_match(st, &pol, now, arg, strlen(arg), &r);
		if (r.outcome != TP_ACCEPT_CODE) {
			if (r.outcome == TP_REJECT_SKEW)
				fprintf(stderr, "totp-admin: %s: that code is for %+llds from now: is the phone's "
						"clock right?\n", user,
					(long long)r.skew_steps * (long long)st->step);
			fail(user, r.outcome == TP_REJECT_MALFORMED ? "not a code" : "wrong code; not confirmed");
			goto out;
		}
		tp_commit_success(st, &r, now);
		st->confirmed = 1;
		if (save(&s, user, st) < 0)
			goto out;
		printf("%s: two-factor is on%s\n", user,
		       swap ? " with the new secret; the old secret and backup codes no longer work" : "");
		break;
	}
	case OP_BACKUP: {
		int n = 10;
		if (arg && parse_int_opt(arg, 1, TP_MAX_BACKUP, &n) < 0) {
			ret = die_usage("backup-codes USER [1..32]");
			goto out;
		}
		struct mw_buf codes = MW_BUF_INIT;
		if (save_new_backup_codes(&s, user, st, 0, n, &codes) < 0)
			goto out;
		printf("New backup codes for %s, each works once (the old ones no longer work):\n%s", user,
		       mw_buf_str(&codes));
		mw_buf_wipe(&codes);
		break;
	}
	case OP_APP_ADD: {
		if (!tp_app_name_ok(arg, strlen(arg))) {
			ret = die_usage("app password names: 1 to 64 of A-Z a-z 0-9 . _ -");
			goto out;
		}
		if (tp_state_find_app(st, arg) >= 0) {
			fail(user, "an app password of that name exists; revoke it first");
			goto out;
		}
		if (st->napp == TP_MAX_APPS) {
			fail(user, "too many app passwords; revoke one first");
			goto out;
		}
		char pw[32], norm[32];
		struct tp_app *a = &st->app[st->napp];
		memset(a, 0, sizeof(*a));
		if (tp_app_password_new(pw, sizeof(pw)) < 0 ||
		    tp_app_password_normalise(pw, strlen(pw), norm, sizeof(norm)) < 0 ||
		    tp_hash_new(norm, TP_APPPASS_LEN, st->napp > 0 ? &st->app[0].hash : NULL, &a->hash) < 0) {
			fail(user, "could not make an app password");
			goto out;
		}
		snprintf(a->name, sizeof(a->name), "%s", arg);
		a->created = now;
		st->napp++;
		if (save(&s, user, st) < 0)
			goto out;
		printf("App password \"%s\" for %s (shown once; spaces and dashes optional):\n  %s\n", arg, user, pw);
		tp_wipe(pw, sizeof(pw));
		tp_wipe(norm, sizeof(norm));
		break;
	}
	case OP_APP_LIST:
		for (int i = 0; i < st->napp; i++) {
			printf("%s\n", st->app[i].name);
			print_time("  created:", st->app[i].created);
			print_time("  last used:", st->app[i].last_used);
		}
		if (st->napp == 0)
			printf("%s has no app passwords\n", user);
		break;
	case OP_APP_REVOKE: {
		int i = tp_state_find_app(st, arg);
		if (i < 0) {
			fail(user, "no app password of that name");
			goto out;
		}
		tp_state_remove_app(st, i);
		if (save(&s, user, st) < 0)
			goto out;
		printf("%s: app password \"%s\" revoked\n", user, arg);
		break;
	}
	case OP_STATUS:
		printf("user: %s\nenrolled: %s\n", user, st->confirmed ? "yes" : "pending confirmation");
		printf("algorithm: %s, %d digits, %u s\n", tp_alg_name(st->alg), st->digits, st->step);
		if (st->window >= 0)
			printf("window: %d\n", st->window);
		print_time("created:", st->created);
		print_time("last login:", st->last_login);
		printf("backup codes left: %d\n", st->nbackup);
		printf("app passwords: %d\n", st->napp);
		printf("failures: %u\n", st->failures);
		if (st->lockouts > 0)
			printf("lockouts in a row: %u\n", st->lockouts);
		for (int i = 0; i < st->nrhost; i++)
			if (st->rhost[i].blocked_until > now)
				printf("address %s blocked until %lld\n", st->rhost[i].addr,
				       (long long)st->rhost[i].blocked_until);
		if (st->pending.secret_len > 0)
			print_time("re-enrollment pending confirmation, since:", st->pending.created);
		if (tp_locked(st, now))
			print_time("locked until:", st->locked_until);
		break;
	case OP_UNLOCK:
		st->failures = 0;
		st->locked_until = 0;
		st->lockouts = 0;
		memset(st->rhost, 0, sizeof(st->rhost)); /* blocked addresses too */
		st->nrhost = 0;
		if (save(&s, user, st) < 0)
			goto out;
		printf("%s: unlocked\n", user);
		break;
	case OP_DISABLE: {
		struct mw_buf err = MW_BUF_INIT;
		if (tp_store_remove(&s, &err) < 0) {
			fail(user, mw_buf_str(&err));
			mw_buf_free(&err);
			goto out;
		}
		mw_buf_free(&err);
		printf("%s: two-factor is off%s\n", user, loaded ? "" : " (was not enrolled)");
		break;
	}
	case OP_IMPORT: {
		if (loaded && st->confirmed && !force) {
			fail(user, "already enrolled; import --force replaces the state");
			goto out;
		}
		static char text[TP_FILE_MAX + 1];
		size_t len;
		struct mw_buf err = MW_BUF_INIT;
		if (read_file(arg, text, sizeof(text), &len) < 0) {
			fprintf(stderr, "totp-admin: %s: %s\n", arg, strerror(errno));
			goto out;
		}
		struct tp_state app_keep = *st;
		int r = tp_state_import_ga(text, len, now, st, &err);
		tp_wipe(text, sizeof(text));
		if (r < 0) {
			fprintf(stderr, "totp-admin: %s: %s\n", arg, mw_buf_str(&err));
			mw_buf_free(&err);
			tp_state_wipe(&app_keep);
			goto out;
		}
		mw_buf_free(&err);
		if (loaded) {
			memcpy(st->app, app_keep.app, sizeof(st->app));
			st->napp = app_keep.napp;
		}
		tp_state_wipe(&app_keep);
		if (save(&s, user, st) < 0)
			goto out;
		printf("%s: imported from %s (%d backup codes); two-factor is on\n", user, arg, st->nbackup);
		break;
	}
	}
	ret = 0;
out:
	fflush(stdout);
	tp_store_close(&s);
	tp_state_wipe(st);
	free(st);
	return ret;
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "+d:h")) != -1) {
		switch (c) {
		case 'd':
			if (optarg[0] != '/')
				return die_usage("-d wants an absolute path");
			state_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return die_usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return die_usage(NULL);
	const char *cmd = argv[0];
	if (strcmp(cmd, "enroll") == 0)
		return cmd_enroll(argc, argv);
	if (strcmp(cmd, "app-password") == 0) {
		if (argc == 4 && strcmp(argv[1], "add") == 0)
			return run_op(OP_APP_ADD, argv[2], argv[3], 0);
		if (argc == 3 && strcmp(argv[1], "list") == 0)
			return run_op(OP_APP_LIST, argv[2], NULL, 0);
		if (argc == 4 && strcmp(argv[1], "revoke") == 0)
			return run_op(OP_APP_REVOKE, argv[2], argv[3], 0);
		return die_usage("app-password add USER NAME | list USER | revoke USER NAME");
	}
	static const struct { const char *name; enum op op; int nargs; } simple[] = {
		{ "confirm", OP_CONFIRM, 2 },  { "status", OP_STATUS, 1 }, { "unlock", OP_UNLOCK, 1 },
		{ "disable", OP_DISABLE, 1 },
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcmp(cmd, simple[i].name) != 0)
			continue;
		if (argc != 1 + simple[i].nargs)
			return die_usage(NULL);
		return run_op(simple[i].op, argv[1], simple[i].nargs > 1 ? argv[2] : NULL, 0);
	}
	if (strcmp(cmd, "backup-codes") == 0) {
		if (argc != 2 && argc != 3)
			return die_usage("backup-codes USER [N]");
		return run_op(OP_BACKUP, argv[1], argc == 3 ? argv[2] : NULL, 0);
	}
	if (strcmp(cmd, "import") == 0) {
		int force = argc == 4 && strcmp(argv[3], "--force") == 0;
		if (argc != 3 && !force)
			return die_usage("import USER PATH [--force]");
		return run_op(OP_IMPORT, argv[1], argv[2], force);
	}
	return die_usage("unknown command");
}
