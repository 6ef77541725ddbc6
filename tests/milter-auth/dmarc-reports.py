#!/usr/bin/python3
"""DMARC aggregate reports (RFC 9990) sent: three milter-auth hosts record
their evaluations (test mode, real DNS server), `milter-auth-report send`
merges the three stores into one report per Policy Domain whose counts
add up, the XML validates against the RFC 9990 schema (xmllint), external
rua= destinations are verified (RFC 9990 4), size limits hold, no report
about a report, retention and privacy of the store."""
import glob
import gzip
import os
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
IP = "198.51.100.7"   # rep.example's own server
BAD = "203.0.113.66"  # a spoofer
REPORT = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth-report")
XSD = os.path.join(sandbox.top_srcdir(), "tests/milter-auth/reports/rfc9990.xsd")
NS = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
REPORT_SUBJECT = "Report Domain: mx.example.org Submitter: rep.example Report-ID: <1@rep.example>"

ZONE = """
_dmarc.rep.example              TXT "v=DMARC1; p=reject; rua=mailto:dmarc@rep.example"
rep.example                     TXT "v=spf1 ip4:%(ip)s -all"
sel._domainkey.rep.example      TXT "v=DKIM1; p=%(rsa)s"
# reports go elsewhere: one destination authorizes it (RFC 9990 4), one not
_dmarc.ext.example              TXT "v=DMARC1; p=quarantine; t=y; rua=mailto:agg@reports.example,mailto:agg@unauth.example"
ext.example._report._dmarc.reports.example TXT "v=DMARC1"
# a tiny size limit: the report never fits
_dmarc.tiny.example             TXT "v=DMARC1; p=none; rua=mailto:dmarc@tiny.example!1k"
# no rua=: nothing recorded
_dmarc.norua.example            TXT "v=DMARC1; p=reject"
""" % {"ip": IP, "rsa": RSA_PUB}


def conf(dns, store, host, extra=""):
    return matest.base_conf(dns, "report_store_dir = %s\nreport_host_id = %s\n"
                                 "report_email = dmarc-reports@mx.example.org\n"
                                 "report_org_name = Example Mail\n%s" % (store, host, extra))


def msg(frm, subject="test"):
    return message(frm="Someone <%s>" % frm, subject=subject)


def report_tool(cfg, *args):
    return subprocess.run([REPORT, "-c", cfg] + list(args), capture_output=True, text=True, timeout=120)


def feedback(path):
    data = gzip.open(path).read()
    return data, ET.fromstring(data)


def counts(root):
    """{source_ip: count} and the sum over records."""
    by_ip = {}
    for r in root.findall("d:record", NS):
        ip = r.find("d:row/d:source_ip", NS).text
        by_ip[ip] = by_ip.get(ip, 0) + int(r.find("d:row/d:count", NS).text)
    return by_ip, sum(by_ip.values())


