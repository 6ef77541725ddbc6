#!/usr/bin/python3
"""milter-auth end to end behind Sendmail: a private Sendmail (unpacked from
Debian's sendmail-bin, tests/lib/mwtest/sendmail.py) whose .cf is built
from contrib/sendmail/milter-auth.mc pasted unchanged but for the socket's
path, milter-auth running as a daemon (unprivileged), mail sent with swaks
from loopback addresses playing the internet."""
import email
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest import sendmail  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
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
""" % {"ip": FRIEND_IP, "rsa": RSA_PUB}
SNIPPET_SOCKET = "unix:/run/mailward/milter-auth.sock"


def send(sm, msg, client, mail_from):
    return swaks("--from", mail_from, "--to", "alice@example.org", "--helo", "mail.friend.example",
                 "--local-interface", client, "--data", "-", port=sm.port,
                 input=msg if isinstance(msg, bytes) else msg.encode())


def header(msg_bytes, name):
    m = email.message_from_bytes(msg_bytes)
    return [" ".join(v.split()) for v in m.get_all(name) or []]


def cf_option(cf, name):
    m = re.search(r"^O %s=(.*)$" % re.escape(name), cf, re.M)
    return [x.strip() for x in m.group(1).split(",")] if m else []


def main(t):
    why = sendmail.unavailable()
    if why:
        t.skip("milter-auth behind Sendmail", why)
        return
    dns = DnsServer(ZONE)
    sockdir = sandbox.mkdir("sendmail-milter", mode=0o750)
    sock = os.path.join(sockdir, "milter-auth.sock")
    ma = matest.Milter(dns, "unix:" + sock, socket_group="root")
    sm = sendmail.Sendmail()
    no_auth = sm.sasl_users({"alice": "alice-pw"})
    snippet = sm.apply_snippet("contrib/sendmail/milter-auth.mc", replace={SNIPPET_SOCKET: "unix:" + sock})
    t.ok("unix:" + sock in snippet, "the snippet names the socket its comment says (replaced for the sandbox)")
    cf = sm.build_cf()
    t.ok(re.search(r"^Xmilter-auth, S=unix:%s, F=T," % re.escape(sock), cf, re.M),
         "the .cf has the milter, tempfail when it is down (F=T)")
    t.ok("{client_addr}" in cf_option(cf, "Milter.macros.connect"), "{client_addr} is sent at connect")
    t.ok("{auth_authen}" in cf_option(cf, "Milter.macros.envfrom"), "{auth_authen} is sent at MAIL FROM")
    t.ok("i" in cf_option(cf, "Milter.macros.eom"), "the queue id (i) is sent at end of message",
         cf_option(cf, "Milter.macros.eom"))
    sm.start()

    good = sign(message(), "sel", "friend.example", RSA)
    forged = b"Authentication-Results: mx.example.org; dmarc=pass\r\n" + good
    code, tr = send(sm, forged, FRIEND_IP, "friend@friend.example")
    t.eq(code, 0, "a signed message from the friend's server is accepted") or t.diag(tr)
    got = sm.wait_delivered(1)[0]
    ar = header(got, "Authentication-Results")
    t.ok(len(ar) == 1, "delivered with exactly one Authentication-Results (the forged one removed)", ar)
    t.ok(ar and "spf=pass" in ar[0] and "dkim=pass header.d=friend.example header.s=sel" in ar[0]
         and "dmarc=pass" in ar[0] and "header.from=friend.example" in ar[0] and ar[0].startswith("mx.example.org;"),
         "its verdicts: spf, dkim, dmarc pass", ar)
    t.ok(b"Authentication-Results:" in got and
         got.index(b"Authentication-Results:") < got.index(b"DKIM-Signature:"),
         "our header is above the message's own headers")
    wire = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    t.ok(b"Hello Alice." in got and matest.dkim.verify(wire, dnsfunc=lambda name, timeout=5: (
        "v=DKIM1; p=" + RSA_PUB).encode() if name.startswith(b"sel._domainkey.friend.example") else None),
         "the message still verifies after passing through Sendmail (nothing corrupted)")
    qid = sendmail.received_id(got)
    t.ok(qid and ("%s: " % qid) in ma.text(), "milter-auth logs the message with Sendmail's queue id (macro i)", qid)

    code, tr = send(sm, message(frm="Security <security@bank.example>", subject="verify"),
                    SPOOFER_IP, "security@bank.example")
    t.ok(code != 0 and "550 5.7.1" in tr and "bank.example" in tr, "p=reject spoof refused at SMTP with 550 5.7.1", tr)

    code, tr = send(sm, message(frm="Shop <deals@shop.example>", subject="deals"), SPOOFER_IP, "deals@shop.example")
    t.eq(code, 0, "p=quarantine failure accepted at SMTP") or t.diag(tr)
    held = sandbox.wait_for(sm.quarantined, 30, what="a quarantined message")
    t.ok(len(held) == 1 and held[0][1] and "shop.example" in held[0][1],
         "and quarantined by Sendmail (hf queue file), with milter-auth's reason", held)
    t.ok(b"deals@shop.example" in sm.queue_file(held[0][0]), "the quarantined one is the shop's message")

    code, tr = send(sm, message(frm="A <a@slow.example>", subject="slow"), SPOOFER_IP, "a@slow.example")
    t.ok(code != 0 and "451 4.7.1" in tr, "DMARC lookup timeout: 451 4.7.1, mail will be retried", tr)

    # {auth_authen}: an authenticated user's outbound mail is not verified
    delivered = 1
    if no_auth:
        t.skip("authenticated submission accepted", no_auth)
        t.skip("outbound mail of an authenticated user is not verified", no_auth)
    else:
        code, tr = swaks("--from", "alice@example.org", "--to", "friend@friend.example", "--data", "-",
                         "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice-pw",
                         "--local-interface", SPOOFER_IP, port=sm.port,
                         input=message(frm="Alice <alice@example.org>", subject="outbound").encode())
        t.ok(code == 0 and "235 2.0.0" in tr, "authenticated submission accepted", tr)
        out = sm.wait_delivered(2)[1]
        delivered = 2
        t.ok(header(out, "Authentication-Results") == [] and "skipped: authenticated as alice" in ma.text(),
             "outbound mail of an authenticated user is not verified ({auth_authen} reaches the milter)")

    # only the friend's message reached the next hop: nothing refused,
    # quarantined or deferred slipped through
    t.eq(len(sm.wait_delivered(delivered)), delivered, "nothing else was delivered")

    # milter-auth down: F=T makes Sendmail defer, never accept unchecked
    os.kill(ma.proc.pid, signal.SIGTERM)
    rc = ma.proc.wait(30)
    t.ok(rc == 0 and "Sanitizer" not in ma.text() and "runtime error" not in ma.text(),
         "milter-auth exits cleanly, no sanitizer report", "rc=%s\n%s" % (rc, ma.text()[-3000:]))
    code, tr = send(sm, good, FRIEND_IP, "friend@friend.example")
    t.ok(code != 0 and re.search(r"\b4\d\d 4\.", tr), "milter down: mail deferred (4xx), never accepted unchecked", tr)
    t.eq(len(sm.wait_delivered(delivered)), delivered, "and nothing delivered")
    sm.stop()
    dns.stop()


t = Tap()
t.run(main)
t.done()
