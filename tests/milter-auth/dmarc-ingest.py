#!/usr/bin/python3
"""DMARC aggregate reports read: `milter-auth-report ingest` takes the
reports other receivers send (fixtures in Google's, Microsoft's and
Yahoo's RFC 7489 formats and in RFC 9990's, as zip, gzip and plain XML,
from stdin as a Postfix pipe transport and from a Maildir), skips a
report seen before, and `summary` shows per source IP what passes and
what fails; hostile input (XML bombs, external entities, gzip and zip
bombs, zip path traversal, huge messages, garbage) is refused cleanly and
stores nothing."""
import base64
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

REPORT = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth-report")
FIX = os.path.join(sandbox.top_srcdir(), "tests/milter-auth/reports")

ZONE = """
7.100.51.198.in-addr.arpa   PTR mail.example.org
"""


def fixture(name):
    return open(os.path.join(FIX, name), "rb").read()


def mime(sender, ctype, filename, payload, encoding="base64"):
    body = base64.encodebytes(payload).decode() if encoding == "base64" else payload.decode()
    return ("From: %s\nTo: dmarc@example.org\nSubject: Report Domain: example.org Submitter: x\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
            "--b1\nContent-Type: text/plain\n\nThis is an aggregate report.\n\n"
            "--b1\nContent-Type: %s; name=\"%s\"\nContent-Disposition: attachment; filename=\"%s\"\n"
            "Content-Transfer-Encoding: %s\n\n%s\n--b1--\n"
            % (sender, ctype, filename, filename, encoding, body)).encode()


def zipped(name, data):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return b.getvalue()


def ingest(cfg, msg, *args):
    return subprocess.run([REPORT, "-c", cfg, "ingest"] + list(args), input=msg, capture_output=True, timeout=120)


def summary(cfg, *args):
    p = subprocess.run([REPORT, "-c", cfg, "summary"] + list(args), capture_output=True, text=True, timeout=120)
    return p


def by_ip(cfg, *args):
    p = summary(cfg, "--json", *args)
    try:
        return {s["source_ip"]: s for s in json.loads(p.stdout)}
    except ValueError:
        return {"error": p.stdout + p.stderr}