def main(t):
    dns = DnsServer(ZONE)
    stores = [sandbox.mkdir("store-mx%d" % i) for i in (1, 2, 3)]
    confs = [conf(dns, stores[i], "mx%d" % (i + 1)) for i in range(3)]
    good = sign(msg("news@rep.example"), "sel", "rep.example", RSA)
    # (host, message, client, MAIL FROM, times)
    plan = [
        (0, good, IP, "bounce-4711@rep.example", 3),
        (0, msg("ceo@rep.example"), BAD, "x@spoof.example", 2),
        (1, good, IP, "bounce-4712@rep.example", 1),
        (1, msg("ceo@rep.example"), BAD, "x@spoof.example", 1),
        (2, msg("ceo@rep.example"), BAD, "x@spoof.example", 2),
        (2, msg("a@ext.example"), BAD, "x@spoof.example", 2),
        (2, msg("a@tiny.example"), BAD, "x@spoof.example", 1),
        # not recorded: no rua=, and a report (it passes DMARC, as RFC 9990
        # asks) about a report
        (0, msg("a@norua.example"), BAD, "x@spoof.example", 1),
        (1, sign(message(frm="noreply@rep.example", subject=REPORT_SUBJECT), "sel", "rep.example", RSA),
         IP, "noreply@rep.example", 1),
        # recorded: a spoof that only borrows a report's Subject
        (1, message(frm="noreply@rep.example", subject=REPORT_SUBJECT), BAD, "x@spoof.example", 1),
    ]
    for host, m, ip, mail_from, times in plan:
        for _ in range(times):
            o = run(confs[host], m, client_ip=ip, mail_from=mail_from)
            t.ok(o.rc == 0, "mx%d evaluates a message from %s" % (host + 1, ip), repr(o))

    lines = {}
    for i, d in enumerate(stores):
        files = glob.glob(os.path.join(d, "dmarc-*-mx%d.tsv" % (i + 1)))
        t.eq(len(files), 1, "mx%d: one store file for today, named after the host" % (i + 1))
        text = "".join(open(f).read() for f in files)
        lines[i] = text.splitlines()
        mode = stat.S_IMODE(os.stat(files[0]).st_mode) if files else 0
        t.ok(mode & 0o007 == 0, "mx%d: the store file is not world-readable" % (i + 1), oct(mode))
    t.eq([len(lines[i]) for i in range(3)], [5, 3, 5],
         "every evaluation under a rua= recorded, not norua.example, not the report, but the spoofed one")
    everything = "\n".join("\n".join(v) for v in lines.values())
    t.ok("bounce-4711" not in everything and "bounce-4712" not in everything,
         "privacy: no local part of an address in the store")
    t.ok("norua.example" not in everything, "no rua=: nothing recorded")

    # one report per Policy Domain from the three stores
    out = sandbox.mkdir("dry-run")
    # mx1's configuration, mx2 and mx3 shipped in with --store
    old = os.path.join(stores[0], "dmarc-20200101-mx1.tsv")
    open(old, "w").write(lines[0][0] + "\n")
    with open(os.path.join(stores[2], "dmarc-%s-mx3.tsv" % time.strftime("%Y%m%d", time.gmtime())), "a") as f:
        f.write("mwdr1\tgarbage\n")
    p = report_tool(confs[0], "send", "--dry-run", out, "--day", "today", "--store", stores[1], "--store", stores[2])
    t.eq(p.returncode, 0, "send --dry-run succeeds") or t.diag(p.stdout + p.stderr)
    t.ok(not os.path.exists(old), "retention: a store file older than 30 days is deleted")
    t.contains(p.stderr, "malformed store lines skipped", "a malformed store line is skipped with a warning")
    files = sorted(os.listdir(out))
    t.eq(len(files), 3, "one report per Policy Domain (rep, ext, tiny)") or t.diag(repr(files))
    rep = [f for f in files if "!rep.example!" in f]
    t.ok(len(rep) == 1 and rep[0].startswith("mx.example.org!rep.example!") and rep[0].endswith(".xml.gz"),
         "RFC 9990 2.5.2.2 file name: receiver!policy-domain!begin!end!unique-id.xml.gz", repr(files))
    for f in files:
        x = subprocess.run(["xmllint", "--noout", "--schema", XSD, os.path.join(out, f)],
                           capture_output=True, text=True)
        t.eq(x.returncode, 0, "%s validates against the RFC 9990 schema" % f) or t.diag(x.stderr)
    if rep:
        data, root = feedback(os.path.join(out, rep[0]))
        by_ip, total = counts(root)
        t.eq(total, 10, "rep.example: the counts of the three hosts add up (3+2 + 1+1+1 + 2)")
        t.eq(by_ip, {IP: 4, BAD: 6}, "rep.example: per source IP")
        t.eq(root.find("d:policy_published/d:p", NS).text, "reject", "policy_published p=reject")
        t.eq(root.find("d:policy_published/d:discovery_method", NS).text, "treewalk", "discovery_method treewalk")
        disp = sorted((r.find("d:row/d:source_ip", NS).text, r.find("d:row/d:policy_evaluated/d:disposition", NS).text)
                      for r in root.findall("d:record", NS))
        t.eq(sorted(set(disp)), sorted([(BAD, "reject"), (IP, "pass")]), "dispositions: pass, and reject for the spoofs")
        envf = set(e.text for e in root.iter("{%s}envelope_from" % NS["d"]))
        t.eq(envf, {"rep.example", "spoof.example"}, "envelope_from: domains only")
        t.ok(b"mx1" not in data and b"mx2" not in data, "the report does not name our hosts")
    ext = [f for f in files if "!ext.example!" in f]
    if ext:
        _, root = feedback(os.path.join(out, ext[0]))
        reasons = [e.text for e in root.iter("{%s}type" % NS["d"])]
        t.eq((counts(root)[1], reasons, root.find("d:policy_published/d:testing", NS).text),
             (2, ["policy_test_mode"], "y"), "t=y: disposition none, reason policy_test_mode")
    t.contains(p.stdout, "send rep.example dmarc@rep.example", "same organization: sent without verification")
    t.contains(p.stdout, "send ext.example agg@reports.example",
               "external destination authorized by ext.example._report._dmarc.reports.example")
    t.contains(p.stdout, "skip ext.example agg@unauth.example: external destination not authorized",
               "external destination without the _report._dmarc record: not sent")
    t.contains(p.stdout, "skip tiny.example dmarc@tiny.example: larger than the rua= size limit",
               "a report over the rua= !1k limit is not sent")

    # the schema can fail: a report without records is refused
    bad = os.path.join(out, "bad.xml")
    open(bad, "wb").write(gzip.open(os.path.join(out, rep[0])).read().replace(b"<count>", b"<count>x")
                          if rep else b"<x/>")
    x = subprocess.run(["xmllint", "--noout", "--schema", XSD, bad], capture_output=True, text=True)
    t.ok(x.returncode != 0, "the schema refuses a malformed count (the check can fail)")
    os.unlink(bad)

    # really sent: through a sendmail that keeps what it is given
    spool = sandbox.mkdir("sent")
    fake = sandbox.path("sendmail")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nn=$(ls %s | wc -l)\nprintf '%%s\\n' \"$@\" > %s/$n.args\ncat > %s/$n.eml\n"
                % (spool, spool, spool))
    os.chmod(fake, 0o755)
    sconf = conf(dns, stores[0], "mx1", "report_sendmail = %s\n" % fake)
    p = report_tool(sconf, "send", "--day", "today", "--store", stores[1], "--store", stores[2])
    t.eq(p.returncode, 0, "send hands the reports to sendmail") or t.diag(p.stdout + p.stderr)
    sent = sorted(glob.glob(os.path.join(spool, "*.args")))
    rcpts = sorted(open(a).read().split()[-1] for a in sent)
    t.eq(rcpts, ["agg@reports.example", "dmarc@rep.example"], "one message per authorized rua address")
    for a in sent:
        args = open(a).read().split()
        eml = open(a[:-5] + ".eml").read()
        t.eq(args[:3], ["-i", "-f", "dmarc-reports@mx.example.org"], "sendmail -i -f report_email")
        t.ok("Subject: Report Domain: " in eml and " Submitter: mx.example.org Report-ID: <" in eml,
             "RFC 9990 Subject: Report Domain: ... Submitter: ... Report-ID:", eml[:600])
        t.contains(eml, "Content-Type: application/gzip", "the report attached as application/gzip")

    # from the timer (no --day): every complete day not yet sent, once
    yday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    shutil.copy(glob.glob(os.path.join(stores[1], "dmarc-*-mx2.tsv"))[0],
                os.path.join(stores[0], "dmarc-%s-mx2.tsv" % yday))
    for f in os.listdir(spool):
        os.unlink(os.path.join(spool, f))
    p = report_tool(sconf, "send")
    t.eq(p.returncode, 0, "send without --day") or t.diag(p.stdout + p.stderr)
    t.eq(len(glob.glob(os.path.join(spool, "*.eml"))), 1, "yesterday's report sent, today's not (the day is not over)")
    t.ok(os.path.exists(os.path.join(stores[0], "sent-%s" % yday)), "the day is marked sent")
    p = report_tool(sconf, "send")
    t.eq(len(glob.glob(os.path.join(spool, "*.eml"))), 1, "the next run sends that day no more")
    dns.stop()


t = Tap()
t.run(main)
t.done()
