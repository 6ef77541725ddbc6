#!/usr/bin/python3
"""milter-auth end to end: a private Postfix with the contrib snippet pasted
unchanged, milter-auth running as a daemon (unprivileged), mail sent with
swaks from a loopback address playing the internet."""
import os
import pwd
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
FRIEND_IP = "127.0.0.2"
SPOOFER_IP = "127.0.0.3"
ZONE = """
friend.example                  TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.friend.example           TXT "v=DMARC1; p=reject"
sel._domainkey.friend.example   TXT "v=DKIM1; p=%(rsa)s"
bank.example                    TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.bank.example             TXT "v=DMARC1; p=reject"
shop.example                    TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.shop.example             TXT "v=DMARC1; p=quarantine"
slow.example                    TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.slow.example             TIMEOUT
# RFC 9989: only the public suffix publishes (psd=y); the public suffix
# list finds nothing for shop.psd9989, the DNS tree walk does
_dmarc.psd9989                  TXT "v=DMARC1; p=reject; psd=y"
shop.psd9989                    TXT "v=spf1 ip4:192.0.2.1 -all"
""" % {"ip": FRIEND_IP, "rsa": RSA_PUB}


def send(pf, msg, client, mail_from, port=None, extra=()):
    return swaks("--from", mail_from, "--to", "alice@example.org", "--helo", "mail.friend.example",
                 "--local-interface", client, "--data", "-", *extra, port=port or pf.port,
                 input=msg if isinstance(msg, bytes) else msg.encode())


def header(msg_bytes, name):
    import email
    m = email.message_from_bytes(msg_bytes)
    return [" ".join(v.split()) for v in m.get_all(name) or []]


