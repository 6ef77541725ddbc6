#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/types.h>

#include <dkim.h>

#include "log.h"
#include "madkim.h"

struct ma_dkim {
	DKIM_LIB *lib;
	struct mw_dns *dns;
	unsigned min_key_bits;
};

/* A DKIM-Signature field held back until the end of the headers, when we
   choose which signatures libopendkim gets to see. */
struct held_sig {
	char *line;          /* "DKIM-Signature: ..." with CRLF folds */
	size_t len;
	char d[MA_DOMAIN_MAX];
	char body[96];       /* what its body hash depends on: c=, hash, l= */
	int rank;            /* 0: d= is the From domain, 1: a parent or child of it, 2: other */
};

struct ma_dkim_msg {
	struct ma_dkim *d;
	struct held_sig *sigs;
	int nsigs, sigs_cap;
	int skipped;         /* signatures not verified (over the limits) */
	struct ma_dkim_canon canon[2]; /* body length, simple and relaxed */
	DKIM *dkim;
	DKIM_STAT eoh;
	int failed; /* libopendkim refused the message (syntax): no verdicts */
	struct mw_buf line;
};

/*
 * libopendkim asks for keys through a query service whose handle is
 * process-wide, while the DNS budget is per message: the message being
 * verified on this thread is found through a thread-local pointer, set
 * around dkim_eom() (where libopendkim looks keys up, on the caller's
 * thread).
 */
static _Thread_local struct mw_dns_budget *current_budget;

struct query {
	enum mw_dns_status status;
	size_t bytes;
	int dnssec;
};

static int q_start(void *srv, int type, unsigned char *name, unsigned char *buf, size_t buflen,
		   void **qh)
{
	struct ma_dkim *d = srv;
	struct query *q = calloc(1, sizeof(*q));
	struct mw_dns_result r;

	if (q == NULL)
		return -1;
	q->status = mw_dns_lookup(d->dns, (const char *)name, type, current_budget, &r);
	size_t len = 0;
	const unsigned char *pkt = mw_dns_result_packet(&r, &len);
	if (pkt != NULL && len <= buflen) {
		memcpy(buf, pkt, len);
		q->bytes = len;
	} else if (pkt != NULL) {
		q->status = MW_DNS_ERROR; /* larger than libopendkim's buffer */
	}
	q->dnssec = r.security == MW_DNS_SECURE ? DKIM_DNSSEC_SECURE :
		    r.security == MW_DNS_BOGUS ? DKIM_DNSSEC_BOGUS : DKIM_DNSSEC_INSECURE;
	mw_dns_result_free(&r);
	*qh = q;
	return 0;
}

static int q_wait(void *srv, void *qh, struct timeval *timeout, size_t *bytes, int *error,
		  int *dnssec)
{
	(void)srv;
	(void)timeout; /* the lookup already ran within our own limits */
	struct query *q = qh;
	if (q->bytes == 0) {
		/* No answer packet at all: a temporary failure for libopendkim. */
		if (error != NULL)
			*error = q->status;
		return q->status == MW_DNS_TIMEOUT ? DKIM_DNS_EXPIRED : DKIM_DNS_ERROR;
	}
	if (bytes != NULL)
		*bytes = q->bytes;
	if (error != NULL)
		*error = 0;
	if (dnssec != NULL)
		*dnssec = q->dnssec;
	return DKIM_DNS_SUCCESS;
}

/* The service is ours (struct ma_dkim): libopendkim must neither set it
   up nor close it (its default would res_nclose() our pointer). */
static int q_init(void **srv)
{
	(void)srv;
	return 0;
}

static void q_close(void *srv)
{
	(void)srv;
}

static int q_cancel(void *srv, void *qh)
{
	(void)srv;
	free(qh);
	return 0;
}

