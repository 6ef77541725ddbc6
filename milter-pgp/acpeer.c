#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gpgme.h>

#include "acpeer.h"
#include "gpg.h"
#include "keysrc.h"
#include "log.h"
#include "milterutil.h"
#include "sock.h"
#include "wkd.h"

#define STORE_DIR "mailward-autocrypt"
#define PEER_FILE_MAX 4096
#define NAME_MAX_LEN 200 /* an escaped address longer than this is not stored */

/* ------------------------------------------------------------ configuration */

int mp_ac_conf_validate(struct mw_conf *cfg, struct mp_settings *s)
{
	/* milter-auth's rule and default, so the two agree unless told otherwise */
	struct mw_buf err = MW_BUF_INIT;
	int rc = 0;
	if (mw_milter_authserv_id(&s->authserv_id, &err) < 0)
		rc = mw_conf_fail(cfg, "authserv_id", "%s", mw_buf_str(&err));
	mw_buf_free(&err);
	return rc;
}

static int listed(char **list, const char *addr)
{
	const char *at = strrchr(addr, '@');
	for (char **p = list; p != NULL && *p != NULL; p++) {
		const char *x = (*p)[0] == '@' ? *p + 1 : *p;
		if (strcasecmp(x, addr) == 0 || (at != NULL && strcasecmp(x, at + 1) == 0))
			return 1;
	}
	return 0;
}

int mp_ac_wanted(const struct mp_conf *c, const char *sender)
{
	return sender[0] != '\0' && listed(c->s.autocrypt_for, sender);
}

/* ------------------------------------------------------------ the store */

/* The file name of addr (without suffix); -1 when too long. */
static int peer_name(const char *addr, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = addr; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		int plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' || c == '_' || c == '+' ||
			    c == '-' || (c == '.' && p != addr);
		if (o + 4 >= size || o + 4 >= NAME_MAX_LEN)
			return -1;
		if (plain)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, size - o, "%%%02X", c);
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

static void store_path(struct mw_buf *b, const char *keyring, const char *name, const char *suffix)
{
	mw_buf_setf(b, "%s/%s%s%s%s", keyring, STORE_DIR, name[0] ? "/" : "", name, suffix);
}