def main(t):
    dns = DnsServer(ZONE)
    recv = sandbox.mkdir("received")
    cfg = matest.base_conf(dns, "report_received_dir = %s\nreport_max_size = 1m\n" % recv)

    good = [
        ("Google (RFC 7489, zip)", mime("noreply-dmarc-support@google.com", "application/zip",
                                        "google.com!example.org!1764460800!1764547199.zip",
                                        zipped("google.com!example.org!1764460800!1764547199.xml",
                                               fixture("google.xml")))),
        ("Microsoft (RFC 7489, gzip)", mime("dmarcreport@microsoft.com", "application/gzip",
                                            "enterprise.protection.outlook.com!example.org!1764460800!1764547200.xml.gz",
                                            gzip.compress(fixture("microsoft.xml")))),
        ("RFC 9990 (plain XML, 7bit)", mime("dmarc@receiver.example", "text/xml",
                                            "receiver.example!example.org!1764460800!1764547199.xml",
                                            fixture("rfc9990.xml"), encoding="7bit")),
    ]
    for name, m in good:
        p = ingest(cfg, m)
        t.eq(p.returncode, 0, "ingest from stdin: %s" % name) or t.diag(p.stderr.decode())
    # a report seen before is skipped
    p = ingest(cfg, good[0][1])
    t.eq(p.returncode, 0, "the same report again: accepted")
    # from a Maildir: Yahoo's, gzip as application/octet-stream
    md = sandbox.mkdir("Maildir")
    for sub in ("new", "cur", "tmp"):
        sandbox.mkdir("Maildir", sub)
    with open(os.path.join(md, "new", "1764547300.M1P1.mx"), "wb") as f:
        f.write(mime("dmarchelp@yahooinc.com", "application/octet-stream",
                     "yahoo.com!example.org!1764460800!1764547199.xml.gz", gzip.compress(fixture("yahoo.xml"))))
    p = ingest(cfg, b"", "--maildir", md)
    t.eq(p.returncode, 0, "ingest --maildir: Yahoo (RFC 7489, gzip)") or t.diag(p.stderr.decode())
    t.eq((os.listdir(os.path.join(md, "new")), os.listdir(os.path.join(md, "cur"))),
         ([], ["1764547300.M1P1.mx:2,S"]), "the Maildir message moved to cur/, seen")

    s = by_ip(cfg, "--domain", "example.org")
    want = {
        "198.51.100.7": (137, 137, 0, "mail.example.org"),   # Google 120, Microsoft 12, RFC 9990 5
        "2001:db8::25": (30, 30, 0, "-"),                    # Microsoft: forwarded, DKIM passes
        "203.0.113.66": (10, 0, 10, "-"),                    # Google 7, Yahoo 3: spoofs
    }
    got = {ip: (v["count"], v["dmarc"]["pass"], v["dmarc"]["fail"], v["ptr"]) for ip, v in s.items()}
    t.eq(got, want, "summary --json: per source IP, counts added across four reports once each, PTR names")
    if "2001:db8::25" in s:
        t.eq((s["2001:db8::25"]["spf"], s["2001:db8::25"]["dkim"]), ({"pass": 0, "fail": 30}, {"pass": 30, "fail": 0}),
             "summary: SPF and DKIM results of a forwarded stream")
    p = summary(cfg, "--no-ptr")
    t.ok(p.returncode == 0 and "SOURCE IP" in p.stdout and "203.0.113.66" in p.stdout and "137" in p.stdout,
         "summary as a table", p.stdout + p.stderr)
    t.eq(by_ip(cfg, "--since", "20251201"), {}, "summary --since after the reports' period: nothing")
    t.eq(sorted(by_ip(cfg, "--since", "20251130", "--no-ptr")), sorted(want), "summary --since covering them")
    t.eq(by_ip(cfg, "--domain", "other.example", "--no-ptr"), {}, "summary --domain of another domain: nothing")

    def rows():
        return sum(1 for f in os.listdir(recv) for _ in open(os.path.join(recv, f)))
    before = rows()
    t.eq(before, 6, "six records stored (the duplicate report not twice)")

    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
            + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                       for i in range(1, 10))
            + b']>\n<feedback><report_metadata><report_id>&lol9;</report_id></report_metadata></feedback>\n')
    xxe = (b'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
           b'<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>\n')
    zeros = b"\0" * (30 * 1024 * 1024)
    traversal = zipped("../../../../tmp/mailward-evil.xml", fixture("google.xml"))
    hostile = [
        ("an XML bomb (billion laughs)", mime("a@evil.example", "text/xml", "x.xml", bomb, "7bit"), "DOCTYPE"),
        ("an external entity (XXE)", mime("a@evil.example", "application/gzip", "x.xml.gz", gzip.compress(xxe)),
         "DOCTYPE"),
        ("a gzip bomb (30 MB of zeros)", mime("a@evil.example", "application/gzip", "x.xml.gz",
                                              gzip.compress(zeros)), "expands past"),
        ("a zip bomb", mime("a@evil.example", "application/zip", "x.zip", zipped("x.xml", zeros)), "expands past"),
        ("zip path traversal", mime("a@evil.example", "application/zip", "x.zip", traversal), "with a path"),
        ("a huge message", b"From: a@evil.example\n\n" + b"<" * (3 * 1024 * 1024), "larger than"),
        ("garbage", b"From: a@evil.example\n\nhello\n", "no DMARC aggregate report"),
        ("XML that is no report", mime("a@evil.example", "text/xml", "x.xml", b"<html><p>hi</p></html>", "7bit"),
         "not a DMARC aggregate report"),
        ("truncated gzip", mime("a@evil.example", "application/gzip", "x.xml.gz",
                                gzip.compress(fixture("google.xml"))[:200]), "gzip"),
    ]
    for name, m, why in hostile:
        p = ingest(cfg, m)
        err = p.stderr.decode(errors="replace")
        t.ok(p.returncode == 65 and why in err, "refused cleanly (65, %r): %s" % (why, name),
             "rc=%d %s" % (p.returncode, err[-500:]))
    t.eq(rows(), before, "nothing stored from hostile input")
    t.ok(not os.path.exists("/tmp/mailward-evil.xml"), "nothing written where a zip entry name pointed")
    dns.stop()


t = Tap()
t.run(main)
t.done()
