#!/usr/bin/python3
"""tlspolicyd end to end with DANE: a private Postfix with
smtp_dns_support_level = dnssec and smtp_tls_policy_maps pointed at
tlspolicyd, delivering by MX lookups to two next hops on port 25 that
present the same certificate, for two domains of a DNSSEC-signed zone
(made for this run): right.dnssec.example publishes a TLSA record that
matches the certificate, wrong.dnssec.example one that does not.
tlspolicyd answers dane-only for both (it validates the zone itself);
Postfix then checks the TLSA records: the message to right.dnssec.example
is delivered over verified TLS, the one to wrong.dnssec.example is
deferred and never reaches its next hop.

Postfix asks the system resolver and trusts its AD bit, and connects to
port 25: so this runs in its own network and mount namespaces (unshare
-mn, as root, as crosscheck.py does) where /etc/resolv.conf (bind-mounted)
points at adresolver.py on 127.0.0.1:53, a validating stub in front of the
test DNS server, and the next hops listen on 127.0.0.2:25 and 127.0.0.3:25."""
import hashlib
import os
import pwd
import shutil
import smtplib
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest.tap import Tap  # noqa: E402

if os.environ.get("MW_TLSPOL_NETNS") != "1":
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("postfix"):
        t = Tap()
        t.skip("DANE end to end", "needs root, unshare and postfix")
        t.done()
        sys.exit(0)
    env = dict(os.environ, MW_TLSPOL_NETNS="1")
    os.execvpe("unshare", ["unshare", "-mn", "--", sys.executable, os.path.abspath(__file__)], env)

import signzone  # noqa: E402
from tptest import Daemon, TestCA  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402

t = Tap()


def spki_sha256(pem):
    """The TLSA 3 1 1 data of a certificate: SHA-256 of its public key (DER)."""
    pub = subprocess.run(["openssl", "x509", "-in", pem, "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    return hashlib.sha256(der).hexdigest()


def kept(d):
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d)) if not f.endswith(".tmp")]


def send(pf, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as s:
        s.sendmail("sender@example.org", [rcpt], "From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nhi\r\n"
                   % (rcpt, subject))


def main(t):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ca = TestCA(["mx.right.dnssec.example", "mx.wrong.dnssec.example"])
    right_hash = spki_sha256(ca.cert)
    other_hash = spki_sha256(ca.ca)  # another key: does not match the next hop's certificate
    records = []
    for name, addr, digest in (("right", "127.0.0.2", right_hash), ("wrong", "127.0.0.3", other_hash)):
        records += [("%s.dnssec.example" % name, "MX", "10 mx.%s.dnssec.example" % name),
                    ("mx.%s.dnssec.example" % name, "A", addr),
                    ("_25._tcp.mx.%s.dnssec.example" % name, "TLSA", "3 1 1 " + digest)]
    zone_text, anchor_text = signzone.sign("dnssec.example", records)
    zdir = sandbox.mkdir("zones")
    signed = os.path.join(zdir, "signed.zone")
    with open(signed, "w") as f:
        f.write(zone_text)
    anchor = os.path.join(zdir, "anchor.key")
    with open(anchor, "w") as f:
        f.write(anchor_text)
    dns = DnsServer(files=[signed])

    ready = os.path.join(zdir, "resolver.ready")
    res = sandbox.spawn(["/usr/bin/python3", os.path.join(HERE, "adresolver.py"), "--port", "53",
                         "--upstream", dns.spec, "--anchor", anchor, "--ready-file", ready],
                        log=os.path.join(zdir, "resolver.log"))
    sandbox.wait_for(lambda: os.path.exists(ready) or res.poll() is not None, 20, what="the validating resolver")
    resolv = sandbox.path("resolv.conf")
    with open(resolv, "w") as f:
        # trust-ad: glibc passes the resolver's AD bit on only when told to
        f.write("nameserver 127.0.0.1\noptions trust-ad timeout:2 attempts:2\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)

    sinks = {}
    for name, addr in (("right", "127.0.0.2"), ("wrong", "127.0.0.3")):
        d = sandbox.mkdir("sink-" + name)
        sandbox.spawn(["/usr/bin/python3", os.path.join(HERE, "tlssink.py"), "--addr", addr, "--port", "25",
                       "--dir", d, "--cert", ca.cert, "--key", ca.key], log=d + ".log")
        sandbox.wait_port(25, host=addr, timeout=30)
        sinks[name] = d

    pf = Postfix(main={"relayhost": "", "smtp_dns_support_level": "dnssec", "smtp_tls_loglevel": "1",
                       "smtp_host_lookup": "dns"})
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(zdir, 0o755)
    os.chmod(anchor, 0o644)
    tp = Daemon("socket = unix:%s/tlspolicyd.sock\nuser = nobody\nsocket_group = postfix\ncache_file = \n"
                "dns_resolver = %s\ndns_trust_anchor = %s\n" % (sockdir, dns.spec, anchor), name="tp-dane")
    pf.set(smtp_tls_policy_maps="socketmap:unix:%s/tlspolicyd.sock:tlspolicy" % sockdir)
    pf.start()

    send(pf, "user@right.dnssec.example", "to the host whose TLSA matches")
    send(pf, "user@wrong.dnssec.example", "to the host whose TLSA does not match")
    sandbox.wait_for(lambda: kept(sinks["right"]), 120, interval=0.5, what="delivery to right.dnssec.example")
    t.ok(kept(sinks["right"])[0].startswith(b"X-Sink-TLS: TLSv1."), "right TLSA: delivered over TLS")
    log = sandbox.read_text(pf.maillog)
    t.contains(log, "Verified TLS connection established to mx.right.dnssec.example",
               "... and Postfix verified the certificate by its TLSA record")
    t.contains(tp.log(), "right.dnssec.example: OK dane-only", "tlspolicyd answered dane-only for it")

    def wrong_deferred():
        return any("to=<user@wrong.dnssec.example>" in ln and "status=deferred" in ln
                   for ln in sandbox.read_text(pf.maillog).splitlines())
    sandbox.wait_for(wrong_deferred, 120, interval=0.5, what="the delivery to wrong.dnssec.example to be deferred")
    lines = [ln for ln in sandbox.read_text(pf.maillog).splitlines()
             if "to=<user@wrong.dnssec.example>" in ln and "status=deferred" in ln]
    t.ok("dsn=4.7.5" in lines[0] and "(Server certificate not verified)" in lines[0],
         "wrong TLSA: deferred (4.7.5) because the certificate does not match it", lines[0])
    t.contains(tp.log(), "wrong.dnssec.example: OK dane-only", "tlspolicyd answered dane-only for it too")
    # retried: deferred again, never delivered. The retry is asked for
    # (postqueue -f, as an admin would) rather than left to qmgr's backoff,
    # which a loaded machine stretched past 120 s once (tests/stress-ci).
    pf.flush()
    sandbox.wait_for(lambda: sum("to=<user@wrong.dnssec.example>" in ln and "status=deferred" in ln
                                 for ln in sandbox.read_text(pf.maillog).splitlines()) >= 2, 240, interval=0.5,
                     what="a second try to be deferred")
    t.eq(kept(sinks["wrong"]), [], "and the message never reached that next hop")
    t.ok("status=sent" not in "".join(ln for ln in sandbox.read_text(pf.maillog).splitlines()
                                      if "to=<user@wrong.dnssec.example>" in ln), "nor was it logged as sent")


t.run(main)
t.done()
