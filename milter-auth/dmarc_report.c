#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc_report.h"
#include "strnum.h"

/* ------------------------------------------------------------ store line */

/*
 * One evaluation per line: "mwdr1" then the fields below, separated by
 * TAB. A field's bytes outside '!'..'~', and '%', are written %XX, so a
 * field never holds a TAB or a newline whatever a message put in it.
 */
#define LINE_TAG "mwdr1"

void ma_report_tsv_put(struct mw_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	mw_buf_putc(out, '\t');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '%') {
			mw_buf_putc(out, '%');
			mw_buf_putc(out, hex[*p >> 4]);
			mw_buf_putc(out, hex[*p & 15]);
		} else {
			mw_buf_putc(out, *p);
		}
	}
}

static void put_char_field(struct mw_buf *out, char c)
{
	char s[2] = { c, '\0' };
	ma_report_tsv_put(out, s);
}

void ma_report_eval_format(const struct ma_report_eval *e, struct mw_buf *out)
{
	char num[32];
	mw_buf_puts(out, LINE_TAG);
	snprintf(num, sizeof(num), "%lld", e->ts);
	ma_report_tsv_put(out, num);
	ma_report_tsv_put(out, e->host);
	ma_report_tsv_put(out, e->source_ip);
	ma_report_tsv_put(out, e->header_from);
	ma_report_tsv_put(out, e->envelope_from);
	ma_report_tsv_put(out, e->policy_domain);
	ma_report_tsv_put(out, e->discovery);
	ma_report_tsv_put(out, e->p);
	ma_report_tsv_put(out, e->sp);
	ma_report_tsv_put(out, e->np);
	put_char_field(out, e->adkim);
	put_char_field(out, e->aspf);
	put_char_field(out, e->testing);
	ma_report_tsv_put(out, e->disposition);
	ma_report_tsv_put(out, e->dkim_aligned);
	ma_report_tsv_put(out, e->spf_aligned);
	ma_report_tsv_put(out, e->reason);
	ma_report_tsv_put(out, e->reason_comment);
	ma_report_tsv_put(out, e->spf_domain);
	ma_report_tsv_put(out, e->spf_result);
	/* signatures: "d s result" triples joined by spaces, escaped as one field */
	struct mw_buf d = MW_BUF_INIT;
	for (int i = 0; i < e->ndkim && i < MA_REPORT_MAX_DKIM; i++)
		mw_buf_printf(&d, "%s%s/%s/%s", i ? "," : "", e->dkim[i].domain, e->dkim[i].selector,
			      e->dkim[i].result);
	ma_report_tsv_put(out, mw_buf_str(&d));
	mw_buf_free(&d);
	ma_report_tsv_put(out, e->rua);
	mw_buf_putc(out, '\n');
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes [s, e) into out (size outlen); -1 if malformed or too long. */
int ma_report_tsv_get(const char *s, const char *e, char *out, size_t outlen)
{
	size_t n = 0;
	for (const char *p = s; p < e; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			if (e - p < 3 || unhex(p[1]) < 0 || unhex(p[2]) < 0)
				return -1;
			c = unhex(p[1]) * 16 + unhex(p[2]);
			p += 2;
			if (c == 0)
				return -1;
		} else if (c <= ' ' || c >= 0x7f) {
			return -1;
		}
		if (n + 1 >= outlen)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

static int one_of(const char *v, const char *const *words)
{
	for (; *words != NULL; words++)
		if (strcmp(v, *words) == 0)
			return 1;
	return 0;
}

static const char *const policies[] = { "", "none", "quarantine", "reject", NULL };
static const char *const dispositions[] = { "none", "pass", "quarantine", "reject", NULL };
static const char *const aligned[] = { "pass", "fail", NULL };
static const char *const reasons[] = { "", "local_policy", "mailing_list", "other", "policy_test_mode",
				       "trusted_forwarder", NULL };
static const char *const dkim_results[] = { "none", "pass", "fail", "policy", "neutral", "temperror",
					    "permerror", NULL };
static const char *const spf_results[] = { "none", "pass", "fail", "softfail", "policy", "neutral",
					   "temperror", "permerror", NULL };
static const char *const discoveries[] = { "treewalk", "psl", NULL };

#define NFIELDS 22

static int parse_dkim(char *list, struct ma_report_eval *e)
{
	e->ndkim = 0;
	if (list[0] == '\0')
		return 0;
	for (char *item = list; item != NULL;) {
		char *next = strchr(item, ',');
		if (next != NULL)
			*next++ = '\0';
		char *s1 = strchr(item, '/');
		char *s2 = s1 != NULL ? strchr(s1 + 1, '/') : NULL;
		if (s2 == NULL || e->ndkim >= MA_REPORT_MAX_DKIM)
			return -1;
		*s1 = *s2 = '\0';
		struct ma_report_dkim *k = &e->dkim[e->ndkim++];
		if (strlen(item) >= sizeof(k->domain) || strlen(s1 + 1) >= sizeof(k->selector) ||
		    !one_of(s2 + 1, dkim_results))
			return -1;
		memcpy(k->domain, item, strlen(item) + 1);
		memcpy(k->selector, s1 + 1, strlen(s1 + 1) + 1);
		memcpy(k->result, s2 + 1, strlen(s2 + 1) + 1);
		item = next;
	}
	return 0;
}

int ma_report_eval_parse(const char *line, size_t len, struct ma_report_eval *e, struct mw_buf *err)
{
	const char *start[NFIELDS + 1], *end[NFIELDS + 1];
	int n = 0;
	memset(e, 0, sizeof(*e));
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > MA_REPORT_LINE_MAX) {
		mw_buf_puts(err, "line too long");
		return -1;
	}
	const char *p = line, *stop = line + len;
	while (p <= stop) {
		const char *tab = memchr(p, '\t', (size_t)(stop - p));
		const char *fe = tab != NULL ? tab : stop;
		if (n > NFIELDS) {
			mw_buf_puts(err, "too many fields");
			return -1;
		}
		start[n] = p;
		end[n] = fe;
		n++;
		p = fe + 1;
	}
	if (n != NFIELDS + 1 || end[0] - start[0] != (long)strlen(LINE_TAG) ||
	    memcmp(start[0], LINE_TAG, strlen(LINE_TAG)) != 0) {
		mw_buf_printf(err, "not a %s line of %d fields", LINE_TAG, NFIELDS);
		return -1;
	}
	char ts[24], adkim[2], aspf[2], testing[2], dk[MA_REPORT_LINE_MAX];
	struct {
		char *dst;
		size_t len;
	} f[NFIELDS] = {
		{ ts, sizeof(ts) }, { e->host, sizeof(e->host) }, { e->source_ip, sizeof(e->source_ip) },
		{ e->header_from, sizeof(e->header_from) }, { e->envelope_from, sizeof(e->envelope_from) },
		{ e->policy_domain, sizeof(e->policy_domain) }, { e->discovery, sizeof(e->discovery) },
		{ e->p, sizeof(e->p) }, { e->sp, sizeof(e->sp) }, { e->np, sizeof(e->np) },
		{ adkim, sizeof(adkim) }, { aspf, sizeof(aspf) }, { testing, sizeof(testing) },
		{ e->disposition, sizeof(e->disposition) }, { e->dkim_aligned, sizeof(e->dkim_aligned) },
		{ e->spf_aligned, sizeof(e->spf_aligned) }, { e->reason, sizeof(e->reason) },
		{ e->reason_comment, sizeof(e->reason_comment) }, { e->spf_domain, sizeof(e->spf_domain) },
		{ e->spf_result, sizeof(e->spf_result) }, { dk, sizeof(dk) }, { e->rua, sizeof(e->rua) },
	};
	for (int i = 0; i < NFIELDS; i++) {
		if (ma_report_tsv_get(start[i + 1], end[i + 1], f[i].dst, f[i].len) < 0) {
			mw_buf_printf(err, "field %d is malformed or too long", i + 1);
			return -1;
		}
	}
	unsigned long long t;
	const char *why = NULL;
	if (mw_parse_uint(ts, 100000000000ULL, &t) < 0)
		why = "bad time";
	else if (e->header_from[0] == '\0' || e->policy_domain[0] == '\0' || e->source_ip[0] == '\0')
		why = "header_from, policy domain or source IP missing";
	else if (!one_of(e->discovery, discoveries))
		why = "bad discovery method";
	else if (!one_of(e->p, policies) || e->p[0] == '\0' || !one_of(e->sp, policies) || !one_of(e->np, policies))
		why = "bad policy";
	else if (strlen(adkim) != 1 || strchr("rs", adkim[0]) == NULL || strlen(aspf) != 1 ||
		 strchr("rs", aspf[0]) == NULL || strlen(testing) != 1 || strchr("yn", testing[0]) == NULL)
		why = "bad alignment mode or testing flag";
	else if (!one_of(e->disposition, dispositions))
		why = "bad disposition";
	else if (!one_of(e->dkim_aligned, aligned) || !one_of(e->spf_aligned, aligned))
		why = "bad alignment result";
	else if (!one_of(e->reason, reasons))
		why = "bad override reason";
	else if (e->spf_result[0] != '\0' && !one_of(e->spf_result, spf_results))
		why = "bad SPF result";
	else if (parse_dkim(dk, e) < 0)
		why = "bad DKIM results";
	if (why != NULL) {
		mw_buf_puts(err, why);
		return -1;
	}
	e->ts = (long long)t;
	e->adkim = adkim[0];
	e->aspf = aspf[0];
	e->testing = testing[0];
	return 0;
}

/* ------------------------------------------------------------ XML */

void ma_report_xml_escape(struct mw_buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '&': mw_buf_puts(out, "&amp;"); break;
		case '<': mw_buf_puts(out, "&lt;"); break;
		case '>': mw_buf_puts(out, "&gt;"); break;
		case '"': mw_buf_puts(out, "&quot;"); break;
		case '\'': mw_buf_puts(out, "&apos;"); break;
		default:
			if (*p >= ' ' && *p < 0x7f)
				mw_buf_putc(out, *p);
		}
	}
}

