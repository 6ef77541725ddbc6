#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gpgme.h>

#include "gpg.h"
#include "log.h"

#define MAX_RECIPIENTS 1000
#define SOCKET_ROOM 30 /* "/S.gpg-agent.browser" and more, within 108 */

/* Every key of the keyring, listed once and again when the keyring's
   files change: a key listing is a gpg process, too slow per recipient. */
struct cached_key {
	char *email;      /* of one valid user id, as in the key */
	gpgme_key_t key;  /* one reference per entry */
	int secret;       /* from the secret key listing */
};

struct keycache {
	pthread_mutex_t lock;
	struct cached_key *v;
	size_t n;
	char stamp[256];  /* the keyring files' identity when listed */
	time_t listed;
};

#define KEYCACHE_TTL 300 /* seconds: also relisted this often */

struct mp_gpg_home {
	char *home;      /* what GPGME is given: the keyring or the short link */
	char *tmpdir;    /* the short directory holding the link, or NULL */
	char *passphrase;
	struct keycache cache;
};

struct mp_gpg {
	struct mp_gpg_home *h;
	gpgme_ctx_t ctx;
	gpgme_key_t keys[MAX_RECIPIENTS + 1];
	int nkeys;
	struct mw_buf files;  /* "--file\nPATH\n..." of keys found elsewhere */
	struct mw_buf file_fprs;
	int nfiles;
	int signer;
};

static int fail(struct mw_buf *err, const char *what, gpgme_error_t e)
{
	mw_buf_printf(err, "%s: %s", what, gpgme_strerror(e));
	return -1;
}

int mp_gpg_global_init(struct mw_buf *err)
{
	setlocale(LC_ALL, "");
	if (gpgme_check_version(NULL) == NULL) {
		mw_buf_puts(err, "GPGME: version check failed");
		return -1;
	}
	gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
	gpgme_error_t e = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP);
	if (e != 0) {
		mw_buf_printf(err, "GPGME: no usable gpg (install the Debian package gnupg): %s", gpgme_strerror(e));
		return -1;
	}
	return 0;
}

static int read_passphrase(const char *path, char **out, struct mw_buf *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char buf[1024];
	if (fd < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*out = mw_xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* New contexts start in this home (see mp_gpg_new()). */
static struct mp_gpg_home *set_default_home(struct mp_gpg_home *h, struct mw_buf *err)
{
	gpgme_error_t e = gpgme_set_engine_info(GPGME_PROTOCOL_OpenPGP, NULL, h->home);
	if (e != 0) {
		fail(err, "GPGME engine", e);
		mp_gpg_home_free(h);
		return NULL;
	}
	return h;
}

struct mp_gpg_home *mp_gpg_home_new(const char *keyring, const char *passphrase_file, struct mw_buf *err)
{
	struct mp_gpg_home *h = mw_xcalloc(1, sizeof(*h));
	pthread_mutex_init(&h->cache.lock, NULL);
	if (passphrase_file[0] != '\0' && read_passphrase(passphrase_file, &h->passphrase, err) < 0) {
		free(h);
		return NULL;
	}
	if (strlen(keyring) + SOCKET_ROOM < 108) {
		h->home = mw_xstrdup(keyring);
		return set_default_home(h, err);
	}
	char dir[] = "/tmp/mwpgp.XXXXXX";
	if (mkdtemp(dir) == NULL) {
		mw_buf_printf(err, "mkdtemp %s: %s", dir, strerror(errno));
		mp_gpg_home_free(h);
		return NULL;
	}
	h->tmpdir = mw_xstrdup(dir);
	struct mw_buf link = MW_BUF_INIT;
	mw_buf_printf(&link, "%s/k", dir);
	if (symlink(keyring, mw_buf_str(&link)) < 0) {
		mw_buf_printf(err, "symlink %s: %s", mw_buf_str(&link), strerror(errno));
		mw_buf_free(&link);
		mp_gpg_home_free(h);
		return NULL;
	}
	h->home = mw_buf_steal(&link);
	return set_default_home(h, err);
}

static void cache_clear(struct keycache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].email);
		gpgme_key_unref(c->v[i].key);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
	c->stamp[0] = '\0';
}

