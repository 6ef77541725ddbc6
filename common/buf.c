#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void mw_buf_init(struct mw_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : MW_BUF_DEFAULT_MAX;
	b->failed = 0;
}

void mw_buf_free(struct mw_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

void mw_buf_wipe(struct mw_buf *b)
{
	if (b->data != NULL) {
		/* volatile so the stores are not elided before free() */
		volatile char *p = b->data;
		for (size_t i = 0; i < b->cap; i++)
			p[i] = 0;
	}
	mw_buf_free(b);
}

/* Makes room for n more bytes plus the NUL; 0 or -1 (sets ->failed). */
static int reserve(struct mw_buf *b, size_t n)
{
	if (b->failed)
		return -1;
	if (n > b->max || b->len > b->max - n) {
		b->failed = 1;
		return -1;
	}
	size_t need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	char *p = realloc(b->data, ncap);
	if (p == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int mw_buf_append(struct mw_buf *b, const void *p, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int mw_buf_puts(struct mw_buf *b, const char *s)
{
	return mw_buf_append(b, s, strlen(s));
}

int mw_buf_putc(struct mw_buf *b, int c)
{
	char ch = (char)c;
	return mw_buf_append(b, &ch, 1);
}

int mw_buf_vprintf(struct mw_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	char small[256];

	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof(small))
		return mw_buf_append(b, small, (size_t)n);
	if (reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int mw_buf_printf(struct mw_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mw_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

int mw_buf_set(struct mw_buf *b, const char *s)
{
	mw_buf_reset(b);
	return mw_buf_puts(b, s);
}

int mw_buf_setf(struct mw_buf *b, const char *fmt, ...)
{
	va_list ap;
	mw_buf_reset(b);
	va_start(ap, fmt);
	int r = mw_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

int mw_buf_append_printable(struct mw_buf *b, const void *p, size_t n, size_t maxlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char tmp[4];
		size_t tl;
		if (c == '\\') {
			tmp[0] = '\\';
			tmp[1] = '\\';
			tl = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			tl = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			tl = 4;
		}
		if (out + tl > maxlen)
			return mw_buf_puts(b, "...");
		if (mw_buf_append(b, tmp, tl) < 0)
			return -1;
		out += tl;
	}
	return b->failed ? -1 : 0;
}

void mw_buf_reset(struct mw_buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void mw_buf_truncate(struct mw_buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

const char *mw_buf_str(const struct mw_buf *b)
{
	return b->data != NULL ? b->data : "";
}

char *mw_buf_steal(struct mw_buf *b)
{
	if (b->failed)
		return NULL;
	if (b->data == NULL) {
		if (reserve(b, 0) < 0)
			return NULL;
		b->data[0] = '\0';
	}
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
