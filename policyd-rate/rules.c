#include "config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "rules.h"
#include "strnum.h"

static const struct {
	const char *name;
	enum pr_key_kind kind;
} key_names[] = {
	{ "sasl_username", PR_KEY_SASL_USERNAME }, { "sender", PR_KEY_SENDER },
	{ "sender_domain", PR_KEY_SENDER_DOMAIN }, { "client_address", PR_KEY_CLIENT_ADDRESS },
	{ "client_network", PR_KEY_CLIENT_NETWORK }, { "recipient_domain", PR_KEY_RECIPIENT_DOMAIN },
	{ "global", PR_KEY_GLOBAL },
};

const char *pr_key_kind_name(enum pr_key_kind k)
{
	for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
		if (key_names[i].kind == k)
			return key_names[i].name;
	return "?";
}

int pr_windows_parse(const char *text, size_t len, struct pr_window *w, int *nw, struct mw_buf *err)
{
	size_t pos = 0;
	*nw = 0;
	while (pos < len) {
		size_t n = 0;
		while (pos + n < len && text[pos + n] != ',')
			n++;
		const char *item = text + pos;
		const char *slash = memchr(item, '/', n);
		if (slash == NULL) {
			mw_buf_printf(err, "limit \"%.*s\": expected COUNT/PERIOD such as 250/1h", (int)n, item);
			return -1;
		}
		if (*nw >= PR_MAX_WINDOWS) {
			mw_buf_printf(err, "at most %d limits per rule", PR_MAX_WINDOWS);
			return -1;
		}
		unsigned long long count, ms;
		char period[32];
		size_t pl = n - (size_t)(slash + 1 - item);
		if (pl == 0 || pl >= sizeof(period)) {
			mw_buf_printf(err, "limit \"%.*s\": bad period", (int)n, item);
			return -1;
		}
		memcpy(period, slash + 1, pl);
		period[pl] = '\0';
		if (mw_parse_uint_n(item, (size_t)(slash - item), 1000000000ULL, &count) < 0 || count == 0) {
			mw_buf_printf(err, "limit \"%.*s\": the count must be a whole number from 1", (int)n, item);
			return -1;
		}
		/* "1h", "30m", "1d", "1w"; a bare unit means one of it */
		char with_one[34];
		if (period[0] < '0' || period[0] > '9') {
			snprintf(with_one, sizeof(with_one), "1%s", period);
		} else {
			snprintf(with_one, sizeof(with_one), "%s", period);
		}
		if (mw_parse_duration_ms(with_one, 366ULL * 86400000ULL, &ms) < 0 || ms < 1000) {
			mw_buf_printf(err, "limit \"%.*s\": the period must be a duration from 1s to 366d "
				      "(such as 1m, 1h, 1d)", (int)n, item);
			return -1;
		}
		w[*nw].limit = count;
		w[*nw].period_ms = ms;
		(*nw)++;
		pos += n + 1;
	}
	if (*nw == 0) {
		mw_buf_puts(err, "no limit given");
		return -1;
	}
	return 0;
}

static int parse_keys(struct pr_rule *r, const char *v, size_t len, struct mw_buf *err)
{
	size_t pos = 0;
	if (len == 0) {
		mw_buf_puts(err, "key= is empty");
		return -1;
	}
	while (pos < len) {
		size_t n = 0;
		while (pos + n < len && v[pos + n] != '|')
			n++;
		const char *k = v + pos;
		if (r->nkeys >= PR_MAX_KEYS) {
			mw_buf_printf(err, "at most %d keys", PR_MAX_KEYS);
			return -1;
		}
		int found = 0;
		for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++) {
			size_t kl = strlen(key_names[i].name);
			if (n >= kl && memcmp(k, key_names[i].name, kl) == 0 &&
			    (n == kl || (key_names[i].kind == PR_KEY_CLIENT_NETWORK && k[kl] == '/'))) {
				r->keys[r->nkeys++] = key_names[i].kind;
				found = 1;
				if (key_names[i].kind == PR_KEY_CLIENT_NETWORK) {
					/* client_network/24 or /24//64 */
					unsigned long long p4 = 24, p6 = 64;
					const char *c = k + kl, *end = k + n;
					if (c < end) {
						const char *dd = NULL;
						for (const char *q = c + 1; q + 1 < end; q++)
							if (q[0] == '/' && q[1] == '/')
								dd = q;
						size_t l4 = (size_t)((dd != NULL ? dd : end) - (c + 1));
						if ((l4 > 0 && mw_parse_uint_n(c + 1, l4, 32, &p4) < 0) ||
						    (dd != NULL && mw_parse_uint_n(dd + 2, (size_t)(end - dd - 2), 128, &p6) < 0)) {
							mw_buf_puts(err, "client_network wants /N (IPv4 prefix) and optionally //M (IPv6)");
							return -1;
						}
					}
					r->prefix4 = (unsigned)p4;
					r->prefix6 = (unsigned)p6;
				}
				break;
			}
		}
		if (!found) {
			mw_buf_printf(err, "unknown key \"%.*s\" (sasl_username, sender, sender_domain, "
				      "client_address, client_network/N, recipient_domain, global)", (int)n, k);
			return -1;
		}
		pos += n + 1;
	}
	return 0;
}

