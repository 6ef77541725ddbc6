#!/usr/bin/python3
"""DMARC as RFC 9989 defines it, through milter-auth's test mode against
the local DNS server: a table of cases, each citing the section it checks
(section numbers of draft-ietf-dmarc-dmarcbis-41, which RFC 9989 keeps),
then the same messages with dmarc_standard = rfc7489, each difference
expected and explained (milter-auth/DMARC-RFC9989.md lists them)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
IP = "198.51.100.7"   # the domains' own server
BAD = "203.0.113.66"  # a spoofer, also allowed by evil.co9.example's SPF

ZONE = """
# several labels below a policy (4.10.1): sp= for an existing subdomain
_dmarc.deep9.example            TXT "v=DMARC1; p=reject; sp=quarantine"
a.b.c.deep9.example             TXT "v=spf1 -all"
# only a public suffix publishes, with psd=y (4.10.1, 5.2)
_dmarc.psd9989                  TXT "v=DMARC1; p=reject; psd=y"
shop.psd9989                    TXT "v=spf1 -all"
# psd=n stops the walk and marks the Organizational Domain (4.7, 4.10.2)
_dmarc.corp9.example            TXT "v=DMARC1; p=reject"
_dmarc.dept.corp9.example       TXT "v=DMARC1; p=none; psd=n"
team.dept.corp9.example         TXT "v=spf1 -all"
corp9.example                   TXT "v=spf1 ip4:%(ip)s -all"
sel._domainkey.corp9.example    TXT "v=DKIM1; p=%(rsa)s"
# np= for a name that does not exist, sp= for one that does (4.7, 3.2.13)
_dmarc.np9.example              TXT "v=DMARC1; p=none; sp=quarantine; np=reject"
exists.np9.example              A   192.0.2.9
# t=y (4.7): one step less strict
_dmarc.testr9.example           TXT "v=DMARC1; p=reject; t=y"
_dmarc.testq9.example           TXT "v=DMARC1; p=quarantine; t=y"
# pct=0 no longer means "do not enforce" (A.6); rf= and ri= ignored too
_dmarc.pct9.example             TXT "v=DMARC1; p=reject; pct=0; rf=afrf; ri=3600"
# tags in any order after v=, unknown tags ignored (4.7, 4.8)
_dmarc.order9.example           TXT "v=DMARC1; adkim=s; foo=bar; np=none; p=reject; future=1"
# a name longer than eight labels (4.10): the records between are never asked
_dmarc.long9.example            TXT "v=DMARC1; p=reject"
_dmarc.c.d.e.f.g.h.long9.example TXT "v=DMARC1; p=none; psd=n"
_dmarc.b.c.d.e.f.g.h.long9.example TXT "v=DMARC1; p=none; psd=n"
# alignment found by the walk (4.10.2)
_dmarc.align9.example           TXT "v=DMARC1; p=reject"
_dmarc.sign.align9.example      TXT "v=DMARC1; p=none"
mail.align9.example             TXT "v=spf1 ip4:%(ip)s -all"
sel._domainkey.sign.align9.example TXT "v=DKIM1; p=%(rsa)s"
# a multi-label public suffix the public suffix list does not know
_dmarc.co9.example              TXT "v=DMARC1; p=none; psd=y"
_dmarc.shop.co9.example         TXT "v=DMARC1; p=reject"
evil.co9.example                TXT "v=spf1 ip4:%(bad)s -all"
# timeouts at each step of the walk (5.3.6: temperror, never "no policy")
_dmarc.a.b.to1.example          TIMEOUT
_dmarc.b.to2.example            TIMEOUT
_dmarc.to3.example              TIMEOUT
_dmarc.to4test                  TIMEOUT
_dmarc.alto9.example            TXT "v=DMARC1; p=reject"
mail.alto9.example              TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.mail.alto9.example       TIMEOUT
_dmarc.dk9.example              TXT "v=DMARC1; p=reject"
_dmarc.sign.dk9.example         TIMEOUT
sel._domainkey.sign.dk9.example TXT "v=DKIM1; p=%(rsa)s"
_dmarc.npslow9.example          TXT "v=DMARC1; p=none; np=reject"
ghost.npslow9.example           TIMEOUT
spfslow9.example                TIMEOUT
slowhelo9.example               TIMEOUT
""" % {"ip": IP, "bad": BAD, "rsa": RSA_PUB}


def msg(frm, subject="test"):
    return message(frm="Someone <%s>" % frm, subject=subject)


# name, section, message, client, MAIL FROM,
#   (RFC 9989 dmarc, action), (RFC 7489 dmarc, action), extra checks (stdout+log), why 7489 differs
CASES = [
    ("Author Domain three labels below the policy: its sp=", "4.10.1",
     msg("a@a.b.c.deep9.example"), BAD, "x@a.b.c.deep9.example",
     ("fail", "quarantine"), ("fail", "quarantine"), ["policy=sp@deep9.example"], None),
    ("policy only at a public suffix with psd=y applies below it", "4.10.1, 5.2",
     msg("ceo@shop.psd9989"), BAD, "x@shop.psd9989",
     ("fail", "reject"), ("none", "accept"), ["policy=p@psd9989(psd)", "org=shop.psd9989"],
     "the public suffix list makes shop.psd9989 the organizational domain: no record there"),
    ("psd=n stops the walk: dept.corp9.example's p=none, not corp9.example's reject", "4.7, 4.10.2",
     msg("a@team.dept.corp9.example"), BAD, "x@team.dept.corp9.example",
     ("fail", "accept"), ("fail", "reject"), ["org=dept.corp9.example", "policy=p@dept.corp9.example"],
     "RFC 7489 falls back to the registered domain corp9.example and its p=reject"),
    ("psd=n: SPF for the parent corp9.example is not aligned", "4.10.2",
     msg("a@dept.corp9.example"), IP, "b@corp9.example",
     ("fail", "accept"), ("pass", "accept"), [],
     "with the public suffix list both names have corp9.example as organizational domain"),
    ("psd=n: d=corp9.example is not aligned either", "4.10.2",
     sign(msg("a@dept.corp9.example"), "sel", "corp9.example", RSA), BAD, "x@elsewhere.example",
     ("fail", "accept"), ("pass", "accept"), [], "the same: relaxed alignment through the suffix list"),
    ("np= for a subdomain that does not exist (NXDOMAIN)", "4.7, 3.2.13, 4.10.1",
     msg("a@ghost.np9.example"), BAD, "x@ghost.np9.example",
     ("fail", "reject"), ("fail", "quarantine"), ["policy=np@np9.example", "nxdomain"],
     "RFC 7489 has no np=: sp= applies"),
    ("sp= for a subdomain that exists", "4.7, 4.10.1",
     msg("a@exists.np9.example"), BAD, "x@exists.np9.example",
     ("fail", "quarantine"), ("fail", "quarantine"), ["policy=sp@np9.example"], None),
    ("t=y with p=reject: quarantined, and said so", "4.7",
     msg("a@testr9.example"), BAD, "x@testr9.example",
     ("fail", "quarantine"), ("fail", "reject"),
     ["t=y: testing, reject applied as quarantine", "policy.dmarc=quarantine",
      "testing(t=y: reject applied as quarantine)"], "RFC 7489 has no t="),
    ("t=y with p=quarantine: accepted, and said so", "4.7",
     msg("a@testq9.example"), BAD, "x@testq9.example",
     ("fail", "accept"), ("fail", "quarantine"),
     ["t=y: testing, quarantine applied as none", "policy.dmarc=none"], "RFC 7489 has no t="),
    ("pct=0 no longer means do not enforce; pct, rf, ri noted in the log", "A.6",
     msg("a@pct9.example"), BAD, "x@pct9.example",
     ("fail", "reject"), ("fail", "quarantine"), ["ignored=pct,rf,ri(removed by RFC 9989)"],
     "RFC 7489 6.6.4: outside pct=0 the next weaker policy"),
    ("tags in any order after v=, unknown tags ignored", "4.7, 4.8",
     msg("a@order9.example"), BAD, "x@order9.example",
     ("fail", "reject"), ("fail", "reject"), ["policy=p@order9.example"], None),
    ("a name of ten labels: the shortcut skips the records between", "4.10",
     msg("a@a.b.c.d.e.f.g.h.long9.example"), BAD, "x@a.b.c.d.e.f.g.h.long9.example",
     ("fail", "reject"), ("fail", "reject"), ["org=long9.example", "queries=8"], None),
    ("relaxed: MAIL FROM mail.align9.example found aligned by the walk", "4.10.2, B.4.1",
     msg("a@news.align9.example"), IP, "b@mail.align9.example",
     ("pass", "accept"), ("pass", "accept"), ["policy.dmarc=none"], None),
    ("relaxed: d=sign.align9.example (its own record) aligned by the walk", "4.10.2, B.4.1",
     sign(msg("a@align9.example"), "sel", "sign.align9.example", RSA), BAD, "x@elsewhere.example",
     ("pass", "accept"), ("pass", "accept"), [], None),
    ("psd=y under a multi-label suffix: evil.co9.example does not align with shop.co9.example",
     "4.10.2, B.4.3", msg("a@shop.co9.example"), BAD, "x@evil.co9.example",
     ("fail", "reject"), ("pass", "accept"), ["org=shop.co9.example"],
     "the public suffix list does not know co9.example: both share the org co9.example (a spoof passes)"),
    # timeouts: every step of the walk
    ("timeout at the Author Domain's own record", "4.10 step 1, 5.3.6",
     msg("a@a.b.to1.example"), BAD, "x@a.b.to1.example",
     ("temperror", "tempfail"), ("temperror", "tempfail"), ["451 4.7.1"], None),
    ("timeout at the parent (step 5)", "4.10 step 5, 5.3.6",
     msg("a@a.b.to2.example"), BAD, "x@a.b.to2.example",
     ("temperror", "tempfail"), ("none", "accept"), ["451 4.7.1"],
     "RFC 7489 never asks b.to2.example (only the From domain and the registered domain)"),
    ("timeout two labels up (step 7)", "4.10 step 7, 5.3.6",
     msg("a@a.b.to3.example"), BAD, "x@a.b.to3.example",
     ("temperror", "tempfail"), ("temperror", "tempfail"), ["451 4.7.1"], None),
    ("timeout at the top-level domain (the last step)", "4.10 step 7, 5.3.6",
     msg("a@a.b.c.to4test"), BAD, "x@a.b.c.to4test",
     ("temperror", "tempfail"), ("none", "accept"), ["451 4.7.1"],
     "RFC 7489 never asks a top-level domain"),
    ("timeout in the walk for the SPF domain's Organizational Domain", "4.10.2, 5.3.6",
     msg("a@alto9.example"), IP, "b@mail.alto9.example",
     ("temperror", "tempfail"), ("pass", "accept"), ["451 4.7.1"],
     "no walk: the public suffix list aligns mail.alto9.example without DNS"),
    ("timeout in the walk for the DKIM d= Organizational Domain", "4.10.2, 5.3.6",
     sign(msg("a@dk9.example"), "sel", "sign.dk9.example", RSA), BAD, "x@elsewhere.example",
     ("temperror", "tempfail"), ("pass", "accept"), ["451 4.7.1"], "the same, for DKIM"),
    ("timeout asking whether the Author Domain exists (np=)", "3.2.13, 4.10.1, 5.3.6",
     msg("a@ghost.npslow9.example"), BAD, "x@elsewhere.example",
     ("temperror", "tempfail"), ("fail", "accept"), ["451 4.7.1"],
     "RFC 7489 has no np=, so it needs no existence check: p=none"),
]


def dmarc_queries(dns, before):
    """The _dmarc names asked since the log had `before` characters."""
    return sorted(set(m.group(1) for m in re.finditer(r"^_dmarc\.(\S+) TXT", dns.queries()[before:], re.M)))


def main(t):
    dns = DnsServer(ZONE)
    conf = matest.base_conf(dns)
    conf7489 = matest.base_conf(dns, "dmarc_standard = rfc7489\n")
    differ = 0
    for name, section, m, client, mail_from, want, want7489, checks, why in CASES:
        o = run(conf, m, client_ip=client, mail_from=mail_from)
        got = (o.verdict("dmarc"), o.action)
        t.eq(got, ([want[0]], want[1]), "RFC 9989 %s: %s" % (section, name)) or t.diag(repr(o))
        for c in checks:
            t.contains(o.stdout + o.log, c, "RFC 9989 %s: %s: says %r" % (section, name, c))
        o7 = run(conf7489, m, client_ip=client, mail_from=mail_from)
        got7 = (o7.verdict("dmarc"), o7.action)
        label = "rfc7489: %s: %s" % (name, ("differs: " + why) if why else "the same")
        t.eq(got7, ([want7489[0]], want7489[1]), label) or t.diag(repr(o7))
        differ += want7489 != want

    # what the Authentication-Results header says (report only: a refused
    # message gets none); RFC 9989 9.1: policy.dmarc
    rconf = matest.base_conf(dns, "dmarc_enforce = no\n")
    o = run(rconf, msg("ceo@shop.psd9989"), client_ip=BAD, mail_from="x@shop.psd9989")
    t.contains(o.ar, "dmarc=fail (p=reject dis=reject, p= of public suffix psd9989) header.from=shop.psd9989 "
               "policy.dmarc=reject", "A-R: the public suffix's policy, and policy.dmarc (9.1)")
    o = run(rconf, msg("a@ghost.np9.example"), client_ip=BAD, mail_from="x@ghost.np9.example")
    t.contains(o.ar, "(p=none sp=quarantine np=reject dis=reject, np= of np9.example)", "A-R: np= applied")
    o = run(rconf, msg("a@order9.example"), client_ip=BAD, mail_from="x@order9.example")
    t.contains(o.ar, "(p=reject np=none dis=reject) header.from=order9.example policy.dmarc=reject",
               "A-R: tags in any order")

    # the walk's exact queries for a long name (4.10, 5.1.8)
    before = len(dns.queries())
    run(conf, msg("a@a.b.c.d.e.f.g.h.long9.example"), client_ip=BAD, mail_from="x@a.b.c.d.e.f.g.h.long9.example")
    asked = dmarc_queries(dns, before)
    t.eq(asked, sorted(["a.b.c.d.e.f.g.h.long9.example", "d.e.f.g.h.long9.example", "e.f.g.h.long9.example",
                        "f.g.h.long9.example", "g.h.long9.example", "h.long9.example", "long9.example",
                        "example"]),
         "RFC 9989 4.10: a ten-label name asks 8 names, never the 8- and 9-label ones")
    # the Author Domain's own record: one query, no walk for an unrelated spoofer
    before = len(dns.queries())
    run(conf, msg("a@align9.example"), client_ip=BAD, mail_from="x@elsewhere.example")
    t.eq(dmarc_queries(dns, before), ["align9.example"],
         "RFC 9989 4.10.2: strict or unrelated identifiers need no walk: one _dmarc query")
    t.eq(differ, sum(1 for c in CASES if c[-1] is not None),
         "the two standards differ exactly where the table explains why")
    # the walk's queries count against dns_message_budget: SPF spends it
    # all (two lookups that time out), then the walk gets none
    m = msg("a@align9.example")
    o = run(conf, m, client_ip=BAD, mail_from="x@spfslow9.example", helo="slowhelo9.example")
    t.eq((o.verdict("dmarc"), o.action), (["fail"], "reject"), "with budget to spare the walk runs: reject") \
        or t.diag(repr(o))
    bconf = matest.base_conf(dns, "dns_message_budget = 1s\n")
    o = run(bconf, m, client_ip=BAD, mail_from="x@spfslow9.example", helo="slowhelo9.example")
    t.eq((o.verdict("dmarc"), o.action), (["temperror"], "tempfail"),
         "RFC 9989 5.3.6: the budget spent before the walk: temperror, 451, never no policy") or t.diag(repr(o))
    # the key
    bad = matest.write_conf("authserv_id = mx.example.org\ndns_resolver = %s\ndmarc_standard = rfc2026\n"
                            % dns.spec)
    import subprocess
    p = subprocess.run([matest.MILTER_AUTH, "-C", "-c", bad], capture_output=True, text=True, timeout=30)
    t.ok(p.returncode == 2 and "dmarc_standard" in p.stderr and ":3:" in p.stderr,
         "dmarc_standard = rfc2026 stops startup with file:line", p.stderr)
    dns.stop()


t = Tap()
t.run(main)
t.done()
