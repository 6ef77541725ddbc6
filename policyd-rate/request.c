#include "config.h"

#include <stdint.h>
#include <string.h>

#include "request.h"
#include "strnum.h"

void pr_request_init(struct pr_request *r)
{
	memset(r, 0, sizeof(*r));
	mw_buf_init(&r->text, PR_MAX_REQUEST + PR_MAX_LINE);
}

void pr_request_reset(struct pr_request *r)
{
	struct mw_buf text = r->text;
	memset(r, 0, sizeof(*r));
	r->text = text;
	mw_buf_reset(&r->text);
}

void pr_request_free(struct pr_request *r)
{
	mw_buf_free(&r->text);
}

const char *pr_domain_of(const char *addr)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	return at != NULL ? at + 1 : "";
}

static const char *const wanted[] = {
	"request", "protocol_state", "client_address", "client_name", "helo_name", "sender",
	"recipient", "sasl_username", "queue_id", "instance", "recipient_count", "size",
};

/* Called once the request is complete: every line "name=value\0" is in
   text; point the fields at the values. */
static int index_request(struct pr_request *r, struct mw_buf *err)
{
	const char **fields[] = {
		&r->request, &r->protocol_state, &r->client_address, &r->client_name, &r->helo_name,
		&r->sender, &r->recipient, &r->sasl_username, &r->queue_id, &r->instance,
	};
	size_t pos = 0, len = mw_buf_len(&r->text);
	const char *t = r->text.data;
	r->nattrs = 0;
	while (pos < len) {
		const char *line = t + pos;
		size_t ll = strlen(line); /* lines were NUL-terminated by feed */
		pos += ll + 1;
		const char *eq = memchr(line, '=', ll);
		if (eq == NULL || eq == line) {
			mw_buf_puts(err, "attribute without \"name=\"");
			return -1;
		}
		size_t nl = (size_t)(eq - line);
		r->nattrs++;
		for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
			if (strlen(wanted[i]) != nl || memcmp(wanted[i], line, nl) != 0)
				continue;
			if (i < sizeof(fields) / sizeof(fields[0])) {
				*fields[i] = eq + 1;
			} else {
				unsigned long long v = 0;
				if (eq[1] != '\0' && mw_parse_uint(eq + 1, UINT64_MAX, &v) < 0) {
					mw_buf_printf(err, "%s is not a number", wanted[i]);
					return -1;
				}
				if (i == 10)
					r->recipient_count = v;
				else
					r->size = v;
			}
		}
	}
	return 0;
}

enum pr_parse_status pr_request_feed(struct pr_request *r, const char *data, size_t len, size_t *used,
				     struct mw_buf *err)
{
	size_t i = 0;
	*used = 0;
	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t chunk = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
		/* the current line: from the last NUL (or start) to the end */
		size_t line_start = mw_buf_len(&r->text);
		while (line_start > 0 && r->text.data[line_start - 1] != '\0')
			line_start--;
		size_t line_len = mw_buf_len(&r->text) - line_start + chunk;
		if (line_len > PR_MAX_LINE) {
			mw_buf_printf(err, "line longer than %d bytes", PR_MAX_LINE);
			return PR_BAD;
		}
		if (memchr(data + i, '\0', chunk) != NULL) {
			mw_buf_puts(err, "NUL byte in a request");
			return PR_BAD;
		}
		if (mw_buf_append(&r->text, data + i, chunk) < 0 || mw_buf_len(&r->text) > PR_MAX_REQUEST) {
			mw_buf_printf(err, "request larger than %d bytes", PR_MAX_REQUEST);
			return PR_BAD;
		}
		i += chunk;
		if (nl == NULL)
			break; /* a partial line: wait for more */
		i++; /* the newline */
		size_t end = mw_buf_len(&r->text);
		if (end > line_start && r->text.data[end - 1] == '\r')
			mw_buf_truncate(&r->text, --end); /* tolerate CRLF */
		if (end == line_start) {
			/* an empty line: the request is complete */
			*used = i;
			if (mw_buf_len(&r->text) == 0) {
				mw_buf_puts(err, "empty request");
				return PR_BAD;
			}
			return index_request(r, err) < 0 ? PR_BAD : PR_COMPLETE;
		}
		mw_buf_putc(&r->text, '\0');
		if (++r->nattrs > PR_MAX_ATTRS) {
			mw_buf_printf(err, "more than %d attributes", PR_MAX_ATTRS);
			return PR_BAD;
		}
	}
	*used = len;
	return PR_NEED_MORE;
}
