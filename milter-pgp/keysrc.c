#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gpgme.h>

#include "keysrc.h"
#include "log.h"
#include "tlspol_fetch.h"
#include "wkd.h"

#define DNS_T_OPENPGPKEY 61
#define FOUND_DIR "mailward-found"
#define BUCKETS 1024
#define MAX_ENTRIES 100000
#define MAX_RUNNING 64        /* lookup threads at once */
#define FAILURE_TTL_MS 60000  /* a failure is retried after this at most */

enum entry_state { E_RUNNING, E_DONE };

struct entry {
	struct entry *next;
	char *addr;
	enum entry_state state;
	struct timespec deadline;   /* RUNNING: the waiters give up then */
	struct timespec until;      /* DONE: valid until */
	long key_expires;           /* FOUND: the key's expiry (0 never) */
	struct mp_key_found r;
};

struct mp_keysrc {
	struct mp_keysrc_conf c;
	struct mw_dns *dns;
	pthread_mutex_t lock;
	pthread_cond_t done;
	struct entry *bucket[BUCKETS];
	size_t nentries;
	int running;
	atomic_int refs;
};

void mp_key_found_init(struct mp_key_found *f)
{
	memset(f, 0, sizeof(*f));
	mw_buf_init(&f->path, 4096);
	mw_buf_init(&f->detail, 1024);
}

void mp_key_found_free(struct mp_key_found *f)
{
	mw_buf_free(&f->path);
	mw_buf_free(&f->detail);
}

