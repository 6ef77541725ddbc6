#!/usr/bin/python3
"""DKIM verification through milter-auth's test mode: messages signed by
python3-dkim with RSA and Ed25519 keys, relaxed and simple, then altered;
each verdict checked in the Authentication-Results header."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
SHORT, SHORT_PUB = matest.rsa_key(768)
ED, ED_PUB = matest.ed25519_key()

ZONE = """
friend.example                       TXT "v=spf1 -all"
sel._domainkey.friend.example        TXT "v=DKIM1; k=rsa; p=%(rsa)s"
ed._domainkey.friend.example         TXT "v=DKIM1; k=ed25519; p=%(ed)s"
short._domainkey.friend.example      TXT "v=DKIM1; k=rsa; p=%(short)s"
revoked._domainkey.friend.example    TXT "v=DKIM1; k=rsa; p="
badv._domainkey.friend.example       TXT "v=DKIM2; k=rsa; p=%(rsa)s"
slow._domainkey.friend.example       TIMEOUT
broken._domainkey.friend.example     SERVFAIL
other.example                        TXT "v=spf1 -all"
sel._domainkey.other.example         TXT "v=DKIM1; k=rsa; p=%(rsa)s"
""" % {"rsa": RSA_PUB, "ed": ED_PUB.decode() if isinstance(ED_PUB, bytes) else ED_PUB, "short": SHORT_PUB}


def check(t, conf, name, msg, want, reason=None, **kw):
    o = run(conf, msg, **kw)
    got = o.methods("dkim")
    ok = t.eq(got, want, name)
    if not ok:
        t.diag(repr(o))
    if reason is not None and ok:
        t.contains(" ".join(o.method_text("dkim")), reason, name + ": says why")
    return o


def main(t):
    dns = DnsServer(ZONE)
    conf = matest.base_conf(dns)
    base = message()

    # --- good signatures -------------------------------------------------
    o = check(t, conf, "rsa-sha256 relaxed/relaxed passes", sign(base, "sel", "friend.example", RSA), ["pass"])
    dk = o.method_text("dkim")[0]
    t.ok("header.d=friend.example" in dk and "header.s=sel" in dk and "header.b=" in dk,
         "dkim result names header.d, header.s and header.b", dk)
    check(t, conf, "rsa-sha256 simple/simple passes",
          sign(base, "sel", "friend.example", RSA, canon=(b"simple", b"simple")), ["pass"])
    check(t, conf, "ed25519-sha256 passes (RFC 8463)",
          sign(base, "ed", "friend.example", ED, alg=b"ed25519-sha256"), ["pass"])
    two = sign(sign(base, "sel", "friend.example", RSA), "ed", "friend.example", ED, alg=b"ed25519-sha256")
    o = check(t, conf, "two signatures: one result each", two, ["pass", "pass"])
    t.ok(any("header.s=ed" in x for x in o.method_text("dkim")) and
         any("header.s=sel" in x for x in o.method_text("dkim")), "each names its selector")
    check(t, conf, "a header added after signing (not signed) does not matter",
          b"X-Added: later\r\n" + sign(base, "sel", "friend.example", RSA), ["pass"])
    check(t, conf, "relaxed: re-folded signed header still passes",
          sign(base, "sel", "friend.example", RSA).replace(b"Subject: hello", b"Subject:   hello"), ["pass"])

    # --- alterations -----------------------------------------------------
    signed = sign(base, "sel", "friend.example", RSA)
    check(t, conf, "body altered: fail", signed.replace(b"Hello Alice.", b"Hello Alicf."), ["fail"],
          reason="body hash")
    check(t, conf, "signed header altered: fail", signed.replace(b"Subject: hello", b"Subject: hellO"),
          ["fail"])
    simple = sign(base, "sel", "friend.example", RSA, canon=(b"simple", b"simple"))
    check(t, conf, "simple: white space change in a signed header fails",
          simple.replace(b"Subject: hello", b"Subject:  hello"), ["fail"])
    check(t, conf, "simple: white space change in the body fails",
          simple.replace(b"Hello Alice.", b"Hello  Alice."), ["fail"])
    check(t, conf, "relaxed: white space change in the body passes",
          signed.replace(b"Hello Alice.", b"Hello  Alice."), ["pass"])

    lsigned = sign(base, "sel", "friend.example", RSA, length=True)
    check(t, conf, "l= covering the whole body passes", lsigned, ["pass"])
    check(t, conf, "l= with content appended after the signed part: policy, never pass",
          lsigned + b"Appended: click here\r\n", ["policy"], reason="l= signs only")

    check(t, conf, "expired x=: not a pass", sign(base, "sel", "friend.example", RSA,
          extra_fields=[(b"x", str(int(time.time()) - 3600).encode())]), ["neutral"], reason="expired")
    check(t, conf, "revoked key (empty p=): fail", sign(base, "revoked", "friend.example", RSA), ["fail"],
          reason="revoked")
    check(t, conf, "key shorter than 1024 bits never passes (RFC 8301)",
          sign(base, "short", "friend.example", SHORT), ["policy"])
    check(t, conf, "rsa-sha1 never passes (RFC 8301)",
          sign(base, "sel", "friend.example", RSA, alg=b"rsa-sha1"), ["policy"], reason="rsa-sha1")
    check(t, conf, "wrong v= in the key record: permerror", sign(base, "badv", "friend.example", RSA),
          ["permerror"])
    check(t, conf, "no key in DNS: permerror", sign(base, "nokey", "friend.example", RSA), ["permerror"])
    check(t, conf, "key lookup SERVFAIL: temperror", sign(base, "broken", "friend.example", RSA), ["temperror"])
    check(t, conf, "key lookup timeout: temperror", sign(base, "slow", "friend.example", RSA), ["temperror"])
    check(t, conf, "unsigned message: dkim=none", base, ["none"])
    check(t, conf, "garbage DKIM-Signature: neutral, message still handled",
          "DKIM-Signature: v=1; a=rsa-sha256; garbage\r\n" + base, ["neutral"])

    # a pass for one signature and a failure for another are both reported
    mixed = sign(base, "sel", "other.example", RSA)
    mixed = sign(mixed, "ed", "friend.example", ED, alg=b"ed25519-sha256").replace(b"Hello Alice.", b"Hello Alicf.")
    check(t, conf, "every signature gets its own verdict", mixed, ["fail", "fail"])
    dns.stop()


t = Tap()
t.run(main)
t.done()
