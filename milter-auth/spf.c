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
	struct mw_dns_budget *budget;
	int lookups;       /* DNS queries made (all of them) */
	int void_lookups;  /* NXDOMAIN or NODATA answers (RFC 7208 4.6.4: at most 2) */
	int temp_error;    /* a lookup failed temporarily */
	int perm_error;    /* our own record check found a permanent error */
	struct mw_buf problem;
};

static _Thread_local struct check_state *current;

/* ------------------------------------------------------------ DNS layer */

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

	enum mw_dns_status st = mw_dns_lookup(spf->dns, domain, type,
					      current != NULL ? current->budget : NULL, &r);
	if (current != NULL)
		current->lookups++;
	SPF_dns_rr_t *rr;
	switch (st) {
	case MW_DNS_OK:
		break;
	case MW_DNS_NXDOMAIN:
	case MW_DNS_NODATA:
		if (current != NULL)
			current->void_lookups++;
		mw_dns_result_free(&r);
		return rr_new(layer, domain, type, st == MW_DNS_NXDOMAIN ? HOST_NOT_FOUND : NO_DATA);
	case MW_DNS_BADNAME:
		/* RFC 7208 4.3/5: a malformed name is treated as not existing */
		mw_dns_result_free(&r);
		return rr_new(layer, domain, type, HOST_NOT_FOUND);
	default:
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
			if (mw_dns_result_mx(&r, i, &pref, &text) == 0)
				rr_add(rr, text.data, mw_buf_len(&text));
			break;
		}
		case ns_t_ptr:
			if (mw_dns_result_ptr(&r, i, &text) == 0)
				rr_add(rr, text.data, mw_buf_len(&text));
			break;
		case ns_t_txt:
			/* A TXT record with a NUL byte cannot be an SPF record, and
			   libspf2 reads C strings: keep it out of its sight. */
			if (mw_dns_result_txt(&r, i, &text) == 0 && memchr(mw_buf_str(&text), '\0', mw_buf_len(&text)) == NULL)
				rr_add(rr, mw_buf_str(&text), mw_buf_len(&text));
			break;
		default:
			break;
		}
	}
	if (rr != NULL && rr->num_rr == 0)
		rr->herrno = NO_DATA;
	mw_buf_free(&text);
	mw_dns_result_free(&r);
	return rr;
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
	spf->layer.get_exp = NULL;
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
	st.budget = budget;
	mw_buf_init(&st.problem, 1024);
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

	current = &st;
	SPF_request_query_mailfrom(req, &resp);
	current = NULL;

	out->result = resp != NULL ? map_result(SPF_response_result(resp)) : MA_SPF_TEMPERROR;
	if (st.temp_error && out->result != MA_SPF_PASS && out->result != MA_SPF_FAIL &&
	    out->result != MA_SPF_SOFTFAIL && out->result != MA_SPF_NEUTRAL)
		out->result = MA_SPF_TEMPERROR;
	if (out->result == MA_SPF_TEMPERROR)
		mw_buf_puts(&out->reason, mw_buf_len(&st.problem) ? mw_buf_str(&st.problem) : "DNS error");
	else if (resp != NULL && SPF_response_get_header_comment(resp) != NULL)
		mw_buf_puts(&out->reason, SPF_response_get_header_comment(resp));
	if (out->result == MA_SPF_FAIL && resp != NULL && SPF_response_get_explanation(resp) != NULL)
		mw_buf_puts(&out->explanation, SPF_response_get_explanation(resp));

done:
	if (resp != NULL)
		SPF_response_free(resp);
	if (req != NULL)
		SPF_request_free(req);
	mw_buf_free(&identity);
	mw_buf_free(&st.problem);
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
