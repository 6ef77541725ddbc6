#include "config.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>
#include <zlib.h>

#include "report_ingest.h"
#include "strnum.h"

/* ------------------------------------------------------------ XML */

static int is_elem(const xmlNode *n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
	for (const xmlNode *c = n != NULL ? n->children : NULL; c != NULL; c = c->next)
		if (is_elem(c, name))
			return c;
	return NULL;
}

/* The text of an element (its text children only: there are no entity
   references, documents with a DOCTYPE are refused), trimmed, printable
   ASCII kept, into out. */
static void text_of(const xmlNode *n, char *out, size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	if (n == NULL)
		return;
	for (const xmlNode *c = n->children; c != NULL; c = c->next) {
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			continue;
		for (const unsigned char *p = c->content; p != NULL && *p != '\0'; p++) {
			if (len == 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
				continue;
			if (*p >= ' ' && *p < 0x7f && len + 1 < outlen)
				out[len++] = (char)*p;
		}
	}
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
}

static void path_text(const xmlNode *n, const char *a, const char *b, char *out, size_t outlen)
{
	const xmlNode *x = child(n, a);
	text_of(b != NULL ? child(x, b) : x, out, outlen);
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
}

struct rows {
	struct ma_rua_row *v;
	size_t n, cap;
};

int ma_report_ingest_xml(const char *xml, size_t len, ma_rua_row_fn *fn, void *ctx, struct mw_buf *err)
{
	/* No DTD, so no entity can be declared, let alone expanded (XML
	   bombs): aggregate reports never carry one. */
	for (size_t i = 0; i + 2 < len; i++) {
		if (xml[i] == '<' && xml[i + 1] == '!' && (xml[i + 2] == 'D' || xml[i + 2] == 'd' ||
							   xml[i + 2] == 'E' || xml[i + 2] == 'e')) {
			mw_buf_puts(err, "refused: the XML has a DOCTYPE or ENTITY declaration");
			return -1;
		}
	}
	if (len > (size_t)0x7fffffff) {
		mw_buf_puts(err, "refused: XML too large");
		return -1;
	}
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "report.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
	if (doc == NULL) {
		const xmlError *e = xmlGetLastError();
		mw_buf_printf(err, "refused: not well-formed XML%s%s", e != NULL && e->message != NULL ? ": " : "",
			      e != NULL && e->message != NULL ? e->message : "");
		while (mw_buf_len(err) > 0 && mw_buf_str(err)[mw_buf_len(err) - 1] == '\n')
			mw_buf_truncate(err, mw_buf_len(err) - 1);
		return -1;
	}
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (doc->intSubset != NULL || !is_elem(root, "feedback")) {
		mw_buf_puts(err, "refused: not a DMARC aggregate report (no <feedback> root)");
		xmlFreeDoc(doc);
		return -1;
	}
	struct ma_rua_row base;
	memset(&base, 0, sizeof(base));
	snprintf(base.format, sizeof(base.format), "%s",
		 root->ns != NULL && root->ns->href != NULL &&
				 strcmp((const char *)root->ns->href, "urn:ietf:params:xml:ns:dmarc-2.0") == 0
			 ? "rfc9990" : "rfc7489");
	const xmlNode *meta = child(root, "report_metadata"), *pol = child(root, "policy_published");
	char num[32];
	unsigned long long b = 0, e = 0;
	path_text(meta, "org_name", NULL, base.org_name, sizeof(base.org_name));
	path_text(meta, "report_id", NULL, base.report_id, sizeof(base.report_id));
	path_text(meta, "date_range", "begin", num, sizeof(num));
	int bad = mw_parse_uint(num, 1ULL << 40, &b) < 0;
	path_text(meta, "date_range", "end", num, sizeof(num));
	bad |= mw_parse_uint(num, 1ULL << 40, &e) < 0;
	path_text(pol, "domain", NULL, base.policy_domain, sizeof(base.policy_domain));
	lower(base.policy_domain);
	if (meta == NULL || pol == NULL || bad || base.report_id[0] == '\0' || base.policy_domain[0] == '\0') {
		mw_buf_puts(err, "refused: report_metadata (report_id, date_range) or policy_published missing");
		xmlFreeDoc(doc);
		return -1;
	}
	base.begin = (long long)b;
	base.end = (long long)e;

	struct rows r = { 0 };
	const char *why = NULL;
	for (const xmlNode *rec = root->children; rec != NULL && why == NULL; rec = rec->next) {
		if (!is_elem(rec, "record"))
			continue;
		if (r.n >= MA_INGEST_MAX_ROWS) {
			why = "refused: too many records";
			break;
		}
		if (r.n == r.cap) {
			r.cap = r.cap ? r.cap * 2 : 64;
			struct ma_rua_row *nv = realloc(r.v, r.cap * sizeof(*nv));
			if (nv == NULL) {
				why = "out of memory";
				break;
			}
			r.v = nv;
		}
		struct ma_rua_row *w = &r.v[r.n++];
		*w = base;
		const xmlNode *row = child(rec, "row"), *ids = child(rec, "identifiers"), *ar = child(rec, "auth_results");
		path_text(row, "source_ip", NULL, w->source_ip, sizeof(w->source_ip));
		path_text(row, "count", NULL, num, sizeof(num));
		if (w->source_ip[0] == '\0' || mw_parse_uint(num, 1ULL << 40, &w->count) < 0) {
			why = "refused: a record without source_ip or count";
			break;
		}
		const xmlNode *pe = child(row, "policy_evaluated");
		path_text(pe, "disposition", NULL, w->disposition, sizeof(w->disposition));
		path_text(pe, "dkim", NULL, w->dkim_aligned, sizeof(w->dkim_aligned));
		path_text(pe, "spf", NULL, w->spf_aligned, sizeof(w->spf_aligned));
		path_text(ids, "header_from", NULL, w->header_from, sizeof(w->header_from));
		lower(w->header_from);
		size_t dl = 0;
		for (const xmlNode *c = ar != NULL ? ar->children : NULL; c != NULL; c = c->next) {
			char d[MA_DOMAIN_MAX], res[16];
			if (is_elem(c, "dkim")) {
				path_text(c, "domain", NULL, d, sizeof(d));
				path_text(c, "result", NULL, res, sizeof(res));
				int k = snprintf(w->dkim + dl, sizeof(w->dkim) - dl, "%s%s/%s", dl ? "," : "", d, res);
				if (k > 0 && (size_t)k < sizeof(w->dkim) - dl)
					dl += (size_t)k;
			} else if (is_elem(c, "spf") && w->spf[0] == '\0') {
				path_text(c, "domain", NULL, d, sizeof(d));
				path_text(c, "result", NULL, res, sizeof(res));
				snprintf(w->spf, sizeof(w->spf), "%s/%s", d, res);
			}
		}
	}
	xmlFreeDoc(doc);
	if (why == NULL && r.n == 0)
		why = "refused: a report without records";
	if (why != NULL) {
		mw_buf_puts(err, why);
		free(r.v);
		return -1;
	}
	for (size_t i = 0; i < r.n; i++)
		fn(ctx, &r.v[i]);
	free(r.v);
	return (int)r.n;
}

/* ------------------------------------------------------------ archives */

static int gunzip(const unsigned char *in, size_t len, size_t max, struct mw_buf *out, struct mw_buf *err)
{
	z_stream z;
	unsigned char chunk[65536];
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		mw_buf_puts(err, "zlib failed");
		return -1;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)(len > 0xffffffffu ? 0xffffffffu : len);
	int rc;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) {
			mw_buf_printf(err, "refused: broken gzip data");
			inflateEnd(&z);
			return -1;
		}
		size_t got = sizeof(chunk) - z.avail_out;
		if (mw_buf_len(out) + got > max || mw_buf_append(out, chunk, got) < 0) {
			mw_buf_printf(err, "refused: gzip data expands past %zu bytes", max);
			inflateEnd(&z);
			return -1;
		}
		if (rc == Z_OK && got == 0 && z.avail_in == 0) {
			mw_buf_puts(err, "refused: truncated gzip data");
			inflateEnd(&z);
			return -1;
		}
	} while (rc != Z_STREAM_END);
	inflateEnd(&z);
	return 0;
}

