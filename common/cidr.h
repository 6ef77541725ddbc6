/*
 * cidr: lists of IPv4/IPv6 networks ("127.0.0.0/8 ::1 192.0.2.7"), and
 * whether an address is in one. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * matches IPv4 networks. No allocation beyond the list itself (owned by the
 * caller: mw_cidr_list_free()).
 */
#ifndef MW_CIDR_H
#define MW_CIDR_H

#include <netinet/in.h>
#include <stddef.h>

#include "buf.h"

struct mw_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct mw_cidr_list {
	struct mw_cidr *nets;
	size_t n;
};

/* One "address[/prefix]"; 0, or -1 with a message in err. */
int mw_cidr_parse(const char *text, size_t len, struct mw_cidr *out, struct mw_buf *err);
/* Appends every network of a space/comma separated list; 0 or -1 (err). */
int mw_cidr_list_add(struct mw_cidr_list *list, const char *text, struct mw_buf *err);
void mw_cidr_list_free(struct mw_cidr_list *list);

/* Text form of an address ("192.0.2.1", "2001:db8::1"): 1 if in the list,
   0 if not, -1 if it is not an address. */
int mw_cidr_list_match_text(const struct mw_cidr_list *list, const char *addr);
int mw_cidr_match(const struct mw_cidr *net, int family, const unsigned char *addr);

#endif
