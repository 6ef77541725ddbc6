/*
 * tlspol_policy: the admin's policy file (policy_file = FILE), the first
 * rule tlspolicyd applies. One entry a line, as in Postfix's own
 * smtp_tls_policy_maps tables:
 *
 *   # DESTINATION       POLICY [ATTRIBUTES]
 *   example.com         encrypt
 *   .example.com        may                        <- every subdomain
 *   bank.example        secure match=.bank.example
 *   [relay.example]:587 verify
 *
 * DESTINATION is a domain (exact), .domain (its subdomains, any depth) or
 * a Postfix next hop in brackets. POLICY is one of none, may, encrypt,
 * dane, dane-only, fingerprint, verify, secure; ATTRIBUTES are Postfix's
 * (match=, ciphers=, protocols=, exclude=, servername=, connection_reuse=,
 * tafile=). Everything is checked at load: an error is "file:line: what",
 * and the file is refused as a whole.
 *
 * Memory: a struct tlspol_policy owns its entries; tlspol_policy_free().
 * Lookups return pointers valid until then.
 */
#ifndef TLSPOL_POLICY_H
#define TLSPOL_POLICY_H

#include <stddef.h>

#include "buf.h"

#define TLSPOL_POLICY_MAX_LINE 4096
#define TLSPOL_POLICY_MAX_ENTRIES 1000000
#define TLSPOL_POLICY_MAX_FILE (64 * 1024 * 1024)

struct tlspol_policy_entry {
	char *dest;      /* lowercased; ".example.com" for subdomains */
	char *policy;    /* "secure match=..." as Postfix gets it */
	unsigned line;
};

struct tlspol_policy {
	struct tlspol_policy_entry *v; /* sorted by dest */
	size_t n;
	char *path;
};

/* Parses text; name is used in errors ("name:line: ..."). 0 or -1 with err. */
int tlspol_policy_parse(struct tlspol_policy *p, const char *name, const char *text, size_t len,
			struct mw_buf *err);
int tlspol_policy_load(struct tlspol_policy *p, const char *path, struct mw_buf *err);
void tlspol_policy_free(struct tlspol_policy *p);

/* The entry for dest (already lowercased): the exact entry, else the
   nearest ".parent" entry. NULL when none applies. */
const struct tlspol_policy_entry *tlspol_policy_lookup(const struct tlspol_policy *p, const char *dest);

/*
 * Checks one Postfix TLS policy ("encrypt", "secure match=a:b"), the form
 * used in the file and for default_policy. 0 or -1 with err.
 */
int tlspol_policy_check(const char *policy, struct mw_buf *err);

/* Lowercases and checks a destination as Postfix sends it: a domain, or
   [host] / [host]:port. 0, or -1 if it is no such thing. */
int tlspol_dest_normalize(const char *in, size_t len, struct mw_buf *out);

#endif
