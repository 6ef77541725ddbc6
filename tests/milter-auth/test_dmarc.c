/*
 * Unit tests for RFC 9989 DMARC (draft-ietf-dmarc-dmarcbis-41 text): the
 * record parser (4.7, 4.8), the DNS Tree Walk's targets (4.10), the
 * Organizational Domain (4.10.2), policy discovery (4.10.1) and the
 * verdict, against a table of _dmarc records answered by a callback.
 * Each row names the section it checks.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dmarc_record.h"
#include "dmarc_walk.h"

#define N MA_DMARC_P_NONE
#define Q MA_DMARC_P_QUARANTINE
#define R MA_DMARC_P_REJECT
#define U MA_DMARC_P_UNSPECIFIED

static void test_record_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		enum ma_dmarc_parse want;
		enum ma_dmarc_policy p, sp, np;
		char psd, adkim, aspf;
		int testing, pct, from_rua, unknown;
		const char *why;
	} rows[] = {
		{ "v=DMARC1; p=reject", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0, "4.7 minimal" },
		{ "v=DMARC1;p=quarantine;sp=none;np=reject;psd=n;t=y;adkim=s;aspf=s", MA_DMARC_REC_OK, Q, N, R,
		  'n', 's', 's', 1, 100, 0, 0, "4.7 every tag" },
		{ "v=DMARC1; adkim=s; np=reject; p=reject", MA_DMARC_REC_OK, R, U, R, 'u', 's', 'r', 0, 100, 0, 0,
		  "4.7 tags in any order after v=" },
		{ "v = DMARC1 ; p = Reject ; ", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.8 white space around = and ;, values case-insensitive" },
		{ "v=DMARC1; p=reject; foo=bar; x=", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 2,
		  "4.7 unknown tags ignored" },
		{ "v=DMARC1; p=reject; pct=0; rf=afrf; ri=3600", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 0, 0, 0,
		  "A.6 pct, rf, ri parsed but removed" },
		{ "v=DMARC1; p=reject; pct=150", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.8 a bad pct is ignored, not the record" },
		{ "v=DMARC1; p=reject; adkim=x; psd=maybe; t=yes", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.8 syntax errors: defaults" },
		{ "v=DMARC1; p=none; p=reject", MA_DMARC_REC_OK, N, U, U, 'u', 'r', 'r', 0, 100, 0, 1,
		  "a repeated tag keeps its first value" },
		{ "v=DMARC1; rua=mailto:d@example.com", MA_DMARC_REC_OK, N, U, U, 'u', 'r', 'r', 0, 100, 1, 0,
		  "4.10.1 no p= but a valid rua=: p=none" },
		{ "v=DMARC1; p=bogus; rua=mailto:d@example.com!10m", MA_DMARC_REC_OK, N, U, U, 'u', 'r', 'r', 0, 100, 1, 0,
		  "4.10.1 invalid p=, rua= with the obsolete size: p=none" },
		{ "v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com", MA_DMARC_REC_OK, N, U, U, 'u', 'r', 'r', 0,
		  100, 1, 0, "4.10.1 invalid sp= with rua=: p=none" },
		{ "v=DMARC1; p=reject; np=bogus", MA_DMARC_REC_UNUSABLE, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.10.1 invalid np= without rua=: no DMARC processing" },
		{ "v=DMARC1; psd=y", MA_DMARC_REC_UNUSABLE, U, U, U, 'y', 'r', 'r', 0, 100, 0, 0,
		  "4.10.1 no p=, no rua=: unusable (still counts in the walk)" },
		{ "v=DMARC1; p=reject; rua=not a uri", MA_DMARC_REC_OK, R, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "a bad rua= does not matter when p= is valid" },
		{ "p=reject; v=DMARC1", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.7 v= not first: ignored" },
		{ "v=dmarc1; p=reject", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.8 DMARC1 is case-sensitive" },
		{ "v=DMARC10; p=reject", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0, "4.7 not DMARC1" },
		{ " v=DMARC1; p=reject", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0,
		  "4.8 nothing before v=" },
		{ "v=spf1 -all", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0, "not DMARC" },
		{ "v=DMARC1", MA_DMARC_REC_UNUSABLE, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0, "v= alone" },
		{ "", MA_DMARC_REC_NOT_DMARC, U, U, U, 'u', 'r', 'r', 0, 100, 0, 0, "empty" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ma_dmarc_record r;
		enum ma_dmarc_parse got = ma_dmarc_record_parse(rows[i].text, strlen(rows[i].text), &r);
		if (got != rows[i].want)
			fail_msg("%s: [%s] parsed as %d, want %d", rows[i].why, rows[i].text, got, rows[i].want);
		if (got == MA_DMARC_REC_NOT_DMARC)
			continue;
		if (r.p != rows[i].p || r.sp != rows[i].sp || r.np != rows[i].np || r.psd != rows[i].psd ||
		    r.adkim != rows[i].adkim || r.aspf != rows[i].aspf || r.testing != rows[i].testing ||
		    r.pct != rows[i].pct || r.p_from_rua != rows[i].from_rua || r.unknown_tags != rows[i].unknown)
			fail_msg("%s: [%s] p=%d sp=%d np=%d psd=%c adkim=%c aspf=%c t=%d pct=%d rua=%d unknown=%d",
				 rows[i].why, rows[i].text, r.p, r.sp, r.np, r.psd, r.adkim, r.aspf, r.testing, r.pct,
				 r.p_from_rua, r.unknown_tags);
	}
	/* pct, rf, ri noted for the log */
	struct ma_dmarc_record r;
	const char *noted = "v=DMARC1; p=none; pct=10; ri=86400";
	ma_dmarc_record_parse(noted, strlen(noted), &r);
	assert_true(r.has_pct && !r.has_rf && r.has_ri);
	/* a NUL inside: that tag is malformed (an sp= like that makes the
	   record unusable, an adkim= falls back to its default) */
	assert_int_equal(ma_dmarc_record_parse("v=DMARC1; p=reject; sp=n\0ne", 27, &r), MA_DMARC_REC_UNUSABLE);
	assert_int_equal(ma_dmarc_record_parse("v=DMARC1; p=reject; adkim=s\0", 29, &r), MA_DMARC_REC_OK);
	assert_int_equal(r.adkim, 'r');
}

