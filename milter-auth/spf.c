/*
 * The SPF engine: libspf2 evaluates records, our DNS layer (below) answers
 * its lookups through common/dns, and checks around it (spf_record.c)
 * correct what libspf2 gets wrong for RFC 7208.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <netinet/in.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "spf.h"
#include "spf_record.h"

struct ma_spf {
	SPF_server_t *server;
	SPF_dns_server_t layer;
	struct mw_dns *dns;
};

/*
 * What one check_host() evaluation carries across libspf2's calls into our
 * DNS layer. libspf2 runs a check on the caller's thread, so a thread-local
 * pointer finds it.
 */
struct check_state {
	struct ma_spf *spf;
	struct mw_dns_budget *budget;
	SPF_request_t *req;
	int lookups;       /* DNS queries made (all of them) */
	int terms;         /* of which for DNS-querying terms (RFC 7208 4.6.4: at most 10) */
	int void_lookups;  /* terms answered NXDOMAIN or NODATA (4.6.4: at most 2) */
	int temp_error;    /* a lookup failed temporarily */
	int perm_error;    /* our own checks found a permanent error */
	int exp_called;    /* libspf2 asked for an explanation (our get_exp) */
	int exp_ok;        /* and we produced one */
	struct mw_buf problem;
	struct mw_buf explanation;
	/* names from MX and PTR answers: their address lookups are part of
	   the same term, not terms of their own */
	char secondary[32][256];
	char secondary_kind[32]; /* 'm' from an MX answer, 'p' from a PTR answer */
	int nsecondary;
	int ip_upper;            /* the client address was written in upper case */
};

static _Thread_local struct check_state *current;

/* ------------------------------------------------------------ DNS layer */

static SPF_dns_rr_t *rr_new(SPF_dns_server_t *layer, const char *domain, ns_type type, int herrno);
static int rr_add(SPF_dns_rr_t *rr, const void *data, size_t len);

/* 0, or 'm' / 'p': the name came from an MX / PTR answer of this check. */
static int is_secondary(const char *name)
{
	if (current == NULL)
		return 0;
	for (int i = 0; i < current->nsecondary; i++)
		if (strcasecmp(current->secondary[i], name) == 0)
			return current->secondary_kind[i];
	return 0;
}

static void add_secondary(const char *name, char kind)
{
	if (current != NULL && current->nsecondary < 32 && strlen(name) < 256) {
		current->secondary_kind[current->nsecondary] = kind;
		memcpy(current->secondary[current->nsecondary++], name, strlen(name) + 1);
	}
}

/* Every SPF record libspf2 is handed is checked against RFC 7208's
   grammar first: libspf2 accepts records the RFC calls errors. */
static int check_record(const char *domain, const struct mw_buf *text)
{
	struct mw_buf why = MW_BUF_INIT;
	int ret = 0;
	if (ma_spf_record_check(text->data, mw_buf_len(text), &why) < 0) {
		ret = -1;
		if (current != NULL && !current->perm_error) {
			current->perm_error = 1;
			mw_buf_reset(&current->problem);
			mw_buf_printf(&current->problem, "SPF record of %s: %s", domain, mw_buf_str(&why));
		}
	}
	mw_buf_free(&why);
	return ret;
}

static int ends_with(const char *s, const char *suffix, size_t *prefix_len)
{
	size_t sl = strlen(s), xl = strlen(suffix);
	if (sl <= xl || strcasecmp(s + sl - xl, suffix) != 0)
		return 0;
	*prefix_len = sl - xl;
	return 1;
}

/* Does name have an address of this family? 1 yes, 0 no, -1 DNS trouble. */
static int has_address(struct ma_spf *spf, const char *name, int v6)
{
	struct mw_dns_result r;
	enum mw_dns_status st = mw_dns_lookup(spf->dns, name, v6 ? MW_DNS_T_AAAA : MW_DNS_T_A,
					      current != NULL ? current->budget : NULL, &r);
	int ret = st == MW_DNS_OK && r.count > 0 ? 1 : mw_dns_status_is_temporary(st) ? -1 : 0;
	mw_dns_result_free(&r);
	return ret;
}

