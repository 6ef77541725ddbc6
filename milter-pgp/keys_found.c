#include "config.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpg.h"
#include "keys_found.h"
#include "keysrc.h"
#include "log.h"
#include "pins.h"
#include "wkd.h"

static void warn(const char *fmt, ...) MW_PRINTF(1, 2);
static void warn(const char *fmt, ...)
{
	va_list ap;
	fputs("milter-pgp-keys: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int need_keysrc(const struct mp_conf *conf)
{
	if (conf->keysrc != NULL)
		return 1;
	warn("key_trust = local (or key_lookup empty): keys are not looked up beyond the keyring");
	return 0;
}

void mp_keys_list_pins(struct mp_conf *conf)
{
	struct mw_buf text = MW_BUF_INIT, err = MW_BUF_INIT;
	if (mp_pins_read(conf->s.keyring, &text, &err) < 0) {
		warn("%s", mw_buf_str(&err));
	} else if (mw_buf_len(&text) > 0) {
		printf("pins (key_trust = tofu):\n");
		char *save = NULL;
		for (char *line = strtok_r(text.data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
			char addr[512], pinned[MP_FPR_MAX + 1], changed[MP_FPR_MAX + 1];
			int n = sscanf(line, "%511s %64s %64s", addr, pinned, changed);
			if (n == 2)
				printf("  <%s> pinned %s\n", addr, pinned);
			else if (n == 3)
				printf("  <%s> pinned %s changed-to %s refused (milter-pgp-keys accept %s)\n", addr, pinned,
				       changed, addr);
		}
	}
	mw_buf_free(&text);
	mw_buf_free(&err);
}

static void report(const char *addr, const struct mp_key_found *f)
{
	if (f->state == MP_KEY_FOUND)
		printf("<%s> %s via %s\n", addr, f->fpr, f->source);
	else
		printf("<%s> %s: %s\n", addr, f->state == MP_KEY_NONE ? "none" : "failed", mw_buf_str(&f->detail));
}

/* The addresses of the user ids of the keys in one found-key file. */
static void file_addrs(gpgme_ctx_t ctx, const char *path, struct mw_buf *out)
{
	gpgme_data_t d;
	gpgme_key_t k;
	if (gpgme_data_new_from_file(&d, path, 1) != 0)
		return;
	if (gpgme_op_keylist_from_data_start(ctx, d, 0) == 0) {
		while (gpgme_op_keylist_next(ctx, &k) == 0) {
			for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next)
				if (u->email != NULL && u->email[0] != '\0' && strpbrk(u->email, " \n") == NULL)
					mw_buf_printf(out, "%s\n", u->email);
			gpgme_key_unref(k);
		}
		gpgme_op_keylist_end(ctx);
	}
	gpgme_data_release(d);
}

static int listed(const char *list, const char *addr)
{
	size_t n = strlen(addr);
	for (const char *p = list; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (l == n && strncasecmp(p, addr, n) == 0)
			return 1;
		p += l + (nl != NULL);
	}
	return 0;
}

int mp_keys_refresh(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv)
{
	(void)argv;
	if (argc != 0 || !need_keysrc(conf))
		return 1;
	struct mw_buf pins = MW_BUF_INIT, err = MW_BUF_INIT, addrs = MW_BUF_INIT, path = MW_BUF_INIT;
	if (mp_pins_read(conf->s.keyring, &pins, &err) < 0) {
		warn("%s", mw_buf_str(&err));
		return 1;
	}
	char *save = NULL;
	for (char *line = pins.data != NULL ? strtok_r(pins.data, "\n", &save) : NULL; line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, " ")] = '\0';
		mw_buf_printf(&addrs, "%s\n", line);
	}
	mw_buf_printf(&path, "%s/mailward-found", conf->s.keyring);
	DIR *dir = opendir(mw_buf_str(&path));
	struct dirent *de;
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".pgp") != 0)
			continue;
		struct mw_buf f = MW_BUF_INIT;
		mw_buf_printf(&f, "%s/%s", mw_buf_str(&path), de->d_name);
		file_addrs(ctx, mw_buf_str(&f), &addrs);
		mw_buf_free(&f);
	}
	if (dir != NULL)
		closedir(dir);
	int bad = 0;
	struct mw_buf done = MW_BUF_INIT;
	save = NULL;
	for (char *a = addrs.data != NULL ? strtok_r(addrs.data, "\n", &save) : NULL; a != NULL;
	     a = strtok_r(NULL, "\n", &save)) {
		if (listed(mw_buf_str(&done), a))
			continue;
		mw_buf_printf(&done, "%s\n", a);
		struct mp_key_found f;
		mp_key_found_init(&f);
		mp_keysrc_lookup(conf->keysrc, a, 1, &f);
		report(a, &f);
		bad |= f.state == MP_KEY_FAILED;
		mp_key_found_free(&f);
	}
	mw_buf_free(&done);
	mw_buf_free(&pins);
	mw_buf_free(&err);
	mw_buf_free(&addrs);
	mw_buf_free(&path);
	return bad;
}