static void elem(struct mw_buf *out, int indent, const char *name, const char *value)
{
	mw_buf_printf(out, "%*s<%s>", indent, "", name);
	ma_report_xml_escape(out, value);
	mw_buf_printf(out, "</%s>\n", name);
}

/* The domain part of envelope_from (the store may hold the address). */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : addr;
}

/* The order of records: evaluations that compare equal (everything but
   the time, host and policy) fall into one record. */
static int cmp_row(const void *x, const void *y)
{
	const struct ma_report_eval *a = *(const struct ma_report_eval *const *)x;
	const struct ma_report_eval *b = *(const struct ma_report_eval *const *)y;
	int c;
	if ((c = strcmp(a->source_ip, b->source_ip)) != 0 || (c = strcmp(a->header_from, b->header_from)) != 0 ||
	    (c = strcasecmp(domain_of(a->envelope_from), domain_of(b->envelope_from))) != 0 ||
	    (c = strcmp(a->disposition, b->disposition)) != 0 || (c = strcmp(a->dkim_aligned, b->dkim_aligned)) != 0 ||
	    (c = strcmp(a->spf_aligned, b->spf_aligned)) != 0 || (c = strcmp(a->reason, b->reason)) != 0 ||
	    (c = strcmp(a->reason_comment, b->reason_comment)) != 0 || (c = strcmp(a->spf_domain, b->spf_domain)) != 0 ||
	    (c = strcmp(a->spf_result, b->spf_result)) != 0)
		return c;
	if (a->ndkim != b->ndkim)
		return a->ndkim < b->ndkim ? -1 : 1;
	for (int i = 0; i < a->ndkim; i++)
		if ((c = strcmp(a->dkim[i].domain, b->dkim[i].domain)) != 0 ||
		    (c = strcmp(a->dkim[i].selector, b->dkim[i].selector)) != 0 ||
		    (c = strcmp(a->dkim[i].result, b->dkim[i].result)) != 0)
			return c;
	return 0;
}