static void test_walk_targets(void **state)
{
	(void)state;
	static const struct {
		const char *domain;
		const char *names; /* space-separated */
	} rows[] = {
		/* 4.10 step 4: under 8 labels, one label at a time */
		{ "a.mail.example.com", "a.mail.example.com mail.example.com example.com com" },
		{ "example.com", "example.com com" },
		{ "com", "com" },
		/* 8 labels: keep the last 7 = drop one */
		{ "a.b.c.d.e.f.example.com", "a.b.c.d.e.f.example.com b.c.d.e.f.example.com c.d.e.f.example.com "
		  "d.e.f.example.com e.f.example.com f.example.com example.com com" },
		/* 4.10's own example: 13 labels, 8 queries */
		{ "a.b.c.d.e.f.g.h.i.j.mail.example.com", "a.b.c.d.e.f.g.h.i.j.mail.example.com "
		  "g.h.i.j.mail.example.com h.i.j.mail.example.com i.j.mail.example.com j.mail.example.com "
		  "mail.example.com example.com com" },
		/* 5.1.8's example: 10 labels */
		{ "mail.a.b.c.d.e.f.g.example.com", "mail.a.b.c.d.e.f.g.example.com c.d.e.f.g.example.com "
		  "d.e.f.g.example.com e.f.g.example.com f.g.example.com g.example.com example.com com" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char names[MA_DMARC_WALK_MAX][MA_DOMAIN_MAX];
		char joined[2048] = "";
		int n = ma_dmarc_walk_targets(rows[i].domain, names);
		assert_true(n <= MA_DMARC_WALK_MAX);
		for (int j = 0; j < n; j++) {
			strcat(joined, j ? " " : "");
			strcat(joined, names[j]);
		}
		assert_string_equal(joined, rows[i].names);
	}
}

/* ------------------------------------------------------------ a zone in a table */

struct zone {
	const char *const *records; /* "name=record text", "name=TIMEOUT" */
	const char *const *nxdomain; /* names that do not exist */
	int exists_timeout;
	char asked[1024];
	int queries;
};

static enum ma_dmarc_answer zone_query(void *ctx, const char *name, struct ma_dmarc_record *rec)
{
	struct zone *z = ctx;
	size_t len = strlen(name);
	int n = 0;
	z->queries++;
	snprintf(z->asked + strlen(z->asked), sizeof(z->asked) - strlen(z->asked), "%s%s", z->asked[0] ? " " : "",
		 name);
	for (const char *const *r = z->records; r != NULL && *r != NULL; r++) {
		if (strncmp(*r, name, len) != 0 || (*r)[len] != '=')
			continue;
		const char *text = *r + len + 1;
		if (strcmp(text, "TIMEOUT") == 0) {
			snprintf(rec->problem, sizeof(rec->problem), "timeout at %s", name);
			return MA_DMARC_ANS_TEMPERROR;
		}
		struct ma_dmarc_record one;
		if (ma_dmarc_record_parse(text, strlen(text), &one) != MA_DMARC_REC_NOT_DMARC && n++ == 0)
			*rec = one;
	}
	return n == 1 ? MA_DMARC_ANS_RECORD : MA_DMARC_ANS_NONE;
}

static int zone_exists(void *ctx, const char *name)
{
	struct zone *z = ctx;
	if (z->exists_timeout)
		return -1;
	for (const char *const *n = z->nxdomain; n != NULL && *n != NULL; n++)
		if (strcmp(*n, name) == 0)
			return 0;
	return 1;
}

static const char *const zone1[] = {
	"example.com=v=DMARC1; p=reject; sp=quarantine; np=reject",
	"signing.example.com=v=DMARC1; p=none",
	"own.example.com=v=DMARC1; p=none",
	"bank.example=v=DMARC1; p=quarantine; psd=y",
	"giant.bank.example=v=DMARC1; p=reject",
	"dept.corp.example=v=DMARC1; p=reject; psd=n",
	"corp.example=v=DMARC1; p=none",
	"psdonly=v=DMARC1; p=reject; np=quarantine; psd=y",
	"test.example=v=DMARC1; p=reject; t=y",
	"testq.example=v=DMARC1; p=quarantine; t=y",
	"pct0.example=v=DMARC1; p=reject; pct=0",
	"two.test=v=DMARC1; p=reject",
	"two.test=v=DMARC1; p=none",
	"slowtop.example=v=DMARC1; p=reject",
	"example=TIMEOUT",
	"bad.example=v=DMARC1; p=bogus",
	"deep.example=v=DMARC1; p=reject",
	"g.h.i.j.k.deep.example=v=DMARC1; p=none; psd=n",
	"c.d.e.f.g.h.i.j.k.deep.example=v=DMARC1; p=quarantine", /* never asked */
	NULL,
};
static const char *const nx1[] = { "ghost.example.com", "ghost.psdonly", NULL };

struct ident {
	const char *spf_domain;
	enum ma_spf_result spf;
	const char *dkim_domain;
	enum ma_dkim_result dkim;
};

static void evaluate(struct zone *z, const char *from, const struct ident *id, struct ma_dmarc_verdict *v)
{
	struct ma_dmarc_io io = { .query = zone_query, .exists = zone_exists, .ctx = z };
	struct ma_dkim_sig sig;
	memset(&sig, 0, sizeof(sig));
	int nsigs = 0;
	if (id->dkim_domain != NULL) {
		sig.result = id->dkim;
		snprintf(sig.domain, sizeof(sig.domain), "%s", id->dkim_domain);
		nsigs = 1;
	}
	ma_dmarc_evaluate_9989(&io, from, id->spf, id->spf_domain, &sig, nsigs, v);
}

static void test_evaluate_9989(void **state)
{
	(void)state;
	static const struct {
		const char *why;
		const char *from;
		struct ident id;
		enum ma_dmarc_result result;
		const char *policy_domain; /* "" when no record */
		const char *tag;
		enum ma_dmarc_policy disposition;
		int testing;
		const char *org;
		int max_queries;
	} rows[] = {
		{ "4.10.1 the Author Domain's own record", "example.com",
		  { "other.example", MA_SPF_PASS, NULL, 0 }, MA_DMARC_FAIL, "example.com", "p", R, 0, "", 1 },
		{ "4.10.1 several labels below the policy: sp for an existing subdomain", "a.b.c.example.com",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "example.com", "sp", Q, 0, "example.com", 5 },
		{ "4.10.1 np for a subdomain that does not exist", "ghost.example.com",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "example.com", "np", R, 0, "example.com", 3 },
		{ "4.10.1 a subdomain's own record wins", "own.example.com",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "own.example.com", "p", N, 0, "", 1 },
		{ "4.10.2 relaxed: SPF of a sibling found by the walk aligns", "a.b.example.com",
		  { "bounce.example.com", MA_SPF_PASS, NULL, 0 }, MA_DMARC_PASS, "example.com", "p", N, 0,
		  "example.com", 8 },
		{ "4.10.2 B.4.1: d= with its own record still has example.com as org", "example.com",
		  { "x.example", MA_SPF_FAIL, "signing.example.com", MA_DKIM_PASS }, MA_DMARC_PASS, "example.com",
		  "p", N, 0, "example.com", 6 },
		{ "4.10.2 relaxed: an unrelated d= is not aligned (no walk for it)", "example.com",
		  { "x.example", MA_SPF_FAIL, "example.net", MA_DKIM_PASS }, MA_DMARC_FAIL, "example.com", "p", R, 0,
		  "", 1 },
		{ "4.10.2 B.4.3 psd=y: giant.bank.example is its own org", "giant.bank.example",
		  { "mail.giant.bank.example", MA_SPF_PASS, "mail.mega.bank.example", MA_DKIM_PASS }, MA_DMARC_PASS,
		  "giant.bank.example", "p", N, 0, "giant.bank.example", 6 },
		{ "4.10.2 psd=y: a sibling under the suffix is not aligned", "giant.bank.example",
		  { "x.example", MA_SPF_FAIL, "mail.mega.bank.example", MA_DKIM_PASS }, MA_DMARC_FAIL,
		  "giant.bank.example", "p", R, 0, "giant.bank.example", 5 },
		{ "4.10.1 policy only at the public suffix (psd=y): sp/p of the PSD", "shop.small.psdonly",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "psdonly", "p", R, 0, "small.psdonly", 4 },
		{ "4.10.1 public suffix's np= for a name that does not exist", "ghost.psdonly",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "psdonly", "np", Q, 0, "ghost.psdonly", 3 },
		{ "4.10.2 psd=n stops the walk: dept.corp.example is the org", "a.dept.corp.example",
		  { "x.corp.example", MA_SPF_PASS, NULL, 0 }, MA_DMARC_FAIL, "dept.corp.example", "p", R, 0,
		  "dept.corp.example", 2 },
		{ "4.7 t=y: reject applied as quarantine", "test.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "test.example", "p", Q, 1, "", 1 },
		{ "4.7 t=y: quarantine applied as none", "testq.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "testq.example", "p", N, 1, "", 1 },
		{ "A.6 pct=0 no longer means do not enforce", "pct0.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "pct0.example", "p", R, 0, "", 1 },
		{ "4.10 step 2: two records are discarded, the walk goes on", "two.test",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_NONE, "", "p", N, 0, "two.test", 2 },
		{ "5.3.6 a timeout in the walk is temperror, never no policy", "a.slow.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_TEMPERROR, "", "p", N, 0, "", 3 },
		{ "4.10.2 a timeout above the Author Domain's own record only matters for relaxed alignment",
		  "slowtop.example", { "slowtop.example", MA_SPF_PASS, NULL, 0 }, MA_DMARC_PASS, "slowtop.example",
		  "p", N, 0, "", 1 },
		{ "4.10.2 ... and then it is temperror", "slowtop.example",
		  { "mail.slowtop.example", MA_SPF_PASS, NULL, 0 }, MA_DMARC_TEMPERROR, "slowtop.example", "p", R, 0,
		  "", 3 },
		{ "4.10.1 invalid p= without rua=: permerror, no policy", "bad.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_PERMERROR, "", "p", N, 0, "", 1 },
		{ "4.10 more than 8 labels: the shortcut skips to the last 7", "a.b.c.d.e.f.g.h.i.j.k.deep.example",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_FAIL, "g.h.i.j.k.deep.example", "p", N, 0,
		  "g.h.i.j.k.deep.example", 2 },
		{ "no record anywhere: none", "nothing.test",
		  { "x.example", MA_SPF_FAIL, NULL, 0 }, MA_DMARC_NONE, "", "p", N, 0, "nothing.test", 2 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct zone z = { .records = zone1, .nxdomain = nx1 };
		struct ma_dmarc_verdict v;
		evaluate(&z, rows[i].from, &rows[i].id, &v);
		const char *pd = v.have_record ? v.record.domain : "";
		if (v.result != rows[i].result || strcmp(pd, rows[i].policy_domain) != 0 ||
		    (v.have_record && strcmp(v.policy_tag, rows[i].tag) != 0) ||
		    (v.result == MA_DMARC_FAIL && v.disposition != rows[i].disposition) ||
		    v.testing != rows[i].testing || strcmp(v.org_domain, rows[i].org) != 0 ||
		    z.queries > rows[i].max_queries)
			fail_msg("%s: %s from %s policy %s@%s dis=%s testing=%d org=[%s] queries=%d (%s) reason: %s",
				 rows[i].why, ma_dmarc_result_name(v.result), rows[i].from, v.policy_tag, pd,
				 ma_dmarc_policy_name(v.disposition), v.testing, v.org_domain, z.queries, z.asked,
				 v.reason);
	}
}

static void test_walk_queries(void **state)
{
	(void)state;
	/* 4.10: the 13-label example asks exactly its 8 names */
	struct zone z = { .records = zone1 };
	struct ma_dmarc_io io = { .query = zone_query, .exists = zone_exists, .ctx = &z };
	struct ma_dmarc_walk w;
	ma_dmarc_walk(&io, "a.b.c.d.e.f.g.h.i.j.mail.example.com", 0, &w);
	assert_int_equal(z.queries, 8);
	assert_string_equal(z.asked, "a.b.c.d.e.f.g.h.i.j.mail.example.com g.h.i.j.mail.example.com "
			    "h.i.j.mail.example.com i.j.mail.example.com j.mail.example.com mail.example.com "
			    "example.com com");
	assert_string_equal(w.org, "example.com");

	/* np= needs to know whether the Author Domain exists: a failure there is temperror */
	struct zone z2 = { .records = zone1, .nxdomain = nx1, .exists_timeout = 1 };
	struct ident id = { "x.example", MA_SPF_FAIL, NULL, 0 };
	struct ma_dmarc_verdict v;
	evaluate(&z2, "sub.example.com", &id, &v);
	assert_int_equal(v.result, MA_DMARC_TEMPERROR);
	/* ... but a passing message never asks */
	struct ident pass = { "example.com", MA_SPF_PASS, NULL, 0 };
	evaluate(&z2, "sub.example.com", &pass, &v);
	assert_int_equal(v.result, MA_DMARC_PASS);
	/* a DKIM temperror that would align leaves the verdict unknown */
	struct ident dt = { "x.example", MA_SPF_FAIL, "example.com", MA_DKIM_TEMPERROR };
	struct zone z3 = { .records = zone1, .nxdomain = nx1 };
	evaluate(&z3, "example.com", &dt, &v);
	assert_int_equal(v.result, MA_DMARC_TEMPERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_walk_targets),
		cmocka_unit_test(test_evaluate_9989),
		cmocka_unit_test(test_walk_queries),
	};
	return cmocka_run_group_tests_name("milter-auth-dmarc", tests, NULL, NULL);
}