void mp_gpg_home_free(struct mp_gpg_home *h)
{
	if (h == NULL)
		return;
	cache_clear(&h->cache);
	pthread_mutex_destroy(&h->cache.lock);
	if (h->tmpdir != NULL) {
		(void)unlink(h->home);
		(void)rmdir(h->tmpdir);
	}
	if (h->passphrase != NULL) {
		explicit_bzero(h->passphrase, strlen(h->passphrase));
		free(h->passphrase);
	}
	free(h->tmpdir);
	free(h->home);
	free(h);
}

const char *mp_gpg_home_path(const struct mp_gpg_home *h)
{
	return h->home;
}

static gpgme_error_t passphrase_cb(void *hook, const char *uid_hint, const char *info, int prev_bad, int fd)
{
	struct mp_gpg_home *h = hook;
	(void)uid_hint;
	(void)info;
	if (prev_bad || h->passphrase == NULL)
		return gpgme_error(GPG_ERR_CANCELED);
	size_t n = strlen(h->passphrase);
	if (gpgme_io_writen(fd, h->passphrase, n) < 0 || gpgme_io_writen(fd, "\n", 1) < 0)
		return gpgme_error(GPG_ERR_CANCELED);
	return 0;
}


/* A keyring that vanished (unmounted, deleted) would look like one without
   keys, and mail would leave in clear: refuse to work without it. */
static int keyring_present(const struct mp_gpg_home *h, struct mw_buf *err)
{
	static const char *const names[] = { "pubring.kbx", "pubring.gpg" };
	struct mw_buf path = MW_BUF_INIT;
	int found = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !found; i++) {
		mw_buf_setf(&path, "%s/%s", h->home, names[i]);
		found = access(mw_buf_str(&path), R_OK) == 0;
	}
	mw_buf_free(&path);
	if (!found)
		mw_buf_printf(err, "keyring %s: no readable pubring.kbx or pubring.gpg", h->home);
	return found ? 0 : -1;
}

struct mp_gpg *mp_gpg_new(struct mp_gpg_home *h, struct mw_buf *err)
{
	if (keyring_present(h, err) < 0)
		return NULL;
	struct mp_gpg *g = mw_xcalloc(1, sizeof(*g));
	gpgme_error_t e;
	g->h = h;
	mw_buf_init(&g->files, 1u << 20);
	mw_buf_init(&g->file_fprs, 1u << 20);
	if ((e = gpgme_new(&g->ctx)) != 0) {
		fail(err, "GPGME context", e);
		mp_gpg_free(g);
		return NULL;
	}
	/* A context starts with the process-wide engine settings, which
	   mp_gpg_home_new() pointed at the newest home; setting them per
	   context runs gpg --version each time, so only a context for an
	   older configuration's home (after a reload) does. */
	gpgme_engine_info_t info = gpgme_ctx_get_engine_info(g->ctx);
	while (info != NULL && info->protocol != GPGME_PROTOCOL_OpenPGP)
		info = info->next;
	e = 0;
	if (info == NULL || info->home_dir == NULL || strcmp(info->home_dir, h->home) != 0)
		e = gpgme_ctx_set_engine_info(g->ctx, GPGME_PROTOCOL_OpenPGP, NULL, h->home);
	if (e != 0 || (e = gpgme_set_pinentry_mode(g->ctx, GPGME_PINENTRY_MODE_LOOPBACK)) != 0) {
		fail(err, "GPGME context", e);
		mp_gpg_free(g);
		return NULL;
	}
	gpgme_set_armor(g->ctx, 1);
	gpgme_set_offline(g->ctx, 1); /* never a network key lookup from here */
	gpgme_set_passphrase_cb(g->ctx, passphrase_cb, h);
	return g;
}