static void put_record(struct mw_buf *out, const struct ma_report_eval *e, unsigned long long count)
{
	mw_buf_puts(out, "  <record>\n    <row>\n");
	elem(out, 6, "source_ip", e->source_ip);
	mw_buf_printf(out, "      <count>%llu</count>\n", count);
	mw_buf_puts(out, "      <policy_evaluated>\n");
	elem(out, 8, "disposition", e->disposition);
	elem(out, 8, "dkim", e->dkim_aligned);
	elem(out, 8, "spf", e->spf_aligned);
	if (e->reason[0] != '\0') {
		mw_buf_puts(out, "        <reason>\n");
		elem(out, 10, "type", e->reason);
		if (e->reason_comment[0] != '\0')
			elem(out, 10, "comment", e->reason_comment);
		mw_buf_puts(out, "        </reason>\n");
	}
	mw_buf_puts(out, "      </policy_evaluated>\n    </row>\n    <identifiers>\n");
	elem(out, 6, "header_from", e->header_from);
	elem(out, 6, "envelope_from", domain_of(e->envelope_from));
	mw_buf_puts(out, "    </identifiers>\n    <auth_results>\n");
	for (int i = 0; i < e->ndkim; i++) {
		mw_buf_puts(out, "      <dkim>\n");
		elem(out, 8, "domain", e->dkim[i].domain);
		elem(out, 8, "selector", e->dkim[i].selector);
		elem(out, 8, "result", e->dkim[i].result);
		mw_buf_puts(out, "      </dkim>\n");
	}
	if (e->spf_domain[0] != '\0' && e->spf_result[0] != '\0') {
		mw_buf_puts(out, "      <spf>\n");
		elem(out, 8, "domain", e->spf_domain);
		elem(out, 8, "scope", "mfrom");
		elem(out, 8, "result", e->spf_result);
		mw_buf_puts(out, "      </spf>\n");
	}
	mw_buf_puts(out, "    </auth_results>\n  </record>\n");
}