/*
 * The answers to the include: names ma_spf_record_normalize() writes for
 * a/0 and mx/0: "v=spf1 +all" when the domain has an address of the
 * client's family (for mx: an MX host with one), "v=spf1 -all" otherwise,
 * a temporary failure on DNS trouble. NULL when name is not one of ours.
 */
static SPF_dns_rr_t *synthetic(SPF_dns_server_t *layer, struct ma_spf *spf, const char *name)
{
	size_t pl;
	int mx, v6;
	if (ends_with(name, MA_SPF_ANY_A4, &pl)) {
		mx = 0; v6 = 0;
	} else if (ends_with(name, MA_SPF_ANY_A6, &pl)) {
		mx = 0; v6 = 1;
	} else if (ends_with(name, MA_SPF_ANY_MX4, &pl)) {
		mx = 1; v6 = 0;
	} else if (ends_with(name, MA_SPF_ANY_MX6, &pl)) {
		mx = 1; v6 = 1;
	} else {
		return NULL;
	}
	char domain[256];
	snprintf(domain, sizeof(domain), "%.*s", (int)pl, name);
	if (current != NULL)
		current->lookups++, current->terms++; /* the a or mx term itself */
	int found = 0;
	if (!mx) {
		found = has_address(spf, domain, v6);
	} else {
		struct mw_dns_result r;
		struct mw_buf host = MW_BUF_INIT;
		enum mw_dns_status st = mw_dns_lookup(spf->dns, domain, MW_DNS_T_MX,
						      current != NULL ? current->budget : NULL, &r);
		if (mw_dns_status_is_temporary(st))
			found = -1;
		if (r.count > 10 && current != NULL && !current->perm_error) {
			current->perm_error = 1;
			mw_buf_printf(&current->problem, "%s has more than 10 MX records (RFC 7208 4.6.4)", domain);
		}
		for (int i = 0; i < r.count && i < 10 && found == 0; i++) {
			unsigned pref;
			mw_buf_reset(&host);
			if (mw_dns_result_mx(&r, i, &pref, &host) == 0)
				found = has_address(spf, mw_buf_str(&host), v6);
		}
		if (st != MW_DNS_OK && found == 0 && current != NULL && ++current->void_lookups > 2 &&
		    !current->perm_error) {
			current->perm_error = 1;
			mw_buf_set(&current->problem, "more than 2 void lookups (RFC 7208 4.6.4)");
		}
		mw_buf_free(&host);
		mw_dns_result_free(&r);
	}
	if (found < 0) {
		if (current != NULL)
			current->temp_error = 1;
		return rr_new(layer, name, ns_t_txt, TRY_AGAIN);
	}
	SPF_dns_rr_t *rr = rr_new(layer, name, ns_t_txt, NETDB_SUCCESS);
	if (rr != NULL)
		rr_add(rr, found ? "v=spf1 +all" : "v=spf1 -all", 11);
	return rr;
}

static SPF_dns_rr_t *rr_new(SPF_dns_server_t *layer, const char *domain, ns_type type, int herrno)
{
	return SPF_dns_rr_new_init(layer, domain, type, 0, herrno);
}

static int rr_add(SPF_dns_rr_t *rr, const void *data, size_t len)
{
	if (SPF_dns_rr_buf_realloc(rr, rr->num_rr, len + 1) != SPF_E_SUCCESS)
		return -1;
	memcpy(rr->rr[rr->num_rr], data, len);
	((char *)rr->rr[rr->num_rr])[len] = '\0';
	rr->num_rr++;
	return 0;
}

