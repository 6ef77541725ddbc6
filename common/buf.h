/*
 * buf: the one growable byte buffer used everywhere instead of char[]
 * arithmetic.
 *
 * A struct mw_buf is a handle the caller owns (usually embedded in another
 * struct or on the stack); its storage is owned by the buffer and released by
 * mw_buf_free(). The handle stays valid across appends; only ->data moves.
 * The contents are always NUL-terminated (mw_buf_str() never returns NULL),
 * and may also hold NUL bytes (->len is authoritative).
 *
 * Errors are sticky and never fatal, so the PAM module can use this too:
 * an append that would pass the buffer's maximum, overflow size_t or fail to
 * allocate leaves the contents unchanged, sets ->failed and returns -1. Check
 * once after a run of appends with mw_buf_failed().
 */
#ifndef MW_BUF_H
#define MW_BUF_H

#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define MW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MW_PRINTF(fmt, args)
#endif

/* Default hard maximum: nothing in mailward needs a larger single buffer. */
#define MW_BUF_DEFAULT_MAX ((size_t)64 * 1024 * 1024)

struct mw_buf {
	char *data;   /* NULL until the first append; use mw_buf_str() */
	size_t len;   /* bytes used, excluding the terminating NUL */
	size_t cap;   /* bytes allocated */
	size_t max;   /* hard limit on len */
	int failed;   /* sticky: an append was refused */
};

#define MW_BUF_INIT { NULL, 0, 0, MW_BUF_DEFAULT_MAX, 0 }

/* max == 0 means MW_BUF_DEFAULT_MAX. */
void mw_buf_init(struct mw_buf *b, size_t max);
void mw_buf_free(struct mw_buf *b);
/* Like mw_buf_free(), but overwrites the storage first (secrets). */
void mw_buf_wipe(struct mw_buf *b);

int mw_buf_append(struct mw_buf *b, const void *p, size_t n);
int mw_buf_puts(struct mw_buf *b, const char *s);
int mw_buf_putc(struct mw_buf *b, int c);
int mw_buf_printf(struct mw_buf *b, const char *fmt, ...) MW_PRINTF(2, 3);
int mw_buf_vprintf(struct mw_buf *b, const char *fmt, va_list ap) MW_PRINTF(2, 0);
/* Replaces the contents (and clears ->failed). */
int mw_buf_set(struct mw_buf *b, const char *s);
int mw_buf_setf(struct mw_buf *b, const char *fmt, ...) MW_PRINTF(2, 3);

/*
 * Appends at most maxlen bytes of p with every byte that is not printable
 * ASCII written as \xHH (and backslash as \\), then "..." when cut short:
 * the form in which untrusted text reaches a log or an SMTP reply.
 */
int mw_buf_append_printable(struct mw_buf *b, const void *p, size_t n, size_t maxlen);

void mw_buf_reset(struct mw_buf *b);        /* empty, clears ->failed */
void mw_buf_truncate(struct mw_buf *b, size_t len);
const char *mw_buf_str(const struct mw_buf *b);
static inline size_t mw_buf_len(const struct mw_buf *b) { return b->len; }
static inline int mw_buf_failed(const struct mw_buf *b) { return b->failed; }
/* Hands the storage to the caller (free() it); the buffer becomes empty.
   Returns NULL if the buffer failed. Never returns NULL for an empty buffer. */
char *mw_buf_steal(struct mw_buf *b);

#endif
