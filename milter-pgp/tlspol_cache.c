#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strnum.h"
#include "tlspol_cache.h"
#include "tlspol_decide.h"

#define NBUCKETS 4096

struct node {
	struct node *next;
	struct tlspol_cache_entry e;
};

struct tlspol_cache {
	pthread_mutex_t mu;
	struct node *b[NBUCKETS];
	size_t n, max;
};

static unsigned hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

struct tlspol_cache *tlspol_cache_new(size_t max_entries)
{
	struct tlspol_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	c->max = max_entries;
	return c;
}

void tlspol_cache_entry_free(struct tlspol_cache_entry *e)
{
	tlspol_sts_policy_free(&e->policy);
}

void tlspol_cache_free(struct tlspol_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct node *n = c->b[i];
		while (n != NULL) {
			struct node *next = n->next;
			tlspol_cache_entry_free(&n->e);
			free(n);
			n = next;
		}
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static int entry_copy(struct tlspol_cache_entry *dst, const struct tlspol_cache_entry *src)
{
	*dst = *src;
	return tlspol_sts_policy_copy(&dst->policy, &src->policy);
}

int tlspol_cache_get(struct tlspol_cache *c, const char *domain, struct tlspol_cache_entry *out)
{
	int found = 0;
	pthread_mutex_lock(&c->mu);
	for (struct node *n = c->b[hash(domain)]; n != NULL; n = n->next) {
		if (strcmp(n->e.domain, domain) == 0) {
			found = entry_copy(out, &n->e) == 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

/* Called with the lock held. */
static void drop_expired(struct tlspol_cache *c)
{
	time_t now = time(NULL);
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct node **pp = &c->b[i];
		while (*pp != NULL) {
			struct node *n = *pp;
			if (n->e.expires <= now) {
				*pp = n->next;
				tlspol_cache_entry_free(&n->e);
				free(n);
				c->n--;
			} else {
				pp = &n->next;
			}
		}
	}
}

int tlspol_cache_put(struct tlspol_cache *c, const struct tlspol_cache_entry *e)
{
	struct tlspol_cache_entry copy;
	if (entry_copy(&copy, e) < 0)
		return -1;
	int rc = -1;
	pthread_mutex_lock(&c->mu);
	unsigned h = hash(e->domain);
	for (struct node *n = c->b[h]; n != NULL; n = n->next) {
		if (strcmp(n->e.domain, e->domain) == 0) {
			tlspol_cache_entry_free(&n->e);
			n->e = copy;
			rc = 0;
			goto out;
		}
	}
	if (c->n >= c->max)
		drop_expired(c);
	if (c->n < c->max) {
		struct node *n = malloc(sizeof(*n));
		if (n != NULL) {
			/* at the tail: the file lists entries in a stable order */
			struct node **tail = &c->b[h];
			while (*tail != NULL)
				tail = &(*tail)->next;
			n->e = copy;
			n->next = NULL;
			*tail = n;
			c->n++;
			rc = 0;
		}
	}
out:
	pthread_mutex_unlock(&c->mu);
	if (rc < 0)
		tlspol_cache_entry_free(&copy);
	return rc;
}

size_t tlspol_cache_take_due(struct tlspol_cache *c, time_t now, time_t refresh_s, time_t retry_s,
			     char (*out)[256], size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < NBUCKETS && n < max; i++) {
		for (struct node *e = c->b[i]; e != NULL && n < max; e = e->next) {
			if (!tlspol_sts_refresh_due(&e->e, now, refresh_s, retry_s))
				continue;
			e->e.attempted = now;
			memcpy(out[n++], e->e.domain, sizeof(e->e.domain));
		}
	}
	pthread_mutex_unlock(&c->mu);
	return n;
}

int tlspol_cache_claim_refresh(struct tlspol_cache *c, const char *domain, time_t now, time_t retry_s)
{
	int claimed = 0;
	pthread_mutex_lock(&c->mu);
	for (struct node *n = c->b[hash(domain)]; n != NULL; n = n->next) {
		if (strcmp(n->e.domain, domain) == 0) {
			if (n->e.attempted == 0 || now - n->e.attempted >= retry_s) {
				n->e.attempted = now;
				claimed = 1;
			}
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return claimed;
}

size_t tlspol_cache_count(struct tlspol_cache *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* Splits a line into at most max space-separated words. */
static int split(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return -1;
		w[n++] = t;
	}
	return n;
}

static int parse_line(char *line, struct tlspol_cache_entry *e)
{
	char *w[7];
	memset(e, 0, sizeof(*e));
	if (split(line, w, 7) != 7)
		return -1;
	struct mw_buf err = MW_BUF_INIT, text = MW_BUF_INIT;
	unsigned long long fetched, expires;
	int rc = -1;
	size_t dl = strlen(w[0]), il = strlen(w[1]);
	if (dl == 0 || dl >= sizeof(e->domain) || il == 0 || il > TLSPOL_STS_ID_MAX)
		goto out;
	for (size_t i = 0; i < il; i++)
		if (!((w[1][i] >= 'a' && w[1][i] <= 'z') || (w[1][i] >= 'A' && w[1][i] <= 'Z') ||
		      (w[1][i] >= '0' && w[1][i] <= '9')))
			goto out;
	for (size_t i = 0; i < dl; i++)
		if (!((w[0][i] >= 'a' && w[0][i] <= 'z') || (w[0][i] >= '0' && w[0][i] <= '9') || w[0][i] == '-' ||
		      w[0][i] == '.' || w[0][i] == '_'))
			goto out;
	if (mw_parse_uint(w[2], (unsigned long long)INT64_MAX / 2, &fetched) < 0 ||
	    mw_parse_uint(w[3], (unsigned long long)INT64_MAX / 2, &expires) < 0)
		goto out;
	/* the policy goes through the same parser as a fetched one */
	mw_buf_printf(&text, "version: STSv1\nmode: %s\nmax_age: %s\n", w[4], w[5]);
	if (strcmp(w[6], "-") != 0) {
		char *save = NULL;
		for (char *m = strtok_r(w[6], ",", &save); m != NULL; m = strtok_r(NULL, ",", &save))
			mw_buf_printf(&text, "mx: %s\n", m);
	}
	if (mw_buf_failed(&text) || tlspol_sts_policy_parse(mw_buf_str(&text), mw_buf_len(&text), &e->policy, &err) < 0)
		goto out;
	memcpy(e->domain, w[0], dl + 1);
	memcpy(e->id, w[1], il + 1);
	e->fetched = (time_t)fetched;
	e->expires = (time_t)expires;
	rc = 0;
out:
	mw_buf_free(&err);
	mw_buf_free(&text);
	return rc;
}

int tlspol_cache_parse(struct tlspol_cache *c, const char *text, size_t len, size_t *bad)
{
	size_t nbad = 0, pos = 0;
	char line[TLSPOL_CACHE_MAX_LINE];
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - pos;
		pos += ll + (nl != NULL);
		if (ll == 0 || l[0] == '#')
			continue;
		int ctl = 0;
		for (size_t k = 0; k < ll && !ctl; k++)
			ctl = (unsigned char)l[k] < ' ' || (unsigned char)l[k] >= 0x7f;
		if (ll >= sizeof(line) || ctl) {
			nbad++;
			continue;
		}
		memcpy(line, l, ll);
		line[ll] = '\0';
		struct tlspol_cache_entry e;
		if (parse_line(line, &e) < 0) {
			nbad++;
			continue;
		}
		if (tlspol_cache_put(c, &e) < 0)
			nbad++;
		tlspol_cache_entry_free(&e);
	}
	if (bad != NULL)
		*bad = nbad;
	return 0;
}

void tlspol_cache_format(struct tlspol_cache *c, struct mw_buf *out)
{
	mw_buf_puts(out, "# tlspolicyd MTA-STS cache 1\n");
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < NBUCKETS; i++) {
		for (struct node *n = c->b[i]; n != NULL; n = n->next) {
			const struct tlspol_cache_entry *e = &n->e;
			mw_buf_printf(out, "%s %s %lld %lld %s %llu ", e->domain, e->id, (long long)e->fetched,
				      (long long)e->expires, tlspol_sts_mode_name(e->policy.mode), e->policy.max_age);
			for (int k = 0; k < e->policy.nmx; k++)
				mw_buf_printf(out, "%s%s", k ? "," : "", e->policy.mx[k]);
			mw_buf_puts(out, e->policy.nmx ? "\n" : "-\n");
		}
	}
	pthread_mutex_unlock(&c->mu);
}

int tlspol_cache_load(struct tlspol_cache *c, const char *path, size_t *bad, struct mw_buf *err)
{
	if (bad != NULL)
		*bad = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct mw_buf text;
	mw_buf_init(&text, 256 * 1024 * 1024);
	char chunk[65536];
	ssize_t r;
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || mw_buf_append(&text, chunk, (size_t)r) < 0) {
			mw_buf_printf(err, "%s: %s", path, r < 0 ? strerror(errno) : "too large");
			close(fd);
			mw_buf_free(&text);
			return -1;
		}
	}
	close(fd);
	tlspol_cache_parse(c, mw_buf_str(&text), mw_buf_len(&text), bad);
	mw_buf_free(&text);
	return 0;
}