static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *layer, const char *domain, ns_type type,
				  int should_cache)
{
	(void)should_cache;
	struct ma_spf *spf = layer->hook;
	struct mw_dns_result r;
	struct mw_buf text = MW_BUF_INIT;

	/* RFC 7208 3.1: the SPF RR type is not used any more. */
	if (type == ns_t_spf)
		return rr_new(layer, domain, type, NO_DATA);
	if (type == ns_t_txt) {
		SPF_dns_rr_t *syn = synthetic(layer, spf, domain);
		if (syn != NULL)
			return syn;
	}

	enum mw_dns_status st = mw_dns_lookup(spf->dns, domain, type,
					      current != NULL ? current->budget : NULL, &r);
	int term = 0;
	if (current != NULL) {
		/* The first query is the record of the checked domain itself;
		   address lookups of names from MX or PTR answers belong to the
		   mx or ptr term that produced them. */
		term = current->lookups++ > 0 && !is_secondary(domain);
		if (term && ++current->terms > 10 && !current->perm_error) {
			current->perm_error = 1;
			mw_buf_set(&current->problem, "more than 10 DNS-querying terms (RFC 7208 4.6.4)");
		}
	}
	SPF_dns_rr_t *rr;
	switch (st) {
	case MW_DNS_OK:
		break;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		if (current != NULL && term && ++current->void_lookups > 2 && !current->perm_error) {
			current->perm_error = 1;
			mw_buf_set(&current->problem, "more than 2 void lookups (RFC 7208 4.6.4)");
		}
		mw_dns_result_free(&r);
		return rr_new(layer, domain, type, st == MW_DNS_NXDOMAIN ? HOST_NOT_FOUND : NO_DATA);
	case MW_DNS_BADNAME:
		/* RFC 7208 4.3/5: a malformed name is treated as not existing */
		mw_dns_result_free(&r);
		return rr_new(layer, domain, type, HOST_NOT_FOUND);
	default:
		/* RFC 7208 5.5: an error looking up the address of a PTR name
		   skips that name; it does not make the check fail. */
		if (is_secondary(domain) == 'p') {
			mw_dns_result_free(&r);
			return rr_new(layer, domain, type, HOST_NOT_FOUND);
		}
		if (current != NULL) {
			current->temp_error = 1;
			if (mw_buf_len(&current->problem) == 0)
				mw_buf_printf(&current->problem, "DNS %s for %s: %s", mw_dns_status_name(st),
					      domain, r.error);
		}
		mw_dns_result_free(&r);
		return rr_new(layer, domain, type, TRY_AGAIN);
	}

	rr = rr_new(layer, domain, type, NETDB_SUCCESS);
	for (int i = 0; rr != NULL && i < r.count; i++) {
		mw_buf_reset(&text);
		switch (type) {
		case ns_t_a: {
			struct in_addr a;
			if (mw_dns_result_a(&r, i, &a) == 0 &&
			    SPF_dns_rr_buf_realloc(rr, rr->num_rr, sizeof(a)) == SPF_E_SUCCESS)
				rr->rr[rr->num_rr++]->a = a;
			break;
		}
		case ns_t_aaaa: {
			struct in6_addr a6;
			if (mw_dns_result_aaaa(&r, i, &a6) == 0 &&
			    SPF_dns_rr_buf_realloc(rr, rr->num_rr, sizeof(a6)) == SPF_E_SUCCESS)
				rr->rr[rr->num_rr++]->aaaa = a6;
			break;
		}
		case ns_t_mx: {
			unsigned pref;
			if (mw_dns_result_mx(&r, i, &pref, &text) == 0) {
				rr_add(rr, text.data, mw_buf_len(&text));
				add_secondary(mw_buf_str(&text), 'm');
			}
			break;
		}
		case ns_t_ptr:
			/* RFC 7208 4.6.4: names past the 10th are ignored. libspf2
			   makes more than 10 a permerror, and the answer's order is
			   the resolver's (rotated), so it would even vary. */
			if (rr->num_rr >= 10)
				break;
			if (mw_dns_result_ptr(&r, i, &text) == 0) {
				rr_add(rr, text.data, mw_buf_len(&text));
				add_secondary(mw_buf_str(&text), 'p');
			}
			break;
		case ns_t_txt:
			/* A TXT record with a NUL byte cannot be an SPF record, and
			   libspf2 reads C strings: keep it out of its sight. */
			if (mw_dns_result_txt(&r, i, &text) < 0)
				break;
			if (!ma_spf_is_record(text.data, mw_buf_len(&text))) {
				/* not SPF: libspf2 reads C strings, so no NUL bytes */
				if (memchr(mw_buf_str(&text), '\0', mw_buf_len(&text)) == NULL)
					rr_add(rr, mw_buf_str(&text), mw_buf_len(&text));
				break;
			}
			/* An SPF record: checked against RFC 7208's grammar, then
			   rewritten into what libspf2 evaluates correctly. */
			struct mw_buf norm = MW_BUF_INIT;
			if (check_record(domain, &text) == 0 &&
			    ma_spf_record_normalize(text.data, mw_buf_len(&text),
						    current != NULL && current->req->client_ver == AF_INET6, &norm) == 0)
				rr_add(rr, mw_buf_str(&norm), mw_buf_len(&norm));
			else
				rr_add(rr, "v=spf1 ?all", 11); /* the verdict is permerror anyway */
			mw_buf_free(&norm);
			break;
		default:
			break;
		}
	}
	if (rr != NULL && rr->num_rr == 0)
		rr->herrno = NO_DATA;
	/* RFC 7208 4.6.4: an mx term with more than 10 MX records is a permerror */
	if (type == ns_t_mx && rr != NULL && rr->num_rr > 10 && current != NULL && !current->perm_error) {
		current->perm_error = 1;
		mw_buf_printf(&current->problem, "%s has more than 10 MX records (RFC 7208 4.6.4)", domain);
	}
	mw_buf_free(&text);
	mw_dns_result_free(&r);
	return rr;
}