struct ma_dkim *ma_dkim_new(struct mw_dns *dns, unsigned min_key_bits, struct mw_buf *err)
{
	struct ma_dkim *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		mw_buf_puts(err, "out of memory");
		return NULL;
	}
	d->dns = dns;
	d->min_key_bits = min_key_bits;
	d->lib = dkim_init(NULL, NULL);
	if (d->lib == NULL) {
		mw_buf_puts(err, "libopendkim: dkim_init failed");
		free(d);
		return NULL;
	}
	/* FIXCRLF: the MTA hands us bare LF line ends; BADSIGHANDLES: report
	   malformed signatures too instead of dropping them silently;
	   DELAYSIGPROC: look keys up in dkim_eom(), within the message's DNS
	   budget, not at the end of the headers (a slow client's DATA must
	   not count against DNS time). */
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES | DKIM_LIBFLAGS_DELAYSIGPROC;
	dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags));
	unsigned int bits = min_key_bits;
	dkim_options(d->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &bits, sizeof(bits));
	dkim_dns_set_init(d->lib, q_init);
	dkim_dns_set_close(d->lib, q_close);
	dkim_dns_set_query_service(d->lib, d);
	dkim_dns_set_query_start(d->lib, q_start);
	dkim_dns_set_query_waitreply(d->lib, q_wait);
	dkim_dns_set_query_cancel(d->lib, q_cancel);
	return d;
}

void ma_dkim_free(struct ma_dkim *d)
{
	if (d == NULL)
		return;
	dkim_close(d->lib);
	free(d);
}

struct ma_dkim_msg *ma_dkim_msg_new(struct ma_dkim *d, const char *id)
{
	struct ma_dkim_msg *m = calloc(1, sizeof(*m));
	DKIM_STAT st;
	if (m == NULL)
		return NULL;
	m->d = d;
	ma_dkim_canon_init(&m->canon[0], 0);
	ma_dkim_canon_init(&m->canon[1], 1);
	mw_buf_init(&m->line, 1024 * 1024);
	m->dkim = dkim_verify(d->lib, (const unsigned char *)(id != NULL && id[0] ? id : "message"),
			      NULL, &st);
	if (m->dkim == NULL)
		m->failed = 1;
	return m;
}

void ma_dkim_msg_free(struct ma_dkim_msg *m)
{
	if (m == NULL)
		return;
	if (m->dkim != NULL)
		dkim_free(m->dkim);
	for (int i = 0; i < m->nsigs; i++)
		free(m->sigs[i].line);
	free(m->sigs);
	mw_buf_free(&m->line);
	free(m);
}

/* Keeps a DKIM-Signature field (m->line) with what the choice at the end
   of the headers needs: its d=, and what its body hash depends on. */
