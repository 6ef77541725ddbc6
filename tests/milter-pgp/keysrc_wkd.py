#!/usr/bin/python3
"""milter-pgp's recipient keys from WKD (key_trust = any): the advanced and
the direct method against a local HTTPS server with a test CA; 404, expired
and revoked keys: no key; a bad certificate, an oversized and a slow answer:
tempfail (or plaintext when key_lookup_failure says so, never 550); one
fetch for one address however often it is given; publish-wkd's tree,
served, is found (round trip)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kstest import (BADCERT, BIG, DBADCERT, MSG, NOBODY, OLD, PAULA, PETE, REVOKED, SLOW, WALT, WANDA, conf_for,  # noqa: E402
                    decrypts, fetches, https, keys, mptest, new_ring, sandbox, static, zbase32_sha1)
from mwtest.tap import Tap  # noqa: E402

PAULA2, GONE, EXPIRED = "pa2@wkd-pub.example", "gone@wkd-pub.example", "expired@wkd-pub.example"


def main(t):
    ring = new_ring("ring-any")
    anyconf = conf_for(ring)

    o = mptest.run(MSG, [WANDA], conf=conf_for(ring, trust="local"))
    t.ok(o.rcpts == {WANDA: "plaintext"} and fetches(zbase32_sha1("wanda")) == 0,
         "key_trust = local (the default): nothing is looked up, plain as before", o.stdout + o.log)

    o = mptest.run(MSG, [WANDA, WALT], conf=anyconf)
    ok, status = decrypts(o)
    log = sandbox.read_text(os.path.join(https.dir, "requests.log"))
    t.ok(o.rcpts == {WANDA: "encrypted", WALT: "encrypted"} and ok, "keys found by WKD are used",
         o.stdout + o.log + status)
    t.ok("openpgpkey.wkd-adv.example /.well-known/openpgpkey/wkd-adv.example/hu/%s?l=wanda" % zbase32_sha1("wanda")
         in log, "advanced method: openpgpkey.DOMAIN, the z-base-32 hash, ?l=", log)
    t.ok("wkd-direct.example /.well-known/openpgpkey/hu/%s?l=walt" % zbase32_sha1("walt") in log,
         "direct method when openpgpkey.DOMAIN does not exist", log)

    o = mptest.run(MSG, [NOBODY, OLD, REVOKED], conf=anyconf)
    t.ok(o.action == "accept" and set(o.rcpts.values()) == {"plaintext"} and
         "<%s>: none" % NOBODY in o.log and "(expired)" in o.log and "(revoked)" in o.log,
         "a 404, an expired and a revoked key: no key (plain under mixed_recipients = plaintext)", o.stdout + o.log)

    o = mptest.run(MSG, [BADCERT], conf=anyconf)
    t.ok(o.action == "tempfail" and "451" in o.action_line and "certificate" in o.log.lower(),
         "a bad certificate: the key is not used, the message tempfails (never sent in clear)", o.stdout + o.log)
    o = mptest.run(MSG, [DBADCERT], conf=anyconf)
    t.ok(o.action == "accept" and o.rcpts == {DBADCERT: "plaintext"} and "certificate" in o.log.lower(),
         "a bad certificate on the direct method's host (the domain's web site): no key there", o.stdout + o.log)
    o = mptest.run(MSG, [BIG], conf=anyconf)
    t.ok(o.action == "tempfail" and "larger than 65536 bytes" in o.log,
         "an oversized WKD answer is cut off: tempfail", o.stdout + o.log)
    start = time.monotonic()
    o = mptest.run(MSG, [SLOW], conf=anyconf)
    took = time.monotonic() - start
    # the server waits 20 s; key_lookup_timeout is 4 s
    t.ok(o.action == "tempfail" and took < 18,
         "a slow WKD server: the lookup gives up (key_lookup_timeout), tempfail",
         "%.1fs %s" % (took, o.stdout + o.log))
    o = mptest.run(MSG, [BADCERT], conf=conf_for(ring, extra="key_lookup_failure = plaintext\n"))
    t.ok(o.action == "accept" and o.rcpts == {BADCERT: "plaintext"} and "key_lookup_failed=<%s>" % BADCERT in o.log,
         "key_lookup_failure = plaintext: sent as without a key, and logged", o.stdout + o.log)
    o = mptest.run(MSG, [BADCERT], conf=conf_for(ring, extra="mixed_recipients = reject\n"))
    t.ok(any("451" in r for r in o.refused) and not any("550" in r for r in o.refused),
         "mixed_recipients = reject and a failed lookup: 451 at RCPT, never 550", o.stdout + o.log)

    before = fetches("?l=wanda")
    o = mptest.run(MSG, [WANDA, "Wanda@wkd-adv.example", WANDA], conf=anyconf)
    t.ok(o.action == "accept" and fetches("?l=wanda") - before == 1,
         "three recipients of one address in one message: one fetch",
         "%d fetches %s" % (fetches("?l=wanda") - before, o.stdout + o.log))

    # publish-wkd round trip: our users' key pairs, served as written
    pring = sandbox.mkdir("ring-pub", mode=0o700)
    pconf = conf_for(pring, trust="local")
    for a in (PAULA, PETE):
        keys(pconf, "generate", a)
    # paula's key: a second address, a revoked third one, and a
    # certification by someone else (WKD wants none of those but the
    # address's own user id)
    paula = mptest.fingerprint(pring, PAULA)
    mptest.gpg(pring, "--quick-add-uid", paula, "Paula Two <%s>" % PAULA2)
    mptest.gpg(pring, "--quick-add-uid", paula, GONE)
    mptest.gpg(pring, "--quick-revoke-uid", paula, GONE)
    certifier = sandbox.mkdir("certifier", mode=0o700)
    mptest.gpg(certifier, "--quick-gen-key", "certifier@elsewhere.example", "ed25519", "sign,cert", "1y")
    mptest.gpg(certifier, "--import", input=mptest.gpg(pring, "--export", paula).stdout)
    mptest.gpg(certifier, "--quick-sign-key", paula)
    mptest.gpg(pring, "--import", input=mptest.gpg(certifier, "--export", paula).stdout)
    certifier_keyid = mptest.fingerprint(certifier, "certifier@elsewhere.example")[-16:]
    listed = mptest.gpg(pring, "--with-colons", "--list-sigs", paula, check=False).stdout.decode()
    t.ok(re.search(r"^sig:[^:]*:[^:]*:[^:]*:%s:" % certifier_keyid, listed, re.M),
         "(paula's key in the keyring carries the certification)", listed)
    # an expired key pair of ours (made in 2021, valid a day): not published
    mptest.gpg(pring, "--faked-system-time", "20210101T000000!", "--quick-gen-key", EXPIRED, "ed25519", "sign,cert",
               "1d")
    mptest.gpg(pring, "--faked-system-time", "20210101T000000!", "--quick-add-key",
               mptest.fingerprint(pring, EXPIRED), "cv25519", "encr", "1d")
    pub = sandbox.mkdir("wkd-tree")
    rc, out, err = keys(pconf, "publish-wkd", pub)
    t.ok(rc == 0 and os.path.exists(os.path.join(pub, "advanced/.well-known/openpgpkey/wkd-pub.example/policy")) and
         os.path.exists(os.path.join(pub, "direct/wkd-pubd.example/.well-known/openpgpkey/hu", zbase32_sha1("pete"))),
         "publish-wkd: the advanced and direct trees with their policy files", out + err)
    paula_keyid = paula[-16:]
    show = sandbox.mkdir("show", mode=0o700)
    for addr in (PAULA, PAULA2):
        local = addr.split("@")[0]
        for tree in ("advanced/.well-known/openpgpkey/wkd-pub.example/hu",
                     "direct/wkd-pub.example/.well-known/openpgpkey/hu"):
            path = os.path.join(pub, tree, zbase32_sha1(local))
            if not t.ok(os.path.exists(path), "<%s> published in the %s tree" % (addr, tree.split("/")[0])):
                continue
            cols = mptest.gpg(show, "--show-keys", "--with-colons", path).stdout.decode()
            uids = [ln.split(":")[9] for ln in cols.splitlines() if ln.startswith("uid:")]
            t.ok(len(uids) == 1 and addr in uids[0] and cols.startswith("pub:") and "\nsub:" in cols,
                 "<%s> (%s): the key with its own user id only (and its encryption subkey)"
                 % (addr, tree.split("/")[0]),
                 cols)
            pk = mptest.gpg(show, "--list-packets", path, check=False).stdout.decode()
            issuers = set(re.findall(r":signature packet: algo \d+, keyid ([0-9A-F]{16})", pk))
            t.ok(issuers == {paula_keyid},
                 "<%s> (%s): minimal, no third-party certification, self-signatures only" % (addr, tree.split("/")[0]),
                 pk[:2000])
    t.ok(not os.path.exists(os.path.join(pub, "advanced/.well-known/openpgpkey/wkd-pub.example/hu",
                                         zbase32_sha1(GONE.split("@")[0]))),
         "a revoked user id's address is not published", out)
    t.ok(not os.path.exists(os.path.join(pub, "advanced/.well-known/openpgpkey/wkd-pub.example/hu",
                                         zbase32_sha1(EXPIRED.split("@")[0]))),
         "an expired key is not published", out)
    os.symlink(os.path.join(pub, "advanced"), os.path.join(static, "openpgpkey.wkd-pub.example"))
    os.symlink(os.path.join(pub, "direct", "wkd-pubd.example"), os.path.join(static, "wkd-pubd.example"))
    o = mptest.run(MSG, [PAULA, PAULA2, PETE], conf=anyconf)
    ok, status = decrypts(o, pring)
    t.ok(o.rcpts == {PAULA: "encrypted", PAULA2: "encrypted", PETE: "encrypted"} and ok,
         "the published tree, served, is found by milter-pgp (advanced and direct; both of paula's addresses)",
         o.stdout + o.log + status)


t = Tap()
t.run(main)
t.done()