/* The validated domain name of the client (RFC 7208 7.3, %{p}): a PTR name
   whose addresses include the client, or "unknown". */
static void validated_ptr(struct ma_spf *spf, const struct ma_spf_macros *m, char *out, size_t outlen)
{
	char name[128];
	struct mw_dns_result r;
	struct mw_buf host = MW_BUF_INIT;

	snprintf(out, outlen, "unknown");
	if (!m->v6)
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa", m->addr[3], m->addr[2], m->addr[1], m->addr[0]);
	else {
		static const char hex[] = "0123456789abcdef";
		size_t n = 0;
		for (int b = 15; b >= 0; b--)
			n += (size_t)snprintf(name + n, sizeof(name) - n, "%c.%c.", hex[m->addr[b] & 15], hex[m->addr[b] >> 4]);
		snprintf(name + n, sizeof(name) - n, "ip6.arpa");
	}
	if (mw_dns_lookup(spf->dns, name, MW_DNS_T_PTR, current->budget, &r) == MW_DNS_OK) {
		for (int i = 0; i < r.count && i < 10; i++) {
			mw_buf_reset(&host);
			if (mw_dns_result_ptr(&r, i, &host) < 0)
				continue;
			struct mw_dns_result a;
			int type = m->v6 ? MW_DNS_T_AAAA : MW_DNS_T_A;
			if (mw_dns_lookup(spf->dns, mw_buf_str(&host), type, current->budget, &a) == MW_DNS_OK) {
				for (int k = 0; k < a.count; k++) {
					const unsigned char *d;
					size_t len;
					if (mw_dns_result_rdata(&a, k, &d, &len) == 0 && len == (m->v6 ? 16u : 4u) &&
					    memcmp(d, m->addr, len) == 0) {
						snprintf(out, outlen, "%s", mw_buf_str(&host));
						mw_dns_result_free(&a);
						goto done;
					}
				}
			}
			mw_dns_result_free(&a);
		}
	}
done:
	mw_dns_result_free(&r);
	mw_buf_free(&host);
}

