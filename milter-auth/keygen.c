/*
 * milter-auth-keygen: makes a DKIM signing key and prints what to publish,
 * or checks that the published key matches a private key.
 *
 *   milter-auth-keygen -d DOMAIN -s SELECTOR [-t rsa|ed25519] [-b BITS]
 *                      [-D DIR] [-u USER]
 *   milter-auth-keygen --check -d DOMAIN -s SELECTOR -k KEYFILE [--dns SPEC]
 *
 * The key goes to DIR/SELECTOR.private (mode 0600, never overwritten,
 * owned by USER, the daemon's user, when run as root); the TXT record is
 * printed split into strings of at most 255 bytes (RFC 1035 3.3.14), with
 * the KeyTable and SigningTable lines and starting SPF and DMARC records.
 * Exit status: 0 done / keys match, 1 mismatch or no record, 2 usage or
 * local error, 3 DNS temporary failure.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "dns.h"
#include "hdrparse.h"
#include "log.h"
#include "masign.h"
#include "strnum.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: milter-auth-keygen -d DOMAIN -s SELECTOR [-t rsa|ed25519] [-b BITS] [-D DIR] [-u USER]\n"
		"       milter-auth-keygen --check -d DOMAIN -s SELECTOR -k KEYFILE [--dns SPEC]\n");
	exit(2);
}

/* Prints "NAME IN TXT ( "..." "..." )" with strings of at most 255 bytes. */
static void print_txt(const char *name, const char *value)
{
	size_t len = strlen(value);
	printf("%s IN TXT (", name);
	for (size_t off = 0; off < len; off += 255) {
		size_t n = len - off < 255 ? len - off : 255;
		printf("\n\t\"%.*s\"", (int)n, value + off);
	}
	printf(" )\n");
}

static int generate(const char *domain, const char *selector, int ed25519, unsigned bits,
		    const char *dir, const char *user)
{
	struct passwd *pw = NULL;
	if (geteuid() == 0) {
		pw = getpwnam(user);
		if (pw == NULL) {
			fprintf(stderr, "milter-auth-keygen: no user %s to own the key (milter-auth drops to "
				"it and reads keys after that): give -u USER\n", user);
			return 2;
		}
	}
	EVP_PKEY *k = ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
			      : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (k == NULL) {
		fprintf(stderr, "milter-auth-keygen: key generation failed\n");
		return 2;
	}
	char absdir[PATH_MAX];
	if (realpath(dir, absdir) == NULL) {
		fprintf(stderr, "milter-auth-keygen: -D %s: %s\n", dir, strerror(errno));
		EVP_PKEY_free(k);
		return 2;
	}
	struct mw_buf path = MW_BUF_INIT; /* absolute: the key table wants it so */
	mw_buf_printf(&path, "%s/%s.private", absdir, selector);
	/* O_EXCL: never replace a key whose public half may be published */
	int fd = open(mw_buf_str(&path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "milter-auth-keygen: %s: %s\n", mw_buf_str(&path),
			errno == EEXIST ? "exists already (a published key may use it): not replaced"
					: strerror(errno));
		EVP_PKEY_free(k);
		mw_buf_free(&path);
		return 2;
	}
	FILE *f = fdopen(fd, "w");
	int ok = f != NULL && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	if (ok && pw != NULL && chown(mw_buf_str(&path), pw->pw_uid, pw->pw_gid) < 0)
		ok = 0;
	if (!ok) {
		fprintf(stderr, "milter-auth-keygen: cannot write %s: %s\n", mw_buf_str(&path), strerror(errno));
		unlink(mw_buf_str(&path));
		EVP_PKEY_free(k);
		mw_buf_free(&path);
		return 2;
	}

	/* the public half, through the same code the --check uses */
	BIO *mem = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pl = 0;
	if (mem != NULL && PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) == 1)
		pl = BIO_get_mem_data(mem, &pem);
	struct mw_buf p = MW_BUF_INIT;
	int is_ed = 0, kbits = 0;
	if (pl <= 0 || ma_sign_key_public(pem, (size_t)pl, &p, &is_ed, &kbits) < 0) {
		fprintf(stderr, "milter-auth-keygen: cannot derive the public key\n");
		BIO_free(mem);
		EVP_PKEY_free(k);
		return 2;
	}
	OPENSSL_cleanse(pem, (size_t)pl);
	BIO_free(mem);
	EVP_PKEY_free(k);

	struct mw_buf rec = MW_BUF_INIT, name = MW_BUF_INIT;
	mw_buf_printf(&rec, "v=DKIM1; k=%s; p=%s", ed25519 ? "ed25519" : "rsa", mw_buf_str(&p));
	mw_buf_printf(&name, "%s._domainkey.%s.", selector, domain);
	if (ed25519)
		printf("; private key: %s (Ed25519)\n", mw_buf_str(&path));
	else
		printf("; private key: %s (RSA, %u bits)\n", mw_buf_str(&path), bits);
	printf("; publish in DNS:\n");
	print_txt(mw_buf_str(&name), mw_buf_str(&rec));
	printf(";\n; dkim_key_table line:\n;   %s-%s %s:%s:%s\n", domain, selector, domain, selector,
	       mw_buf_str(&path));
	printf("; dkim_signing_table (refile:) line:\n;   *@%s %s-%s\n", domain, domain, selector);
	if (ed25519)
		printf(";\n; Not every receiver checks Ed25519 yet (RFC 8463): sign with an RSA key too\n"
		       "; (a second signing table row for the same pattern).\n");
	printf(";\n; starting points if %s has none yet (adjust before publishing):\n", domain);
	printf("%s. IN TXT \"v=spf1 mx -all\"\n", domain);
	printf("_dmarc.%s. IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@%s\"\n", domain, domain);
	mw_buf_free(&rec);
	mw_buf_free(&name);
	mw_buf_free(&p);
	mw_buf_free(&path);
	return 0;
}

