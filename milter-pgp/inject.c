#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "inject.h"
#include "log.h"
#include "sock.h"

#define SECRET_MIN 32
#define SECRET_MAX 4096
#define MAX_ARGS 32
#define ADDR_MAX 512

extern char **environ;

struct mp_inject {
	char *spec;
	char *url;          /* smtp: the libcurl URL; NULL for sendmail: */
	char **argv;        /* sendmail: the command and its own arguments */
	int argc;
	unsigned char *secret;
	size_t secret_len;
	unsigned timeout_ms;
};

int mp_inject_global_init(struct mw_buf *err)
{
	/* a sendmail(1) that exits early must not kill the daemon */
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		mw_buf_puts(err, "libcurl: global initialisation failed");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ spec */

static int parse_spec(const char *spec, char **url, char ***argv, int *argc, struct mw_buf *err)
{
	*url = NULL;
	*argv = NULL;
	*argc = 0;
	if (strncmp(spec, "smtp:", 5) == 0) {
		const char *hp = spec + 5;
		const char *colon = strrchr(hp, ':');
		if (colon == NULL || colon == hp || colon[1] == '\0') {
			mw_buf_printf(err, "%s: not smtp:HOST:PORT", spec);
			return -1;
		}
		char *end;
		errno = 0;
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || port == 0 || port > 65535 || !isdigit((unsigned char)colon[1])) {
			mw_buf_printf(err, "%s: bad port", spec);
			return -1;
		}
		for (const char *p = hp; p < colon; p++)
			if (!isalnum((unsigned char)*p) && strchr(".-:[]", *p) == NULL) {
				mw_buf_printf(err, "%s: bad host", spec);
				return -1;
			}
		struct mw_buf u = MW_BUF_INIT;
		/* the path is the EHLO name libcurl sends */
		mw_buf_printf(&u, "smtp://%.*s:%lu/localhost", (int)(colon - hp), hp, port);
		*url = mw_buf_steal(&u);
		return 0;
	}
	if (strncmp(spec, "sendmail:", 9) == 0) {
		const char *p = spec + 9;
		char **v = mw_xcalloc(MAX_ARGS + 1, sizeof(char *));
		int n = 0;
		for (;;) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\0')
				break;
			size_t l = strcspn(p, " \t");
			if (n == MAX_ARGS) {
				mw_buf_printf(err, "%s: more than %d words", spec, MAX_ARGS);
				goto bad;
			}
			v[n++] = mw_xstrndup(p, l);
			p += l;
		}
		if (n == 0 || v[0][0] != '/') {
			mw_buf_printf(err, "%s: not sendmail:/ABSOLUTE/PATH [ARGUMENT]...", spec);
			goto bad;
		}
		*argv = v;
		*argc = n;
		return 0;
bad:
		for (int i = 0; i < n; i++)
			free(v[i]);
		free(v);
		return -1;
	}
	mw_buf_printf(err, "%s: neither smtp:HOST:PORT nor sendmail:/PATH", spec);
	return -1;
}

int mp_inject_check_spec(const char *spec, struct mw_buf *err)
{
	char *url, **argv;
	int argc;
	if (parse_spec(spec, &url, &argv, &argc, err) < 0)
		return -1;
	free(url);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	return 0;
}