static int is_fpr(const char *s)
{
	size_t n = strlen(s);
	if (n < 32 || n > MP_FPR_MAX)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

int mp_keys_pin(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv)
{
	(void)ctx;
	struct mw_buf err = MW_BUF_INIT;
	if (argc < 1 || argc > 2) {
		fputs("usage: milter-pgp-keys pin ADDR [FPR]\n", stderr);
		return 2;
	}
	const char *addr = argv[0];
	char fpr[MP_FPR_MAX + 1];
	if (argc == 2) {
		if (!is_fpr(argv[1])) {
			warn("%s: not a fingerprint", argv[1]);
			return 1;
		}
		snprintf(fpr, sizeof(fpr), "%s", argv[1]);
		for (char *p = fpr; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 32);
	} else {
		if (!need_keysrc(conf))
			return 1;
		struct mp_key_found f;
		mp_key_found_init(&f);
		mp_keysrc_lookup(conf->keysrc, addr, 0, &f);
		report(addr, &f);
		int ok = f.state == MP_KEY_FOUND;
		snprintf(fpr, sizeof(fpr), "%s", f.fpr);
		mp_key_found_free(&f);
		if (!ok)
			return 1;
	}
	if (mp_pins_set(conf->s.keyring, addr, fpr, NULL, &err) < 0) {
		warn("%s", mw_buf_str(&err));
		mw_buf_free(&err);
		return 1;
	}
	printf("<%s> pinned %s\n", addr, fpr);
	mw_buf_free(&err);
	return 0;
}

int mp_keys_accept(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv)
{
	(void)ctx;
	struct mw_buf err = MW_BUF_INIT;
	char pinned[MP_FPR_MAX + 1] = "", changed[MP_FPR_MAX + 1] = "";
	if (argc != 1) {
		fputs("usage: milter-pgp-keys accept ADDR\n", stderr);
		return 2;
	}
	int r = mp_pins_get(conf->s.keyring, argv[0], pinned, changed, &err);
	if (r <= 0 || changed[0] == '\0') {
		warn("%s: %s", argv[0], r < 0 ? mw_buf_str(&err) : r == 0 ? "not pinned" : "no changed key to accept");
		mw_buf_free(&err);
		return 1;
	}
	if (mp_pins_set(conf->s.keyring, argv[0], changed, NULL, &err) < 0) {
		warn("%s", mw_buf_str(&err));
		mw_buf_free(&err);
		return 1;
	}
	printf("<%s> pinned %s (was %s)\n", argv[0], changed, pinned);
	mw_buf_free(&err);
	return 0;
}

/* ------------------------------------------------------------ publish-wkd */

static int mkdirs(const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
	struct mw_buf path = MW_BUF_INIT, tmp = MW_BUF_INIT;
	int rc = -1;
	mw_buf_printf(&path, "%s/%s", dir, name);
	mw_buf_printf(&tmp, "%s.tmp", mw_buf_str(&path));
	FILE *f = mkdirs(dir) == 0 ? fopen(mw_buf_str(&tmp), "we") : NULL;
	if (f != NULL) {
		int ok = fwrite(data, 1, len, f) == len;
		ok = fclose(f) == 0 && ok;
		if (ok && rename(mw_buf_str(&tmp), mw_buf_str(&path)) == 0)
			rc = 0;
	}
	if (rc < 0)
		warn("%s: %s", mw_buf_str(&path), strerror(errno));
	mw_buf_free(&path);
	mw_buf_free(&tmp);
	return rc;
}

static int wanted(char **domains, int n, const char *domain)
{
	if (n == 0)
		return 1;
	for (int i = 0; i < n; i++)
		if (strcasecmp(domains[i], domain) == 0)
			return 1;
	return 0;
}

extern char **environ;

#define MAX_PUBLISHED (1u << 20) /* one address's keys, minimal: far less */

/*
 * The keys, each reduced to what WKD wants for addr
 * (draft-koch-openpgp-webkey-service): the user ids of that address alone,
 * not revoked or expired, each with its latest self-signature only (no
 * third-party certification), without expired or revoked subkeys; binary.
 * GPGME (1.18, Debian 12) exports whole keys or minimal ones but filters
 * no user id, so gpg itself does it (--export-filter). 0, or -1 (warned).
 */
static int export_for(const char *home, const char *addr, gpgme_key_t *keys, int n, struct mw_buf *out)
{
	gpgme_engine_info_t info = NULL;
	if (gpgme_get_engine_info(&info) != 0)
		info = NULL;
	while (info != NULL && info->protocol != GPGME_PROTOCOL_OpenPGP)
		info = info->next;
	if (info == NULL || info->file_name == NULL) {
		warn("export %s: no gpg engine", addr);
		return -1;
	}
	/* "--": the address runs to the end, so nothing in it reads as && or || */
	struct mw_buf uid = MW_BUF_INIT;
	mw_buf_printf(&uid, "keep-uid=revoked -f && expired -f && -- mbox = %s", addr);
	const char *argv[32 + 17];
	int a = 0;
	argv[a++] = info->file_name;
	argv[a++] = "--homedir";
	argv[a++] = home;
	argv[a++] = "--batch";
	argv[a++] = "--no-tty";
	argv[a++] = "--quiet";
	argv[a++] = "--export-options";
	argv[a++] = "export-minimal";
	argv[a++] = "--export-filter";
	argv[a++] = mw_buf_str(&uid);
	argv[a++] = "--export-filter";
	argv[a++] = "drop-subkey=revoked -t || expired -t";
	argv[a++] = "--export";
	for (int i = 0; i < n && i < 16; i++)
		argv[a++] = keys[i]->fpr;
	argv[a] = NULL;

	int fds[2], rc = -1, status = 0;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		warn("export %s: pipe: %s", addr, strerror(errno));
		mw_buf_free(&uid);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	int e = posix_spawn(&pid, info->file_name, &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (e != 0) {
		warn("export %s: %s: %s", addr, info->file_name, strerror(e));
		close(fds[0]);
		mw_buf_free(&uid);
		return -1;
	}
	char buf[65536];
	ssize_t r;
	int big = 0;
	while ((r = read(fds[0], buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (mw_buf_len(out) + (size_t)r > MAX_PUBLISHED)
			big = 1;
		else
			mw_buf_append(out, buf, (size_t)r);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0)
		warn("export %s: %s", addr, strerror(errno));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		warn("export %s: gpg failed (status %d)", addr, status);
	else if (big)
		warn("export %s: over %u bytes", addr, MAX_PUBLISHED);
	else if (mw_buf_len(out) == 0)
		warn("export %s: gpg exported nothing", addr);
	else
		rc = 0;
	mw_buf_free(&uid);
	return rc;
}

/* 1 when every key of data has a user id of addr: gpg exports a key whose
   user ids the filter all dropped (expired ones) with none at all. */
static int each_has_uid(gpgme_ctx_t ctx, const char *data, size_t len, const char *addr)
{
	gpgme_data_t d;
	gpgme_key_t k;
	int keys = 0, ok = 1;
	if (gpgme_data_new_from_mem(&d, data, len, 0) != 0)
		return 0;
	gpgme_error_t e = gpgme_op_keylist_from_data_start(ctx, d, 0);
	while (e == 0 && (e = gpgme_op_keylist_next(ctx, &k)) == 0) {
		int found = 0;
		keys++;
		for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next)
			found |= u->email != NULL && strcasecmp(u->email, addr) == 0;
		ok &= found;
		gpgme_key_unref(k);
	}
	gpgme_op_keylist_end(ctx);
	gpgme_data_release(d);
	return ok && keys > 0 && gpgme_err_code(e) == GPG_ERR_EOF;
}

struct pub {
	char *addr;
	gpgme_key_t keys[17];
	int n;
};

int mp_keys_publish_wkd(struct mp_conf *conf, gpgme_ctx_t ctx, int argc, char **argv)
{
	if (argc < 1 || argv[0][0] == '\0') {
		fputs("usage: milter-pgp-keys publish-wkd DIR [DOMAIN...]\n", stderr);
		return 2;
	}
	const char *root = argv[0];
	struct pub *v = NULL;
	size_t nv = 0;
	gpgme_key_t k;
	/* our users' keys: those whose secret part the keyring holds */
	gpgme_error_t e = gpgme_op_keylist_start(ctx, NULL, 1);
	while (e == 0 && (e = gpgme_op_keylist_next(ctx, &k)) == 0) {
		if (k->revoked || k->expired || k->disabled || k->invalid || !k->can_encrypt) {
			gpgme_key_unref(k);
			continue;
		}
		for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next) {
			if (u->revoked || u->invalid || u->email == NULL || strchr(u->email, '@') == NULL)
				continue;
			size_t i;
			for (i = 0; i < nv && strcasecmp(v[i].addr, u->email) != 0; i++)
				;
			if (i == nv) {
				v = mw_xrealloc(v, sizeof(*v) * (nv + 1));
				memset(&v[nv], 0, sizeof(v[nv]));
				v[nv++].addr = mw_xstrdup(u->email);
			}
			if (v[i].n < 16) {
				gpgme_key_ref(k);
				v[i].keys[v[i].n++] = k;
			}
		}
		gpgme_key_unref(k);
	}
	gpgme_op_keylist_end(ctx);
	int bad = gpgme_err_code(e) != GPG_ERR_EOF;
	if (bad)
		warn("key listing: %s", gpgme_strerror(e));
	int published = 0;
	struct mw_buf domains = MW_BUF_INIT;
	for (size_t i = 0; i < nv && !bad; i++) {
		struct mw_buf dom = MW_BUF_INIT, adv = MW_BUF_INIT, dir = MW_BUF_INIT;
		const char *why = "";
		char hash[MP_WKD_HASH_LEN + 1];
		const char *at = strrchr(v[i].addr, '@');
		if (mp_wkd_domain(v[i].addr, &dom, &why) < 0 || mp_wkd_hash(v[i].addr, (size_t)(at - v[i].addr), hash) < 0 ||
		    !wanted(argv + 1, argc - 1, mw_buf_str(&dom))) {
			mw_buf_free(&dom);
			continue;
		}
		struct mw_buf key = MW_BUF_INIT;
		if (export_for(mp_gpg_home_path(conf->home), v[i].addr, v[i].keys, v[i].n, &key) < 0) {
			bad = 1;
		} else if (!each_has_uid(ctx, key.data, mw_buf_len(&key), v[i].addr)) {
			warn("<%s>: no valid user id left once expired ones are dropped: not published", v[i].addr);
		} else {
			size_t len = mw_buf_len(&key);
			const char *data = key.data;
			mw_buf_printf(&adv, "%s/advanced/.well-known/openpgpkey/%s/hu", root, mw_buf_str(&dom));
			mw_buf_printf(&dir, "%s/direct/%s/.well-known/openpgpkey/hu", root, mw_buf_str(&dom));
			if (write_file(mw_buf_str(&adv), hash, data, len) < 0 ||
			    write_file(mw_buf_str(&dir), hash, data, len) < 0)
				bad = 1;
			else {
				printf("<%s> %s (%d key(s))\n", v[i].addr, hash, v[i].n);
				published++;
			}
			if (!listed(mw_buf_str(&domains), mw_buf_str(&dom)))
				mw_buf_printf(&domains, "%s\n", mw_buf_str(&dom));
		}
		mw_buf_free(&key);
		mw_buf_free(&dom);
		mw_buf_free(&adv);
		mw_buf_free(&dir);
	}
	/* each domain's policy file (empty: the draft's defaults) */
	char *save = NULL;
	for (char *dom = domains.data != NULL ? strtok_r(domains.data, "\n", &save) : NULL; dom != NULL && !bad;
	     dom = strtok_r(NULL, "\n", &save)) {
		struct mw_buf a = MW_BUF_INIT, b = MW_BUF_INIT;
		mw_buf_printf(&a, "%s/advanced/.well-known/openpgpkey/%s", root, dom);
		mw_buf_printf(&b, "%s/direct/%s/.well-known/openpgpkey", root, dom);
		if (write_file(mw_buf_str(&a), "policy", "", 0) < 0 || write_file(mw_buf_str(&b), "policy", "", 0) < 0)
			bad = 1;
		mw_buf_free(&a);
		mw_buf_free(&b);
	}
	for (size_t i = 0; i < nv; i++) {
		for (int j = 0; j < v[i].n; j++)
			gpgme_key_unref(v[i].keys[j]);
		free(v[i].addr);
	}
	free(v);
	mw_buf_free(&domains);
	if (!bad)
		printf("%d address(es) published under %s: serve %s/advanced for openpgpkey.DOMAIN, %s/direct/DOMAIN "
		       "for DOMAIN\n", published, root, root, root);
	return bad;
}