static int parse_rule(const char *text, struct pr_rule *out, struct mw_buf *err)
{
	out->prefix4 = 24;
	out->prefix6 = 64;
	const char *colon = strchr(text, ':');
	const char *sp = strchr(text, ' ');
	if (colon == NULL || (sp != NULL && sp < colon) || colon == text ||
	    (size_t)(colon - text) >= sizeof(out->name)) {
		mw_buf_puts(err, "expected \"NAME: key=... limit=...\"");
		return -1;
	}
	memcpy(out->name, text, (size_t)(colon - text));
	for (char *c = out->name; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '_' || *c == '.')) {
			mw_buf_printf(err, "bad rule name \"%s\"", out->name);
			return -1;
		}
	const char *p = colon + 1;
	int have_key = 0;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, " \t");
		const char *eq = memchr(p, '=', n);
		if (eq == NULL) {
			mw_buf_printf(err, "expected field=value, got \"%.*s\"", (int)n, p);
			return -1;
		}
		size_t fl = (size_t)(eq - p);
		const char *v = eq + 1;
		size_t vl = n - fl - 1;
#define FIELD(name) (fl == sizeof(name) - 1 && memcmp(p, name, fl) == 0)
#define VALUE(word) (vl == sizeof(word) - 1 && memcmp(v, word, vl) == 0)
		if (FIELD("key")) {
			if (parse_keys(out, v, vl, err) < 0)
				return -1;
			have_key = 1;
		} else if (FIELD("limit")) {
			if (pr_windows_parse(v, vl, out->windows, &out->nwindows, err) < 0)
				return -1;
		} else if (FIELD("count")) {
			if (VALUE("messages"))
				out->count = PR_COUNT_MESSAGES;
			else if (VALUE("recipients"))
				out->count = PR_COUNT_RECIPIENTS;
			else if (VALUE("bytes"))
				out->count = PR_COUNT_BYTES;
			else {
				mw_buf_printf(err, "count=%.*s: expected messages, recipients or bytes", (int)vl, v);
				return -1;
			}
		} else if (FIELD("action")) {
			if (VALUE("defer"))
				out->action = PR_ACTION_DEFER;
			else if (VALUE("reject"))
				out->action = PR_ACTION_REJECT;
			else if (VALUE("hold"))
				out->action = PR_ACTION_HOLD;
			else {
				mw_buf_printf(err, "action=%.*s: expected defer, reject or hold", (int)vl, v);
				return -1;
			}
		} else if (FIELD("match")) {
			if (VALUE("any"))
				out->match = PR_MATCH_ANY;
			else if (VALUE("authenticated"))
				out->match = PR_MATCH_AUTHENTICATED;
			else if (VALUE("unauthenticated"))
				out->match = PR_MATCH_UNAUTHENTICATED;
			else {
				mw_buf_printf(err, "match=%.*s: expected any, authenticated or unauthenticated",
					      (int)vl, v);
				return -1;
			}
		} else if (FIELD("networks")) {
			char list[1024];
			if (vl >= sizeof(list)) {
				mw_buf_puts(err, "networks: list too long");
				return -1;
			}
			memcpy(list, v, vl);
			list[vl] = '\0';
			if (mw_cidr_list_add(&out->networks, list, err) < 0)
				return -1;
		} else {
			mw_buf_printf(err, "unknown field \"%.*s\" (key, limit, count, action, match, networks)",
				      (int)fl, p);
			return -1;
		}
#undef FIELD
#undef VALUE
		p += n;
	}
	if (!have_key) {
		mw_buf_puts(err, "key= is missing");
		return -1;
	}
	if (out->nwindows == 0) {
		mw_buf_puts(err, "limit= is missing");
		return -1;
	}
	return 0;
}