static void fill_macros(const SPF_request_t *req, struct ma_spf_macros *m)
{
	memset(m, 0, sizeof(*m));
	m->sender = req->env_from != NULL ? req->env_from : "";
	m->local = req->env_from_lp != NULL ? req->env_from_lp : "postmaster";
	m->sender_domain = req->env_from_dp != NULL ? req->env_from_dp : "";
	m->domain = req->cur_dom != NULL ? req->cur_dom : m->sender_domain;
	m->helo = req->helo_dom != NULL ? req->helo_dom : "";
	m->receiver = req->spf_server->rec_dom;
	m->v6 = req->client_ver == AF_INET6;
	if (m->v6)
		memcpy(m->addr, &req->ipv6, 16);
	else
		memcpy(m->addr, &req->ipv4, 4);
	m->now = time(NULL);
}

/*
 * libspf2 hands us the exp= domain, already expanded; we fetch the TXT
 * record and expand the explanation ourselves (RFC 7208 6.2): libspf2's
 * own expansion turns spaces into '%' and skips macros. Any trouble means
 * the default explanation, as 6.2 says.
 */
static SPF_errcode_t layer_get_exp(SPF_server_t *server, const char *domain, char **bufp, size_t *buflenp)
{
	(void)server;
	if (current == NULL)
		return SPF_E_NOT_CONFIG;
	current->exp_called = 1;
	mw_buf_reset(&current->explanation);

	/* RFC 7208 7.3: a name over 253 characters loses labels on the left */
	const char *name = domain;
	while (strlen(name) > 253 && strchr(name, '.') != NULL)
		name = strchr(name, '.') + 1;
	struct mw_dns_result r;
	struct mw_buf text = MW_BUF_INIT;
	memset(&r, 0, sizeof(r));
	if (ma_spf_domain_is_valid(name) &&
	    mw_dns_lookup(current->spf->dns, name, MW_DNS_T_TXT, current->budget, &r) == MW_DNS_OK &&
	    r.count == 1 && mw_dns_result_txt(&r, 0, &text) == 0) {
		struct ma_spf_macros m;
		char ptr[256];
		fill_macros(current->req, &m);
		m.upper_hex = current->ip_upper;
		if (strstr(mw_buf_str(&text), "%{p") != NULL || strstr(mw_buf_str(&text), "%{P") != NULL) {
			validated_ptr(current->spf, &m, ptr, sizeof(ptr));
			m.ptr = ptr;
		}
		if (memchr(text.data, '\0', mw_buf_len(&text)) == NULL &&
		    ma_spf_expand(text.data, mw_buf_len(&text), 1, &m, &current->explanation) == 0)
			current->exp_ok = 1;
	}
	mw_dns_result_free(&r);
	mw_buf_free(&text);
	/* libspf2 wants something back; ours is read from the state */
	const char *placeholder = current->exp_ok ? mw_buf_str(&current->explanation) : "";
	size_t need = strlen(placeholder) + 1;
	if (*buflenp < need) {
		char *nb = realloc(*bufp, need);
		if (nb == NULL)
			return SPF_E_NO_MEMORY;
		*bufp = nb;
		*buflenp = need;
	}
	memcpy(*bufp, placeholder, need);
	return SPF_E_SUCCESS;
}

static void layer_destroy(SPF_dns_server_t *layer)
{
	(void)layer; /* embedded in struct ma_spf */
}

/* ------------------------------------------------------------ engine */