static pthread_mutex_t save_mu = PTHREAD_MUTEX_INITIALIZER;

static int save_locked(struct tlspol_cache *c, const char *path, struct mw_buf *err);

/* One writer at a time: they share the temporary file's name. */
int tlspol_cache_save(struct tlspol_cache *c, const char *path, struct mw_buf *err)
{
	pthread_mutex_lock(&save_mu);
	int rc = save_locked(c, path, err);
	pthread_mutex_unlock(&save_mu);
	return rc;
}

static int save_locked(struct tlspol_cache *c, const char *path, struct mw_buf *err)
{
	struct mw_buf text = MW_BUF_INIT, tmp = MW_BUF_INIT;
	tlspol_cache_format(c, &text);
	mw_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	if (mw_buf_failed(&text) || mw_buf_failed(&tmp)) {
		mw_buf_printf(err, "%s: out of memory", path);
		goto fail;
	}
	int fd = open(mw_buf_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		mw_buf_printf(err, "%s: %s", mw_buf_str(&tmp), strerror(errno));
		goto fail;
	}
	size_t off = 0;
	while (off < text.len) {
		ssize_t w = write(fd, text.data + off, text.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			mw_buf_printf(err, "%s: %s", mw_buf_str(&tmp), strerror(errno));
			close(fd);
			unlink(mw_buf_str(&tmp));
			goto fail;
		}
		off += (size_t)w;
	}
	int synced = fsync(fd), closed = close(fd);
	if (synced < 0 || closed < 0) {
		mw_buf_printf(err, "%s: %s", mw_buf_str(&tmp), strerror(errno));
		unlink(mw_buf_str(&tmp));
		goto fail;
	}
	if (rename(mw_buf_str(&tmp), path) < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		unlink(mw_buf_str(&tmp));
		goto fail;
	}
	mw_buf_free(&text);
	mw_buf_free(&tmp);
	return 0;
fail:
	mw_buf_free(&text);
	mw_buf_free(&tmp);
	return -1;
}