int pr_rule_parse(const char *text, struct pr_rule *out, struct mw_buf *err)
{
	memset(out, 0, sizeof(*out));
	if (parse_rule(text, out, err) < 0) {
		pr_rule_free(out);
		return -1;
	}
	return 0;
}

void pr_rule_free(struct pr_rule *r)
{
	mw_cidr_list_free(&r->networks);
}

static void lower_append(struct mw_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		mw_buf_putc(b, *s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
}

static int network_key(const char *addr, unsigned p4, unsigned p6, struct mw_buf *key)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	int family = inet_pton(AF_INET, addr, a) == 1 ? AF_INET : inet_pton(AF_INET6, addr, a) == 1 ? AF_INET6 : 0;
	if (family == 0)
		return -1;
	unsigned prefix = family == AF_INET ? p4 : p6;
	unsigned bytes = family == AF_INET ? 4 : 16;
	for (unsigned i = 0; i < bytes; i++) {
		unsigned bit = i * 8;
		if (bit >= prefix)
			a[i] = 0;
		else if (prefix - bit < 8)
			a[i] &= (unsigned char)(0xff << (8 - (prefix - bit)));
	}
	inet_ntop(family, a, text, sizeof(text));
	mw_buf_printf(key, "%s/%u", text, prefix);
	return 0;
}

int pr_rule_key(const struct pr_rule *r, const struct pr_request *req, struct mw_buf *key,
		enum pr_key_kind *kind_used)
{
	int authenticated = req->sasl_username != NULL && req->sasl_username[0] != '\0';
	if ((r->match == PR_MATCH_AUTHENTICATED && !authenticated) ||
	    (r->match == PR_MATCH_UNAUTHENTICATED && authenticated))
		return -1;
	if (r->networks.n > 0 && (req->client_address == NULL ||
				  mw_cidr_list_match_text(&r->networks, req->client_address) != 1))
		return -1;
	for (int i = 0; i < r->nkeys; i++) {
		const char *v = NULL;
		mw_buf_reset(key);
		switch (r->keys[i]) {
		case PR_KEY_SASL_USERNAME: v = req->sasl_username; break;
		case PR_KEY_SENDER: v = req->sender; break;
		case PR_KEY_SENDER_DOMAIN: v = req->sender != NULL ? pr_domain_of(req->sender) : NULL; break;
		case PR_KEY_CLIENT_ADDRESS: v = req->client_address; break;
		case PR_KEY_RECIPIENT_DOMAIN: v = req->recipient != NULL ? pr_domain_of(req->recipient) : NULL; break;
		case PR_KEY_GLOBAL: v = "*"; break;
		case PR_KEY_CLIENT_NETWORK:
			if (req->client_address != NULL &&
			    network_key(req->client_address, r->prefix4, r->prefix6, key) == 0) {
				*kind_used = r->keys[i];
				return 0;
			}
			continue;
		}
		if (v == NULL || v[0] == '\0')
			continue;
		lower_append(key, v);
		*kind_used = r->keys[i];
		return mw_buf_failed(key) ? -1 : 0;
	}
	return -1;
}

unsigned long long pr_rule_cost(const struct pr_rule *r, const struct pr_request *req)
{
	unsigned long long c = 1;
	if (r->count == PR_COUNT_RECIPIENTS && req->recipient_count > 0)
		c = req->recipient_count;
	else if (r->count == PR_COUNT_BYTES && req->size > 0)
		c = req->size;
	return c;
}

void pr_window_describe(const struct pr_window *w, enum pr_count count, struct mw_buf *out)
{
	static const struct {
		unsigned long long ms;
		const char *one, *many;
	} units[] = {
		{ 604800000ULL, "week", "weeks" }, { 86400000ULL, "day", "days" },
		{ 3600000ULL, "hour", "hours" }, { 60000ULL, "minute", "minutes" }, { 1000ULL, "second", "seconds" },
	};
	const char *what = count == PR_COUNT_MESSAGES ? "messages" : count == PR_COUNT_RECIPIENTS ? "recipients" : "bytes";
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (w->period_ms % units[i].ms == 0) {
			unsigned long long n = w->period_ms / units[i].ms;
			if (n == 1)
				mw_buf_printf(out, "%llu %s per %s", w->limit, what, units[i].one);
			else
				mw_buf_printf(out, "%llu %s per %llu %s", w->limit, what, n, units[i].many);
			return;
		}
	}
	mw_buf_printf(out, "%llu %s per %llu ms", w->limit, what, w->period_ms);
}

/* ------------------------------------------------------------ overrides */

static int cmp_override(const void *a, const void *b);