struct ma_spf *ma_spf_new(struct mw_dns *dns, const char *receiver, struct mw_buf *err)
{
	struct ma_spf *spf = calloc(1, sizeof(*spf));
	if (spf == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	spf->dns = dns;
	spf->layer.destroy = NULL; /* not owned by libspf2's server */
	spf->layer.lookup = layer_lookup;
	spf->layer.get_spf = NULL;
	spf->layer.get_exp = layer_get_exp;
	spf->layer.add_cache = NULL;
	spf->layer.layer_below = NULL;
	spf->layer.name = "mailward";
	spf->layer.hook = spf;
	(void)layer_destroy;
	spf->server = SPF_server_new_dns(&spf->layer, 0);
	if (spf->server == NULL) {
		mw_buf_puts(err, "libspf2: cannot create a server");
		free(spf);
		return NULL;
	}
	if (receiver != NULL && receiver[0] != '\0')
		SPF_server_set_rec_dom(spf->server, receiver);
	return spf;
}

void ma_spf_free(struct ma_spf *spf)
{
	if (spf == NULL)
		return;
	SPF_server_free(spf->server);
	free(spf);
}

void ma_spf_verdict_init(struct ma_spf_verdict *v)
{
	v->result = MA_SPF_NONE;
	mw_buf_init(&v->domain, 1024);
	mw_buf_init(&v->explanation, 4096);
	mw_buf_init(&v->reason, 4096);
}

void ma_spf_verdict_free(struct ma_spf_verdict *v)
{
	mw_buf_free(&v->domain);
	mw_buf_free(&v->explanation);
	mw_buf_free(&v->reason);
}

static enum ma_spf_result map_result(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS: return MA_SPF_PASS;
	case SPF_RESULT_FAIL: return MA_SPF_FAIL;
	case SPF_RESULT_SOFTFAIL: return MA_SPF_SOFTFAIL;
	case SPF_RESULT_NEUTRAL: return MA_SPF_NEUTRAL;
	case SPF_RESULT_NONE: return MA_SPF_NONE;
	case SPF_RESULT_TEMPERROR: return MA_SPF_TEMPERROR;
	case SPF_RESULT_PERMERROR:
	case SPF_RESULT_INVALID: /* libspf2's name for some permanent errors */
	default: return MA_SPF_PERMERROR;
	}
}