static void hold_signature(struct ma_dkim_msg *m, const char *value)
{
	if (m->nsigs == m->sigs_cap) {
		m->sigs_cap = m->sigs_cap ? m->sigs_cap * 2 : 4;
		m->sigs = mw_xrealloc(m->sigs, (size_t)m->sigs_cap * sizeof(*m->sigs));
	}
	struct held_sig *g = &m->sigs[m->nsigs++];
	memset(g, 0, sizeof(*g));
	g->len = mw_buf_len(&m->line);
	g->line = mw_xstrndup(m->line.data, g->len);
	size_t vl = strlen(value);
	char d[MA_DOMAIN_MAX], c[32], a[32], l[256];
	if (ma_dkim_tag(value, vl, "d", d, sizeof(d)) == 0)
		ma_domain_normalize(d, strlen(d), g->d, sizeof(g->d));
	if (ma_dkim_tag(value, vl, "c", c, sizeof(c)) < 0)
		snprintf(c, sizeof(c), "simple/simple");
	if (ma_dkim_tag(value, vl, "a", a, sizeof(a)) < 0)
		a[0] = '\0';
	const char *len = l;
	if (ma_dkim_tag(value, vl, "l", l, sizeof(l)) < 0) {
		if (strstr(value, "l=") != NULL)
			snprintf(l, sizeof(l), "odd%d", m->nsigs); /* counted as a body hash of its own */
		else
			snprintf(l, sizeof(l), "-");
	}
	while (len[0] == '0' && len[1] != '\0')
		len++; /* l=0100 and l=100 are one hash */
	const char *slash = strchr(c, '/');
	const char *hash = strchr(a, '-');
	snprintf(g->body, sizeof(g->body), "%s %s %s", slash != NULL ? slash + 1 : "simple",
		 hash != NULL ? hash + 1 : a, len);
	for (char *p = g->body; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

void ma_dkim_msg_header(struct ma_dkim_msg *m, const char *name, const char *value)
{
	if (m->failed)
		return;
	mw_buf_reset(&m->line);
	mw_buf_printf(&m->line, "%s:", name);
	/* MTAs pass folded headers with bare LF; DKIM signs CRLF (RFC 6376 3.4.2
	   unfolds only CRLF followed by white space). */
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\n' && (p == value || p[-1] != '\r'))
			mw_buf_putc(&m->line, '\r');
		mw_buf_putc(&m->line, *p);
	}
	if (mw_buf_failed(&m->line))
		return; /* a header over 1 MB: libopendkim would refuse it anyway */
	if (strcasecmp(name, "DKIM-Signature") == 0) {
		hold_signature(m, value);
		return;
	}
	if (dkim_header(m->dkim, (u_char *)m->line.data, mw_buf_len(&m->line)) != DKIM_STAT_OK)
		m->failed = 1;
}

/* d is the From domain, or a parent or child of it (relaxed alignment
   without the public suffix list: enough to verify those first). */
static int rank_of(const char *d, const char *from)
{
	if (from == NULL || from[0] == '\0' || d[0] == '\0')
		return 2;
	if (strcmp(d, from) == 0)
		return 0;
	size_t dl = strlen(d), fl = strlen(from);
	if ((dl > fl && d[dl - fl - 1] == '.' && strcmp(d + dl - fl, from) == 0) ||
	    (fl > dl && from[fl - dl - 1] == '.' && strcmp(from + fl - dl, d) == 0))
		return 1;
	return 2;
}

int ma_dkim_msg_eoh(struct ma_dkim_msg *m, const char *from_domain, int max_sigs)
{
	if (m->failed)
		return 1;
	/* Which signatures are verified is decided here, before libopendkim
	   sees any: its prescreen callback (dkim_set_prescreen) runs after it
	   has set up a body hash for every signature, which dkim_body() then
	   feeds whether the signature is ignored or not. The From domain's
	   own signatures first; at most max_sigs, with at most
	   MA_DKIM_MAX_BODY_HASHES different body hashes among them. */
	char bodies[MA_DKIM_MAX_BODY_HASHES][sizeof(m->sigs[0].body)];
	int nbodies = 0, chosen = 0;
	for (int i = 0; i < m->nsigs; i++)
		m->sigs[i].rank = rank_of(m->sigs[i].d, from_domain);
	for (int rank = 0; rank <= 2; rank++) {
		for (int i = 0; i < m->nsigs; i++) {
			struct held_sig *g = &m->sigs[i];
			if (g->rank != rank)
				continue;
			int b = 0;
			while (b < nbodies && strcmp(bodies[b], g->body) != 0)
				b++;
			if (chosen >= max_sigs || (b == nbodies && nbodies == MA_DKIM_MAX_BODY_HASHES)) {
				g->rank = -1; /* skipped */
				m->skipped++;
				continue;
			}
			if (b == nbodies)
				memcpy(bodies[nbodies++], g->body, sizeof(g->body));
			chosen++;
		}
	}
	/* Their relative order is kept: libopendkim picks signed header
	   instances by name, bottom up, so other names' order does not matter. */
	for (int i = 0; i < m->nsigs; i++) {
		if (m->sigs[i].rank < 0)
			continue;
		if (dkim_header(m->dkim, (u_char *)m->sigs[i].line, m->sigs[i].len) != DKIM_STAT_OK) {
			m->failed = 1;
			return 1;
		}
	}
	m->eoh = dkim_eoh(m->dkim);
	return m->eoh == DKIM_STAT_NOSIG;
}

int ma_dkim_msg_skipped(const struct ma_dkim_msg *m)
{
	return m->skipped;
}

void ma_dkim_msg_body(struct ma_dkim_msg *m, const unsigned char *data, size_t len)
{
	if (m->failed || m->eoh == DKIM_STAT_NOSIG)
		return;
	dkim_body(m->dkim, (u_char *)data, len);
	ma_dkim_canon_feed(&m->canon[0], data, len);
	ma_dkim_canon_feed(&m->canon[1], data, len);
}

void ma_dkim_canon_init(struct ma_dkim_canon *c, int relaxed)
{
	memset(c, 0, sizeof(*c));
	c->relaxed = relaxed;
}

/* RFC 6376 3.4.3 / 3.4.4 body canonicalization, counting bytes only. */
static void canon_byte(struct ma_dkim_canon *c, unsigned char ch)
{
	if (ch == '\n') {
		c->pending_ws = 0; /* relaxed: white space at a line end goes */
		if (c->line_len > 0) {
			c->committed += c->empty_lines * 2 + c->line_len + 2;
			c->empty_lines = 0;
		} else {
			c->empty_lines++;
		}
		c->line_len = 0;
		return;
	}
	if (c->relaxed && (ch == ' ' || ch == '\t')) {
		c->pending_ws = 1;
		return;
	}
	if (c->pending_ws) {
		c->line_len++; /* a run of white space is one space */
		c->pending_ws = 0;
	}
	c->line_len++;
}

void ma_dkim_canon_feed(struct ma_dkim_canon *c, const unsigned char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = data[i];
		if (c->held_cr) {
			c->held_cr = 0;
			if (ch != '\n')
				canon_byte(c, '\r'); /* a lone CR is content */
		}
		if (ch == '\r') {
			c->held_cr = 1;
			continue;
		}
		canon_byte(c, ch);
	}
}