void pr_overrides_free(struct pr_overrides *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->items[i].key);
	free(o->items);
	o->items = NULL;
	o->n = 0;
}

int pr_overrides_parse(const char *path, const char *text, size_t len, struct pr_overrides *out,
		       struct mw_buf *err)
{
	size_t pos = 0;
	unsigned lineno = 0;
	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += ll + 1;
		lineno++;
		/* fields: KEY RULE LIMITS|exempt, # comments */
		const char *f[4];
		size_t fl[4];
		int nf = 0;
		size_t i = 0;
		while (i < ll && nf < 4) {
			while (i < ll && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
				i++;
			if (i >= ll || line[i] == '#')
				break;
			f[nf] = line + i;
			while (i < ll && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
				i++;
			fl[nf] = (size_t)(line + i - f[nf]);
			nf++;
		}
		while (i < ll && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			i++;
		if (nf == 0)
			continue;
		if (nf != 3 || (i < ll && line[i] != '#')) {
			mw_buf_printf(err, "%s:%u: expected KEY RULE LIMITS (or exempt)", path, lineno);
			pr_overrides_free(out);
			return -1;
		}
		if (fl[1] >= sizeof(out->items[0].rule) || memchr(f[0], '\0', fl[0]) != NULL) {
			mw_buf_printf(err, "%s:%u: rule name too long", path, lineno);
			pr_overrides_free(out);
			return -1;
		}
		/* "kind:value": the kind must be one a rule key can have (a bare
		   IPv6 address has no such prefix) */
		const char *kc = memchr(f[0], ':', fl[0]);
		if (kc != NULL && kc - f[0] > 4 && strspn(f[0], "abcdefghijklmnopqrstuvwxyz_") == (size_t)(kc - f[0])) {
			int known = 0;
			for (size_t k = 0; k < sizeof(key_names) / sizeof(key_names[0]); k++)
				known |= strlen(key_names[k].name) == (size_t)(kc - f[0]) &&
					 memcmp(key_names[k].name, f[0], (size_t)(kc - f[0])) == 0;
			if (!known) {
				mw_buf_printf(err, "%s:%u: unknown kind \"%.*s\" (sasl_username, sender, sender_domain, "
					      "client_address, client_network, recipient_domain)", path, lineno,
					      (int)(kc - f[0]), f[0]);
				pr_overrides_free(out);
				return -1;
			}
		}
		struct pr_override o;
		memset(&o, 0, sizeof(o));
		memcpy(o.rule, f[1], fl[1]);
		if (fl[2] == 6 && memcmp(f[2], "exempt", 6) == 0) {
			o.exempt = 1;
		} else {
			struct mw_buf why = MW_BUF_INIT;
			if (pr_windows_parse(f[2], fl[2], o.windows, &o.nwindows, &why) < 0) {
				mw_buf_printf(err, "%s:%u: %s", path, lineno, mw_buf_str(&why));
				mw_buf_free(&why);
				pr_overrides_free(out);
				return -1;
			}
			mw_buf_free(&why);
		}
		o.key = malloc(fl[0] + 1);
		struct pr_override *items = realloc(out->items, (out->n + 1) * sizeof(*items));
		if (o.key == NULL || items == NULL) {
			free(o.key);
			if (items != NULL)
				out->items = items;
			mw_buf_puts(err, "out of memory");
			pr_overrides_free(out);
			return -1;
		}
		for (size_t k = 0; k < fl[0]; k++)
			o.key[k] = f[0][k] >= 'A' && f[0][k] <= 'Z' ? (char)(f[0][k] - 'A' + 'a') : f[0][k];
		o.key[fl[0]] = '\0';
		out->items = items;
		out->items[out->n++] = o;
	}
	if (out->n > 1)
		qsort(out->items, out->n, sizeof(*out->items), cmp_override);
	return 0;
}

static int cmp_override(const void *a, const void *b)
{
	return strcmp(((const struct pr_override *)a)->key, ((const struct pr_override *)b)->key);
}

/* Sorted by key once, found by binary search: an overrides file may list
   every user of a large provider. */
const struct pr_override *pr_overrides_find(const struct pr_overrides *o, const char *rule, const char *key)
{
	size_t lo = 0, hi = o->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(o->items[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct pr_override *any = NULL;
	for (size_t i = lo; i < o->n && strcmp(o->items[i].key, key) == 0; i++) {
		if (strcmp(o->items[i].rule, rule) == 0)
			return &o->items[i];
		if (strcmp(o->items[i].rule, "*") == 0)
			any = &o->items[i];
	}
	return any;
}
