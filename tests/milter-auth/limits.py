#!/usr/bin/python3
"""milter-auth's limits never let a verdict be steered (issue 17): forged
Authentication-Results and extra From fields are found however many headers
come before them, a message past max_headers is refused, a From that is not
exactly one mailbox is a DMARC permerror, DKIM work is bounded by
dkim_max_signatures whatever the message carries, and the inet relay holds
at most max_connections connections."""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
IP = "198.51.100.7"    # evil.example's own server: SPF passes for it
NSIGS = 40

ZONE = """
evil.example                    TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.evil.example             TXT "v=DMARC1; p=reject"
paypal.example                  TXT "v=spf1 -all"
_dmarc.paypal.example           TXT "v=DMARC1; p=reject"
paypal                          TXT "v=spf1 ip4:%(ip)s -all"
good.example                    TXT "v=spf1 -all"
_dmarc.good.example             TXT "v=DMARC1; p=reject"
sel._domainkey.good.example     TXT "v=DKIM1; p=%(rsa)s"
%(keys)s
""" % {"ip": IP, "rsa": RSA_PUB, "keys": "\n".join('s%d._domainkey.evil.example TXT "v=DKIM1; p=%s"' % (i, RSA_PUB)
                                   for i in range(NSIGS))}

FILLER = "".join("X-Filler-%d: %d\r\n" % (i, i) for i in range(1000))


def from_msg(frm, extra=""):
    return message(frm=frm, extra=extra)


def headers_and_forgeries(t, conf):
    forged = "".join("Authentication-Results: mx.example.org; dmarc=pass header.from=paypal.example\r\n"
                     for _ in range(70))
    o = run(conf, forged + from_msg("a@evil.example"), mail_from="b@evil.example")
    t.ok(len(o.deleted) == 70 and o.action == "accept",
         "70 forged A-R headers claiming our authserv-id: all 70 removed (once 64)",
         "%d deleted\n%r" % (len(o.deleted), o))

    late = from_msg("a@evil.example", extra=FILLER +
                    "Authentication-Results: mx.example.org; dmarc=pass header.from=paypal.example\r\n")
    o = run(conf, late, mail_from="b@evil.example")
    t.ok(o.action == "reject" and "552 5.3.4" in o.stdout and "header fields (max_headers 1000)" in o.log,
         "a forged A-R after 1,000 other headers: the message is refused (552 5.3.4), not passed", repr(o))

    o = run(matest.base_conf(DNS, "max_headers = 2000\n"), late, mail_from="b@evil.example")
    t.ok(o.action == "accept" and len(o.deleted) == 1,
         "the same with max_headers = 2000: accepted, the forgery removed", repr(o))

    two = from_msg("bob@evil.example", extra=FILLER + "From: ceo@paypal.example\r\n")
    o = run(conf, two, mail_from="b@evil.example")
    t.ok(o.action == "reject" and "dmarc=pass" not in o.stdout,
         "a second From after 1,000 filler headers: never dmarc=pass, refused", repr(o))
    o = run(matest.base_conf(DNS, "max_headers = 2000\n"), two, mail_from="b@evil.example")
    t.ok(o.action == "reject" and o.verdict("dmarc") == ["permerror"] and "2 From fields" in o.log,
         "the same within max_headers: both From fields counted, dmarc=permerror, rejected", repr(o))


def from_syntax(t, conf):
    spoofs = [
        "ceo@paypal.example bob@evil.example",
        "ceo@paypal.example@evil.example",
        "<bob@evil.example> <ceo@paypal.example>",
        "Boss <ceo@paypal\0.example>",
        "\"=?utf-8?q?x\" <bob@evil.example> (?= <ceo@paypal.example>)",
    ]
    for frm in spoofs:
        o = run(conf, from_msg(frm), mail_from="b@evil.example")
        t.ok(o.verdict("dmarc") == ["permerror"] and o.action == "reject" and "550 5.7.1" in o.stdout,
             "From: %r is a DMARC permerror and rejected (RFC 7489 6.6.1)" % frm, repr(o))
    o = run(conf, from_msg("Someone <ceo@paypal>"), mail_from="b@paypal")
    t.ok(o.verdict("dmarc") == ["permerror"] and o.action == "reject" and "single-label" in o.log,
         "a single-label From domain is a permerror", repr(o))
    aconf = matest.base_conf(DNS, "malformed_from = accept\n")
    o = run(aconf, from_msg("ceo@paypal.example bob@evil.example"), mail_from="b@evil.example")
    t.ok(o.verdict("dmarc") == ["permerror"] and o.action == "accept",
         "malformed_from = accept: delivered, marked dmarc=permerror", repr(o))
    o = run(conf, from_msg('"Bob, the \\"boss\\"" (work) <bob@evil.example>'), mail_from="b@evil.example")
    t.ok(o.verdict("dmarc") == ["pass"] and o.action == "accept",
         "a proper mailbox with quotes and comments still passes", repr(o))


