#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "pins.h"
#include "sock.h"

#define PINS "mailward-pins"
#define MAX_PINS_FILE (16u << 20)

static int lock_open(const char *dir, struct mw_buf *err)
{
	struct mw_buf p = MW_BUF_INIT;
	mw_buf_printf(&p, "%s/%s.lock", dir, PINS);
	int fd = open(mw_buf_str(&p), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		mw_buf_printf(err, "%s: %s", mw_buf_str(&p), strerror(errno));
	else if (flock(fd, LOCK_EX) < 0) {
		mw_buf_printf(err, "flock %s: %s", mw_buf_str(&p), strerror(errno));
		close(fd);
		fd = -1;
	}
	mw_buf_free(&p);
	return fd;
}

int mp_pins_read(const char *dir, struct mw_buf *out, struct mw_buf *err)
{
	struct mw_buf p = MW_BUF_INIT;
	mw_buf_printf(&p, "%s/%s", dir, PINS);
	mw_buf_reset(out);
	int rc = mw_sock_read_file(mw_buf_str(&p), out, MAX_PINS_FILE, err);
	mw_buf_free(&p);
	return rc;
}

/* The line of addr in text: its start and length (with the newline), or -1. */
static int find_line(const char *text, const char *addr, size_t *start, size_t *len, char pinned[MP_FPR_MAX + 1],
		     char changed[MP_FPR_MAX + 1])
{
	size_t alen = strlen(addr);
	const char *p = text;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t ll = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
		if (ll > alen && strncasecmp(p, addr, alen) == 0 && p[alen] == ' ') {
			char a[MP_FPR_MAX + 1] = "", b[MP_FPR_MAX + 1] = "";
			const char *f = p + alen + 1;
			size_t n = strcspn(f, " \n");
			if (n > 0 && n <= MP_FPR_MAX) {
				memcpy(a, f, n);
				a[n] = '\0';
				f += n;
				if (*f == ' ') {
					f++;
					size_t m = strcspn(f, " \n");
					if (m <= MP_FPR_MAX) {
						memcpy(b, f, m);
						b[m] = '\0';
					}
				}
				*start = (size_t)(p - text);
				*len = ll;
				if (pinned != NULL)
					memcpy(pinned, a, sizeof(a));
				if (changed != NULL)
					memcpy(changed, b, sizeof(b));
				return 0;
			}
		}
		p += ll;
	}
	return -1;
}

int mp_pins_get(const char *dir, const char *addr, char pinned[MP_FPR_MAX + 1], char changed[MP_FPR_MAX + 1],
		struct mw_buf *err)
{
	struct mw_buf text = MW_BUF_INIT;
	size_t s, l;
	int rc = mp_pins_read(dir, &text, err);
	if (rc == 0)
		rc = find_line(mw_buf_str(&text), addr, &s, &l, pinned, changed) == 0 ? 1 : 0;
	mw_buf_free(&text);
	return rc;
}

/* Under the lock: text with addr's line replaced, written whole. */
static int rewrite(const char *dir, const char *text, const char *addr, const char *pinned, const char *changed,
		   struct mw_buf *err)
{
	struct mw_buf out = MW_BUF_INIT, path = MW_BUF_INIT;
	size_t s, l;
	int rc = -1;
	if (find_line(text, addr, &s, &l, NULL, NULL) == 0) {
		mw_buf_append(&out, text, s);
		mw_buf_puts(&out, text + s + l);
	} else {
		mw_buf_puts(&out, text);
	}
	if (mw_buf_len(&out) > 0 && out.data[mw_buf_len(&out) - 1] != '\n')
		mw_buf_putc(&out, '\n');
	if (pinned != NULL)
		mw_buf_printf(&out, "%s %s%s%s\n", addr, pinned, changed != NULL && changed[0] ? " " : "",
			      changed != NULL ? changed : "");
	mw_buf_printf(&path, "%s/%s", dir, PINS);
	if (mw_buf_failed(&out))
		mw_buf_puts(err, "out of memory");
	else
		rc = mw_sock_write_file(mw_buf_str(&path), out.data, mw_buf_len(&out), err);
	mw_buf_free(&out);
	mw_buf_free(&path);
	return rc;
}

static int valid_addr(const char *addr, struct mw_buf *err)
{
	if (addr[0] == '\0' || strchr(addr, '@') == NULL || strpbrk(addr, " \t\r\n") != NULL) {
		mw_buf_printf(err, "not an address: %s", addr);
		return 0;
	}
	return 1;
}

static void unlock(int lock, struct mw_buf *text)
{
	close(lock);
	mw_buf_free(text);
}

/* For a change to addr's pin: checks addr, takes the lock and reads the file
   into text. The lock's descriptor for unlock(), or -1 with err set and
   nothing held. */
static int lock_read(const char *dir, const char *addr, struct mw_buf *text, struct mw_buf *err)
{
	if (!valid_addr(addr, err))
		return -1;
	int lock = lock_open(dir, err);
	if (lock >= 0 && mp_pins_read(dir, text, err) < 0) {
		unlock(lock, text);
		lock = -1;
	}
	return lock;
}

int mp_pins_set(const char *dir, const char *addr, const char *pinned, const char *changed, struct mw_buf *err)
{
	struct mw_buf text = MW_BUF_INIT;
	int lock = lock_read(dir, addr, &text, err);
	if (lock < 0)
		return -1;
	int rc = rewrite(dir, mw_buf_str(&text), addr, pinned, changed, err);
	unlock(lock, &text);
	return rc;
}

int mp_pins_check(const char *dir, const char *addr, const char *fpr, char pinned[MP_FPR_MAX + 1],
		  struct mw_buf *err)
{
	struct mw_buf text = MW_BUF_INIT;
	char changed[MP_FPR_MAX + 1] = "";
	size_t s, l;
	int lock = lock_read(dir, addr, &text, err);
	if (lock < 0)
		return -1;
	int rc;
	if (find_line(mw_buf_str(&text), addr, &s, &l, pinned, changed) < 0) {
		snprintf(pinned, MP_FPR_MAX + 1, "%s", fpr);
		rc = rewrite(dir, mw_buf_str(&text), addr, fpr, NULL, err) < 0 ? -1 : 1;
	} else if (strcasecmp(pinned, fpr) == 0) {
		rc = 1;
	} else if (strcasecmp(changed, fpr) == 0) {
		rc = 0;
	} else {
		rc = rewrite(dir, mw_buf_str(&text), addr, pinned, fpr, err) < 0 ? -1 : 0;
	}
	unlock(lock, &text);
	return rc;
}