unsigned long long ma_dkim_canon_length(const struct ma_dkim_canon *c)
{
	unsigned long long total = c->committed;
	unsigned long long line = c->line_len + (c->held_cr ? 1 : 0);
	if (line > 0)
		total += c->empty_lines * 2 + line + 2; /* a last line gets its CRLF */
	if (total == 0 && !c->relaxed)
		total = 2; /* simple: an empty body is one CRLF */
	return total;
}

static void copy_tag(DKIM_SIGINFO *sig, const char *tag, char *out, size_t outlen, int lower)
{
	u_char *v = dkim_sig_gettagvalue(sig, false, (u_char *)tag);
	size_t n = 0;
	if (v != NULL) {
		for (const u_char *p = v; *p != '\0' && n + 1 < outlen; p++) {
			if (*p <= ' ' || *p >= 0x7f || *p == ';' || *p == '"' || *p == '\\')
				continue; /* folding white space inside b=, or junk */
			out[n++] = (char)(lower && *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
		}
	}
	out[n] = '\0';
}

/* The canonical length of the whole body, in the signature's body
   canonicalization. */
static unsigned long long body_length(const struct ma_dkim_msg *m, DKIM_SIGINFO *sig)
{
	dkim_canon_t hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;
	dkim_sig_getcanons(sig, &hc, &bc);
	return ma_dkim_canon_length(&m->canon[bc == DKIM_CANON_RELAXED ? 1 : 0]);
}

/* Our verdict on one signature, from libopendkim's and our own checks. */
static void judge(struct ma_dkim_msg *m, DKIM_SIGINFO *sig, struct ma_dkim_sig *out)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	int bh = dkim_sig_getbh(sig);

	memset(out, 0, sizeof(*out));
	copy_tag(sig, "d", out->domain, sizeof(out->domain), 1);
	copy_tag(sig, "s", out->selector, sizeof(out->selector), 0);
	copy_tag(sig, "b", out->b, 9, 0);
	copy_tag(sig, "a", out->algorithm, sizeof(out->algorithm), 1);
	if (out->domain[0] != '\0' && out->domain[strlen(out->domain) - 1] == '.')
		out->domain[strlen(out->domain) - 1] = '\0';

	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH && err == DKIM_SIGERROR_OK) {
		dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
		unsigned int bits = 0;
		ssize_t msglen = 0, canonlen = 0, signlen = -1;
		dkim_sig_getsignalg(sig, &alg);
		dkim_sig_getkeysize(sig, &bits);
		dkim_sig_getcanonlen(m->dkim, sig, &msglen, &canonlen, &signlen);
		if (alg == DKIM_SIGN_RSASHA1) {
			out->result = MA_DKIM_POLICY;
			snprintf(out->reason, sizeof(out->reason), "rsa-sha1 is not accepted (RFC 8301)");
		} else if (alg == DKIM_SIGN_RSASHA256 && bits < m->d->min_key_bits) {
			out->result = MA_DKIM_POLICY;
			snprintf(out->reason, sizeof(out->reason), "key of %u bits is too short", bits);
		} else if (signlen >= 0 && body_length(m, sig) > (unsigned long long)signlen) {
			out->result = MA_DKIM_POLICY;
			snprintf(out->reason, sizeof(out->reason), "l= signs only %zd of %llu body bytes",
				 signlen, body_length(m, sig));
		} else {
			out->result = MA_DKIM_PASS;
		}
		return;
	}
	const char *why = dkim_sig_geterrorstr((DKIM_SIGERROR)err);
	snprintf(out->reason, sizeof(out->reason), "%s", why != NULL ? why : "verification failed");
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL:
		out->result = MA_DKIM_TEMPERROR;
		snprintf(out->reason, sizeof(out->reason), "key lookup failed (DNS)");
		return;
	case DKIM_SIGERROR_KEYTOOSMALL:
		out->result = MA_DKIM_POLICY;
		snprintf(out->reason, sizeof(out->reason), "key shorter than %u bits",
			 m->d->min_key_bits);
		return;
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_OK:
		out->result = MA_DKIM_FAIL;
		if (err == DKIM_SIGERROR_OK || bh == DKIM_SIGBH_MISMATCH)
			snprintf(out->reason, sizeof(out->reason), "%s",
				 bh == DKIM_SIGBH_MISMATCH ? "body hash did not verify"
							   : "signature did not verify");
		return;
	case DKIM_SIGERROR_NOKEY:
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
	case DKIM_SIGERROR_KEYDECODE:
		out->result = MA_DKIM_PERMERROR;
		return;
	default:
		/* the signature itself is malformed, expired, or from the future */
		out->result = MA_DKIM_NEUTRAL;
		return;
	}
}