def key_lookups(dns):
    """The DKIM key names asked for, each once however often retried."""
    return {line.split()[0].lower() for line in dns.queries().splitlines() if "._domainkey." in line}


def dkim_bounded(t):
    # A good signature of the From domain at the bottom, under NSIGS
    # signatures of another domain, each with its own selector and l= (each
    # its own key lookup and its own body hash in libopendkim).
    body = "".join("line %d of the body\r\n" % i for i in range(100))
    m = sign(message(frm="Good <a@good.example>", body=body), "sel", "good.example", RSA)
    for i in range(NSIGS):
        m = sign(m, "s%d" % i, "evil.example", RSA, length=True)
        end = re.search(rb"\r\n(?![ \t])", m).end()  # the new signature field
        head, n = re.subn(rb"\bl=\d+", b"l=%d" % (i + 1), m[:end], count=1)
        assert n == 1
        m = head + m[end:]
    dns = DnsServer(ZONE)
    o = run(matest.base_conf(dns), m, client_ip="203.0.113.66", mail_from="x@elsewhere.example")
    asked = key_lookups(dns)
    t.ok(len(asked) <= 8, "%d signatures with different l=: at most dkim_max_signatures (8) key lookups, "
         "not one per signature (%d)" % (NSIGS + 1, len(asked)), "\n".join(sorted(asked)) + "\n" + repr(o))
    t.ok("sel._domainkey.good.example" in asked and o.verdict("dmarc") == ["pass"] and o.action == "accept",
         "the From domain's signature is verified first: dkim=pass, dmarc=pass", repr(o))
    t.ok(re.search(r"dkim\.skipped=(\d+)", o.log) and int(re.search(r"dkim\.skipped=(\d+)", o.log).group(1)) >= NSIGS - 7,
         "the skipped signatures are counted in the log line", o.log)
    dns.stop()
    dns = DnsServer(ZONE)
    o = run(matest.base_conf(dns, "dkim_max_signatures = 64\n"), m, client_ip="203.0.113.66",
            mail_from="x@elsewhere.example")
    asked = key_lookups(dns)
    t.ok(len(asked) <= 4, "dkim_max_signatures = 64: still at most %d different body hashes, so %d key "
         "lookups" % (4, len(asked)), "\n".join(sorted(asked)))
    dns.stop()


def negotiate(sock):
    """Sends the milter option negotiation; True when libmilter answers
    (the connection is relayed), False when the relay closed it."""
    sock.settimeout(60)
    try:
        sock.sendall(struct.pack(">I", 13) + b"O" + struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
        head = sock.recv(5)
    except (ConnectionResetError, BrokenPipeError):
        return False
    return len(head) == 5 and head[4:5] == b"O"


def relay_cap(t):
    dns = DnsServer(ZONE)
    port = sandbox.free_port()
    conf = sandbox.path("milter-auth-relay.conf")
    with open(conf, "w") as f:
        f.write("authserv_id = mx.example.org\ndns_resolver = %s\nsocket = inet:%d@127.0.0.1\n"
                "user = nobody\nmax_connections = 3\n" % (dns.spec, port))
    log = sandbox.path("milter-auth-relay.log")
    proc = sandbox.spawn([matest.MILTER_AUTH, "-f", "-c", conf], log=log)
    try:
        sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or proc.poll() is not None, 30,
                         what="milter-auth to listen")
        held = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(3)]
        t.ok(all(negotiate(c) for c in held), "max_connections = 3: three MTA connections are relayed")
        extra = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(5)]
        answered = [negotiate(c) for c in extra]
        t.eq(answered, [False] * 5, "five more are closed at once, not relayed (no thread each)")
        text = sandbox.read_text(log)
        t.eq(text.count("refusing new ones"), 1, "one log line for the whole episode")
        for c in extra:
            c.close()
        held.pop().close()

        def reopened():
            c = socket.create_connection(("127.0.0.1", port), timeout=60)
            if negotiate(c):
                held.append(c)
                return True
            c.close()
            return False
        sandbox.wait_for(reopened, 60, interval=0.2, what="a free slot after one connection closed")
        t.ok("accepting" in sandbox.read_text(log).split("refusing new ones", 1)[1],
             "once one closes, a new connection is relayed again (and logged)", sandbox.read_text(log))
        for c in held:
            c.close()
    finally:
        sandbox.stop(proc)
        dns.stop()


def main(t):
    global DNS
    DNS = DnsServer(ZONE)
    conf = matest.base_conf(DNS)
    headers_and_forgeries(t, conf)
    from_syntax(t, conf)
    DNS.stop()
    dkim_bounded(t)
    relay_cap(t)


t = Tap()
t.run(main)
t.done()
