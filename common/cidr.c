#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "strnum.h"

int mw_cidr_parse(const char *text, size_t len, struct mw_cidr *out, struct mw_buf *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(text, '/', len);
	size_t hl = slash != NULL ? (size_t)(slash - text) : len;

	memset(out, 0, sizeof(*out));
	if (hl == 0 || hl >= sizeof(host)) {
		mw_buf_printf(err, "bad network \"%.*s\"", (int)len, text);
		return -1;
	}
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		out->prefix = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		out->prefix = 128;
	} else {
		mw_buf_printf(err, "\"%s\" is not an IP address", host);
		return -1;
	}
	if (slash != NULL) {
		unsigned long long p;
		if (mw_parse_uint_n(slash + 1, len - hl - 1, out->prefix, &p) < 0) {
			mw_buf_printf(err, "bad prefix length in \"%.*s\"", (int)len, text);
			return -1;
		}
		out->prefix = (unsigned)p;
	}
	/* Keep only the network part, so that 10.1.2.3/8 means 10.0.0.0/8. */
	unsigned bytes = out->family == AF_INET ? 4 : 16;
	for (unsigned i = 0; i < bytes; i++) {
		unsigned bit = i * 8;
		if (bit >= out->prefix)
			out->addr[i] = 0;
		else if (out->prefix - bit < 8)
			out->addr[i] &= (unsigned char)(0xff << (8 - (out->prefix - bit)));
	}
	return 0;
}

int mw_cidr_list_add(struct mw_cidr_list *list, const char *text, struct mw_buf *err)
{
	const char *p = text;
	while (*p != '\0') {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (n == 0)
			break;
		struct mw_cidr net;
		if (mw_cidr_parse(p, n, &net, err) < 0)
			return -1;
		struct mw_cidr *nets = realloc(list->nets, (list->n + 1) * sizeof(*nets));
		if (nets == NULL) {
			mw_buf_puts(err, "out of memory");
			return -1;
		}
		list->nets = nets;
		list->nets[list->n++] = net;
		p += n;
	}
	return 0;
}

void mw_cidr_list_free(struct mw_cidr_list *list)
{
	free(list->nets);
	list->nets = NULL;
	list->n = 0;
}

int mw_cidr_match(const struct mw_cidr *net, int family, const unsigned char *addr)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (family == AF_INET6 && net->family == AF_INET && memcmp(addr, mapped, 12) == 0) {
		family = AF_INET;
		addr += 12;
	}
	if (family != net->family)
		return 0;
	unsigned full = net->prefix / 8, rest = net->prefix % 8;
	if (memcmp(addr, net->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (addr[full] & mask) == net->addr[full];
}

int mw_cidr_list_match_text(const struct mw_cidr_list *list, const char *text)
{
	unsigned char addr[16];
	int family;
	if (inet_pton(AF_INET, text, addr) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, text, addr) == 1)
		family = AF_INET6;
	else
		return -1;
	for (size_t i = 0; i < list->n; i++)
		if (mw_cidr_match(&list->nets[i], family, addr))
			return 1;
	return 0;
}