int ma_dkim_msg_eom(struct ma_dkim_msg *m, struct mw_dns_budget *budget, struct ma_dkim_sig *sigs,
		    int max)
{
	DKIM_SIGINFO **list = NULL;
	int n = 0;

	if (m->failed || m->eoh == DKIM_STAT_NOSIG)
		return 0;
	current_budget = budget;
	_Bool testkey = 0;
	dkim_eom(m->dkim, &testkey);
	current_budget = NULL;
	if (dkim_getsiglist(m->dkim, &list, &n) != DKIM_STAT_OK || list == NULL)
		return 0;
	int out = 0;
	for (int i = 0; i < n && out < max; i++) {
		if (dkim_sig_getflags(list[i]) & DKIM_SIGFLAG_IGNORE)
			continue;
		judge(m, list[i], &sigs[out++]);
	}
	return out;
}

const char *ma_dkim_result_name(enum ma_dkim_result r)
{
	switch (r) {
	case MA_DKIM_NONE: return "none";
	case MA_DKIM_PASS: return "pass";
	case MA_DKIM_FAIL: return "fail";
	case MA_DKIM_NEUTRAL: return "neutral";
	case MA_DKIM_POLICY: return "policy";
	case MA_DKIM_TEMPERROR: return "temperror";
	case MA_DKIM_PERMERROR: return "permerror";
	}
	return "none";
}