static int name_is_plain(const char *n)
{
	return n[0] != '\0' && strchr(n, '/') == NULL && strchr(n, '\\') == NULL && strcmp(n, "..") != 0 &&
	       strcmp(n, ".") != 0 && strchr(n, ':') == NULL;
}

static int process_payload(const unsigned char *p, size_t len, size_t max, int depth, ma_rua_row_fn *fn,
			   void *ctx, int *reports, struct mw_buf *err);

static int unzip(const unsigned char *in, size_t len, size_t max, int depth, ma_rua_row_fn *fn, void *ctx,
		 int *reports, struct mw_buf *err)
{
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(in, len, 0, &ze);
	zip_t *z = src != NULL ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
	if (z == NULL) {
		mw_buf_printf(err, "refused: not a readable zip archive (%s)", zip_error_strerror(&ze));
		if (src != NULL)
			zip_source_free(src);
		zip_error_fini(&ze);
		return -1;
	}
	zip_error_fini(&ze);
	zip_int64_t n = zip_get_num_entries(z, 0);
	int rc = 0;
	if (n <= 0 || n > MA_INGEST_MAX_ZIP_ENTRIES) {
		mw_buf_printf(err, "refused: a zip archive of %lld entries", (long long)n);
		rc = -1;
	}
	for (zip_int64_t i = 0; i < n && rc == 0; i++) {
		const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
		if (name == NULL || !name_is_plain(name)) {
			mw_buf_printf(err, "refused: zip entry name with a path: %.100s", name != NULL ? name : "?");
			rc = -1;
			break;
		}
		zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)i, 0);
		if (f == NULL) {
			mw_buf_puts(err, "refused: unreadable zip entry (encrypted or unsupported)");
			rc = -1;
			break;
		}
		/* the bytes are counted as they come: the sizes the archive
		   states are the attacker's */
		struct mw_buf data = MW_BUF_INIT;
		unsigned char chunk[65536];
		zip_int64_t got;
		while ((got = zip_fread(f, chunk, sizeof(chunk))) > 0) {
			if (mw_buf_len(&data) + (size_t)got > max || mw_buf_append(&data, chunk, (size_t)got) < 0) {
				mw_buf_printf(err, "refused: zip entry expands past %zu bytes", max);
				rc = -1;
				break;
			}
		}
		if (got < 0 && rc == 0) {
			mw_buf_puts(err, "refused: broken zip entry");
			rc = -1;
		}
		zip_fclose(f);
		if (rc == 0)
			rc = process_payload((const unsigned char *)mw_buf_str(&data), mw_buf_len(&data), max, depth + 1,
					     fn, ctx, reports, err);
		mw_buf_free(&data);
	}
	zip_discard(z);
	return rc;
}