/* ------------------------------------------------------------ the secret */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int create_secret(const char *path, struct mw_buf *err)
{
	unsigned char r[32];
	char hex[2 * sizeof(r) + 2];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		mw_buf_printf(err, "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	hex[2 * sizeof(r)] = '\n';
	OPENSSL_cleanse(r, sizeof(r));
	/* whole or absent: a milter-pgp starting beside this one reads it */
	int rc = mw_sock_create_file(path, hex, 2 * sizeof(r) + 1, err);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (rc != 0)
		return rc < 0 ? -1 : 0; /* 1: another process made it first: read that one */
	mw_msg_info("created the re-injection secret %s", path);
	return 0;
}

/* The file's first line: hex is decoded, anything else taken as bytes. */
static int load_secret(struct mp_inject *inj, const char *path, struct mw_buf *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if (create_secret(path, err) < 0)
			return -1;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	char buf[SECRET_MAX + 1];
	ssize_t n = -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		mw_buf_printf(err, "%s: not a regular file", path);
	} else if ((st.st_mode & 077) != 0) {
		mw_buf_printf(err, "%s: readable by others (chmod 0600)", path);
	} else if ((n = read(fd, buf, sizeof(buf))) < 0) {
		mw_buf_printf(err, "%s: %s", path, strerror(errno));
	}
	close(fd);
	if (n < 0)
		return -1;
	size_t len = (size_t)n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	int hex = len % 2 == 0;
	for (size_t i = 0; hex && i < len; i++)
		hex = hexval((unsigned char)buf[i]) >= 0;
	inj->secret = mw_xmalloc(len + 1);
	if (hex) {
		for (size_t i = 0; i < len / 2; i++)
			inj->secret[i] = (unsigned char)(hexval(buf[2 * i]) << 4 | hexval(buf[2 * i + 1]));
		inj->secret_len = len / 2;
	} else {
		memcpy(inj->secret, buf, len);
		inj->secret_len = len;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (inj->secret_len < SECRET_MIN) {
		mw_buf_printf(err, "%s: shorter than %d bytes (remove it: a new one is made)", path, SECRET_MIN);
		return -1;
	}
	return 0;
}

struct mp_inject *mp_inject_new(const char *spec, const char *secret_file, unsigned timeout_ms, struct mw_buf *err)
{
	struct mp_inject *inj = mw_xcalloc(1, sizeof(*inj));
	inj->spec = mw_xstrdup(spec);
	inj->timeout_ms = timeout_ms;
	if (parse_spec(spec, &inj->url, &inj->argv, &inj->argc, err) < 0 || load_secret(inj, secret_file, err) < 0) {
		mp_inject_free(inj);
		return NULL;
	}
	return inj;
}

void mp_inject_free(struct mp_inject *inj)
{
	if (inj == NULL)
		return;
	if (inj->secret != NULL) {
		OPENSSL_cleanse(inj->secret, inj->secret_len);
		free(inj->secret);
	}
	for (int i = 0; i < inj->argc; i++)
		free(inj->argv[i]);
	free(inj->argv);
	free(inj->url);
	free(inj->spec);
	free(inj);
}

const char *mp_inject_describe(const struct mp_inject *inj)
{
	return inj->spec;
}

/* ------------------------------------------------------------ the mark */

/* SHA-256 of a body with every CR and the trailing line ends left out:
   the same whether it travelled with LF or CRLF. */
struct body_hash {
	EVP_MD_CTX *md;
	size_t pending_lf;
};

static void bh_update(struct body_hash *h, const unsigned char *p, size_t n)
{
	static const unsigned char lfs[64] = { [0 ... 63] = '\n' };
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		if (i > start) {
			while (h->pending_lf > 0) {
				size_t k = h->pending_lf < sizeof(lfs) ? h->pending_lf : sizeof(lfs);
				EVP_DigestUpdate(h->md, lfs, k);
				h->pending_lf -= k;
			}
			EVP_DigestUpdate(h->md, p + start, i - start);
		}
		if (p[i] == '\n')
			h->pending_lf++;
		start = i + 1;
	}
	if (n > start) {
		while (h->pending_lf > 0) {
			size_t k = h->pending_lf < sizeof(lfs) ? h->pending_lf : sizeof(lfs);
			EVP_DigestUpdate(h->md, lfs, k);
			h->pending_lf -= k;
		}
		EVP_DigestUpdate(h->md, p + start, n - start);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_lower(struct mw_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		mw_buf_putc(b, tolower((unsigned char)*s));
	mw_buf_putc(b, '\0');
}

/* HMAC-SHA256 over version, time, envelope and body hash. */
static void compute_mac(const struct mp_inject *inj, long long t, const char *sender, const char *const *rcpts,
			size_t nrcpts, const unsigned char digest[32], unsigned char mac[32])
{
	struct mw_buf in = MW_BUF_INIT;
	char **sorted = mw_xcalloc(nrcpts + 1, sizeof(char *));
	for (size_t i = 0; i < nrcpts; i++) {
		struct mw_buf l = MW_BUF_INIT;
		put_lower(&l, rcpts[i]);
		sorted[i] = mw_buf_steal(&l);
	}
	qsort(sorted, nrcpts, sizeof(char *), cmp_str);
	mw_buf_printf(&in, "mailward-reinject v1%c%lld%c", 0, t, 0);
	put_lower(&in, sender);
	mw_buf_printf(&in, "%zu%c", nrcpts, 0);
	for (size_t i = 0; i < nrcpts; i++) {
		mw_buf_append(&in, sorted[i], strlen(sorted[i]) + 1);
		free(sorted[i]);
	}
	free(sorted);
	mw_buf_append(&in, digest, 32);
	unsigned int maclen = 32;
	if (HMAC(EVP_sha256(), inj->secret, (int)inj->secret_len, (const unsigned char *)in.data, mw_buf_len(&in), mac,
		 &maclen) == NULL)
		mw_msg_panic("HMAC-SHA256 failed");
	mw_buf_free(&in);
}

static int bh_begin(struct body_hash *h)
{
	h->pending_lf = 0;
	h->md = EVP_MD_CTX_new();
	return h->md != NULL && EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

static void bh_end(struct body_hash *h, unsigned char digest[32])
{
	unsigned int n = 32;
	EVP_DigestFinal_ex(h->md, digest, &n);
	EVP_MD_CTX_free(h->md);
	h->md = NULL;
}

int mp_inject_check(const struct mp_inject *inj, const char *value, const char *sender, const char *const *rcpts,
		    size_t nrcpts, const void *body, size_t body_len, time_t now, struct mw_buf *err)
{
	long long t = -1;
	unsigned char got[32];
	int have_mac = 0, have_v = 0;
	const char *p = value;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ';')
			p++;
		if (*p == '\0')
			break;
		size_t l = strcspn(p, ";");
		const char *eq = memchr(p, '=', l);
		if (eq == NULL) {
			mw_buf_puts(err, "malformed");
			return 0;
		}
		const char *v = eq + 1;
		size_t vl = l - (size_t)(v - p);
		while (vl > 0 && strchr(" \t\r\n", v[vl - 1]) != NULL)
			vl--;
		if (eq - p == 1 && p[0] == 'v') {
			have_v = vl == 1 && v[0] == '1';
		} else if (eq - p == 1 && p[0] == 't') {
			t = 0;
			for (size_t i = 0; i < vl && t >= 0; i++)
				t = isdigit((unsigned char)v[i]) && i < 15 ? t * 10 + (v[i] - '0') : -1;
			if (vl == 0)
				t = -1;
		} else if (eq - p == 3 && strncmp(p, "mac", 3) == 0) {
			have_mac = vl == 64;
			for (size_t i = 0; have_mac && i < 32; i++) {
				int a = hexval((unsigned char)v[2 * i]), b = hexval((unsigned char)v[2 * i + 1]);
				have_mac = a >= 0 && b >= 0;
				if (have_mac)
					got[i] = (unsigned char)(a << 4 | b);
			}
		}
		p += l;
	}
	if (!have_v || t < 0 || !have_mac) {
		mw_buf_puts(err, "malformed");
		return 0;
	}
	if (t > (long long)now + 300 || t + MP_INJECT_MAX_AGE < (long long)now) {
		mw_buf_puts(err, "expired");
		return 0;
	}
	struct body_hash h;
	unsigned char digest[32], want[32];
	if (bh_begin(&h) < 0)
		mw_msg_panic("SHA-256 unavailable");
	bh_update(&h, body, body_len);
	bh_end(&h, digest);
	compute_mac(inj, t, sender, rcpts, nrcpts, digest, want);
	if (CRYPTO_memcmp(got, want, sizeof(want)) != 0) {
		mw_buf_puts(err, "does not match (forged, or for another envelope or body)");
		return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ the message source */

struct source {
	int fd;             /* or -1: mem */
	const char *mem;
	size_t len, pos;
	/* reading: CRLF conversion state */
	int prev_cr;
	const char *prefix; /* the mark field, sent first */
	size_t prefix_len, prefix_pos;
	int error;
};

static ssize_t src_read(struct source *s, char *buf, size_t n)
{
	if (s->fd < 0) {
		size_t k = s->len - s->pos < n ? s->len - s->pos : n;
		memcpy(buf, s->mem + s->pos, k);
		s->pos += k;
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t r = read(s->fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

static int src_rewind(struct source *s)
{
	s->pos = 0;
	s->prev_cr = 0;
	s->prefix_pos = 0;
	return s->fd < 0 || lseek(s->fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* The SHA-256 of the body: what follows the first empty line. */
static int src_body_hash(struct source *s, unsigned char digest[32])
{
	char buf[65536];
	struct body_hash h;
	int in_body = 0, line_empty = 1;
	if (src_rewind(s) < 0 || bh_begin(&h) < 0)
		return -1;
	for (;;) {
		ssize_t r = src_read(s, buf, sizeof(buf));
		if (r < 0) {
			EVP_MD_CTX_free(h.md);
			return -1;
		}
		if (r == 0)
			break;
		size_t i = 0;
		while (!in_body && i < (size_t)r) {
			char c = buf[i++];
			if (c == '\n') {
				if (line_empty)
					in_body = 1;
				line_empty = 1;
			} else if (c != '\r') {
				line_empty = 0;
			}
		}
		if (in_body && i < (size_t)r)
			bh_update(&h, (const unsigned char *)buf + i, (size_t)r - i);
	}
	bh_end(&h, digest);
	return 0;
}

/* Fills buf with the mark field, then the message with every line end CRLF. */
static size_t src_fill(struct source *s, char *buf, size_t n)
{
	size_t o = 0;
	if (s->prefix_pos < s->prefix_len) {
		size_t k = s->prefix_len - s->prefix_pos < n ? s->prefix_len - s->prefix_pos : n;
		memcpy(buf, s->prefix + s->prefix_pos, k);
		s->prefix_pos += k;
		return k;
	}
	char in[8192];
	size_t want = n / 2 < sizeof(in) ? n / 2 : sizeof(in);
	if (want == 0)
		return 0;
	ssize_t r = src_read(s, in, want);
	if (r < 0) {
		s->error = errno;
		return 0;
	}
	for (ssize_t i = 0; i < r; i++) {
		if (in[i] == '\n' && !s->prev_cr)
			buf[o++] = '\r';
		buf[o++] = in[i];
		s->prev_cr = in[i] == '\r';
	}
	return o;
}

/* ------------------------------------------------------------ smtp: */

static size_t curl_read(char *buf, size_t size, size_t nitems, void *ctx)
{
	struct source *s = ctx;
	size_t n = src_fill(s, buf, size * nitems);
	return s->error != 0 ? CURL_READFUNC_ABORT : n;
}

static int send_smtp(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts,
		     struct source *src, struct mw_buf *err)
{
	char ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *list = NULL;
	int ret = -1;
	CURL *c = curl_easy_init();
	if (c == NULL) {
		mw_buf_puts(err, "libcurl: cannot make a handle");
		return -1;
	}
	for (size_t i = 0; i < nrcpts; i++) {
		struct mw_buf a = MW_BUF_INIT;
		mw_buf_printf(&a, "<%s>", rcpts[i]);
		struct curl_slist *l = curl_slist_append(list, mw_buf_str(&a));
		mw_buf_free(&a);
		if (l == NULL) {
			mw_buf_puts(err, "out of memory");
			goto out;
		}
		list = l;
	}
	struct mw_buf from = MW_BUF_INIT;
	mw_buf_printf(&from, "<%s>", sender);
	curl_easy_setopt(c, CURLOPT_URL, inj->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp");
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, mw_buf_str(&from));
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, list);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, curl_read);
	curl_easy_setopt(c, CURLOPT_READDATA, src);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)inj->timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	CURLcode rc = curl_easy_perform(c);
	mw_buf_free(&from);
	if (rc != CURLE_OK) {
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (src->error != 0)
			mw_buf_printf(err, "reading the message: %s", strerror(src->error));
		else
			mw_buf_printf(err, "%s: %s", inj->spec, ebuf[0] ? ebuf : curl_easy_strerror(rc));
		if (code != 0)
			mw_buf_printf(err, " (last reply %ld)", code);
		goto out;
	}
	ret = 0;
out:
	curl_slist_free_all(list);
	curl_easy_cleanup(c);
	return ret;
}

/* ------------------------------------------------------------ sendmail: */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_sendmail(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts,
			 struct source *src, struct mw_buf *err)
{
	int in[2] = { -1, -1 };
	int errfd = memfd_create("mailward-sendmail", MFD_CLOEXEC);
	const char **argv = mw_xcalloc((size_t)inj->argc + nrcpts + 6, sizeof(char *));
	int n = 0, ret = -1;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	long long deadline = now_ms() + inj->timeout_ms;

	for (int i = 0; i < inj->argc; i++)
		argv[n++] = inj->argv[i];
	argv[n++] = "-i";
	argv[n++] = "-f";
	argv[n++] = sender[0] != '\0' ? sender : "<>";
	argv[n++] = "--";
	for (size_t i = 0; i < nrcpts; i++)
		argv[n++] = rcpts[i];
	argv[n] = NULL;
	if (errfd < 0 || pipe2(in, O_CLOEXEC) < 0) {
		mw_buf_printf(err, "pipe: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, errfd, 1);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	int e = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	in[0] = -1;
	if (e != 0) {
		pid = -1;
		mw_buf_printf(err, "%s: %s", argv[0], strerror(e));
		goto out;
	}
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	char buf[16384];
	int timed_out = 0, write_error = 0;
	for (;;) {
		size_t k = src_fill(src, buf, sizeof(buf));
		if (k == 0)
			break;
		size_t off = 0;
		while (off < k) {
			ssize_t w = write(in[1], buf + off, k - off);
			if (w >= 0) {
				off += (size_t)w;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				write_error = errno;
				break;
			}
			long long left = deadline - now_ms();
			struct pollfd p = { in[1], POLLOUT, 0 };
			if (left <= 0 || poll(&p, 1, (int)(left > 1000 ? 1000 : left)) < 0) {
				if (left <= 0) {
					timed_out = 1;
					break;
				}
			}
		}
		if (timed_out || write_error)
			break;
	}
	close(in[1]);
	in[1] = -1;
	if (timed_out)
		kill(pid, SIGKILL); /* it stopped reading: do not wait for it */
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			mw_buf_printf(err, "waitpid: %s", strerror(errno));
			pid = -1;
			goto out;
		}
		if (!timed_out && now_ms() > deadline) {
			timed_out = 1;
			kill(pid, SIGKILL);
			continue;
		}
		if (!timed_out)
			usleep(10000);
	}
	pid = -1;
	char text[512] = "";
	ssize_t r = pread(errfd, text, sizeof(text) - 1, 0);
	text[r > 0 ? r : 0] = '\0';
	text[strcspn(text, "\r\n")] = '\0';
	if (timed_out)
		mw_buf_printf(err, "%s: no answer within %u ms", argv[0], inj->timeout_ms);
	else if (src->error != 0)
		mw_buf_printf(err, "reading the message: %s", strerror(src->error));
	else if (write_error != 0 && !(WIFEXITED(status) && WEXITSTATUS(status) != 0))
		mw_buf_printf(err, "%s: %s", argv[0], strerror(write_error));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		mw_buf_printf(err, "%s: exit status %d%s%s", argv[0],
			      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text[0] ? ": " : "", text);
	else
		ret = 0;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (in[0] >= 0)
		close(in[0]);
	if (in[1] >= 0)
		close(in[1]);
	if (errfd >= 0)
		close(errfd);
	free(argv);
	return ret;
}

/* ------------------------------------------------------------ inject */

static int sane_addr(const char *a)
{
	size_t n = strlen(a);
	if (n >= ADDR_MAX)
		return 0;
	for (const char *p = a; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	return 1;
}

static int inject(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts,
		  struct source *src, struct mw_buf *err)
{
	unsigned char digest[32], mac[32];
	if (nrcpts == 0) {
		mw_buf_puts(err, "no recipients");
		return -1;
	}
	if (!sane_addr(sender)) {
		mw_buf_puts(err, "unusable sender address");
		return -1;
	}
	for (size_t i = 0; i < nrcpts; i++)
		if (rcpts[i][0] == '\0' || rcpts[i][0] == '-' || !sane_addr(rcpts[i])) {
			mw_buf_puts(err, "unusable recipient address");
			return -1;
		}
	if (src_body_hash(src, digest) < 0) {
		mw_buf_printf(err, "reading the message: %s", strerror(errno));
		return -1;
	}
	long long t = (long long)time(NULL);
	compute_mac(inj, t, sender, rcpts, nrcpts, digest, mac);
	struct mw_buf field = MW_BUF_INIT;
	mw_buf_printf(&field, "%s: v=1; t=%lld; mac=", MP_INJECT_HEADER, t);
	for (size_t i = 0; i < sizeof(mac); i++)
		mw_buf_printf(&field, "%02x", mac[i]);
	mw_buf_puts(&field, "\r\n");
	src->prefix = field.data;
	src->prefix_len = mw_buf_len(&field);
	int r = -1;
	if (src_rewind(src) < 0)
		mw_buf_printf(err, "reading the message: %s", strerror(errno));
	else
		r = inj->url != NULL ? send_smtp(inj, sender, rcpts, nrcpts, src, err)
				     : send_sendmail(inj, sender, rcpts, nrcpts, src, err);
	mw_buf_free(&field);
	return r;
}

int mp_inject_fd(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts, int fd,
		 struct mw_buf *err)
{
	struct source s = { .fd = fd };
	return inject(inj, sender, rcpts, nrcpts, &s, err);
}

int mp_inject_buf(const struct mp_inject *inj, const char *sender, const char *const *rcpts, size_t nrcpts,
		  const char *msg, size_t len, struct mw_buf *err)
{
	struct source s = { .fd = -1, .mem = msg, .len = len };
	return inject(inj, sender, rcpts, nrcpts, &s, err);
}