void mp_gpg_free(struct mp_gpg *g)
{
	if (g == NULL)
		return;
	for (int i = 0; i < g->nkeys; i++)
		gpgme_key_release(g->keys[i]);
	mw_buf_free(&g->files);
	mw_buf_free(&g->file_fprs);
	if (g->ctx != NULL)
		gpgme_release(g->ctx);
	free(g);
}

int mp_gpg_nrecipients(const struct mp_gpg *g)
{
	return g->nkeys + g->nfiles;
}

int mp_gpg_recipient_file(struct mp_gpg *g, const char *path, const char *fpr, struct mw_buf *err)
{
	for (int i = 0; i < g->nkeys; i++)
		if (strcasecmp(g->keys[i]->fpr, fpr) == 0)
			return 1;
	if (g->nfiles > 0 && strstr(mw_buf_str(&g->file_fprs), fpr) != NULL)
		return 1;
	if (strchr(path, '\n') != NULL) {
		mw_buf_puts(err, "a key file name with a line feed");
		return -1;
	}
	if (g->nkeys + g->nfiles >= MAX_RECIPIENTS) {
		mw_buf_printf(err, "more than %d recipient keys", MAX_RECIPIENTS);
		return -1;
	}
	mw_buf_printf(&g->files, "%s\n", path);
	mw_buf_printf(&g->file_fprs, "%s\n", fpr);
	if (mw_buf_failed(&g->files) || mw_buf_failed(&g->file_fprs)) {
		mw_buf_puts(err, "out of memory");
		return -1;
	}
	g->nfiles++;
	return 1;
}

/* The keyring's keys by fingerprint, then the files: gpgme's extended
   encryption takes them all as one string (and the key array NULL). */
static char *recipient_string(const struct mp_gpg *g)
{
	struct mw_buf b = MW_BUF_INIT;
	for (int i = 0; i < g->nkeys; i++)
		mw_buf_printf(&b, "%s\n", g->keys[i]->fpr);
	mw_buf_puts(&b, "--file\n--\n");
	mw_buf_puts(&b, mw_buf_str(&g->files));
	if (mw_buf_failed(&b)) {
		mw_buf_free(&b);
		return NULL;
	}
	return mw_buf_steal(&b);
}

int mp_gpg_has_signer(const struct mp_gpg *g)
{
	return g->signer;
}

/* The newest valid subkey for the purpose; its creation time, or 0. */
static int expired_now(long expires, time_t now)
{
	return expires > 0 && expires <= now;
}

static long usable_subkey(gpgme_key_t k, int for_signing, int secret)
{
	long best = 0;
	time_t now = time(NULL);
	if (k->revoked || k->expired || k->disabled || k->invalid || k->subkeys == NULL ||
	    expired_now(k->subkeys->expires, now))
		return 0;
	if (for_signing ? !k->can_sign : !k->can_encrypt)
		return 0;
	for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next) {
		if (s->revoked || s->expired || s->disabled || s->invalid || expired_now(s->expires, now))
			continue;
		if (for_signing ? !s->can_sign : !s->can_encrypt)
			continue;
		if (secret && !s->secret)
			continue;
		if (s->timestamp > best)
			best = s->timestamp;
	}
	return best;
}