/* An attachment: gzip, zip or XML by its first bytes; anything else is
   not a report and is skipped (0). */
static int process_payload(const unsigned char *p, size_t len, size_t max, int depth, ma_rua_row_fn *fn,
			   void *ctx, int *reports, struct mw_buf *err)
{
	if (depth > 2) {
		mw_buf_puts(err, "refused: archives nested too deep");
		return -1;
	}
	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
		struct mw_buf x = MW_BUF_INIT;
		int rc = gunzip(p, len, max, &x, err);
		if (rc == 0)
			rc = process_payload((const unsigned char *)mw_buf_str(&x), mw_buf_len(&x), max, depth + 1, fn, ctx,
					     reports, err);
		mw_buf_free(&x);
		return rc;
	}
	if (len >= 4 && memcmp(p, "PK\003\004", 4) == 0)
		return unzip(p, len, max, depth, fn, ctx, reports, err);
	size_t i = 0;
	if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		i = 3;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < len && p[i] == '<') {
		if (len > max) {
			mw_buf_printf(err, "refused: XML larger than %zu bytes", max);
			return -1;
		}
		if (ma_report_ingest_xml((const char *)p, len, fn, ctx, err) < 0)
			return -1;
		(*reports)++;
	}
	return 0;
}

/* ------------------------------------------------------------ MIME */

/* [hs, he) headers, [bs, be) body of an entity. */
static void split_entity(const char *s, const char *e, const char **he, const char **bs)
{
	for (const char *p = s; p < e; p++) {
		if (*p != '\n')
			continue;
		if (p + 1 < e && p[1] == '\n') {
			*he = p + 1;
			*bs = p + 2;
			return;
		}
		if (p + 2 < e && p[1] == '\r' && p[2] == '\n') {
			*he = p + 1;
			*bs = p + 3;
			return;
		}
	}
	*he = e;
	*bs = e;
}

/* The unfolded value of header name in [s, e), into out; 0 if found. */
static int header(const char *s, const char *e, const char *name, struct mw_buf *out)
{
	size_t nl = strlen(name);
	for (const char *p = s; p < e;) {
		const char *eol = memchr(p, '\n', (size_t)(e - p));
		const char *le = eol != NULL ? eol : e;
		if ((size_t)(le - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			mw_buf_reset(out);
			const char *v = p + nl + 1;
			for (;;) {
				for (const char *c = v; c < le; c++)
					if (*c != '\r')
						mw_buf_putc(out, *c == '\t' ? ' ' : *c);
				if (le == e || le + 1 >= e || (le[1] != ' ' && le[1] != '\t'))
					break;
				v = le + 1;
				const char *n2 = memchr(v, '\n', (size_t)(e - v));
				le = n2 != NULL ? n2 : e;
			}
			return 0;
		}
		p = eol != NULL ? eol + 1 : e;
	}
	return -1;
}

/* A parameter of a Content-Type value (boundary=...), into out. */
static int param(const char *value, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	for (const char *p = value; (p = strchr(p, ';')) != NULL;) {
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, name, nl) != 0 || p[nl] != '=')
			continue;
		p += nl + 1;
		size_t n = 0;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && n + 1 < outlen; p++)
				out[n++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' && n + 1 < outlen; p++)
				out[n++] = *p;
		}
		out[n] = '\0';
		return n > 0 ? 0 : -1;
	}
	return -1;
}