int ma_report_xml(const struct ma_report_meta *meta, const struct ma_report_eval *const *evals, size_t n,
		  struct mw_buf *out, unsigned long long *messages)
{
	*messages = 0;
	if (n == 0)
		return 0;
	const struct ma_report_eval *last = evals[0];
	for (size_t i = 1; i < n; i++)
		if (evals[i]->ts >= last->ts)
			last = evals[i];

	mw_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			 "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">\n"
			 "  <version>1.0</version>\n  <report_metadata>\n");
	elem(out, 4, "org_name", meta->org_name);
	elem(out, 4, "email", meta->email);
	elem(out, 4, "report_id", meta->report_id);
	mw_buf_printf(out, "    <date_range>\n      <begin>%lld</begin>\n      <end>%lld</end>\n"
			   "    </date_range>\n", meta->begin, meta->end);
	if (meta->generator != NULL)
		elem(out, 4, "generator", meta->generator);
	mw_buf_puts(out, "  </report_metadata>\n  <policy_published>\n");
	elem(out, 4, "domain", last->policy_domain);
	elem(out, 4, "p", last->p);
	if (last->sp[0] != '\0')
		elem(out, 4, "sp", last->sp);
	if (last->np[0] != '\0')
		elem(out, 4, "np", last->np);
	mw_buf_printf(out, "    <adkim>%c</adkim>\n    <aspf>%c</aspf>\n", last->adkim, last->aspf);
	elem(out, 4, "discovery_method", last->discovery);
	mw_buf_printf(out, "    <testing>%c</testing>\n", last->testing);
	mw_buf_puts(out, "  </policy_published>\n");

	/* rows: sorted so that equal evaluations are adjacent, then counted */
	const struct ma_report_eval **sorted = malloc(n * sizeof(*sorted));
	int records = 0;
	if (sorted == NULL)
		return -1;
	memcpy(sorted, evals, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_row);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && cmp_row(&sorted[i], &sorted[j]) == 0)
			j++;
		put_record(out, sorted[i], j - i);
		*messages += j - i;
		records++;
		i = j;
	}
	free(sorted);
	mw_buf_puts(out, "</feedback>\n");
	return mw_buf_failed(out) ? -1 : records;
}

