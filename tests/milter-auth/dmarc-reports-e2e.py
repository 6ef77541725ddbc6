#!/usr/bin/python3
"""DMARC aggregate reports through a real Postfix: three milter-auth
daemons (three "MX hosts": three smtpd listeners of one private Postfix,
each with its own milter-auth, running unprivileged, each with its own
store) record what they see; `milter-auth-report send` over the three
stores makes one report whose counts add up. Then the reports others
send: contrib/postfix/dmarc-reports.cf pasted unchanged (paths into the
sandbox), a report mailed to our rua= address goes through the pipe
transport into `ingest`, a hostile one bounces."""
import glob
import gzip
import os
import pwd
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

import base64  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
GOOD_IP = "127.0.0.2"
SPOOF_IP = "127.0.0.3"
REPORT = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth-report")
ZONE = """
rep.example                     TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.rep.example              TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@rep.example"
sel._domainkey.rep.example      TXT "v=DKIM1; p=%(rsa)s"
""" % {"ip": GOOD_IP, "rsa": RSA_PUB}
NOBODY = pwd.getpwnam("nobody")


def report_message(sender, filename, payload):
    """A report as receivers mail it: text, then the gzip attachment."""
    return ("From: %s\nTo: dmarc-reports@example.org\nSubject: Report Domain: example.org Submitter: x\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
            "--b1\nContent-Type: text/plain\n\nAn aggregate report.\n\n--b1\nContent-Type: application/gzip\n"
            "Content-Disposition: attachment; filename=\"%s\"\nContent-Transfer-Encoding: base64\n\n%s\n--b1--\n"
            % (sender, filename, base64.encodebytes(payload).decode())).encode()


def main(t):
    dns = DnsServer(ZONE)
    recv = sandbox.mkdir("received")
    os.chown(recv, NOBODY.pw_uid, NOBODY.pw_gid)
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    ports, milters, stores = [pf.port], [], []
    for i in (1, 2, 3):
        store = sandbox.mkdir("store-mx%d" % i)
        os.chown(store, NOBODY.pw_uid, NOBODY.pw_gid)
        stores.append(store)
        conf = sandbox.path("mx%d.conf" % i)
        with open(conf, "w") as f:
            f.write("authserv_id = mx.example.org\ndns_resolver = %s\ndns_timeout = 1s\n"
                    "trusted_networks = 127.0.0.1/32\nsocket = unix:%s/mx%d.sock\nuser = nobody\n"
                    "socket_group = postfix\nsocket_mode = 0660\nreport_store_dir = %s\nreport_host_id = mx%d\n"
                    "report_email = dmarc-reports@mx.example.org\nreport_received_dir = %s\n"
                    % (dns.spec, sockdir, i, store, i, recv))
        log = sandbox.path("mx%d.log" % i)
        proc = sandbox.spawn([matest.MILTER_AUTH, "-f", "-c", conf], log=log)
        sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or proc.poll() is not None, 30,
                         what="milter-auth mx%d to listen" % i)
        t.ok(proc.poll() is None, "milter-auth mx%d runs (unprivileged, its own store)" % i, sandbox.read_text(log))
        milters.append((conf, proc, log))
        if i > 1:
            port = sandbox.free_port()
            ports.append(port)
            pf.add_master(["127.0.0.1:%d inet n - n - - smtpd" % port,
                           "  -o smtpd_milters=unix:mailward/mx%d.sock" % i])
    pf.apply_snippet("contrib/postfix/milter-auth.cf",
                     replace={"unix:mailward/milter-auth.sock": "unix:mailward/mx1.sock"})
    pf.apply_snippet("contrib/postfix/dmarc-reports.cf", replace={
        "user=mailward": "user=nobody", "/usr/sbin/milter-auth-report": REPORT,
        "/etc/mailward/milter-auth.conf": milters[0][0], "dmarc-reports@example.org": "dmarc-reports@example.org"})
    pf.start()

    good = sign(message(frm="News <news@rep.example>"), "sel", "rep.example", RSA)
    spoof = message(frm="CEO <ceo@rep.example>", subject="wire")
    plan = [(0, good, GOOD_IP, 2), (0, spoof, SPOOF_IP, 1), (1, good, GOOD_IP, 1), (1, spoof, SPOOF_IP, 2),
            (2, spoof, SPOOF_IP, 1)]
    for host, m, ip, times in plan:
        for _ in range(times):
            code, tr = swaks("--from", "x@rep.example", "--to", "alice@example.org", "--helo", "mail.rep.example",
                             "--local-interface", ip, "--data", "-", port=ports[host], input=m if isinstance(m, bytes) else m.encode())
            t.eq(code, 0, "mx%d accepts a message from %s" % (host + 1, ip)) or t.diag(tr)

    def recorded():
        return [sum(1 for f in glob.glob(os.path.join(s, "dmarc-*.tsv")) for _ in open(f)) for s in stores]
    sandbox.wait_for(lambda: recorded() == [3, 3, 1], 30, what="the evaluations recorded")
    t.eq(recorded(), [3, 3, 1], "each daemon recorded what it evaluated, in its own store")
    out = sandbox.mkdir("dry-run")
    p = __import__("subprocess").run([REPORT, "-c", milters[0][0], "send", "--dry-run", out, "--day", "today",
                                      "--store", stores[1], "--store", stores[2]],
                                     capture_output=True, text=True, timeout=120)
    t.eq(p.returncode, 0, "send over the three stores") or t.diag(p.stdout + p.stderr)
    files = os.listdir(out)
    t.eq(len(files), 1, "one report for rep.example, not one per host")
    if files:
        t.eq(matest.report_counts(os.path.join(out, files[0])), {GOOD_IP: 3, SPOOF_IP: 4}, "its counts add up over the three hosts (3 good, 4 spoofed)")

    # the reports others send, through the pipe transport
    google = open(os.path.join(sandbox.top_srcdir(), "tests/milter-auth/reports/google.xml"), "rb").read()
    rep = report_message("noreply-dmarc-support@google.com", "google.com!example.org!1!2.xml.gz",
                         gzip.compress(google))
    code, tr = swaks("--from", "noreply-dmarc-support@google.com", "--to", "dmarc-reports@example.org",
                     "--local-interface", GOOD_IP, "--data", "-", port=pf.port, input=rep)
    t.eq(code, 0, "a report mailed to our rua= address is accepted") or t.diag(tr)
    sandbox.wait_for(lambda: glob.glob(os.path.join(recv, "rua-*.tsv")), 60, what="the report ingested")
    rows = sum(1 for f in glob.glob(os.path.join(recv, "rua-*.tsv")) for _ in open(f))
    t.eq(rows, 2, "the pipe transport ran ingest: its two records stored") or t.diag(pf.log()[-3000:])
    bomb = report_message("a@evil.example", "x.xml.gz", gzip.compress(b"\0" * (120 * 1024 * 1024)))
    code, tr = swaks("--from", "a@evil.example", "--to", "dmarc-reports@example.org",
                     "--local-interface", GOOD_IP, "--data", "-", port=pf.port, input=bomb)
    sandbox.wait_for(lambda: "expands past" in pf.log(), 60, what="the bomb refused")
    t.ok("status=bounced" in pf.log() and "expands past" in pf.log(),
         "a gzip bomb bounces with the reason (pipe exit 65)", pf.log()[-2000:])
    rows2 = sum(1 for f in glob.glob(os.path.join(recv, "rua-*.tsv")) for _ in open(f))
    t.eq(rows2, 2, "and stores nothing")
    for _, proc, _ in milters:
        sandbox.stop(proc)
    dns.stop()


t = Tap()
t.run(main)
t.done()
