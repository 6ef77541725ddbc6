#include "config.h"

#include <string.h>

#include <openssl/evp.h>

#include "wkd.h"

static int fail(const char **why, const char *text)
{
	*why = text;
	return -1;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* An LDH domain of at most 253 octets, labels of 1..63. */
static int domain_ok(const char *d, size_t n)
{
	size_t label = 0;
	if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

static int split(const char *addr, size_t *local_len, const char **domain, const char **why)
{
	const char *at = strrchr(addr, '@');
	if (at == NULL || at == addr)
		return fail(why, "not local@domain");
	if ((size_t)(at - addr) > 256)
		return fail(why, "local part too long");
	for (const char *p = addr; p < at; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			return fail(why, "control character or space in the local part");
	if (!domain_ok(at + 1, strlen(at + 1)))
		return fail(why, "not a plain domain name");
	*local_len = (size_t)(at - addr);
	*domain = at + 1;
	return 0;
}

int mp_wkd_domain(const char *addr, struct mw_buf *domain, const char **why)
{
	size_t ll;
	const char *d;
	if (split(addr, &ll, &d, why) < 0)
		return -1;
	mw_buf_reset(domain);
	for (; *d != '\0'; d++)
		mw_buf_putc(domain, lower((unsigned char)*d));
	return mw_buf_failed(domain) ? fail(why, "out of memory") : 0;
}

static int digest(const EVP_MD *md, const void *in, size_t n, unsigned char *out)
{
	unsigned int len = 0;
	return EVP_Digest(in, n, out, &len, md, NULL) == 1 ? (int)len : -1;
}

int mp_wkd_hash(const char *local, size_t len, char out[MP_WKD_HASH_LEN + 1])
{
	static const char zb32[] = "ybndrfg8ejkmcpqxot1uwisza345h769";
	unsigned char low[256], md[EVP_MAX_MD_SIZE];
	if (len > sizeof(low))
		return -1;
	for (size_t i = 0; i < len; i++)
		low[i] = (unsigned char)lower((unsigned char)local[i]); /* ASCII only, as the draft says */
	if (digest(EVP_sha1(), low, len, md) != 20)
		return -1;
	/* 160 bits, 5 at a time, most significant first */
	for (int i = 0; i < MP_WKD_HASH_LEN; i++) {
		int bit = i * 5, v = 0;
		for (int b = 0; b < 5; b++, bit++)
			v = (v << 1) | ((md[bit / 8] >> (7 - bit % 8)) & 1);
		out[i] = zb32[v];
	}
	out[MP_WKD_HASH_LEN] = '\0';
	return 0;
}

/* RFC 3986 unreserved characters stay, the rest is %XX. */
static void put_query_value(struct mw_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			mw_buf_putc(b, c);
		else
			mw_buf_printf(b, "%%%02X", c);
	}
}

int mp_wkd_urls(const char *addr, struct mw_buf *adv_host, struct mw_buf *adv_path, struct mw_buf *direct_host,
		struct mw_buf *direct_path, const char **why)
{
	size_t ll;
	const char *d;
	char hash[MP_WKD_HASH_LEN + 1];
	struct mw_buf dom = MW_BUF_INIT;
	if (split(addr, &ll, &d, why) < 0 || mp_wkd_domain(addr, &dom, why) < 0) {
		mw_buf_free(&dom);
		return -1;
	}
	if (mp_wkd_hash(addr, ll, hash) < 0) {
		mw_buf_free(&dom);
		return fail(why, "cannot hash the local part");
	}
	mw_buf_setf(adv_host, "openpgpkey.%s", mw_buf_str(&dom));
	mw_buf_setf(adv_path, "/.well-known/openpgpkey/%s/hu/%s?l=", mw_buf_str(&dom), hash);
	put_query_value(adv_path, addr, ll);
	mw_buf_set(direct_host, mw_buf_str(&dom));
	mw_buf_setf(direct_path, "/.well-known/openpgpkey/hu/%s?l=", hash);
	put_query_value(direct_path, addr, ll);
	mw_buf_free(&dom);
	if (mw_buf_failed(adv_host) || mw_buf_failed(adv_path) || mw_buf_failed(direct_host) ||
	    mw_buf_failed(direct_path))
		return fail(why, "out of memory");
	return 0;
}

int mp_openpgpkey_name(const char *addr, struct mw_buf *name, const char **why)
{
	size_t ll;
	const char *d;
	unsigned char md[EVP_MAX_MD_SIZE];
	struct mw_buf dom = MW_BUF_INIT;
	if (split(addr, &ll, &d, why) < 0 || mp_wkd_domain(addr, &dom, why) < 0) {
		mw_buf_free(&dom);
		return -1;
	}
	/* RFC 7929 3: the local part as given (no case folding) */
	if (digest(EVP_sha256(), addr, ll, md) != 32) {
		mw_buf_free(&dom);
		return fail(why, "cannot hash the local part");
	}
	mw_buf_reset(name);
	for (int i = 0; i < 28; i++)
		mw_buf_printf(name, "%02x", md[i]);
	mw_buf_printf(name, "._openpgpkey.%s", mw_buf_str(&dom));
	mw_buf_free(&dom);
	return mw_buf_failed(name) ? fail(why, "out of memory") : 0;
}

/* ------------------------------------------------------------ packets */

enum { TAG_SIG = 2, TAG_PUBKEY = 6, TAG_TRUST = 12, TAG_UID = 13, TAG_PUBSUB = 14, TAG_UAT = 17 };

/* One packet header at p[0..len): its tag, header and body length. */
static int packet(const unsigned char *p, size_t len, int *tag, size_t *hlen, size_t *blen, const char **why)
{
	if (len < 2)
		return fail(why, "truncated packet header");
	unsigned c = p[0];
	if ((c & 0x80) == 0)
		return fail(why, "not an OpenPGP packet");
	if (c & 0x40) { /* new format */
		*tag = (int)(c & 0x3f);
		unsigned o1 = p[1];
		if (o1 < 192) {
			*hlen = 2;
			*blen = o1;
		} else if (o1 < 224) {
			if (len < 3)
				return fail(why, "truncated packet header");
			*hlen = 3;
			*blen = ((size_t)(o1 - 192) << 8) + p[2] + 192;
		} else if (o1 == 255) {
			if (len < 6)
				return fail(why, "truncated packet header");
			*hlen = 6;
			*blen = ((size_t)p[2] << 24) | ((size_t)p[3] << 16) | ((size_t)p[4] << 8) | p[5];
		} else {
			return fail(why, "partial body length in a key");
		}
	} else { /* old format */
		*tag = (int)((c >> 2) & 0x0f);
		switch (c & 3) {
		case 0:
			*hlen = 2;
			*blen = p[1];
			break;
		case 1:
			if (len < 3)
				return fail(why, "truncated packet header");
			*hlen = 3;
			*blen = ((size_t)p[1] << 8) | p[2];
			break;
		case 2:
			if (len < 5)
				return fail(why, "truncated packet header");
			*hlen = 5;
			*blen = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
			break;
		default:
			return fail(why, "indeterminate length in a key");
		}
	}
	if (*blen > len - *hlen)
		return fail(why, "truncated packet");
	return 0;
}

int mp_pgp_keyblocks(const unsigned char *data, size_t len, struct mp_keyblock *out, int max, const char **why)
{
	size_t pos = 0;
	int n = 0, packets = 0;
	if (len == 0)
		return fail(why, "empty");
	while (pos < len) {
		int tag;
		size_t hlen, blen;
		if (packet(data + pos, len - pos, &tag, &hlen, &blen, why) < 0)
			return -1;
		if (++packets > MP_MAX_KEYPACKETS)
			return fail(why, "too many packets");
		if (tag == TAG_PUBKEY) {
			if (n >= max)
				return fail(why, "too many keys");
			out[n].off = pos;
			out[n].len = 0;
			n++;
		} else if (n == 0) {
			return fail(why, "does not start with a public key");
		} else if (tag != TAG_SIG && tag != TAG_TRUST && tag != TAG_UID && tag != TAG_PUBSUB && tag != TAG_UAT) {
			return fail(why, "a packet that does not belong in a public key");
		}
		pos += hlen + blen;
		out[n - 1].len = pos - out[n - 1].off;
	}
	return n;
}