void ma_report_filename(const struct ma_report_meta *meta, const char *policy_domain, struct mw_buf *out)
{
	/* unique-id: the report id's letters and digits (RFC 9990 2.5.2.2) */
	mw_buf_printf(out, "%s!%s!%lld!%lld!", meta->submitter, policy_domain, meta->begin, meta->end);
	for (const char *p = meta->report_id; *p != '\0'; p++)
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			mw_buf_putc(out, *p);
	mw_buf_puts(out, ".xml.gz");
}

/* ------------------------------------------------------------ rua */

static unsigned long long size_suffix(const char *s, const char *e)
{
	unsigned long long n = 0;
	const char *p = s;
	while (p < e && *p >= '0' && *p <= '9') {
		if (n > 1000000000000ULL)
			return 0;
		n = n * 10 + (unsigned long long)(*p - '0');
		p++;
	}
	if (p == s)
		return 0;
	unsigned long long mult = 1;
	if (p < e) {
		switch (*p | 0x20) {
		case 'k': mult = 1024ULL; break;
		case 'm': mult = 1024ULL * 1024; break;
		case 'g': mult = 1024ULL * 1024 * 1024; break;
		case 't': mult = 1024ULL * 1024 * 1024 * 1024; break;
		default: return 0;
		}
		p++;
	}
	return p == e ? n * mult : 0;
}

int ma_report_rua_parse(const char *rua, struct ma_rua_uri *out, int max)
{
	int n = 0;
	const char *s = rua, *end = rua + strlen(rua);
	while (s < end && n < max) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *ue = comma != NULL ? comma : end;
		const char *us = s;
		s = comma != NULL ? comma + 1 : end;
		while (us < ue && (*us == ' ' || *us == '\t'))
			us++;
		while (ue > us && (ue[-1] == ' ' || ue[-1] == '\t'))
			ue--;
		const char *bang = memchr(us, '!', (size_t)(ue - us));
		unsigned long long lim = 0;
		if (bang != NULL) {
			lim = size_suffix(bang + 1, ue);
			ue = bang;
		}
		if (ue - us < 8 || strncasecmp(us, "mailto:", 7) != 0)
			continue;
		us += 7;
		const char *q = memchr(us, '?', (size_t)(ue - us)); /* mailto headers: not used */
		if (q != NULL)
			ue = q;
		struct ma_rua_uri *u = &out[n];
		size_t len = 0;
		int ok = 1;
		/* %-decode; only what a mailbox may hold survives */
		for (const char *p = us; p < ue && ok; p++) {
			int c = (unsigned char)*p;
			if (c == '%') {
				if (ue - p < 3 || unhex(p[1]) < 0 || unhex(p[2]) < 0) {
					ok = 0;
					break;
				}
				c = unhex(p[1]) * 16 + unhex(p[2]);
				p += 2;
			}
			if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:\"", c) != NULL || len + 1 >= sizeof(u->mailbox))
				ok = 0;
			else
				u->mailbox[len++] = (char)c;
		}
		u->mailbox[len] = '\0';
		const char *at = strrchr(u->mailbox, '@');
		if (!ok || at == NULL || at == u->mailbox || strchr(u->mailbox, '@') != at ||
		    ma_domain_normalize(at + 1, strlen(at + 1), u->domain, sizeof(u->domain)) < 0)
			continue;
		u->max_size = lim;
		n++;
	}
	return n;
}

int ma_report_rua_is_external(const char *org_of_policy, const char *org_of_dest)
{
	return strcasecmp(org_of_policy, org_of_dest) != 0;
}

int ma_report_verify_name(const char *policy_domain, const char *dest_domain, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s._report._dmarc.%s", policy_domain, dest_domain);
	if (n < 0 || (size_t)n >= outlen || n > 253)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ loops */

int ma_report_subject_is_report(const char *value)
{
	/* "Report" FWS "Domain:" ... "Submitter:" (RFC 9990 2.5.2.2; RFC 7489
	   7.2.1.1 has the same words) */
	const char *p = value;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (strncasecmp(p, "Report", 6) != 0)
		return 0;
	p += 6;
	if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
		return 0;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (strncasecmp(p, "Domain:", 7) != 0)
		return 0;
	return strstr(p, "Submitter:") != NULL;
}
