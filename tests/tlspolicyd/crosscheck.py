#!/usr/bin/python3
"""tlspolicyd and postfix-mta-sts-resolver (Debian's mta-sts-daemon) asked
the same questions over the socketmap, against the same DNS zone and the
same HTTPS policy server with a test CA.

mta-sts-daemon has no resolver or port settings: it asks the system
resolver and fetches from port 443. So this test runs in its own network
and mount namespaces (unshare -mn, as root): a private loopback where the
test DNS server listens on port 53 (a bind-mounted /etc/resolv.conf points
at it) and the HTTPS server on 443; SSL_CERT_FILE makes it trust the test CA.

Where the RFCs leave no choice the answers are the same; each difference
is asserted and explained where it is checked."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest.tap import Tap  # noqa: E402

if os.environ.get("MW_TLSPOL_NETNS") != "1":
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mta-sts-daemon"):
        t = Tap()
        t.skip("cross-check with postfix-mta-sts-resolver", "needs root, unshare and mta-sts-daemon")
        t.done()
        sys.exit(0)
    env = dict(os.environ, MW_TLSPOL_NETNS="1")
    os.execvpe("unshare", ["unshare", "-mn", "--", sys.executable, os.path.abspath(__file__)], env)

import signzone  # noqa: E402
from tptest import Client, Daemon, StsServer, TestCA, policy  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402

t = Tap()
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
resolv = sandbox.path("resolv.conf")
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)

STS = ["enforce", "multi", "testing", "modenone", "badcert", "nopolicy", "ctype"]
plain = "".join("%s.example MX 10 mx.%s.example\n"
                "_mta-sts.%s.example TXT \"v=STSv1; id=%s1;\"\n"
                "mta-sts.%s.example A 127.0.0.1\n" % (d, d, d, d, d) for d in STS)
plain += "none.example MX 10 mx.none.example\nmx.none.example A 127.0.0.1\n"
records = [("danests.dnssec.example", "MX", "10 mx.danests.dnssec.example"),
           ("_25._tcp.mx.danests.dnssec.example", "TLSA", "3 1 1 " + "ab" * 32),
           ("_mta-sts.danests.dnssec.example", "TXT", '"v=STSv1; id=ds1;"'),
           ("mta-sts.danests.dnssec.example", "A", "127.0.0.1")]
zone_text, anchor_text = signzone.sign("dnssec.example", records)
zdir = sandbox.mkdir("zones")
with open(os.path.join(zdir, "signed.zone"), "w") as f:
    f.write(zone_text)
anchor = os.path.join(zdir, "anchor.key")
with open(anchor, "w") as f:
    f.write(anchor_text)
dns = DnsServer(plain, files=[os.path.join(zdir, "signed.zone")], port=53)

ca = TestCA(["mta-sts.%s.example" % d for d in STS if d != "badcert"] + ["mta-sts.danests.dnssec.example"])
https = StsServer(ca, port=443)
https.serve("enforce.example", policy("enforce", ["mx.enforce.example"]))
https.serve("multi.example", policy("enforce", ["mx1.multi.example", "*.multi.example"]))
https.serve("testing.example", policy("testing", ["mx.testing.example"]))
https.serve("modenone.example", "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n")
https.serve("badcert.example", policy("enforce", ["mx.badcert.example"]))
https.serve("ctype.example", policy("enforce", ["mx.ctype.example"]), ctype="text/html")
https.serve("danests.dnssec.example", policy("enforce", ["mx.danests.dnssec.example"]))

theirs_port = sandbox.free_port()
tdir = sandbox.mkdir("mta-sts-daemon")
with open(os.path.join(tdir, "daemon.yml"), "w") as f:
    f.write("host: 127.0.0.1\nport: %d\ncache:\n  type: internal\n  options:\n    cache_size: 1000\n"
            "default_zone:\n  strict_testing: false\n  timeout: 4\n" % theirs_port)
theirs_proc = sandbox.spawn(["mta-sts-daemon", "-c", os.path.join(tdir, "daemon.yml"), "-v", "info"],
                            log=os.path.join(tdir, "log"), env=dict(os.environ, SSL_CERT_FILE=ca.ca))
sandbox.wait_port(theirs_port, timeout=30)
ours = Daemon("dns_resolver = 127.0.0.1@53\ndns_trust_anchor = %s\nmta_sts_port = 443\nmta_sts_ca_file = %s\n"
              "mta_sts_timeout = 4s\n" % (anchor, ca.ca), name="ours")
them = Client("inet:%d@127.0.0.1" % theirs_port)
us = ours.client()


def both(domain):
    return us.ask(domain), them.ask(domain)


def match_set(answer):
    """The patterns of "OK secure match=a:b ...", as a set (mta-sts-daemon
    lists them in set order)."""
    words = answer.split()
    return set(words[2][len("match="):].split(":")) if len(words) > 2 else set()


def compare(t):
    a, b = both("enforce.example")
    t.eq(a, b, "enforce, one mx: the same answer (%s)" % a)
    a, b = both("multi.example")
    t.ok(a.split()[:2] == b.split()[:2] == ["OK", "secure"] and match_set(a) == match_set(b) and
         a.endswith("servername=hostname") and b.endswith("servername=hostname"),
         "enforce with a wildcard mx: the same policy and patterns (order aside)", "%r vs %r" % (a, b))
    # Differences, each deliberate:
    a, b = both("none.example")
    t.eq((a, b), ("OK encrypt", "NOTFOUND "),
         "no MTA-STS: we answer default_policy (encrypt); mta-sts-daemon leaves it to smtp_tls_security_level")
    a, b = both("testing.example")
    t.eq((a, b), ("OK encrypt", "NOTFOUND "),
         "mode testing: RFC 8461 5 says deliver as without a policy; both do, we name default_policy")
    a, b = both("modenone.example")
    t.eq((a, b), ("OK encrypt", "NOTFOUND "), "mode none: likewise")
    a, b = both("badcert.example")
    t.eq((a, b), ("TEMP MTA-STS policy fetch failed", "NOTFOUND "),
         "a bad certificate: we defer (TEMP, never weaker); mta-sts-daemon treats it as no policy "
         "(RFC 8461 5.1 allows that; on_fetch_error = default does it here)")
    a, b = both("nopolicy.example")
    t.eq((a, b), ("TEMP MTA-STS policy fetch failed", "NOTFOUND "), "TXT record but the policy is 404: likewise")
    a, b = both("ctype.example")
    t.eq((a, b), ("TEMP MTA-STS policy fetch failed", "NOTFOUND "),
         "a policy served as text/html: both refuse it (RFC 8461 3.3), we defer")
    a, b = both("danests.dnssec.example")
    t.eq(a, "OK dane-only", "DANE and MTA-STS together: we answer dane-only (RFC 8461 2: DANE wins)")
    t.eq(b, "OK secure match=mx.danests.dnssec.example servername=hostname",
         "mta-sts-daemon knows no DANE: its MTA-STS answer would override it")
    a, b = both(".enforce.example")
    t.eq((a, b), ("NOTFOUND ", "NOTFOUND "), "a parent-domain key: NOTFOUND from both")


t.run(compare)
them.close()
us.close()
ours.stop()
sandbox.stop(theirs_proc)
t.done()
