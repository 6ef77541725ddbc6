#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "tlspol_fetch.h"

int tlspol_fetch_global_init(struct mw_buf *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		mw_buf_puts(err, "libcurl failed to initialise");
		return -1;
	}
	return 0;
}

struct sink {
	struct mw_buf *body;
	size_t max;
	int too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct sink *s = ctx;
	size_t n = size * nmemb;
	if (s->body->len + n > s->max) {
		s->too_big = 1;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	if (mw_buf_append(s->body, ptr, n) < 0)
		return 0;
	return n;
}

/* The first address of host through common/dns: IPv4 first, then IPv6. */
static int resolve(struct mw_dns *dns, const char *host, struct mw_buf *addr, struct mw_buf *err)
{
	struct mw_dns_result res;
	struct mw_dns_budget budget;
	mw_dns_budget_start(dns, &budget, 0);
	char text[INET6_ADDRSTRLEN];
	enum mw_dns_status st = mw_dns_lookup(dns, host, MW_DNS_T_A, &budget, &res);
	if (st == MW_DNS_OK) {
		struct in_addr a;
		int ok = mw_dns_result_a(&res, 0, &a) == 0 && inet_ntop(AF_INET, &a, text, sizeof(text)) != NULL;
		mw_dns_result_free(&res);
		if (ok) {
			mw_buf_set(addr, text);
			return 0;
		}
		mw_buf_printf(err, "%s: bad A record", host);
		return -1;
	}
	if (mw_dns_status_is_temporary(st)) {
		mw_buf_printf(err, "%s A lookup: %s %s", host, mw_dns_status_name(st), res.error);
		mw_dns_result_free(&res);
		return -1;
	}
	mw_dns_result_free(&res);
	st = mw_dns_lookup(dns, host, MW_DNS_T_AAAA, &budget, &res);
	if (st == MW_DNS_OK) {
		struct in6_addr a;
		int ok = mw_dns_result_aaaa(&res, 0, &a) == 0 && inet_ntop(AF_INET6, &a, text, sizeof(text)) != NULL;
		mw_dns_result_free(&res);
		if (ok) {
			mw_buf_setf(addr, "[%s]", text);
			return 0;
		}
		mw_buf_printf(err, "%s: bad AAAA record", host);
		return -1;
	}
	mw_buf_printf(err, "%s has no address (%s)", host, mw_dns_status_name(st));
	mw_dns_result_free(&res);
	return -1;
}

int tlspol_fetch(struct mw_dns *dns, const struct tlspol_fetch_conf *fc, const char *domain,
		 struct mw_buf *body, struct mw_buf *err)
{
	struct mw_buf host = MW_BUF_INIT;
	long status = 0;
	mw_buf_printf(&host, "mta-sts.%s", domain);
	int rc = tlspol_fetch_https(dns, fc, mw_buf_str(&host), "/.well-known/mta-sts.txt", "text/plain", &status,
				    body, err);
	mw_buf_free(&host);
	return rc;
}

int tlspol_fetch_https(struct mw_dns *dns, const struct tlspol_fetch_conf *fc, const char *hostname,
		       const char *path, const char *media_type, long *status_r, struct mw_buf *body,
		       struct mw_buf *err)
{
	struct mw_buf host = MW_BUF_INIT, url = MW_BUF_INIT, connect_to = MW_BUF_INIT, addr = MW_BUF_INIT;
	struct curl_slist *pin = NULL;
	CURL *h = NULL;
	int rc = -1;
	*status_r = 0;
	mw_buf_puts(&host, hostname);
	mw_buf_printf(&url, "https://%s%s", mw_buf_str(&host), path);
	if (resolve(dns, mw_buf_str(&host), &addr, err) < 0)
		goto out;
	mw_buf_printf(&connect_to, "%s:443:%s:%u", mw_buf_str(&host), mw_buf_str(&addr), fc->port);
	if (mw_buf_failed(&host) || mw_buf_failed(&url) || mw_buf_failed(&connect_to)) {
		mw_buf_puts(err, "out of memory");
		goto out;
	}
	pin = curl_slist_append(NULL, mw_buf_str(&connect_to));
	h = curl_easy_init();
	if (pin == NULL || h == NULL) {
		mw_buf_puts(err, "libcurl: out of memory");
		goto out;
	}
	char curl_err[CURL_ERROR_SIZE] = "";
	struct sink sink = { body, fc->max_size, 0 };
	mw_buf_reset(body);
	curl_easy_setopt(h, CURLOPT_URL, mw_buf_str(&url));
	curl_easy_setopt(h, CURLOPT_CONNECT_TO, pin);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* RFC 8461 3.3 (and WKD here): no redirects */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)fc->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)fc->timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (fc->ca_file != NULL && fc->ca_file[0] != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, fc->ca_file);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)fc->max_size);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mailward/" PACKAGE_VERSION);
	CURLcode cc = curl_easy_perform(h);
	if (sink.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		mw_buf_printf(err, "%s: larger than %llu bytes", mw_buf_str(&url), fc->max_size);
		goto out;
	}
	if (cc != CURLE_OK) {
		if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR)
			*status_r = -1;
		mw_buf_printf(err, "%s (%s): %s", mw_buf_str(&url), mw_buf_str(&addr),
			      curl_err[0] ? curl_err : curl_easy_strerror(cc));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	*status_r = status;
	if (status != 200) {
		mw_buf_printf(err, "%s: HTTP status %ld", mw_buf_str(&url), status);
		goto out;
	}
	char *ctype = NULL;
	size_t mlen = media_type != NULL ? strlen(media_type) : 0;
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
	if (media_type != NULL && (ctype == NULL || strncasecmp(ctype, media_type, mlen) != 0 ||
				   (ctype[mlen] != '\0' && ctype[mlen] != ';' && ctype[mlen] != ' '))) {
		mw_buf_printf(err, "%s: media type is not %s", mw_buf_str(&url), media_type);
		goto out;
	}
	rc = 0;
out:
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(pin);
	mw_buf_free(&host);
	mw_buf_free(&url);
	mw_buf_free(&connect_to);
	mw_buf_free(&addr);
	return rc;
}
