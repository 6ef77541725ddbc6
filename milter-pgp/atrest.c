#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "atrest.h"
#include "sock.h"

#define ATREST_FILE "mailward-atrest"
#define MAX_ATREST_FILE (16u << 20)
#define MAX_ADDR 512

int mp_atrest_load(const char *dir, struct mp_atrest *a, struct mw_buf *err)
{
	struct mw_buf p = MW_BUF_INIT;
	mw_buf_init(&a->text, MAX_ATREST_FILE + 1);
	mw_buf_printf(&p, "%s/%s", dir, ATREST_FILE);
	int rc = mw_sock_read_file(mw_buf_str(&p), &a->text, MAX_ATREST_FILE, err);
	mw_buf_free(&p);
	return rc;
}

void mp_atrest_free(struct mp_atrest *a)
{
	mw_buf_free(&a->text);
}

/* The address on the line [p, p+n): without blanks, CR and comment. */
static void line_addr(const char *p, size_t n, const char **s, size_t *len)
{
	const char *hash = memchr(p, '#', n);
	if (hash != NULL)
		n = (size_t)(hash - p);
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	*s = p;
	*len = n;
}

static int line_is(const char *p, size_t n, const char *addr)
{
	const char *s;
	size_t len;
	line_addr(p, n, &s, &len);
	return len > 0 && len == strlen(addr) && strncasecmp(s, addr, len) == 0;
}

int mp_atrest_has(const struct mp_atrest *a, const char *addr)
{
	const char *p = mw_buf_str(&a->text), *end = p + mw_buf_len(&a->text);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (line_is(p, n, addr))
			return 1;
		p += n + 1;
	}
	return 0;
}

int mp_atrest_next(const struct mp_atrest *a, size_t *pos, char *out, size_t size)
{
	const char *text = mw_buf_str(&a->text);
	size_t total = mw_buf_len(&a->text);
	while (*pos < total) {
		const char *p = text + *pos, *nl = memchr(p, '\n', total - *pos);
		size_t n = nl != NULL ? (size_t)(nl - p) : total - *pos, len;
		const char *s;
		*pos += n + 1;
		line_addr(p, n, &s, &len);
		if (len > 0 && len < size && memchr(s, '\0', len) == NULL) {
			memcpy(out, s, len);
			out[len] = '\0';
			return 1;
		}
	}
	return 0;
}

static int valid_addr(const char *addr)
{
	size_t n = strlen(addr);
	return n > 2 && n < MAX_ADDR && strchr(addr, '@') != NULL && addr[0] != '@' && addr[n - 1] != '@' &&
	       strpbrk(addr, " \t\r\n#<>") == NULL;
}

/* Under the lock: the list without addr's lines (and with addr when on),
   written whole to a temporary file renamed over the list. */
static int rewrite(const char *dir, const struct mp_atrest *a, const char *addr, int on, struct mw_buf *err)
{
	struct mw_buf out = MW_BUF_INIT, path = MW_BUF_INIT;
	const char *p = mw_buf_str(&a->text), *end = p + mw_buf_len(&a->text);
	int rc = -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (!line_is(p, n, addr)) {
			mw_buf_append(&out, p, n);
			mw_buf_putc(&out, '\n');
		}
		p += n + 1;
	}
	if (on) {
		for (const char *c = addr; *c != '\0'; c++)
			mw_buf_putc(&out, *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c);
		mw_buf_putc(&out, '\n');
	}
	mw_buf_printf(&path, "%s/%s", dir, ATREST_FILE);
	if (mw_buf_failed(&out))
		mw_buf_puts(err, "out of memory");
	else
		rc = mw_sock_write_file(mw_buf_str(&path), out.data, mw_buf_len(&out), err);
	mw_buf_free(&out);
	mw_buf_free(&path);
	return rc;
}

int mp_atrest_set(const char *dir, const char *addr, int on, struct mw_buf *err)
{
	struct mw_buf lockp = MW_BUF_INIT;
	struct mp_atrest a;
	if (!valid_addr(addr)) {
		mw_buf_printf(err, "not an address: %s", addr);
		return -1;
	}
	mw_buf_printf(&lockp, "%s/%s.lock", dir, ATREST_FILE);
	int lock = open(mw_buf_str(&lockp), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		mw_buf_printf(err, "%s: %s", mw_buf_str(&lockp), strerror(errno));
		if (lock >= 0)
			close(lock);
		mw_buf_free(&lockp);
		return -1;
	}
	int rc = mp_atrest_load(dir, &a, err);
	if (rc == 0)
		rc = rewrite(dir, &a, addr, on, err);
	mp_atrest_free(&a);
	close(lock);
	mw_buf_free(&lockp);
	return rc;
}