static void found_copy(struct mp_key_found *dst, const struct mp_key_found *src)
{
	dst->state = src->state;
	memcpy(dst->fpr, src->fpr, sizeof(dst->fpr));
	memcpy(dst->source, src->source, sizeof(dst->source));
	mw_buf_set(&dst->path, mw_buf_str(&src->path));
	mw_buf_set(&dst->detail, mw_buf_str(&src->detail));
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init(void)
{
	struct mw_buf err = MW_BUF_INIT;
	curl_ok = tlspol_fetch_global_init(&err) == 0;
	mw_buf_free(&err);
}

struct mp_keysrc *mp_keysrc_new(const struct mp_keysrc_conf *conf, struct mw_buf *err)
{
	pthread_once(&curl_once, curl_init);
	if (!curl_ok) {
		mw_buf_puts(err, "libcurl failed to initialise");
		return NULL;
	}
	struct mp_keysrc *ks = mw_xcalloc(1, sizeof(*ks));
	ks->c = *conf;
	ks->dns = mw_dns_new(conf->dns, err);
	if (ks->dns == NULL) {
		free(ks);
		return NULL;
	}
	/* lookup threads may outlive the configuration: own copies */
	ks->c.keyring = mw_xstrdup(conf->keyring);
	ks->c.gpg_home = mw_xstrdup(conf->gpg_home);
	ks->c.ca_file = mw_xstrdup(conf->ca_file != NULL ? conf->ca_file : "");
	ks->c.dns = NULL;
	pthread_mutex_init(&ks->lock, NULL);
	pthread_cond_init(&ks->done, NULL);
	atomic_init(&ks->refs, 1);
	struct mw_buf dir = MW_BUF_INIT;
	mw_buf_printf(&dir, "%s/%s", conf->keyring, FOUND_DIR);
	if (mkdir(mw_buf_str(&dir), 0700) < 0 && errno != EEXIST)
		mw_msg_warn("%s: %s (found keys cannot be kept)", mw_buf_str(&dir), strerror(errno));
	mw_buf_free(&dir);
	return ks;
}

static void entry_free(struct entry *e)
{
	free(e->addr);
	mp_key_found_free(&e->r);
	free(e);
}

void mp_keysrc_unref(struct mp_keysrc *ks)
{
	if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	for (int i = 0; i < BUCKETS; i++) {
		while (ks->bucket[i] != NULL) {
			struct entry *e = ks->bucket[i];
			ks->bucket[i] = e->next;
			entry_free(e);
		}
	}
	mw_dns_free(ks->dns);
	free((char *)ks->c.keyring);
	free((char *)ks->c.gpg_home);
	free((char *)ks->c.ca_file);
	pthread_cond_destroy(&ks->done);
	pthread_mutex_destroy(&ks->lock);
	free(ks);
}

/* ------------------------------------------------------------ time */

static void after_ms(struct timespec *t, unsigned long long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static long long ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* ------------------------------------------------------------ judging keys */

static int expired_at(long expires, time_t now)
{
	return expires > 0 && expires <= now;
}

int mp_keysrc_usable_for(gpgme_key_t k, const char *addr, long *expires, const char **why)
{
	time_t now = time(NULL);
	int uid_ok = 0, enc_ok = 0;
	long exp = 0;
	if (k->revoked) {
		*why = "revoked";
		return 0;
	}
	if (k->expired || k->subkeys == NULL || expired_at(k->subkeys->expires, now)) {
		*why = "expired";
		return 0;
	}
	if (k->disabled || k->invalid) {
		*why = "invalid";
		return 0;
	}
	for (gpgme_user_id_t u = k->uids; u != NULL; u = u->next)
		if (!u->revoked && !u->invalid && u->email != NULL && strcasecmp(u->email, addr) == 0)
			uid_ok = 1;
	if (!uid_ok) {
		*why = "no user id for the address";
		return 0;
	}
	for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next) {
		if (s->revoked || s->expired || s->disabled || s->invalid || !s->can_encrypt ||
		    expired_at(s->expires, now))
			continue;
		enc_ok = 1;
		if (s->expires == 0 || s->expires > exp)
			exp = s->expires == 0 ? 0 : s->expires;
		if (s->expires == 0)
			break;
	}
	if (!enc_ok) {
		*why = "no valid encryption subkey";
		return 0;
	}
	if (k->subkeys->expires > 0 && (exp == 0 || k->subkeys->expires < exp))
		exp = k->subkeys->expires;
	*expires = exp;
	return 1;
}

/* Writes data to KEYRING/mailward-found/FPR.pgp (a temporary file renamed). */
static int store_key(const struct mp_keysrc *ks, const char *fpr, const unsigned char *data, size_t len,
		     struct mw_buf *path, struct mw_buf *err)
{
	struct mw_buf tmp = MW_BUF_INIT;
	mw_buf_setf(path, "%s/%s/%s.pgp", ks->c.keyring, FOUND_DIR, fpr);
	mw_buf_printf(&tmp, "%s.%lx.tmp", mw_buf_str(path), (unsigned long)pthread_self());
	int fd = open(mw_buf_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = -1;
	if (fd >= 0) {
		size_t off = 0;
		while (off < len) {
			ssize_t w = write(fd, data + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break;
			off += (size_t)w;
		}
		if (off == len && close(fd) == 0 && rename(mw_buf_str(&tmp), mw_buf_str(path)) == 0)
			rc = 0;
		else if (off != len)
			close(fd);
	}
	if (rc < 0) {
		mw_buf_printf(err, "cannot store the key in %s: %s", mw_buf_str(path), strerror(errno));
		(void)unlink(mw_buf_str(&tmp));
	}
	mw_buf_free(&tmp);
	return rc;
}

static void forget(const struct mp_keysrc *ks, const char *fpr)
{
	struct mw_buf path = MW_BUF_INIT;
	if (fpr == NULL || strchr(fpr, '/') != NULL)
		return;
	mw_buf_printf(&path, "%s/%s/%s.pgp", ks->c.keyring, FOUND_DIR, fpr);
	(void)unlink(mw_buf_str(&path));
	mw_buf_free(&path);
}

/*
 * The best usable key for addr in data (a WKD reply or OPENPGPKEY rdata):
 * 1 and the key stored (out FOUND), 0 none usable (out->detail says why),
 * -1 gpg failed (temporary).
 */
static int choose(struct mp_keysrc *ks, const char *addr, const unsigned char *data, size_t len,
		  const char *source, struct mp_key_found *out, long *expires_r)
{
	struct mp_keyblock kb[MP_MAX_KEYBLOCKS];
	const char *why = "";
	int n = mp_pgp_keyblocks(data, len, kb, MP_MAX_KEYBLOCKS, &why);
	if (n < 0) {
		mw_buf_setf(&out->detail, "%s: not OpenPGP keys (%s)", source, why);
		return 0;
	}
	gpgme_ctx_t ctx;
	gpgme_error_t e = gpgme_new(&ctx);
	if (e == 0)
		e = gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, NULL, ks->c.gpg_home);
	if (e != 0) {
		if (e != 0 && ctx != NULL)
			gpgme_release(ctx);
		mw_buf_setf(&out->detail, "%s: GPGME: %s", source, gpgme_strerror(e));
		return -1;
	}
	gpgme_set_offline(ctx, 1);
	int best = -1, rc = 0;
	long best_time = -1, best_exp = 0;
	char fpr[MP_FPR_MAX + 1] = "";
	const char *last_why = "no key";
	for (int i = 0; i < n && rc >= 0; i++) {
		gpgme_data_t d;
		gpgme_key_t k;
		if ((e = gpgme_data_new_from_mem(&d, (const char *)data + kb[i].off, kb[i].len, 0)) != 0) {
			rc = -1;
			break;
		}
		e = gpgme_op_keylist_from_data_start(ctx, d, 0);
		while (e == 0 && (e = gpgme_op_keylist_next(ctx, &k)) == 0) {
			long exp = 0;
			const char *w = "";
			if (mp_keysrc_usable_for(k, addr, &exp, &w)) {
				long t = 0;
				for (gpgme_subkey_t s = k->subkeys; s != NULL; s = s->next)
					if (s->can_encrypt && s->timestamp > t)
						t = s->timestamp;
				if (t > best_time && k->fpr != NULL && strlen(k->fpr) <= MP_FPR_MAX) {
					best = i;
					best_time = t;
					best_exp = exp;
					snprintf(fpr, sizeof(fpr), "%s", k->fpr);
				}
			} else {
				last_why = w;
				/* a key found before and now revoked or expired: gone for good */
				forget(ks, k->fpr);
			}
			gpgme_key_unref(k);
		}
		gpgme_op_keylist_end(ctx);
		gpgme_data_release(d);
		if (gpgme_err_code(e) != GPG_ERR_EOF) {
			rc = -1;
			mw_buf_setf(&out->detail, "%s: gpg cannot read the key: %s", source, gpgme_strerror(e));
		}
	}
	gpgme_release(ctx);
	if (rc < 0)
		return -1;
	if (best < 0) {
		mw_buf_setf(&out->detail, "%s: no usable key (%s)", source, last_why);
		return 0;
	}
	if (store_key(ks, fpr, data + kb[best].off, kb[best].len, &out->path, &out->detail) < 0)
		return -1;
	out->state = MP_KEY_FOUND;
	snprintf(out->fpr, sizeof(out->fpr), "%s", fpr);
	snprintf(out->source, sizeof(out->source), "%s", source);
	*expires_r = best_exp;
	return 1;
}

/* ------------------------------------------------------------ sources */

/* 1 the name has an address, 0 it has none, -1 temporary failure. */
static int has_address(struct mp_keysrc *ks, const char *host, struct mw_dns_budget *budget, struct mw_buf *err)
{
	static const int types[] = { MW_DNS_T_A, MW_DNS_T_AAAA };
	int none = 0;
	for (size_t i = 0; i < 2; i++) {
		struct mw_dns_result res;
		enum mw_dns_status st = mw_dns_lookup(ks->dns, host, types[i], budget, &res);
		if (st == MW_DNS_OK) {
			mw_dns_result_free(&res);
			return 1;
		}
		if (st == MW_DNS_NXDOMAIN) {
			mw_dns_result_free(&res);
			return 0;
		}
		if (mw_dns_status_is_temporary(st)) {
			mw_buf_setf(err, "%s: DNS %s %s", host, mw_dns_status_name(st), res.error);
			mw_dns_result_free(&res);
			return -1;
		}
		none++;
		mw_dns_result_free(&res);
	}
	return 0;
}

/* 1 found, 0 none, -1 failed (out->detail). */
static int from_wkd(struct mp_keysrc *ks, const char *addr, const struct timespec *deadline,
		    struct mp_key_found *out, long *expires)
{
	struct mw_buf ah = MW_BUF_INIT, ap = MW_BUF_INIT, dh = MW_BUF_INIT, dp = MW_BUF_INIT;
	struct mw_buf body = MW_BUF_INIT, err = MW_BUF_INIT;
	struct mw_dns_budget budget;
	const char *why = "";
	int rc = -1;
	if (mp_wkd_urls(addr, &ah, &ap, &dh, &dp, &why) < 0) {
		mw_buf_setf(&out->detail, "wkd: %s", why);
		rc = 0;
		goto out;
	}
	long long left = ms_left(deadline);
	if (left <= 0) {
		mw_buf_set(&out->detail, "wkd: out of time");
		goto out;
	}
	mw_dns_budget_start(ks->dns, &budget, (unsigned)left);
	int adv = has_address(ks, mw_buf_str(&ah), &budget, &err);
	const char *host = adv ? mw_buf_str(&ah) : mw_buf_str(&dh);
	const char *path = adv ? mw_buf_str(&ap) : mw_buf_str(&dp);
	const char *method = adv ? "wkd-advanced" : "wkd-direct";
	if (adv < 0) {
		mw_buf_setf(&out->detail, "wkd: %s", mw_buf_str(&err));
		goto out;
	}
	if (!adv) {
		int direct = has_address(ks, host, &budget, &err);
		if (direct <= 0) {
			if (direct < 0)
				mw_buf_setf(&out->detail, "wkd: %s", mw_buf_str(&err));
			else
				mw_buf_setf(&out->detail, "wkd: neither %s nor %s has an address", mw_buf_str(&ah), host);
			rc = direct < 0 ? -1 : 0;
			goto out;
		}
	}
	if ((left = ms_left(deadline)) <= 0) {
		mw_buf_set(&out->detail, "wkd: out of time");
		goto out;
	}
	struct tlspol_fetch_conf fc = { ks->c.ca_file, (unsigned long long)left, ks->c.max_size, ks->c.port };
	long status = 0;
	mw_buf_init(&body, ks->c.max_size + 1);
	if (tlspol_fetch_https(ks->dns, &fc, host, path, NULL, &status, &body, &err) < 0) {
		mw_buf_setf(&out->detail, "%s: %s", method, mw_buf_str(&err));
		/* the directory answered that it has no such key; or, for the
		   direct method, the domain's web site (often no WKD at all)
		   refused the connection or has a certificate for other names */
		rc = status == 404 || status == 410 || (!adv && status == -1) ? 0 : -1;
		goto out;
	}
	rc = choose(ks, addr, (const unsigned char *)body.data, mw_buf_len(&body), method, out, expires);
out:
	mw_buf_free(&ah);
	mw_buf_free(&ap);
	mw_buf_free(&dh);
	mw_buf_free(&dp);
	mw_buf_free(&body);
	mw_buf_free(&err);
	return rc;
}

static int from_dns(struct mp_keysrc *ks, const char *addr, const struct timespec *deadline,
		    struct mp_key_found *out, long *expires)
{
	struct mw_buf name = MW_BUF_INIT;
	struct mw_dns_budget budget;
	struct mw_dns_result res;
	const char *why = "";
	int rc = -1;
	if (mp_openpgpkey_name(addr, &name, &why) < 0) {
		mw_buf_setf(&out->detail, "openpgpkey: %s", why);
		mw_buf_free(&name);
		return 0;
	}
	long long left = ms_left(deadline);
	if (left <= 0) {
		mw_buf_set(&out->detail, "openpgpkey: out of time");
		mw_buf_free(&name);
		return -1;
	}
	mw_dns_budget_start(ks->dns, &budget, (unsigned)left);
	enum mw_dns_status st = mw_dns_lookup(ks->dns, mw_buf_str(&name), DNS_T_OPENPGPKEY, &budget, &res);
	if (st == MW_DNS_NXDOMAIN || st == MW_DNS_NODATA || st == MW_DNS_BADNAME) {
		mw_buf_setf(&out->detail, "openpgpkey: %s", mw_dns_status_name(st));
		rc = 0;
	} else if (st != MW_DNS_OK) {
		mw_buf_setf(&out->detail, "openpgpkey: DNS %s%s %s", mw_dns_status_name(st),
			    res.security == MW_DNS_BOGUS ? " (DNSSEC bogus)" : "", res.error);
	} else if (res.security != MW_DNS_SECURE) {
		mw_buf_set(&out->detail, "openpgpkey: not DNSSEC-secure, not used");
		rc = 0;
	} else {
		rc = 0;
		mw_buf_set(&out->detail, "openpgpkey: no usable key");
		for (int i = 0; i < res.count && rc == 0; i++) {
			const unsigned char *d;
			size_t n;
			if (mw_dns_result_rdata(&res, i, &d, &n) == 0)
				rc = choose(ks, addr, d, n, "openpgpkey", out, expires);
		}
	}
	mw_dns_result_free(&res);
	mw_buf_free(&name);
	return rc;
}

/* ------------------------------------------------------------ one lookup */

static void lookup(struct mp_keysrc *ks, const char *addr, const struct timespec *deadline, int pin_check,
		   struct mp_key_found *out, long *expires)
{
	struct mw_buf why = MW_BUF_INIT;
	int failed = 0, r = 0;
	out->state = MP_KEY_NONE;
	*expires = 0;
	if (ks->c.wkd) {
		r = from_wkd(ks, addr, deadline, out, expires);
		failed |= r < 0;
		if (r == 0 || r < 0)
			mw_buf_puts(&why, mw_buf_str(&out->detail));
	}
	if (r <= 0 && ks->c.openpgpkey) {
		r = from_dns(ks, addr, deadline, out, expires);
		failed |= r < 0;
		if (r <= 0) {
			if (mw_buf_len(&why) > 0)
				mw_buf_puts(&why, "; ");
			mw_buf_puts(&why, mw_buf_str(&out->detail));
		}
	}
	if (r > 0) {
		mw_buf_reset(&out->detail);
		if (pin_check && ks->c.trust == MP_TRUST_TOFU) {
			char pinned[MP_FPR_MAX + 1] = "";
			struct mw_buf err = MW_BUF_INIT;
			int p = mp_pins_check(ks->c.keyring, addr, out->fpr, pinned, &err);
			if (p < 0) {
				out->state = MP_KEY_FAILED;
				mw_buf_setf(&out->detail, "key pins: %s", mw_buf_str(&err));
			} else if (p == 0) {
				out->state = MP_KEY_FAILED;
				mw_buf_setf(&out->detail,
					    "key changed: pinned %s, %s has %s: refused until milter-pgp-keys accept %s",
					    pinned, out->source, out->fpr, addr);
				mw_msg_warn("key of <%s> changed: pinned %s, %s now has %s: refused until "
					    "\"milter-pgp-keys accept %s\"", addr, pinned, out->source, out->fpr, addr);
			}
			mw_buf_free(&err);
		}
	} else {
		out->state = failed ? MP_KEY_FAILED : MP_KEY_NONE;
		mw_buf_set(&out->detail, mw_buf_str(&why));
	}
	mw_buf_free(&why);
}

void mp_keysrc_lookup(struct mp_keysrc *ks, const char *addr, int pin_check, struct mp_key_found *out)
{
	struct timespec deadline;
	long expires;
	after_ms(&deadline, ks->c.timeout_ms);
	lookup(ks, addr, &deadline, pin_check, out, &expires);
}

/* ------------------------------------------------------------ the cache */

static unsigned hash_addr(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned)(unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 16777619u;
	return h % BUCKETS;
}

static struct entry *find(struct mp_keysrc *ks, const char *addr)
{
	for (struct entry *e = ks->bucket[hash_addr(addr)]; e != NULL; e = e->next)
		if (strcasecmp(e->addr, addr) == 0)
			return e;
	return NULL;
}

static void drop(struct mp_keysrc *ks, struct entry *e)
{
	struct entry **p = &ks->bucket[hash_addr(e->addr)];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	entry_free(e);
	ks->nentries--;
}

/* Past MAX_ENTRIES: every finished entry out of date goes. */
static void sweep(struct mp_keysrc *ks)
{
	for (int i = 0; i < BUCKETS; i++) {
		struct entry *e = ks->bucket[i];
		while (e != NULL) {
			struct entry *next = e->next;
			if (e->state == E_DONE && ms_left(&e->until) <= 0)
				drop(ks, e);
			e = next;
		}
	}
}

struct job {
	struct mp_keysrc *ks;
	struct entry *e;
	char *addr;
	struct timespec deadline;
};

static void *lookup_thread(void *arg)
{
	struct job *j = arg;
	struct mp_keysrc *ks = j->ks;
	struct mp_key_found r;
	long expires = 0;
	mp_key_found_init(&r);
	lookup(ks, j->addr, &j->deadline, 1, &r, &expires);
	if (r.state == MP_KEY_FOUND)
		mw_msg_info("key of <%s>: %s via %s", j->addr, r.fpr, r.source);
	else
		mw_msg_info("key of <%s>: %s: %s", j->addr, r.state == MP_KEY_NONE ? "none" : "lookup failed",
			    mw_buf_str(&r.detail));
	pthread_mutex_lock(&ks->lock);
	struct entry *e = j->e;
	found_copy(&e->r, &r);
	e->key_expires = expires;
	e->state = E_DONE;
	after_ms(&e->until, r.state == MP_KEY_FOUND  ? ks->c.ttl_ms
			    : r.state == MP_KEY_NONE ? ks->c.negative_ttl_ms
			    : (ks->c.negative_ttl_ms < FAILURE_TTL_MS ? ks->c.negative_ttl_ms : FAILURE_TTL_MS));
	ks->running--;
	pthread_cond_broadcast(&ks->done);
	pthread_mutex_unlock(&ks->lock);
	mp_key_found_free(&r);
	free(j->addr);
	free(j);
	mp_keysrc_unref(ks);
	return NULL;
}

/* Under ks->lock: the entry of addr, a lookup started when needed. */
static struct entry *start(struct mp_keysrc *ks, const char *addr)
{
	struct entry *e = find(ks, addr);
	if (e != NULL && (e->state == E_RUNNING || ms_left(&e->until) > 0))
		return e;
	if (e != NULL)
		drop(ks, e);
	if (ks->nentries >= MAX_ENTRIES)
		sweep(ks);
	e = mw_xcalloc(1, sizeof(*e));
	e->addr = mw_xstrdup(addr);
	mp_key_found_init(&e->r);
	after_ms(&e->deadline, ks->c.timeout_ms);
	unsigned h = hash_addr(addr);
	e->next = ks->bucket[h];
	ks->bucket[h] = e;
	ks->nentries++;
	pthread_t t;
	pthread_attr_t attr;
	struct job *j = mw_xcalloc(1, sizeof(*j));
	*j = (struct job){ ks, e, mw_xstrdup(addr), e->deadline };
	int ok = ks->running < MAX_RUNNING && ks->nentries <= MAX_ENTRIES;
	if (ok) {
		atomic_fetch_add(&ks->refs, 1);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ok = pthread_create(&t, &attr, lookup_thread, j) == 0;
		pthread_attr_destroy(&attr);
		if (!ok)
			atomic_fetch_sub(&ks->refs, 1);
	}
	if (ok) {
		e->state = E_RUNNING;
		ks->running++;
	} else {
		/* not cached: the next message tries again */
		free(j->addr);
		free(j);
		e->state = E_DONE;
		e->r.state = MP_KEY_FAILED;
		mw_buf_set(&e->r.detail, "too many key lookups at once");
		clock_gettime(CLOCK_MONOTONIC, &e->until);
	}
	return e;
}

void mp_keysrc_prefetch(struct mp_keysrc *ks, const char *addr)
{
	pthread_mutex_lock(&ks->lock);
	(void)start(ks, addr);
	pthread_mutex_unlock(&ks->lock);
}

void mp_keysrc_get(struct mp_keysrc *ks, const char *addr, struct mp_key_found *out)
{
	pthread_mutex_lock(&ks->lock);
	struct entry *e = start(ks, addr);
	struct timespec deadline = e->deadline;
	/* the lookup bounds itself by its deadline; a little room for the
	   thread to finish what it was doing when time ran out */
	deadline.tv_sec += 1;
	int timed_out = 0;
	while (e->state == E_RUNNING && !timed_out) {
		struct timespec abs;
		long long left = ms_left(&deadline);
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &abs);
		abs.tv_sec += (time_t)(left / 1000);
		abs.tv_nsec += (long)(left % 1000) * 1000000L;
		if (abs.tv_nsec >= 1000000000L) {
			abs.tv_sec++;
			abs.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ks->done, &ks->lock, &abs);
		e = find(ks, addr); /* the entry stays while RUNNING; found again for safety */
		if (e == NULL)
			break;
	}
	if (e == NULL || timed_out) {
		out->state = MP_KEY_FAILED;
		mw_buf_set(&out->detail, "key lookup timed out");
	} else {
		found_copy(out, &e->r);
		if (out->state == MP_KEY_FOUND && expired_at(e->key_expires, time(NULL))) {
			out->state = MP_KEY_NONE;
			mw_buf_setf(&out->detail, "%s: the key %s has expired", e->r.source, e->r.fpr);
		}
	}
	pthread_mutex_unlock(&ks->lock);
}