def main(t):
    dns = DnsServer(ZONE)
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    ma = matest.Milter(dns, "unix:%s/milter-auth.sock" % sockdir)
    st = os.stat(os.path.join(sockdir, "milter-auth.sock"))
    t.ok(st.st_mode & 0o777 == 0o660 and st.st_uid == pwd.getpwnam("nobody").pw_uid,
         "socket mode 0660, owned by the daemon's user")
    status = open("/proc/%d/status" % ma.proc.pid).read()
    t.ok("Uid:\t65534\t65534\t65534\t65534" in status, "the daemon runs as nobody after binding")
    # The snippet is pasted unchanged: its relative socket name resolves in
    # the queue directory.
    pf.apply_snippet("contrib/postfix/milter-auth.cf")
    dc = Dovecot(users={"alice": "alice-pw"})
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()

    good = sign(message(), "sel", "friend.example", RSA)
    forged = b"Authentication-Results: mx.example.org; dmarc=pass\r\n" + good
    code, tr = send(pf, forged, FRIEND_IP, "friend@friend.example")
    t.eq(code, 0, "a signed message from the friend's server is accepted") or t.diag(tr)
    got = pf.wait_delivered(1)[0]
    ar = header(got, "Authentication-Results")
    t.eq(len(ar), 1, "delivered with exactly one Authentication-Results (the forged one removed)")
    t.ok(ar and "spf=pass" in ar[0] and "dkim=pass header.d=friend.example header.s=sel" in ar[0]
         and "dmarc=pass" in ar[0] and "header.from=friend.example" in ar[0] and ar[0].startswith("mx.example.org;"),
         "its verdicts: spf, dkim, dmarc pass", ar)
    t.ok(got.index(b"Authentication-Results:") < got.index(b"DKIM-Signature:"),
         "our header is on top of the message's own headers")
    # smtp-sink stores LF line ends; DKIM is computed over CRLF
    wire = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    t.ok(b"Hello Alice." in got and matest.dkim.verify(wire, dnsfunc=lambda name, timeout=5: (
        "v=DKIM1; p=" + RSA_PUB).encode() if name.startswith(b"sel._domainkey.friend.example") else None),
         "the message still verifies after passing through (nothing corrupted)")
    qid = pf.log().split("postfix/cleanup")[1].split(":")[1].strip() if "postfix/cleanup" in pf.log() else "?"
    t.ok(("%s: client=" % qid) in ma.text(), "milter-auth logs the message with Postfix's queue id", qid)

    code, tr = send(pf, message(frm="Security <security@bank.example>", subject="verify"),
                    SPOOFER_IP, "security@bank.example")
    t.ok(code != 0 and "550 5.7.1" in tr and "bank.example" in tr, "p=reject spoof refused at SMTP with 550 5.7.1", tr)
    code, tr = send(pf, message(frm="CEO <ceo@shop.psd9989>", subject="wire transfer"), SPOOFER_IP,
                    "ceo@shop.psd9989")
    t.ok(code != 0 and "550 5.7.1" in tr and "psd9989" in tr,
         "RFC 9989 4.10.1: a p=reject found only by the DNS tree walk (psd=y) refuses the spoof at SMTP", tr)
    code, tr = send(pf, message(frm="Shop <deals@shop.example>", subject="deals"), SPOOFER_IP, "deals@shop.example")
    t.eq(code, 0, "p=quarantine failure accepted at SMTP")
    held = sandbox.wait_for(lambda: [q for q in pf.queue() if q["queue_name"] == "hold"], 10,
                            what="a held message")
    t.ok(held and held[0]["sender"] == "deals@shop.example", "and put in Postfix's hold queue")
    code, tr = send(pf, message(frm="A <a@slow.example>", subject="slow"), SPOOFER_IP, "a@slow.example")
    t.ok(code != 0 and "451 4.7.1" in tr, "DMARC lookup timeout: 451 4.7.1, mail will be retried", tr)

    code, tr = swaks("--from", "alice@example.org", "--to", "friend@friend.example", "--data", "-",
                     "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice-pw",
                     "--local-interface", SPOOFER_IP, port=pf.submission_port,
                     input=message(frm="Alice <alice@example.org>", subject="outbound").encode())
    t.eq(code, 0, "authenticated submission accepted") or t.diag(tr)
    got = pf.wait_delivered(2)[1]
    t.ok(header(got, "Authentication-Results") == [] and "skipped: authenticated as alice" in ma.text(),
         "outbound mail of an authenticated user is not verified")

    # SIGHUP: a new authserv-id for new connections; a broken file keeps the old one
    ma.write(ma.base.replace("authserv_id = mx.example.org", "authserv_id = mx2.example.org"))
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "configuration reloaded" in ma.text(), 10, what="reload")
    send(pf, good, FRIEND_IP, "friend@friend.example")
    got = pf.wait_delivered(3)[2]
    t.ok(header(got, "Authentication-Results")[0].startswith("mx2.example.org;"),
         "SIGHUP reloads the configuration (still running, new authserv-id)", header(got, "Authentication-Results"))
    ma.write(ma.base + "bogus_key = 1\n")
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "reload failed" in ma.text(), 10, what="failed reload")
    t.ok(ma.proc.poll() is None and "bogus_key" in ma.text(), "a broken file on SIGHUP is logged, daemon keeps running")

    # The same through a loopback TCP socket (chrooted setups often use inet:)
    port, ma2 = sandbox.with_free_port(lambda port: matest.Milter(dns, "inet:%d@127.0.0.1" % port))
    pf.set(smtpd_milters="inet:127.0.0.1:%d" % port)
    code, tr = send(pf, good, FRIEND_IP, "friend@friend.example")
    got = pf.wait_delivered(4)[3]
    t.ok(code == 0 and "dmarc=pass" in " ".join(header(got, "Authentication-Results")),
         "inet: socket works the same")

    # milter-auth down: Postfix defers (milter_default_action = tempfail)
    ma2.stop()
    code, tr = send(pf, good, FRIEND_IP, "friend@friend.example")
    t.ok(code != 0 and "451 4.7.1" in tr, "milter down: mail deferred (4xx), never accepted unchecked", tr)

    os.kill(ma.proc.pid, signal.SIGTERM)
    rc = ma.proc.wait(10)
    t.eq(rc, 0, "SIGTERM: milter-auth exits cleanly")
    pf.stop()
    dc.stop()
    dns.stop()


t = Tap()
t.run(main)
t.done()