/* The value of tag t in a DKIM key record ("v=DKIM1; k=rsa; p=..."), white
   space removed; 0 or -1. */
static int record_tag(const char *rec, const char *t, struct mw_buf *out)
{
	size_t tl = strlen(t);
	const char *p = rec;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *eq = strchr(p, '=');
		const char *semi = strchr(p, ';');
		if (eq == NULL)
			return -1;
		if (semi == NULL)
			semi = p + strlen(p);
		if (eq < semi) {
			const char *ne = eq;
			while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			if ((size_t)(ne - p) == tl && strncmp(p, t, tl) == 0) {
				for (const char *v = eq + 1; v < semi; v++)
					if (*v != ' ' && *v != '\t' && *v != '\r' && *v != '\n')
						mw_buf_putc(out, *v);
				return 0;
			}
		}
		p = *semi ? semi + 1 : semi;
	}
	return -1;
}

static int check(const char *domain, const char *selector, const char *keyfile, const char *dns_spec)
{
	FILE *f = fopen(keyfile, "re");
	if (f == NULL) {
		fprintf(stderr, "milter-auth-keygen: %s: %s\n", keyfile, strerror(errno));
		return 2;
	}
	char text[64 * 1024];
	size_t n = fread(text, 1, sizeof(text), f);
	fclose(f);
	struct mw_buf mine = MW_BUF_INIT;
	int ed = 0, bits = 0;
	if (n == 0 || n == sizeof(text) || ma_sign_key_public(text, n, &mine, &ed, &bits) < 0) {
		fprintf(stderr, "milter-auth-keygen: %s holds no RSA or Ed25519 private key\n", keyfile);
		OPENSSL_cleanse(text, sizeof(text));
		return 2;
	}
	OPENSSL_cleanse(text, sizeof(text));

	struct mw_dns_conf dc = { .timeout_ms = 5000, .budget_ms = 15000, .trust_anchor = "auto",
				  .cache_size = 0 };
	struct mw_buf err = MW_BUF_INIT;
	if (mw_dns_conf_set_resolver(&dc, dns_spec, &err) < 0) {
		fprintf(stderr, "milter-auth-keygen: --dns %s: %s\n", dns_spec, mw_buf_str(&err));
		return 2;
	}
	struct mw_dns *dns = mw_dns_new(&dc, &err);
	if (dns == NULL) {
		fprintf(stderr, "milter-auth-keygen: resolver: %s\n", mw_buf_str(&err));
		return 2;
	}
	struct mw_buf name = MW_BUF_INIT;
	mw_buf_printf(&name, "%s._domainkey.%s", selector, domain);
	struct mw_dns_result r;
	enum mw_dns_status st = mw_dns_lookup(dns, mw_buf_str(&name), MW_DNS_T_TXT, NULL, &r);
	int rc;
	if (mw_dns_status_is_temporary(st)) {
		printf("%s: DNS lookup failed (%s): try again\n", mw_buf_str(&name), mw_dns_status_name(st));
		rc = 3;
	} else if (st != MW_DNS_OK) {
		printf("%s: no TXT record (%s): publish the record milter-auth-keygen printed\n",
		       mw_buf_str(&name), mw_dns_status_name(st));
		rc = 1;
	} else {
		rc = 1;
		int found = 0;
		for (int i = 0; i < r.count; i++) {
			struct mw_buf txt = MW_BUF_INIT, p = MW_BUF_INIT, k = MW_BUF_INIT;
			if (mw_dns_result_txt(&r, i, &txt) == 0 && record_tag(mw_buf_str(&txt), "p", &p) == 0) {
				found = 1;
				if (record_tag(mw_buf_str(&txt), "k", &k) < 0)
					mw_buf_set(&k, "rsa");
				if (strcmp(mw_buf_str(&p), mw_buf_str(&mine)) == 0 &&
				    strcmp(mw_buf_str(&k), ed ? "ed25519" : "rsa") == 0) {
					printf("%s: the published key matches %s (%s)\n", mw_buf_str(&name), keyfile,
					       ed ? "Ed25519" : "RSA");
					rc = 0;
				} else if (mw_buf_len(&p) == 0) {
					printf("%s: the published key is revoked (empty p=)\n", mw_buf_str(&name));
				} else {
					printf("%s: the published key (k=%s) does NOT match %s: receivers will "
					       "fail every signature made with it\n", mw_buf_str(&name),
					       mw_buf_str(&k), keyfile);
				}
			}
			mw_buf_free(&txt);
			mw_buf_free(&p);
			mw_buf_free(&k);
			if (rc == 0)
				break;
		}
		if (!found)
			printf("%s: a TXT record without p=: not a DKIM key\n", mw_buf_str(&name));
	}
	mw_dns_result_free(&r);
	mw_dns_free(dns);
	mw_dns_conf_clear_resolver(&dc);
	mw_buf_free(&name);
	mw_buf_free(&mine);
	mw_buf_free(&err);
	return rc;
}