/* The store's lock held (flock, exclusive), the directory made: its fd or -1. */
static int lock_store(const char *keyring, struct mw_buf *err)
{
	struct mw_buf path = MW_BUF_INIT;
	store_path(&path, keyring, "", "");
	if (mkdir(mw_buf_str(&path), 0700) < 0 && errno != EEXIST) {
		mw_buf_printf(err, "%s: %s", mw_buf_str(&path), strerror(errno));
		mw_buf_free(&path);
		return -1;
	}
	mw_buf_puts(&path, "/.lock");
	int fd = open(mw_buf_str(&path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		mw_buf_printf(err, "%s: %s", mw_buf_str(&path), strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	mw_buf_free(&path);
	return fd;
}

static void unlock_store(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static int parse_peer(const char *text, struct mp_ac_peer *p)
{
	char line[600];
	int have = 0;
	while (*text != '\0') {
		size_t n = strcspn(text, "\n");
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), text);
		text += n + (text[n] == '\n');
		char *sp = strchr(line, ' ');
		if (sp == NULL)
			continue;
		*sp++ = '\0';
		if (strcmp(line, "addr") == 0 && strlen(sp) < sizeof(p->addr)) {
			snprintf(p->addr, sizeof(p->addr), "%s", sp);
			have |= 1;
		} else if (strcmp(line, "fpr") == 0 && strlen(sp) <= MP_FPR_MAX) {
			snprintf(p->fpr, sizeof(p->fpr), "%s", sp);
			have |= 2;
		} else if (strcmp(line, "last_seen") == 0) {
			p->last_seen = strtoll(sp, NULL, 10);
		} else if (strcmp(line, "autocrypt_timestamp") == 0) {
			p->timestamp = strtoll(sp, NULL, 10);
			have |= 4;
		} else if (strcmp(line, "expires") == 0) {
			p->expires = strtoll(sp, NULL, 10);
		} else if (strcmp(line, "prefer_encrypt") == 0) {
			p->mutual = strcmp(sp, "mutual") == 0;
		}
	}
	return have == 7 ? 0 : -1;
}

/* Reads NAME.peer of the store; 1, 0 none, -1 (err). */
static int read_peer_file(const char *path, struct mp_ac_peer *p, struct mw_buf *err)
{
	char text[PEER_FILE_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, text, PEER_FILE_MAX);
	close(fd);
	if (n < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	memset(p, 0, sizeof(*p));
	if (parse_peer(text, p) < 0) {
		mw_msg_warn("Autocrypt peer store: %s: not a peer file, ignored", path);
		return 0;
	}
	return 1;
}

int mp_ac_peer_get(const char *keyring, const char *addr, struct mp_ac_peer *p, struct mw_buf *err)
{
	char name[NAME_MAX_LEN + 8];
	struct mw_buf path = MW_BUF_INIT;
	if (peer_name(addr, name, sizeof(name)) < 0)
		return 0;
	store_path(&path, keyring, name, ".peer");
	int r = read_peer_file(mw_buf_str(&path), p, err);
	if (r > 0 && strcasecmp(p->addr, addr) != 0)
		r = 0;
	if (r > 0) {
		store_path(&path, keyring, name, ".pgp");
		snprintf(p->key_path, sizeof(p->key_path), "%s", mw_buf_str(&path));
	}
	mw_buf_free(&path);
	return r;
}

static int write_peer(const char *keyring, const struct mp_ac_peer *p, const unsigned char *key, size_t len,
		      struct mw_buf *err)
{
	char name[NAME_MAX_LEN + 8];
	struct mw_buf path = MW_BUF_INIT, text = MW_BUF_INIT;
	int r = -1;
	if (peer_name(p->addr, name, sizeof(name)) < 0) {
		mw_buf_puts(err, "address too long for the store");
		return -1;
	}
	mw_buf_printf(&text, "addr %s\nlast_seen %lld\nautocrypt_timestamp %lld\nprefer_encrypt %s\nfpr %s\nexpires %lld\n",
		      p->addr, p->last_seen, p->timestamp, p->mutual ? "mutual" : "nopreference", p->fpr, p->expires);
	/* the key first: a .peer always names a key file that is there */
	store_path(&path, keyring, name, ".pgp");
	if (key == NULL || mw_sock_write_file(mw_buf_str(&path), key, len, err) == 0) {
		store_path(&path, keyring, name, ".peer");
		r = mw_sock_write_file(mw_buf_str(&path), text.data, mw_buf_len(&text), err);
	}
	mw_buf_free(&path);
	mw_buf_free(&text);
	return r;
}

static int remove_peer(const char *keyring, const char *addr)
{
	char name[NAME_MAX_LEN + 8];
	struct mw_buf path = MW_BUF_INIT;
	int r = 0;
	if (peer_name(addr, name, sizeof(name)) < 0)
		return 0;
	store_path(&path, keyring, name, ".peer");
	r = unlink(mw_buf_str(&path)) == 0;
	store_path(&path, keyring, name, ".pgp");
	(void)unlink(mw_buf_str(&path));
	mw_buf_free(&path);
	return r;
}

int mp_ac_peer_forget(const char *keyring, const char *addr, struct mw_buf *err)
{
	int fd = lock_store(keyring, err);
	if (fd < 0)
		return -1;
	int r = remove_peer(keyring, addr);
	unlock_store(fd);
	if (!r)
		mw_buf_printf(err, "no Autocrypt peer %s", addr);
	return r ? 0 : -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mp_ac_peer_list(const char *keyring, FILE *out)
{
	struct mw_buf path = MW_BUF_INIT, err = MW_BUF_INIT;
	store_path(&path, keyring, "", "");
	DIR *d = opendir(mw_buf_str(&path));
	char **names = NULL;
	size_t n = 0;
	if (d == NULL) {
		mw_buf_free(&path);
		return 0; /* nothing learned yet */
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".peer") == 0 && e->d_name[0] != '.') {
			names = mw_xrealloc(names, sizeof(*names) * (n + 1));
			names[n++] = mw_xstrdup(e->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	time_t now = time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct mp_ac_peer p;
		struct mw_buf f = MW_BUF_INIT;
		mw_buf_printf(&f, "%s/%s", mw_buf_str(&path), names[i]);
		if (read_peer_file(mw_buf_str(&f), &p, &err) > 0) {
			char seen[32], stamp[32], exp[32] = "never";
			struct tm tm;
			time_t t = (time_t)p.last_seen;
			strftime(seen, sizeof(seen), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
			t = (time_t)p.timestamp;
			strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
			if (p.expires > 0) {
				t = (time_t)p.expires;
				strftime(exp, sizeof(exp), "%Y-%m-%d", gmtime_r(&t, &tm));
			}
			fprintf(out, "<%s> %s prefer-encrypt=%s last_seen=%s autocrypt_timestamp=%s expires=%s%s\n",
				p.addr, p.fpr, p.mutual ? "mutual" : "nopreference", seen, stamp, exp,
				p.expires > 0 && p.expires <= now ? " (expired)" : "");
		}
		mw_buf_free(&f);
		free(names[i]);
	}
	free(names);
	mw_buf_free(&path);
	mw_buf_free(&err);
	return 0;
}

/* ------------------------------------------------------------ learning */

/*
 * Judges key (keydata of addr) with gpg, nothing imported: 1 usable (fpr,
 * expiry set), 0 not (why), -1 gpg failed (err).
 */
static int judge_key(const char *gpg_home, const char *addr, const unsigned char *key, size_t len,
		     struct mp_ac_peer *p, const char **why, struct mw_buf *err)
{
	struct mp_keyblock kb[2];
	if (mp_pgp_keyblocks(key, len, kb, 2, why) != 1) {
		if (**why == '\0')
			*why = "not one OpenPGP key";
		return 0;
	}
	gpgme_ctx_t ctx = NULL;
	gpgme_data_t d = NULL;
	gpgme_key_t k;
	gpgme_error_t e = gpgme_new(&ctx);
	int nkeys = 0, r = 0;
	if (e == 0)
		e = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, NULL, gpg_home);
	if (e == 0)
		e = gpgme_data_new_from_mem(&d, (const char *)key, len, 0);
	if (e == 0) {
		gpgme_set_offline(ctx, 1);
		e = gpgme_op_keylist_from_data_start(ctx, d, 0);
	}
	while (e == 0 && (e = gpgme_op_keylist_next(ctx, &k)) == 0) {
		long exp = 0;
		if (nkeys++ == 0 && mp_keysrc_usable_for(k, addr, &exp, why) && k->fpr != NULL &&
		    strlen(k->fpr) <= MP_FPR_MAX) {
			snprintf(p->fpr, sizeof(p->fpr), "%s", k->fpr);
			p->expires = exp;
			r = 1;
		} else if (nkeys == 1 && k->fpr != NULL && strlen(k->fpr) <= MP_FPR_MAX) {
			snprintf(p->fpr, sizeof(p->fpr), "%s", k->fpr); /* of the unusable key */
		}
		gpgme_key_unref(k);
	}
	if (ctx != NULL)
		gpgme_op_keylist_end(ctx);
	if (gpgme_err_code(e) != GPG_ERR_EOF) {
		mw_buf_printf(err, "gpg cannot read the key: %s", gpgme_strerror(e));
		r = -1;
	} else if (nkeys != 1) {
		*why = nkeys == 0 ? "no valid key" : "more than one key";
		r = 0;
	}
	gpgme_data_release(d);
	if (ctx != NULL)
		gpgme_release(ctx);
	return r;
}

/* 1 when the file at path holds exactly key. */
static int same_key(const char *path, const unsigned char *key, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	int same = 0;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size == len) {
		unsigned char *buf = mw_xmalloc(len + 1);
		size_t off = 0;
		ssize_t n;
		while (off < len && ((n = read(fd, buf + off, len - off)) > 0 || (n < 0 && errno == EINTR)))
			off += n > 0 ? (size_t)n : 0;
		same = off == len && memcmp(buf, key, len) == 0;
		free(buf);
	}
	close(fd);
	return same;
}

int mp_ac_peer_learn(struct mp_conf *c, const char *addr, long long eff, const struct mp_ac_header *h, const char **why,
		 struct mw_buf *err)
{
	const char *keyring = c->s.keyring;
	struct mp_ac_peer p, old;
	memset(&p, 0, sizeof(p));
	*why = "";
	/* Most mail programs send their key with every message: the key
	   stored already (validated then) only gets its dates updated, no gpg */
	int have = mp_ac_peer_get(keyring, addr, &old, err);
	if (have < 0)
		return -1;
	int same = have > 0 && same_key(old.key_path, h->keydata, h->keylen), ok = 1;
	if (!same && (ok = judge_key(mp_gpg_home_path(c->home), addr, h->keydata, h->keylen, &p, why, err)) < 0)
		return -1;
	int fd = lock_store(keyring, err);
	if (fd < 0)
		return -1;
	have = mp_ac_peer_get(keyring, addr, &old, err);
	int r = -1;
	if (have < 0)
		goto out;
	if (have > 0 && eff < old.timestamp) {
		*why = "older-than-stored";
		r = 0;
		goto out;
	}
	if (same && (have == 0 || !same_key(old.key_path, h->keydata, h->keylen))) {
		*why = "changed-meanwhile"; /* another message updated the peer at the same time */
		r = 0;
		goto out;
	}
	if (same) {
		p = old;
		p.timestamp = eff;
		p.last_seen = old.last_seen > eff ? old.last_seen : eff;
		p.mutual = h->mutual;
		r = write_peer(keyring, &p, NULL, 0, err) == 0 ? 1 : -1;
		goto out;
	}
	if (!ok) {
		/* the peer's own key, now revoked or expired: no longer used */
		if (have > 0 && strcasecmp(old.fpr, p.fpr) == 0 && remove_peer(keyring, addr))
			mw_msg_info("Autocrypt peer <%s>: key %s %s, forgotten", addr, old.fpr, *why);
		r = 0;
		goto out;
	}
	snprintf(p.addr, sizeof(p.addr), "%s", addr);
	p.timestamp = eff;
	p.last_seen = have > 0 && old.last_seen > eff ? old.last_seen : eff;
	p.mutual = h->mutual;
	r = write_peer(keyring, &p, h->keydata, h->keylen, err) == 0 ? 1 : -1;
	if (r > 0 && (have == 0 || strcasecmp(old.fpr, p.fpr) != 0))
		mw_msg_info("Autocrypt peer <%s>: key %s learned%s%s", addr, p.fpr, have > 0 ? ", replacing " : "",
			    have > 0 ? old.fpr : "");
out:
	unlock_store(fd);
	return r;
}

/* ------------------------------------------------------------ key source */

int mp_ac_recipient(struct mp_conf *c, struct mp_gpg *g, const char *addr, struct mw_buf *err)
{
	struct mp_ac_peer p;
	if (c->s.key_trust == MP_TRUST_LOCAL)
		return 0;
	int r = mp_ac_peer_get(c->s.keyring, addr, &p, err);
	if (r <= 0)
		return r;
	if (p.expires > 0 && p.expires <= (long long)time(NULL))
		return 0; /* expired since: as no key (WKD may know a newer one) */
	if (g == NULL)
		return 1;
	r = mp_gpg_recipient_file(g, p.key_path, p.fpr, err);
	if (r > 0)
		mw_msg_info("key of <%s>: %s via autocrypt", addr, p.fpr);
	return r;
}
