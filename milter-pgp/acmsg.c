#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libpsl.h>

#include "../milter-auth/hdrparse.h"
#include "acmsg.h"
#include "acpeer.h"
#include "autocrypt.h"
#include "gpg.h"
#include "log.h"

static void lower_copy(char *out, size_t size, const char *in)
{
	size_t i = 0;
	for (; in[i] != '\0' && i + 1 < size; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	out[i] = '\0';
}

/* ------------------------------------------------------------ inbound */

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static psl_ctx_t *psl;

static void psl_init(void)
{
	psl = psl_latest(NULL);
}

/* Relaxed alignment (RFC 7489 3.1.1): the same organizational domain. */
static int aligned(const char *d, const char *from_domain)
{
	if (strcmp(d, from_domain) == 0)
		return 1;
	pthread_once(&psl_once, psl_init);
	const char *a = psl != NULL ? psl_registrable_domain(psl, d) : NULL;
	const char *b = psl != NULL ? psl_registrable_domain(psl, from_domain) : NULL;
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

void mp_ac_inbound(struct mp_conf *c, const struct mp_msg *m, struct mw_buf *log)
{
	const struct mp_settings *s = &c->s;
	int n = mp_msg_nheaders(m), nac = 0, nfrom = 0, matching = 0, mismatch = 0;
	const char *from = NULL, *date = NULL, *ctype = NULL, *why = "", *bad = "";
	struct mp_ac_header h, got;
	struct mw_buf err = MW_BUF_INIT;
	memset(&got, 0, sizeof(got));
	for (int i = 0; i < n; i++) {
		const char *name = mp_msg_header_name(m, i), *value = mp_msg_header_value(m, i);
		if (strcasecmp(name, "Autocrypt") == 0)
			nac++;
		else if (strcasecmp(name, "From") == 0 && nfrom++ == 0)
			from = value;
		else if (strcasecmp(name, "Date") == 0 && date == NULL)
			date = value;
		else if (strcasecmp(name, "Content-Type") == 0 && ctype == NULL)
			ctype = value;
	}
	if (nac == 0 || !s->autocrypt_learn)
		return;
#define IGNORE(reason)                                                  \
	do {                                                            \
		mw_buf_printf(log, " autocrypt=ignored(%s)", reason); \
		goto out;                                               \
	} while (0)
	if (ctype != NULL) {
		while (*ctype == ' ' || *ctype == '\t')
			ctype++;
		if (strncasecmp(ctype, "multipart/report", 16) == 0)
			IGNORE("multipart/report");
	}
	struct ma_from f;
	if (nfrom != 1)
		IGNORE(nfrom == 0 ? "no-from" : "several-from-fields");
	if (ma_from_parse(from, strlen(from), &f) < 0)
		IGNORE(f.mailboxes > 1 ? "several-from-addresses" : "from-unusable");
	char addr[MP_AC_ADDR_MAX];
	char tmp[MP_AC_ADDR_MAX];
	snprintf(tmp, sizeof(tmp), "%s@%s", f.local, f.domain);
	lower_copy(addr, sizeof(addr), tmp);
	for (int i = 0; i < n; i++) {
		const char *value = mp_msg_header_value(m, i);
		if (strcasecmp(mp_msg_header_name(m, i), "Autocrypt") != 0)
			continue;
		if (mp_ac_parse(value, strlen(value), &h, &bad) < 0)
			continue; /* invalid headers are ignored (Level 1) */
		if (strcmp(h.addr, addr) != 0) {
			mismatch++;
		} else if (matching++ == 0) {
			got = h;
			continue;
		}
		mp_ac_header_free(&h);
	}
	if (matching == 0) {
		if (mismatch > 0)
			IGNORE("addr-not-from");
		mw_buf_printf(log, " autocrypt=ignored(invalid-header: %s)", bad);
		goto out;
	}
	if (matching > 1)
		IGNORE("several-headers");
	enum mp_ac_ar verdict = MP_AC_AR_OTHER;
	for (int i = 0; i < n && verdict == MP_AC_AR_OTHER; i++) {
		const char *value = mp_msg_header_value(m, i);
		if (strcasecmp(mp_msg_header_name(m, i), "Authentication-Results") == 0)
			verdict = mp_ac_ar_verdict(value, strlen(value), s->authserv_id, f.domain, aligned);
	}
	if (verdict == MP_AC_AR_OTHER)
		IGNORE("no-authentication-results");
	if (verdict == MP_AC_AR_NONE)
		IGNORE("not-authenticated");
	long long now = (long long)time(NULL), eff = now, d;
	if (date != NULL && mp_ac_date(date, strlen(date), &d) == 0 && d < now)
		eff = d;
	int r = mp_ac_peer_learn(c, addr, eff, &got, &why, &err);
	if (r > 0) {
		mw_buf_printf(log, " autocrypt=learned(%s)", verdict == MP_AC_AR_DMARC ? "dmarc" : "dkim");
	} else if (r == 0) {
		mw_buf_printf(log, " autocrypt=ignored(%s%s)", why[0] == 'o' ? "" : "keydata: ", why);
	} else {
		mw_msg_warn("Autocrypt peer store: <%s>: %s", addr, mw_buf_str(&err));
		mw_buf_puts(log, " autocrypt=error");
	}
#undef IGNORE
out:
	mp_ac_header_free(&got);
	mw_buf_free(&err);
}

/* ------------------------------------------------------------ outbound */

static void add_change(struct mp_outcome *o, int add, const char *name, const char *value, int index)
{
	o->changes = mw_xrealloc(o->changes, sizeof(*o->changes) * (size_t)(o->nchanges + 1));
	struct mp_change *ch = &o->changes[o->nchanges++];
	ch->add = add;
	ch->name = mw_xstrdup(name);
	ch->value = value != NULL ? mw_xstrdup(value) : NULL;
	ch->index = index;
}

void mp_ac_outbound(struct mp_conf *c, const struct mp_msg *m, struct mp_gpg *g, struct mp_outcome *o)
{
	const char *sender = mp_msg_sender(m), *from = NULL;
	int n = mp_msg_nheaders(m), nfrom = 0, nac = 0;
	struct mw_buf key = MW_BUF_INIT, err = MW_BUF_INIT, value = MW_BUF_INIT;
	struct ma_from f;
	char addr[MP_AC_ADDR_MAX];
	if (g == NULL || !mp_ac_wanted(c, sender))
		return;
	for (int i = 0; i < n; i++) {
		const char *name = mp_msg_header_name(m, i);
		if (strcasecmp(name, "From") == 0 && nfrom++ == 0)
			from = mp_msg_header_value(m, i);
		else if (strcasecmp(name, "Autocrypt") == 0)
			nac++;
	}
	/* the key is the sender's: never under another From address */
	if (nfrom != 1 || ma_from_parse(from, strlen(from), &f) < 0) {
		mw_buf_puts(&o->log, " autocrypt=not-added(from)");
		return;
	}
	snprintf(addr, sizeof(addr), "%s@%s", f.local, f.domain);
	if (strcasecmp(addr, sender) != 0) {
		mw_buf_puts(&o->log, " autocrypt=not-added(from-not-sender)");
		return;
	}
	lower_copy(addr, sizeof(addr), sender);
	int r = mp_gpg_autocrypt_key(g, addr, &key, &err);
	if (r <= 0) {
		if (r < 0)
			mw_msg_warn("Autocrypt key of <%s>: %s", addr, mw_buf_str(&err));
		mw_buf_puts(&o->log, r < 0 ? " autocrypt=not-added(error)" : " autocrypt=not-added(no-key-pair)");
		goto out;
	}
	/* one header: whatever the sender's program put is replaced */
	for (int i = nac; i >= 1; i--)
		add_change(o, 0, "Autocrypt", NULL, i);
	mp_ac_header_value(addr, c->s.autocrypt_prefer_encrypt, (const unsigned char *)key.data, mw_buf_len(&key),
			   &value);
	add_change(o, 1, "Autocrypt", mw_buf_str(&value), 0);
	mw_buf_puts(&o->log, " autocrypt=added");
out:
	mw_buf_free(&key);
	mw_buf_free(&err);
	mw_buf_free(&value);
}