int main(int argc, char **argv)
{
	enum { O_CHECK = 1000, O_DNS };
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, O_CHECK },
		{ "dns", required_argument, NULL, O_DNS },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *selector = NULL, *type = "rsa", *dir = ".", *user = "mailward";
	const char *keyfile = NULL, *dns_spec = "system";
	unsigned long long bits = 2048;
	int do_check = 0, opt;

	mw_log_init("milter-auth-keygen", MW_LOG_TO_STDERR, 0);
	while ((opt = getopt_long(argc, argv, "d:s:t:b:D:u:k:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': domain = optarg; break;
		case 's': selector = optarg; break;
		case 't': type = optarg; break;
		case 'b':
			if (mw_parse_uint(optarg, 16384, &bits) < 0 || bits < 2048) {
				fprintf(stderr, "milter-auth-keygen: -b: 2048 to 16384 bits (RFC 8301)\n");
				return 2;
			}
			break;
		case 'D': dir = optarg; break;
		case 'u': user = optarg; break;
		case 'k': keyfile = optarg; break;
		case O_CHECK: do_check = 1; break;
		case O_DNS: dns_spec = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || domain == NULL || selector == NULL)
		usage();
	char norm[MA_DOMAIN_MAX];
	if (ma_domain_normalize(domain, strlen(domain), norm, sizeof(norm)) < 0) {
		fprintf(stderr, "milter-auth-keygen: -d %s: not a domain\n", domain);
		return 2;
	}
	char snorm[MA_DOMAIN_MAX];
	if (strlen(selector) > 63 || ma_domain_normalize(selector, strlen(selector), snorm, sizeof(snorm)) < 0 ||
	    strchr(selector, '/') != NULL) {
		fprintf(stderr, "milter-auth-keygen: -s %s: not a selector (letters, digits, '-')\n", selector);
		return 2;
	}
	if (do_check) {
		if (keyfile == NULL)
			usage();
		return check(norm, snorm, keyfile, dns_spec);
	}
	int ed = strcmp(type, "ed25519") == 0;
	if (!ed && strcmp(type, "rsa") != 0) {
		fprintf(stderr, "milter-auth-keygen: -t %s: rsa or ed25519\n", type);
		return 2;
	}
	return generate(norm, snorm, ed, (unsigned)bits, dir, user);
}
