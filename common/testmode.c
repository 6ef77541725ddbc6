#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "daemon.h"
#include "log.h"
#include "testmode.h"

#define BODY_CHUNK 65536

char *mw_test_read_file(const char *path, size_t max, size_t *len)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	struct mw_buf b;
	char chunk[65536];

	if (fd < 0)
		mw_msg_fatal_status(MW_EXIT_CONFIG, "%s: %s", path, strerror(errno));
	mw_buf_init(&b, max);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			mw_msg_fatal_status(MW_EXIT_CONFIG, "%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		if (mw_buf_append(&b, chunk, (size_t)n) < 0)
			mw_msg_fatal_status(MW_EXIT_CONFIG, "%s: larger than %zu bytes", path, max);
	}
	if (fd != STDIN_FILENO)
		close(fd);
	*len = mw_buf_len(&b);
	if (*len == 0)
		mw_buf_puts(&b, ""); /* a buffer even for an empty file */
	return mw_buf_steal(&b);
}

void mw_test_feed_message(const char *text, size_t len, const struct mw_test_feed *f)
{
	size_t pos = 0;
	struct mw_buf name = MW_BUF_INIT, value = MW_BUF_INIT, body = MW_BUF_INIT;
	int have = 0;

	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t next = pos + ll + (nl != NULL);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll > 0 && (line[0] == ' ' || line[0] == '\t') && have) {
			mw_buf_puts(&value, "\r\n");
			mw_buf_append(&value, line, ll);
			pos = next;
			continue;
		}
		if (have) {
			f->header(f->ctx, mw_buf_str(&name), mw_buf_str(&value));
			have = 0;
		}
		const char *colon = memchr(line, ':', ll);
		if (ll == 0 || colon == NULL || colon == line) {
			if (ll == 0)
				pos = next; /* the blank line itself is not body */
			break;
		}
		mw_buf_set(&name, "");
		mw_buf_append(&name, line, (size_t)(colon - line));
		while (mw_buf_len(&name) > 0 && (name.data[mw_buf_len(&name) - 1] == ' ' ||
						  name.data[mw_buf_len(&name) - 1] == '\t'))
			mw_buf_truncate(&name, mw_buf_len(&name) - 1);
		mw_buf_set(&value, "");
		mw_buf_append(&value, colon + 1, ll - (size_t)(colon + 1 - line));
		have = 1;
		pos = next;
	}
	if (have)
		f->header(f->ctx, mw_buf_str(&name), mw_buf_str(&value));
	f->eoh(f->ctx);
	/* The body, with CRLF line ends as on the wire. */
	mw_buf_init(&body, (size_t)BODY_CHUNK * 2 + 16);
	for (size_t i = pos; i < len; i++) {
		if (text[i] == '\n' && (i == pos || text[i - 1] != '\r'))
			mw_buf_putc(&body, '\r');
		mw_buf_putc(&body, text[i]);
		if (mw_buf_len(&body) >= BODY_CHUNK) {
			f->body(f->ctx, (const unsigned char *)body.data, mw_buf_len(&body));
			mw_buf_reset(&body);
		}
	}
	if (mw_buf_len(&body) > 0)
		f->body(f->ctx, (const unsigned char *)body.data, mw_buf_len(&body));
	mw_buf_free(&name);
	mw_buf_free(&value);
	mw_buf_free(&body);
}

void mw_test_print_folded(const char *prefix, const char *value)
{
	fputs(prefix, stdout);
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n') {
			while (p[1] == '\t' || p[1] == ' ')
				p++;
			putchar(' ');
			continue;
		}
		putchar(*p);
	}
	putchar('\n');
}

void mw_test_strip_brackets(const char *addr, char *out, size_t size)
{
	size_t n = strlen(addr);
	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>')
		snprintf(out, size, "%.*s", (int)(n - 2), addr + 1);
	else
		snprintf(out, size, "%s", addr);
}