/* The default key for addr that milter-pgp-keys recorded, or "". */
static void default_fpr(const struct mp_gpg_home *h, const char *addr, char *out, size_t size)
{
	struct mw_buf path = MW_BUF_INIT;
	mw_buf_printf(&path, "%s/mailward-defaults", h->home);
	FILE *f = fopen(mw_buf_str(&path), "re");
	char line[512];
	out[0] = '\0';
	mw_buf_free(&path);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' ');
		if (sp == NULL)
			continue;
		*sp = '\0';
		if (strcasecmp(line, addr) == 0) {
			snprintf(out, size, "%s", sp + 1);
			out[strcspn(out, " \r\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/* What identifies the keyring's contents now: the key files' inode, size
   and modification time, and the defaults file's. */
static void keyring_stamp(const struct mp_gpg_home *h, char *out, size_t size)
{
	static const char *const names[] = { "pubring.kbx", "pubring.gpg", "private-keys-v1.d", "secring.gpg",
					     "mailward-defaults" };
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[1024];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", h->home, names[i]);
		if (stat(path, &st) == 0 && n < size)
			n += (size_t)snprintf(out + n, size - n, "%lx.%llx.%lld.%ld;", (unsigned long)st.st_ino,
					      (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
					      st.st_mtim.tv_nsec);
	}
}

static int list_into(gpgme_ctx_t ctx, int secret, struct keycache *c, struct mw_buf *err)
{
	gpgme_key_t k;
	gpgme_error_t e = gpgme_op_keylist_start(ctx, NULL, secret);
	if (e != 0)
		return fail(err, "key listing", e);
	while ((e = gpgme_op_keylist_next(ctx, &k)) == 0) {
		for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next) {
			if (u->revoked || u->invalid || u->email == NULL || u->email[0] == '\0')
				continue;
			c->v = mw_xrealloc(c->v, sizeof(*c->v) * (c->n + 1));
			gpgme_key_ref(k);
			c->v[c->n++] = (struct cached_key){ mw_xstrdup(u->email), k, secret };
		}
		gpgme_key_unref(k);
	}
	gpgme_op_keylist_end(ctx);
	if (gpgme_err_code(e) != GPG_ERR_EOF)
		return fail(err, "key listing", e);
	return 0;
}

/* Under c->lock: lists the keyring again when it changed or got old. */
static int cache_refresh(struct mp_gpg *g, struct mw_buf *err)
{
	struct keycache *c = &g->h->cache;
	char stamp[sizeof(c->stamp)];
	time_t now = time(NULL);
	keyring_stamp(g->h, stamp, sizeof(stamp));
	if (c->stamp[0] != '\0' && strcmp(stamp, c->stamp) == 0 && now - c->listed < KEYCACHE_TTL)
		return 0;
	cache_clear(c);
	if (list_into(g->ctx, 0, c, err) < 0 || list_into(g->ctx, 1, c, err) < 0) {
		cache_clear(c);
		return -1;
	}
	snprintf(c->stamp, sizeof(c->stamp), "%s", stamp[0] ? stamp : "-");
	c->listed = now;
	return 0;
}

/* The best usable key of addr: 1 (*out referenced), 0 none, -1 error. */
static int find_key(struct mp_gpg *g, const char *addr, int secret, gpgme_key_t *out, struct mw_buf *err)
{
	struct keycache *c = &g->h->cache;
	gpgme_key_t best = NULL;
	long best_time = 0;
	char def[128] = "";

	*out = NULL;
	if (addr[0] == '\0')
		return 0;
	if (secret)
		default_fpr(g->h, addr, def, sizeof(def));
	pthread_mutex_lock(&c->lock);
	if (cache_refresh(g, err) < 0) {
		pthread_mutex_unlock(&c->lock);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++) {
		gpgme_key_t k = c->v[i].key;
		if (c->v[i].secret != secret || strcasecmp(c->v[i].email, addr) != 0)
			continue;
		long t = usable_subkey(k, secret, secret);
		if (t > 0 && def[0] != '\0' && k->fpr != NULL && strcasecmp(k->fpr, def) == 0)
			t = 0x7fffffffL; /* the default wins */
		if (t > best_time) {
			best = k;
			best_time = t;
		}
	}
	if (best != NULL)
		gpgme_key_ref(best);
	pthread_mutex_unlock(&c->lock);
	*out = best;
	return best != NULL;
}

int mp_gpg_recipient(struct mp_gpg *g, const char *addr, int add, struct mw_buf *err)
{
	gpgme_key_t k;
	int r = find_key(g, addr, 0, &k, err);
	if (r <= 0)
		return r;
	if (!add) {
		gpgme_key_release(k);
		return 1;
	}
	for (int i = 0; i < g->nkeys; i++) {
		if (strcmp(g->keys[i]->fpr, k->fpr) == 0) { /* the same key twice */
			gpgme_key_release(k);
			return 1;
		}
	}
	if (g->nkeys >= MAX_RECIPIENTS) {
		gpgme_key_release(k);
		mw_buf_printf(err, "more than %d recipient keys", MAX_RECIPIENTS);
		return -1;
	}
	g->keys[g->nkeys++] = k;
	g->keys[g->nkeys] = NULL;
	return 1;
}

int mp_gpg_signer(struct mp_gpg *g, const char *addr, struct mw_buf *err)
{
	gpgme_key_t k;
	int r = find_key(g, addr, 1, &k, err);
	if (r <= 0)
		return r;
	gpgme_signers_clear(g->ctx);
	gpgme_error_t e = gpgme_signers_add(g->ctx, k);
	gpgme_key_release(k);
	if (e != 0)
		return fail(err, "signer", e);
	g->signer = 1;
	return 1;
}

/* ------------------------------------------------------------ input */

struct source {
	const char *head;
	size_t headlen, pos;
	int fd;
};

static ssize_t source_read(void *handle, void *buffer, size_t size)
{
	struct source *s = handle;
	if (s->pos < s->headlen) {
		size_t n = s->headlen - s->pos;
		if (n > size)
			n = size;
		memcpy(buffer, s->head + s->pos, n);
		s->pos += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(s->fd, buffer, size);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int open_data(struct source *src, const char *head, size_t headlen, int in_fd, int out_fd,
		     gpgme_data_t *in, gpgme_data_t *out, struct gpgme_data_cbs *cbs, struct mw_buf *err)
{
	gpgme_error_t e;
	memset(cbs, 0, sizeof(*cbs));
	cbs->read = source_read;
	*src = (struct source){ head, headlen, 0, in_fd };
	if (lseek(in_fd, 0, SEEK_SET) < 0) {
		mw_buf_printf(err, "lseek: %s", strerror(errno));
		return -1;
	}
	if ((e = gpgme_data_new_from_cbs(in, cbs, src)) != 0)
		return fail(err, "GPGME input", e);
	if ((e = gpgme_data_new_from_fd(out, out_fd)) != 0) {
		gpgme_data_release(*in);
		return fail(err, "GPGME output", e);
	}
	return 0;
}

int mp_gpg_encrypt(struct mp_gpg *g, int opts, const char *head, size_t headlen, int in_fd, int out_fd,
		   struct mw_buf *err)
{
	struct source src;
	struct gpgme_data_cbs cbs;
	gpgme_data_t in, out;
	if (g->nkeys + g->nfiles == 0) {
		mw_buf_puts(err, "no recipient key");
		return -1;
	}
	char *recp = NULL;
	if (g->nfiles > 0 && (recp = recipient_string(g)) == NULL) {
		mw_buf_puts(err, "out of memory");
		return -1;
	}
	if (open_data(&src, head, headlen, in_fd, out_fd, &in, &out, &cbs, err) < 0) {
		free(recp);
		return -1;
	}
	gpgme_encrypt_flags_t flags = GPGME_ENCRYPT_ALWAYS_TRUST | ((opts & MP_GPG_HIDE) ? GPGME_ENCRYPT_THROW_KEYIDS : 0) |
				      ((opts & MP_GPG_COMPRESS) ? 0 : GPGME_ENCRYPT_NO_COMPRESS);
	gpgme_error_t e;
	if (recp != NULL)
		e = g->signer ? gpgme_op_encrypt_sign_ext(g->ctx, NULL, recp, flags, in, out)
			      : gpgme_op_encrypt_ext(g->ctx, NULL, recp, flags, in, out);
	else
		e = g->signer ? gpgme_op_encrypt_sign(g->ctx, g->keys, flags, in, out)
			      : gpgme_op_encrypt(g->ctx, g->keys, flags, in, out);
	free(recp);
	int r = 0;
	if (e != 0) {
		r = fail(err, g->signer ? "sign and encrypt" : "encrypt", e);
	} else {
		gpgme_encrypt_result_t er = gpgme_op_encrypt_result(g->ctx);
		if (er != NULL && er->invalid_recipients != NULL) {
			mw_buf_printf(err, "encrypt: key %s refused: %s", er->invalid_recipients->fpr,
				      gpgme_strerror(er->invalid_recipients->reason));
			r = -1;
		}
		if (g->signer) {
			gpgme_sign_result_t sr = gpgme_op_sign_result(g->ctx);
			if (r == 0 && (sr == NULL || sr->signatures == NULL || sr->invalid_signers != NULL)) {
				mw_buf_puts(err, "sign: the signing key was refused");
				r = -1;
			}
		}
	}
	gpgme_data_release(in);
	gpgme_data_release(out);
	return r;
}

int mp_gpg_sign(struct mp_gpg *g, const char *head, size_t headlen, int in_fd, int out_fd, char *micalg,
		size_t micalg_size, struct mw_buf *err)
{
	struct source src;
	struct gpgme_data_cbs cbs;
	gpgme_data_t in, out;
	if (!g->signer) {
		mw_buf_puts(err, "no signing key");
		return -1;
	}
	if (open_data(&src, head, headlen, in_fd, out_fd, &in, &out, &cbs, err) < 0)
		return -1;
	gpgme_error_t e = gpgme_op_sign(g->ctx, in, out, GPGME_SIG_MODE_DETACH);
	int r = 0;
	if (e != 0) {
		r = fail(err, "sign", e);
	} else {
		gpgme_sign_result_t sr = gpgme_op_sign_result(g->ctx);
		if (sr == NULL || sr->signatures == NULL || sr->invalid_signers != NULL) {
			mw_buf_puts(err, "sign: the signing key was refused");
			r = -1;
		} else {
			const char *name = gpgme_hash_algo_name(sr->signatures->hash_algo);
			size_t n = snprintf(micalg, micalg_size, "pgp-%s", name != NULL ? name : "sha256");
			for (size_t i = 0; i < n && i < micalg_size; i++)
				if (micalg[i] >= 'A' && micalg[i] <= 'Z')
					micalg[i] = (char)(micalg[i] + 32);
		}
	}
	gpgme_data_release(in);
	gpgme_data_release(out);
	return r;
}

/* ------------------------------------------------------------ Autocrypt */

/* The newest valid encryption subkey of k: its fingerprint into out. */
static int encryption_subkey(gpgme_key_t k, char *out, size_t size)
{
	long best = -1;
	time_t now = time(NULL);
	out[0] = '\0';
	for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next) {
		if (s->revoked || s->expired || s->disabled || s->invalid || !s->can_encrypt ||
		    expired_now(s->expires, now) || s->fpr == NULL || s->timestamp <= best)
			continue;
		best = s->timestamp;
		snprintf(out, size, "%s", s->fpr);
	}
	return out[0] != '\0';
}

/* Exported keydata by home, keyring state, address and keys: an export is
   a gpg process, and a sender's key seldom changes (any change to the
   keyring's files makes a new state). */
#define AC_CACHE_SIZE 64
static pthread_mutex_t ac_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *id;
	char *data;
	size_t len;
} ac_cache[AC_CACHE_SIZE];
static size_t ac_next;

static int ac_cached(const char *id, struct mw_buf *out)
{
	int hit = 0;
	pthread_mutex_lock(&ac_lock);
	for (size_t i = 0; i < AC_CACHE_SIZE && !hit; i++)
		if (ac_cache[i].id != NULL && strcmp(ac_cache[i].id, id) == 0)
			hit = mw_buf_append(out, ac_cache[i].data, ac_cache[i].len) == 0;
	pthread_mutex_unlock(&ac_lock);
	return hit;
}

static void ac_remember(const char *id, const char *data, size_t len)
{
	pthread_mutex_lock(&ac_lock);
	size_t i = ac_next++ % AC_CACHE_SIZE;
	free(ac_cache[i].id);
	free(ac_cache[i].data);
	ac_cache[i].id = mw_xstrdup(id);
	ac_cache[i].data = mw_xmalloc(len);
	memcpy(ac_cache[i].data, data, len);
	ac_cache[i].len = len;
	pthread_mutex_unlock(&ac_lock);
}

int mp_gpg_autocrypt_key(struct mp_gpg *g, const char *addr, struct mw_buf *out, struct mw_buf *err)
{
	struct mw_buf id = MW_BUF_INIT;
	gpgme_key_t k;
	char sub[128], keep[600], drop[200];
	gpgme_engine_info_t info = NULL;
	gpgme_ctx_t ctx = NULL;
	gpgme_data_t dout = NULL, derr = NULL;
	gpgme_error_t e;
	int r;

	/* gpg's filter expressions: an address that could extend one is not ours */
	if (strlen(addr) > 320 || strpbrk(addr, " \t\r\n|&\"'\\") != NULL)
		return 0;
	if ((r = find_key(g, addr, 1, &k, err)) <= 0)
		return r;
	if (!encryption_subkey(k, sub, sizeof(sub)) || k->fpr == NULL) {
		gpgme_key_release(k);
		return 0;
	}
	pthread_mutex_lock(&g->h->cache.lock);
	mw_buf_printf(&id, "%s\n%s\n%s\n%s\n%s", g->h->home, g->h->cache.stamp, k->fpr, sub, addr);
	pthread_mutex_unlock(&g->h->cache.lock);
	if (ac_cached(mw_buf_str(&id), out)) {
		r = 1;
		goto done;
	}
	snprintf(keep, sizeof(keep), "keep-uid=mbox = %s", addr);
	snprintf(drop, sizeof(drop), "drop-subkey=fpr <> %s", sub);
	const char *argv[] = { "gpg", "--homedir", g->h->home, "--batch", "--no-tty", "--export",
			       "--export-options", "export-minimal,export-clean", "--export-filter", keep,
			       "--export-filter", drop, k->fpr, NULL };
	if ((e = gpgme_get_engine_info(&info)) != 0)
		goto fail;
	while (info != NULL && info->protocol != GPGME_PROTOCOL_OpenPGP)
		info = info->next;
	if (info == NULL || info->file_name == NULL) {
		e = gpgme_error(GPG_ERR_INV_ENGINE);
		goto fail;
	}
	/* gpg itself: GPGME has no export filter (an export is a gpg process anyway) */
	if ((e = gpgme_new(&ctx)) != 0 || (e = gpgme_set_protocol(ctx, GPGME_PROTOCOL_SPAWN)) != 0 ||
	    (e = gpgme_data_new(&dout)) != 0 || (e = gpgme_data_new(&derr)) != 0 ||
	    (e = gpgme_op_spawn(ctx, info->file_name, argv, NULL, dout, derr, 0)) != 0)
		goto fail;
	size_t n = 0;
	char *mem = gpgme_data_release_and_get_mem(dout, &n);
	dout = NULL;
	r = n > 0 && mem != NULL ? 1 : 0;
	if (r == 0)
		mw_buf_printf(err, "gpg exported nothing for %s", addr);
	else if (mw_buf_append(out, mem, n) < 0)
		r = -1;
	if (r > 0) {
		mw_msg_debug("Autocrypt key of <%s>: %s exported (%zu bytes)", addr, k->fpr, n);
		ac_remember(mw_buf_str(&id), mem, n);
	}
	if (r <= 0 && mw_buf_len(err) == 0)
		mw_buf_puts(err, "out of memory");
	gpgme_free(mem);
	r = r > 0 ? 1 : -1;
	goto done;
fail:
	r = fail(err, "export of the Autocrypt key", e);
done:
	gpgme_data_release(dout);
	gpgme_data_release(derr);
	if (ctx != NULL)
		gpgme_release(ctx);
	gpgme_key_release(k);
	mw_buf_free(&id);
	return r;
}
