#include "config.h"

#include <string.h>

#include "tlspol_netstring.h"

enum tlspol_ns_status tlspol_ns_decode(const char *data, size_t len, size_t max,
				       const char **payload, size_t *plen, size_t *consumed)
{
	size_t n = 0, i = 0;
	while (i < len && data[i] >= '0' && data[i] <= '9') {
		if (i == 1 && data[0] == '0')
			return TLSPOL_NS_MALFORMED; /* leading zero */
		n = n * 10 + (size_t)(data[i] - '0');
		if (n > max)
			return TLSPOL_NS_TOOLONG;
		i++;
	}
	if (i == len)
		return TLSPOL_NS_MORE;
	if (i == 0 || data[i] != ':')
		return TLSPOL_NS_MALFORMED;
	i++;
	if (len - i < n + 1)
		return TLSPOL_NS_MORE;
	if (data[i + n] != ',')
		return TLSPOL_NS_MALFORMED;
	*payload = data + i;
	*plen = n;
	*consumed = i + n + 1;
	return TLSPOL_NS_OK;
}

int tlspol_ns_encode(struct mw_buf *out, const char *payload, size_t plen)
{
	mw_buf_printf(out, "%zu:", plen);
	mw_buf_append(out, payload, plen);
	mw_buf_putc(out, ',');
	return mw_buf_failed(out) ? -1 : 0;
}

int tlspol_ns_split_request(const char *payload, size_t plen, const char **name, size_t *nlen,
			    const char **key, size_t *klen)
{
	const char *sp = memchr(payload, ' ', plen);
	if (sp == NULL || sp == payload || (size_t)(sp - payload) + 1 >= plen)
		return -1;
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)payload[i];
		if (c <= ' ' && payload + i != sp)
			return -1;
		if (c >= 0x7f)
			return -1;
	}
	*name = payload;
	*nlen = (size_t)(sp - payload);
	*key = sp + 1;
	*klen = plen - *nlen - 1;
	return 0;
}
