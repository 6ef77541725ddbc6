#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milterutil.h"

void mw_milter_client_ip(const struct sockaddr *sa, char *ip, size_t size)
{
	ip[0] = '\0';
	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip, (socklen_t)size);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip, (socklen_t)size);
}

void mw_milter_client_ip_or(const struct sockaddr *sa, const char *client_addr, char *ip, size_t size)
{
	mw_milter_client_ip(sa, ip, size);
	if (ip[0] == '\0')
		snprintf(ip, size, "%s", client_addr != NULL ? client_addr : "");
}

void mw_milter_sender(const char *arg, char *out, size_t size)
{
	out[0] = '\0';
	if (arg == NULL)
		return;
	size_t n = strlen(arg);
	if (n >= 2 && arg[0] == '<' && arg[n - 1] == '>') {
		arg++;
		n -= 2;
	}
	if (n >= size)
		n = size - 1;
	memcpy(out, arg, n);
	out[n] = '\0';
}

void mw_milter_reply_text(const char *in, struct mw_buf *out)
{
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0' && mw_buf_len(out) < 900; p++) {
		if (*p == '%')
			mw_buf_puts(out, "%%");
		else
			mw_buf_putc(out, *p >= 0x20 && *p < 0x7f ? *p : '?');
	}
}

int mw_milter_authserv_id(char **id, struct mw_buf *err)
{
	if ((*id)[0] == '\0') {
		char host[256];
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0') {
			mw_buf_puts(err, "not set and the host name is unknown");
			return -1;
		}
		host[sizeof(host) - 1] = '\0';
		char *copy = strdup(host);
		if (copy == NULL) {
			mw_buf_puts(err, "out of memory");
			return -1;
		}
		free(*id);
		*id = copy;
	}
	for (const char *p = *id; *p != '\0'; p++)
		if (*p <= ' ' || *p == ';' || *p == '(' || *p == '"' || (unsigned char)*p >= 0x7f) {
			mw_buf_printf(err, "\"%s\" is not a valid authserv-id (a host name, without spaces, quotes, "
					   "';' or '(')", *id);
			return -1;
		}
	return 0;
}
