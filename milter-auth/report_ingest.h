/*
 * report_ingest: reads the DMARC aggregate reports other receivers send to
 * our rua= address (milter-auth-report ingest): a mail message, its MIME
 * parts walked (at most MA_INGEST_MAX_PARTS, MA_INGEST_MAX_DEPTH deep),
 * each attachment base64-decoded and recognised by its first bytes as
 * gzip (zlib), zip (libzip) or plain XML, and the XML parsed by libxml2:
 * both the RFC 9990 format (namespace urn:ietf:params:xml:ns:dmarc-2.0)
 * and RFC 7489's (no namespace), matched by element names.
 *
 * Hostile input is refused, never expanded: a document with a DOCTYPE (so
 * no entities at all: XML bombs), network access off (XML_PARSE_NONET),
 * decompression stopped at max_xml bytes (gzip and zip bombs: the bytes
 * are counted, the sizes the archive claims are not trusted), zip entries
 * whose names hold a path ("../x", "/x", "a/b") refused, at most
 * MA_INGEST_MAX_ZIP_ENTRIES entries, at most MA_INGEST_MAX_ROWS records.
 * Nothing is ever written to disk from an archive.
 *
 * A report is all or nothing: its rows reach the callback only once the
 * whole document parsed. Memory: rows passed to the callback live for the
 * call only.
 */
#ifndef MA_REPORT_INGEST_H
#define MA_REPORT_INGEST_H

#include <stddef.h>

#include "buf.h"
#include "hdrparse.h"

#define MA_INGEST_MAX_PARTS 64
#define MA_INGEST_MAX_DEPTH 4
#define MA_INGEST_MAX_ZIP_ENTRIES 16
#define MA_INGEST_MAX_ROWS 100000

/* One <record> of a received report, with its report's metadata. */
struct ma_rua_row {
	char format[8];                   /* "rfc9990" or "rfc7489" */
	char org_name[256];
	char report_id[256];
	long long begin, end;
	char policy_domain[MA_DOMAIN_MAX];
	char source_ip[64];
	unsigned long long count;
	char disposition[16];
	char dkim_aligned[8], spf_aligned[8]; /* policy_evaluated */
	char header_from[MA_DOMAIN_MAX];
	char dkim[512];                   /* auth_results: "domain/result" joined by ',' */
	char spf[300];                    /* auth_results: "domain/result" */
};

typedef void ma_rua_row_fn(void *ctx, const struct ma_rua_row *row);

/* One XML document; the number of rows, or -1 with err. */
int ma_report_ingest_xml(const char *xml, size_t len, ma_rua_row_fn *fn, void *ctx, struct mw_buf *err);

/* A whole message: every report attached in it. The number of reports
   read, or -1 with err when one was refused or none was found. */
int ma_report_ingest_message(const char *msg, size_t len, size_t max_xml, ma_rua_row_fn *fn, void *ctx,
			     struct mw_buf *err);

#endif