enum ma_spf_result ma_spf_check(struct ma_spf *spf, struct mw_dns_budget *budget,
				enum ma_spf_identity which, const char *ip, const char *helo,
				const char *sender, struct ma_spf_verdict *out)
{
	struct check_state st;
	SPF_response_t *resp = NULL;
	SPF_request_t *req;

	memset(&st, 0, sizeof(st));
	st.spf = spf;
	st.budget = budget;
	mw_buf_init(&st.problem, 1024);
	mw_buf_init(&st.explanation, 4096);
	mw_buf_reset(&out->domain);
	mw_buf_reset(&out->explanation);
	mw_buf_reset(&out->reason);

	/* The identity: RFC 7208 2.3 (HELO) and 2.4 (MAIL FROM, or
	   postmaster@HELO for the null sender). */
	struct mw_buf identity = MW_BUF_INIT;
	if (which == MA_SPF_HELO || sender == NULL || sender[0] == '\0')
		mw_buf_printf(&identity, "postmaster@%s", helo != NULL ? helo : "");
	else if (strchr(sender, '@') == NULL)
		mw_buf_printf(&identity, "postmaster@%s", sender);
	else
		mw_buf_puts(&identity, sender);
	const char *domain = strrchr(mw_buf_str(&identity), '@') + 1;
	mw_buf_puts(&out->domain, domain);

	req = SPF_request_new(spf->server);
	if (req == NULL) {
		out->result = MA_SPF_TEMPERROR;
		mw_buf_puts(&out->reason, "out of memory");
		goto done;
	}
	/* RFC 7208 5: an IPv4-mapped IPv6 client (::ffff:a.b.c.d) is an IPv4 client. */
	struct in6_addr a6;
	char v4[INET_ADDRSTRLEN];
	st.ip_upper = strpbrk(ip, "ABCDEF") != NULL;
	if (strchr(ip, ':') != NULL && inet_pton(AF_INET6, ip, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6) &&
	    inet_ntop(AF_INET, &a6.s6_addr[12], v4, sizeof(v4)) != NULL)
		ip = v4;
	int bad_ip = strchr(ip, ':') != NULL ? SPF_request_set_ipv6_str(req, ip)
					     : SPF_request_set_ipv4_str(req, ip);
	if (bad_ip != SPF_E_SUCCESS) {
		out->result = MA_SPF_PERMERROR;
		mw_buf_printf(&out->reason, "bad client address %s", ip);
		goto done;
	}
	SPF_request_set_helo_dom(req, helo != NULL && helo[0] ? helo : domain);
	SPF_request_set_env_from(req, mw_buf_str(&identity));

	/* RFC 7208 4.3: a domain that is not a valid multi-label name gives "none". */
	if (ma_spf_domain_is_valid(domain) == 0) {
		out->result = MA_SPF_NONE;
		mw_buf_printf(&out->reason, "%s is not a valid domain name", domain);
		goto done;
	}

	/*
	 * What SPF_request_query_mailfrom() does, minus its "localhost always
	 * gets a free ride": it would pass any domain's SPF for a client on
	 * 127.0.0.0/8 or ::1. Loopback clients are for trusted_networks to
	 * decide, not the SPF engine.
	 */
	req->use_helo = 0;
	req->cur_dom = req->env_from_dp;
	st.req = req;
	resp = SPF_response_new(req);
	if (resp != NULL) {
		SPF_record_t *record = NULL;
		current = &st;
		SPF_errcode_t err = SPF_server_get_record(spf->server, req, resp, &record);
		if (err == SPF_E_SUCCESS && record != NULL) {
			resp->spf_record_exp = record;
			SPF_record_interpret(record, req, resp, 0);
			resp->spf_record_exp = NULL;
		} else {
			SPF_i_done(resp, resp->result, resp->reason, resp->err);
		}
		if (record != NULL)
			SPF_record_free(record);
		current = NULL;
	}

	out->result = resp != NULL ? map_result(SPF_response_result(resp)) : MA_SPF_TEMPERROR;
	if (st.temp_error && out->result != MA_SPF_PASS && out->result != MA_SPF_FAIL &&
	    out->result != MA_SPF_SOFTFAIL && out->result != MA_SPF_NEUTRAL)
		out->result = MA_SPF_TEMPERROR;
	/* Our own checks (grammar, limits) overrule libspf2's leniency. */
	if (st.perm_error && out->result != MA_SPF_TEMPERROR)
		out->result = MA_SPF_PERMERROR;
	if (out->result == MA_SPF_TEMPERROR || (st.perm_error && out->result == MA_SPF_PERMERROR))
		mw_buf_puts(&out->reason, mw_buf_len(&st.problem) ? mw_buf_str(&st.problem) : "DNS error");
	else if (resp != NULL && SPF_response_get_header_comment(resp) != NULL)
		mw_buf_puts(&out->reason, SPF_response_get_header_comment(resp));
	if (out->result == MA_SPF_FAIL) {
		if (st.exp_ok)
			mw_buf_puts(&out->explanation, mw_buf_str(&st.explanation));
		else
			mw_buf_printf(&out->explanation, "%s is not one of %s's designated mail servers",
				      ip, req->cur_dom != NULL ? req->cur_dom : domain);
	}

done:
	if (resp != NULL)
		SPF_response_free(resp);
	if (req != NULL)
		SPF_request_free(req);
	mw_buf_free(&identity);
	mw_buf_free(&st.problem);
	mw_buf_free(&st.explanation);
	return out->result;
}

const char *ma_spf_result_name(enum ma_spf_result r)
{
	switch (r) {
	case MA_SPF_NONE: return "none";
	case MA_SPF_NEUTRAL: return "neutral";
	case MA_SPF_PASS: return "pass";
	case MA_SPF_FAIL: return "fail";
	case MA_SPF_SOFTFAIL: return "softfail";
	case MA_SPF_TEMPERROR: return "temperror";
	case MA_SPF_PERMERROR: return "permerror";
	}
	return "none";
}
