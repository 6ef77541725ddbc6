#!/usr/bin/python3
"""DMARC through milter-auth's test mode: alignment (strict and relaxed),
subdomain policy, organizational-domain fallback, pct, no record, several
records, broken From fields, DNS trouble at each lookup, quarantine,
overrides, forged Authentication-Results, and the SPF -all rejection."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
IP = "198.51.100.7"   # the sending server
BAD = "203.0.113.66"  # a spoofer

ZONE = """
# reject.example: strict everything, sender 198.51.100.7
reject.example                 TXT "v=spf1 ip4:%(ip)s -all"
mail.reject.example            TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.reject.example          TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
sel._domainkey.reject.example  TXT "v=DKIM1; p=%(rsa)s"
sel._domainkey.mail.reject.example TXT "v=DKIM1; p=%(rsa)s"
# relaxed.example: relaxed alignment, subdomain policy reject, p=none
relaxed.example                TXT "v=spf1 ip4:%(ip)s -all"
bounce.relaxed.example         TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.relaxed.example         TXT "v=DMARC1; p=none; sp=reject"
sel._domainkey.relaxed.example TXT "v=DKIM1; p=%(rsa)s"
sel._domainkey.lists.relaxed.example TXT "v=DKIM1; p=%(rsa)s"
# sub.relaxed.example has no record of its own: the org domain's sp applies
sub.relaxed.example            TXT "v=spf1 -all"
# own.relaxed.example publishes its own record (p=none) despite sp=reject
own.relaxed.example            TXT "v=spf1 -all"
_dmarc.own.relaxed.example     TXT "v=DMARC1; p=none"
# quarantine.example
quarantine.example             TXT "v=spf1 -all"
_dmarc.quarantine.example      TXT "v=DMARC1; p=quarantine"
# pct.example: reject half of the failing mail
pct.example                    TXT "v=spf1 -all"
_dmarc.pct.example             TXT "v=DMARC1; p=reject; pct=50"
pct0.example                   TXT "v=spf1 -all"
_dmarc.pct0.example            TXT "v=DMARC1; p=quarantine; pct=0"
# records that do not count
none.example                   TXT "v=spf1 -all"
two.example                    TXT "v=spf1 -all"
_dmarc.two.example             TXT "v=DMARC1; p=reject"
_dmarc.two.example             TXT "v=DMARC1; p=none"
bad.example                    TXT "v=spf1 -all"
_dmarc.bad.example             TXT "v=DMARC1; p=bogus"
notdmarc.example               TXT "v=spf1 -all"
_dmarc.notdmarc.example        TXT "v=spf1 -all"
_dmarc.notdmarc.example        TXT "v=DMARC1; p=reject"
# DNS trouble
dmarcslow.example              TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.dmarcslow.example       TIMEOUT
dmarcfail.example              TXT "v=spf1 -all"
_dmarc.dmarcfail.example       SERVFAIL
spfslow.example                TIMEOUT
_dmarc.spfslow.example         TXT "v=DMARC1; p=reject"
keyslow.example                TXT "v=spf1 -all"
_dmarc.keyslow.example         TXT "v=DMARC1; p=reject"
sel._domainkey.keyslow.example TIMEOUT
a.orgslow.example              TXT "v=spf1 -all"
_dmarc.orgslow.example         TIMEOUT
# override, and SPF -all without DMARC
override.example               TXT "v=spf1 -all"
_dmarc.override.example        TXT "v=DMARC1; p=reject"
nodmarc.example                TXT "v=spf1 ip4:%(ip)s exp=why.nodmarc.example -all"
why.nodmarc.example            TXT "%%{i} may not send for %%{d}"
""" % {"ip": IP, "rsa": RSA_PUB}


def msg(frm, subject="test", extra=""):
    return message(frm="Someone <%s>" % frm, subject=subject, extra=extra)


def expect(t, conf, name, m, dmarc, action, client=IP, mail_from=None, frm=None, extra_args=None, also=None):
    o = run(conf, m, client_ip=client, mail_from=mail_from or "bounce@" + (frm or "x.example"),
            extra=extra_args)
    ok = t.eq((o.verdict("dmarc"), o.action), ([dmarc] if dmarc else [], action), name)
    if not ok:
        t.diag(repr(o))
    for needle in also or []:
        t.contains(o.stdout, needle, "%s: %s" % (name, needle))
    return o


def main(t):
    dns = DnsServer(ZONE)
    conf = matest.base_conf(dns)

    # --- alignment -----------------------------------------------------
    expect(t, conf, "strict: SPF pass for the exact From domain passes",
           msg("a@reject.example"), "pass", "accept", mail_from="b@reject.example")
    expect(t, conf, "strict: SPF pass for a subdomain is not aligned: reject",
           msg("a@reject.example"), "fail", "reject", mail_from="b@mail.reject.example",
           also=["550 5.7.1", "reject.example"])
    expect(t, conf, "strict: DKIM d= exact passes",
           sign(msg("a@reject.example"), "sel", "reject.example", RSA), "pass", "accept", client=BAD,
           mail_from="x@elsewhere.example")
    expect(t, conf, "strict: DKIM d= subdomain is not aligned: reject",
           sign(msg("a@reject.example"), "sel", "mail.reject.example", RSA), "fail", "reject", client=BAD,
           mail_from="x@elsewhere.example")
    expect(t, conf, "relaxed: SPF pass for a subdomain of the org domain aligns",
           msg("a@relaxed.example"), "pass", "accept", mail_from="b@bounce.relaxed.example")
    expect(t, conf, "relaxed: DKIM d= of a sibling subdomain aligns",
           sign(msg("a@relaxed.example"), "sel", "lists.relaxed.example", RSA), "pass", "accept",
           client=BAD, mail_from="x@elsewhere.example")
    expect(t, conf, "unaligned SPF pass does not make a DMARC pass",
           msg("a@reject.example"), "fail", "reject", mail_from="b@relaxed.example")

    # --- policies --------------------------------------------------------
    expect(t, conf, "p=none: fail is reported, mail accepted",
           msg("a@relaxed.example"), "fail", "accept", client=BAD, mail_from="x@relaxed.example",
           also=["p=none"])
    expect(t, conf, "sp=reject applies to a subdomain without a record (org fallback)",
           msg("a@sub.relaxed.example"), "fail", "reject", client=BAD, mail_from="x@sub.relaxed.example")
    expect(t, conf, "a subdomain's own record wins over the org domain's sp",
           msg("a@own.relaxed.example"), "fail", "accept", client=BAD, mail_from="x@own.relaxed.example")
    expect(t, conf, "p=quarantine: held (Postfix hold queue)",
           msg("a@quarantine.example"), "fail", "quarantine", client=BAD,
           mail_from="x@quarantine.example")
    hconf = matest.base_conf(dns, "quarantine_action = header\nquarantine_header = X-Spam-Flag\n")
    expect(t, hconf, "quarantine_action = header: accepted with the header for Sieve",
           msg("a@quarantine.example"), "fail", "accept", client=BAD, mail_from="x@quarantine.example",
           also=["add-header: X-Spam-Flag: DMARC policy of quarantine.example: quarantine"])
    # pct= is RFC 7489's (RFC 9989 ignores it: dmarc-rfc9989.py checks that)
    pconf = matest.base_conf(dns, "dmarc_standard = rfc7489\n")
    expect(t, pconf, "rfc7489: pct=50, in the sample: reject", msg("a@pct.example"), "fail", "reject",
           client=BAD, mail_from="x@pct.example", extra_args=["--dice", "10"])
    expect(t, pconf, "rfc7489: pct=50, outside the sample: quarantine instead (RFC 7489 6.6.4)",
           msg("a@pct.example"), "fail", "quarantine", client=BAD, mail_from="x@pct.example",
           extra_args=["--dice", "90"], also=["pct=50"])
    expect(t, pconf, "rfc7489: pct=0 quarantine: never applied, accepted",
           msg("a@pct0.example"), "fail", "accept", client=BAD, mail_from="x@pct0.example",
           extra_args=["--dice", "0"])

    # --- records that do not apply ---------------------------------------
    expect(t, conf, "no record: dmarc=none, accepted", msg("a@none.example"), "none", "accept",
           client=BAD, mail_from="x@none.example")
    expect(t, conf, "two DMARC records: no policy applies", msg("a@two.example"), "none", "accept",
           client=BAD, mail_from="x@two.example", also=["2 DMARC records"])
    expect(t, conf, "invalid p= and no rua=: no DMARC processing, reported as permerror (RFC 9989 4.10.1, 9.2)",
           msg("a@bad.example"), "permerror", "accept", client=BAD, mail_from="x@bad.example")
    expect(t, pconf, "rfc7489: invalid p=: record ignored", msg("a@bad.example"), "none", "accept",
           client=BAD, mail_from="x@bad.example")
    expect(t, conf, "non-DMARC TXT records at _dmarc are skipped", msg("a@notdmarc.example"), "fail",
           "reject", client=BAD, mail_from="x@notdmarc.example")

    # --- broken From -----------------------------------------------------
    two_from = "From: a@reject.example\r\n" + msg("b@relaxed.example")
    expect(t, conf, "two From fields: permerror, rejected (malformed_from = reject)", two_from,
           "permerror", "reject", also=["2 From fields"])
    no_from = msg("x@y.example").replace("From: Someone <x@y.example>\r\n", "")
    expect(t, conf, "no From field: permerror", no_from, "permerror", "reject")
    expect(t, conf, "From without a domain: permerror", msg("undisclosed"), "permerror", "reject")
    expect(t, conf, "From with two different domains: permerror",
           msg("a@reject.example>, <b@relaxed.example"), "permerror", "reject")
    aconf = matest.base_conf(dns, "malformed_from = accept\n")
    expect(t, aconf, "malformed_from = accept: delivered with dmarc=permerror", two_from, "permerror",
           "accept")
    expect(t, conf, "From with a display name, comment and group syntax still parses",
           message(frm='"Doe, John" (the boss) <a@reject.example>'), "pass", "accept",
           mail_from="b@reject.example")

    # --- DNS trouble at each lookup ---------------------------------------
    expect(t, conf, "DMARC record lookup times out: tempfail 4xx, never 5xx",
           msg("a@dmarcslow.example"), "temperror", "tempfail", client=BAD,
           mail_from="x@dmarcslow.example", also=["451 4.7.1"])
    expect(t, conf, "DMARC record lookup times out, but SPF aligned passes: accepted",
           msg("a@dmarcslow.example"), "temperror", "accept", mail_from="x@dmarcslow.example")
    expect(t, conf, "DMARC record SERVFAIL: tempfail", msg("a@dmarcfail.example"), "temperror",
           "tempfail", client=BAD, mail_from="x@dmarcfail.example")
    expect(t, conf, "SPF lookup times out under p=reject: tempfail, not reject",
           msg("a@spfslow.example"), "temperror", "tempfail", client=BAD, mail_from="x@spfslow.example")
    expect(t, conf, "DKIM key lookup times out under p=reject: tempfail",
           sign(msg("a@keyslow.example"), "sel", "keyslow.example", RSA), "temperror", "tempfail",
           client=BAD, mail_from="x@keyslow.example")
    expect(t, conf, "org-domain record lookup times out: tempfail", msg("a@a.orgslow.example"),
           "temperror", "tempfail", client=BAD, mail_from="x@a.orgslow.example")
    nconf = matest.base_conf(dns, "tempfail_on_dns_error = no\n")
    expect(t, nconf, "tempfail_on_dns_error = no: accepted with dmarc=temperror",
           msg("a@dmarcslow.example"), "temperror", "accept", client=BAD, mail_from="x@dmarcslow.example")

    # --- local decisions -------------------------------------------------
    oconf = matest.base_conf(dns, "dmarc_override_domains = override.example\n")
    expect(t, oconf, "override list: reported, not enforced", msg("a@override.example"), "fail",
           "accept", client=BAD, mail_from="x@override.example", also=["local override"])
    rconf = matest.base_conf(dns, "dmarc_enforce = no\n")
    expect(t, rconf, "dmarc_enforce = no: report only", msg("a@reject.example"), "fail", "accept",
           client=BAD, mail_from="x@reject.example")
    sconf = matest.base_conf(dns, "spf_reject_fail = yes\n")
    expect(t, sconf, "spf_reject_fail: SPF -all without DMARC is rejected with the domain's explanation",
           msg("a@nodmarc.example"), "none", "reject", client=BAD, mail_from="x@nodmarc.example",
           also=["550 5.7.23", "203.0.113.66 may not send for nodmarc.example"])
    expect(t, sconf, "spf_reject_fail does not override a DMARC record (p=none)",
           msg("a@relaxed.example"), "fail", "accept", client=BAD, mail_from="x@relaxed.example")

    # --- our own header ----------------------------------------------------
    forged = ("Authentication-Results: mx.example.org; dmarc=pass header.from=reject.example\r\n"
              "Authentication-Results: other.example; spf=pass\r\n"
              "authentication-results: MX.EXAMPLE.ORG (comment); dkim=pass\r\n") + msg("a@relaxed.example")
    o = run(conf, forged, client_ip=IP, mail_from="b@relaxed.example")
    t.eq(o.deleted, ["Authentication-Results", "Authentication-Results"],
         "forged A-R headers claiming our authserv-id are deleted (any case), others kept")
    t.ok(o.ar.startswith("mx.example.org;") and len([h for h in o.added if h.startswith("Authentication-Results")]) == 1,
         "exactly one A-R header of ours is added", repr(o))
    o = run(conf, msg("a@reject.example"), client_ip="192.0.2.250", mail_from="x@reject.example")
    t.ok(o.action == "accept" and o.ar == "" and "skipped: trusted network" in o.log,
         "trusted network: not verified (outbound mail)", repr(o))
    o = run(conf, forged, client_ip=BAD, mail_from="x@reject.example", extra=["--auth-user", "alice"])
    t.ok(o.action == "accept" and o.ar == "" and "authenticated as alice" in o.log and len(o.deleted) == 2,
         "authenticated user: not verified, forged headers still removed", repr(o))
    o = run(conf, msg("a@reject.example"), client_ip=BAD, mail_from="x@reject.example",
            extra=["--queue-id", "4ABC123"])
    t.ok(o.log.count("\n") == 1 and "4ABC123: client=" in o.log and "dmarc=fail" in o.log and
         "action=reject" in o.log, "one log line per message, with the queue id and every verdict", o.log)
    dns.stop()


t = Tap()
t.run(main)
t.done()