static void base64_decode(const char *s, const char *e, struct mw_buf *out)
{
	unsigned v = 0;
	int bits = 0;
	for (const char *p = s; p < e; p++) {
		int c = (unsigned char)*p, d;
		if (c >= 'A' && c <= 'Z')
			d = c - 'A';
		else if (c >= 'a' && c <= 'z')
			d = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			d = c - '0' + 52;
		else if (c == '+')
			d = 62;
		else if (c == '/')
			d = 63;
		else if (c == '=')
			break;
		else
			continue;
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			mw_buf_putc(out, (int)((v >> bits) & 0xff));
		}
	}
}

struct walk {
	size_t max;
	int parts;
	int reports;
	ma_rua_row_fn *fn;
	void *ctx;
	struct mw_buf *err;
};

static int walk_entity(struct walk *w, const char *s, const char *e, int depth)
{
	const char *he, *bs;
	struct mw_buf ct = MW_BUF_INIT, cte = MW_BUF_INIT;
	int rc = 0;
	if (++w->parts > MA_INGEST_MAX_PARTS || depth > MA_INGEST_MAX_DEPTH) {
		mw_buf_puts(w->err, "refused: too many or too deeply nested MIME parts");
		return -1;
	}
	split_entity(s, e, &he, &bs);
	header(s, he, "Content-Type", &ct);
	header(s, he, "Content-Transfer-Encoding", &cte);
	char boundary[128];
	if (strncasecmp(mw_buf_str(&ct), " multipart/", 11) == 0 || strncasecmp(mw_buf_str(&ct), "multipart/", 10) == 0) {
		if (param(mw_buf_str(&ct), "boundary", boundary, sizeof(boundary)) < 0) {
			mw_buf_puts(w->err, "refused: multipart without a boundary");
			rc = -1;
			goto out;
		}
		size_t bl = strlen(boundary);
		const char *part = NULL;
		for (const char *p = bs; p < e && rc == 0;) {
			const char *eol = memchr(p, '\n', (size_t)(e - p));
			const char *le = eol != NULL ? eol : e;
			if (le - p >= (long)bl + 2 && p[0] == '-' && p[1] == '-' && memcmp(p + 2, boundary, bl) == 0) {
				if (part != NULL)
					rc = walk_entity(w, part, p, depth + 1);
				int last = le - p >= (long)bl + 4 && p[bl + 2] == '-' && p[bl + 3] == '-';
				part = last ? NULL : (eol != NULL ? eol + 1 : e);
				if (last)
					break;
			}
			p = eol != NULL ? eol + 1 : e;
		}
		goto out;
	}
	const char *t = mw_buf_str(&cte);
	while (*t == ' ')
		t++;
	if (strncasecmp(t, "base64", 6) == 0) {
		struct mw_buf data = MW_BUF_INIT;
		if ((size_t)(e - bs) / 4 * 3 > w->max) {
			mw_buf_printf(w->err, "refused: an attachment larger than %zu bytes", w->max);
			rc = -1;
		} else {
			base64_decode(bs, e, &data);
			if (mw_buf_failed(&data)) {
				mw_buf_puts(w->err, "refused: an attachment too large to decode");
				mw_buf_free(&data);
				rc = -1;
				goto out;
			}
			rc = process_payload((const unsigned char *)mw_buf_str(&data), mw_buf_len(&data), w->max, 0,
					     w->fn, w->ctx, &w->reports, w->err);
		}
		mw_buf_free(&data);
	} else {
		rc = process_payload((const unsigned char *)bs, (size_t)(e - bs), w->max, 0, w->fn, w->ctx,
				     &w->reports, w->err);
	}
out:
	mw_buf_free(&ct);
	mw_buf_free(&cte);
	return rc;
}

int ma_report_ingest_message(const char *msg, size_t len, size_t max_xml, ma_rua_row_fn *fn, void *ctx,
			     struct mw_buf *err)
{
	/* our buffers hold at most MW_BUF_DEFAULT_MAX: a larger cap would let
	   an append fail quietly instead of refusing */
	if (max_xml > MW_BUF_DEFAULT_MAX / 2)
		max_xml = MW_BUF_DEFAULT_MAX / 2;
	struct walk w = { .max = max_xml, .fn = fn, .ctx = ctx, .err = err };
	if (walk_entity(&w, msg, msg + len, 0) < 0)
		return -1;
	if (w.reports == 0) {
		mw_buf_puts(err, "no DMARC aggregate report found in the message");
		return -1;
	}
	return w.reports;
}
