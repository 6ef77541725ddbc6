#!/usr/bin/python3
"""Autocrypt Level 1 in milter-pgp, through its test mode (-t): the header
added to our opted-in senders' mail (a minimal key: the From address's user
id and one encryption subkey), never for others; inbound headers learned
only with our own Authentication-Results showing DMARC or aligned DKIM pass
for the From domain, never with fail/none, another authserv-id, a From that
is not addr, two From fields, junk keydata or an older Date; a learned key
used to encrypt (key_trust any), after the keyring; milter-pgp-keys
autocrypt list and forget."""
import base64
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

KEYS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-keys")
PETE, PAT = "pete@peer.example", "pat@peer.example"
ID = "mx.test.example"
INBOUND_IP = "192.0.2.7"


def keys(conf, *args):
    p = subprocess.run([KEYS, "-c", conf] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def new_person(name, addr):
    """A GnuPG home with a fresh key pair of addr: (home, fpr)."""
    home = sandbox.mkdir("people", name, mode=0o700)
    mptest.gpg(home, "--quick-gen-key", addr, "ed25519", "sign,cert", "2y")
    fpr = mptest.fingerprint(home, addr)
    mptest.gpg(home, "--quick-add-key", fpr, "cv25519", "encr", "2y")
    mptest.gpg(home, "--import", sandbox.path("keys", "alice.pub"))  # her signatures verify
    return home, fpr


def keydata(home, fpr):
    """The key as an Autocrypt header carries it (base64, folded)."""
    raw = mptest.gpg(home, "--export", "--export-options", "export-minimal", fpr).stdout
    s = base64.b64encode(raw).decode()
    return "\r\n ".join(s[i:i + 72] for i in range(0, len(s), 72))


def inbound(frm, ac_headers, ar_headers, date="Tue, 01 Dec 2026 10:00:00 +0000", extra=""):
    head = "".join("Authentication-Results: %s\r\n" % a for a in ar_headers)
    head += "".join("From: %s\r\n" % f for f in (frm if isinstance(frm, list) else [frm]))
    head += "To: Alice <%s>\r\nSubject: hello\r\n" % ALICE
    if date:
        head += "Date: %s\r\n" % date
    head += "".join("Autocrypt: %s\r\n" % h for h in ac_headers)
    return head + extra + "Content-Type: text/plain\r\n\r\nhi\r\n"


def ar_pass(domain, authserv=ID):
    return "%s;\r\n\tdkim=none;\r\n\tdmarc=pass (p=reject) header.from=%s" % (authserv, domain)


def ac(addr, home, fpr, mutual=False):
    return "addr=%s;%s keydata=\r\n %s" % (addr, " prefer-encrypt=mutual;" if mutual else "", keydata(home, fpr))


def learn_run(conf, msg):
    return mptest.run(msg, [ALICE], sender="bounce@peer.example", conf=conf, client_ip=INBOUND_IP)


def listed(conf):
    rc, out, err = keys(conf, "autocrypt", "list")
    return out + err


OUT_MSG = ("From: Alice <%s>\r\nTo: %%s\r\nSubject: out\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
           "%%sContent-Type: text/plain\r\n\r\nsecret text\r\n" % ALICE)


def main(t):
    ring = mptest.keyring()
    conf = mptest.base_conf("autocrypt_for = example.org\nauthserv_id = %s\nkey_trust = any\nkey_lookup =\n" % ID)
    mutual = mptest.base_conf("autocrypt_for = alice@example.org\nautocrypt_prefer_encrypt = mutual\n"
                              "authserv_id = %s\n" % ID)
    plain = mptest.base_conf("authserv_id = %s\n" % ID)

    # ---- outbound
    o = mptest.run(OUT_MSG % (BOB, ""), [BOB], conf=conf, auth="alice")
    hs = mptest.header(o.out or b"", "Autocrypt")
    t.ok(o.action == "accept" and len(hs) == 1 and hs[0].startswith("addr=%s; keydata=" % ALICE)
         and "autocrypt=added" in o.log, "opted-in sender: one Autocrypt header with addr= (and nopreference)",
         o.stdout + o.log + repr(hs))
    kd = base64.b64decode(re.sub(r"\s", "", hs[0].split("keydata=", 1)[1])) if hs else b""
    fresh = sandbox.mkdir("fresh", mode=0o700)
    imp = mptest.gpg(fresh, "--import", input=kd, check=False)
    lst = mptest.gpg(fresh, "--with-colons", "--list-keys", check=False).stdout.decode()
    uids = [ln.split(":")[9] for ln in lst.splitlines() if ln.startswith("uid:")]
    subs = [ln.split(":")[11] for ln in lst.splitlines() if ln.startswith("sub:")]
    t.ok(imp.returncode == 0 and uids == [ALICE] and subs == ["e"] and
         mptest.fingerprint(fresh, ALICE) == mptest.fingerprint(ring, ALICE),
         "keydata imports with gpg: alice's key, only the addr user id, one encryption subkey",
         lst + imp.stderr.decode())
    lines = (o.out or b"").split(b"\r\n")
    t.ok(o.out is not None and all(len(ln) <= 78 for ln in lines[:lines.index(b"")]),
         "the header is folded in lines of at most 78 characters")
    o = mptest.run(OUT_MSG % (BOB, "Autocrypt: addr=%s; keydata=AAAA\r\nAutocrypt: addr=x@y.example; keydata=AAAA\r\n"
                              % ALICE), [BOB], conf=mutual, auth="alice")
    hs = mptest.header(o.out or b"", "Autocrypt")
    t.ok(len(hs) == 1 and hs[0].startswith("addr=%s; prefer-encrypt=mutual; keydata=" % ALICE) and "AAAA" not in hs[0],
         "existing Autocrypt headers replaced by ours (one), prefer-encrypt=mutual when configured", repr(hs))
    o = mptest.run(OUT_MSG % (BOB, ""), [BOB], conf=plain, auth="alice")
    t.ok(o.action == "accept" and mptest.header(o.out or b"", "Autocrypt") == [] and "autocrypt=" not in o.log,
         "a sender not in autocrypt_for: no header", o.stdout + o.log)
    msg = OUT_MSG.replace("From: Alice <%s>" % ALICE, "From: Carol <carol@example.org>") % (BOB, "")
    o = mptest.run(msg, [BOB], conf=conf, auth="alice")
    t.ok(o.action == "accept" and mptest.header(o.out or b"", "Autocrypt") == [] and
         "autocrypt=not-added(from-not-sender)" in o.log, "From address not the sender's: no header", o.log)
    msg = OUT_MSG.replace("From: Alice <%s>" % ALICE, "From: Dave <dave@example.org>") % (BOB, "")
    o = mptest.run(msg, [BOB], sender="dave@example.org", conf=conf, auth="dave")
    t.ok(o.action == "accept" and mptest.header(o.out or b"", "Autocrypt") == [] and
         "autocrypt=not-added(no-key-pair)" in o.log, "a sender without a key pair: no header", o.log)

    # ---- inbound learning
    pete, pete_fpr = new_person("pete", PETE)
    pat, pat_fpr = new_person("pat", PAT)
    o = learn_run(conf, inbound("Pete <%s>" % PETE, [ac(PETE, pete, pete_fpr, mutual=True)], [ar_pass("peer.example")]))
    out = listed(conf)
    t.ok(o.action == "accept" and "autocrypt=learned(dmarc)" in o.log and
         re.search(r"<%s> %s prefer-encrypt=mutual last_seen=2026-12-01T10:00:00Z" % (PETE, pete_fpr), out),
         "learned with our A-R dmarc=pass for the From domain (list shows it)", o.stdout + o.log + out)
    t.ok(o.changes == [] and o.out is not None and b"Autocrypt: addr=" in o.out,
         "the inbound message is not changed", o.stdout)

    def not_learned(msg, reason, name):
        o = learn_run(conf, msg)
        out = listed(conf)
        t.ok(o.action == "accept" and ("autocrypt=ignored(%s" % reason) in o.log and PAT not in out,
             name, o.log + out)

    pat_ac = [ac(PAT, pat, pat_fpr)]
    not_learned(inbound(PAT, pat_ac, ["%s; dmarc=fail header.from=peer.example" % ID]), "not-authenticated",
                "not learned with dmarc=fail")
    not_learned(inbound(PAT, pat_ac, ["%s; spf=pass smtp.mailfrom=peer.example; dmarc=none header.from=peer.example"
                                      % ID]), "not-authenticated", "not learned with dmarc=none")
    not_learned(inbound(PAT, pat_ac, [ar_pass("peer.example", authserv="other.example")]),
                "no-authentication-results", "not learned with a dmarc=pass of another authserv-id")
    not_learned(inbound(PAT, pat_ac, ["%s; dmarc=fail header.from=peer.example" % ID, ar_pass("peer.example")]),
                "not-authenticated", "only the topmost A-R of our authserv-id counts")
    not_learned(inbound(PAT, pat_ac, ["%s; dmarc=pass header.from=elsewhere.example" % ID]),
                "not-authenticated", "not learned with dmarc=pass for another domain")
    not_learned(inbound(PAT, pat_ac, ["%s; dkim=pass header.d=other.example; dmarc=fail" % ID]),
                "not-authenticated", "not learned with a dkim=pass of an unaligned domain")
    not_learned(inbound("Pat <other@peer.example>", pat_ac, [ar_pass("peer.example")]), "addr-not-from",
                "not learned when addr= is not the From address")
    not_learned(inbound([PAT, "eve@peer.example"], pat_ac, [ar_pass("peer.example")]), "several-from",
                "not learned with two From fields")
    not_learned(inbound(PAT, pat_ac + pat_ac, [ar_pass("peer.example")]), "several-headers",
                "not learned with two Autocrypt headers for the address")
    junk = base64.b64encode(os.urandom(300)).decode()
    not_learned(inbound(PAT, ["addr=%s; keydata=%s" % (PAT, junk)], [ar_pass("peer.example")]), "keydata: ",
                "junk keydata: not learned")
    not_learned(inbound(PAT, [ac(PAT, pete, pete_fpr)], [ar_pass("peer.example")]),
                "keydata: no user id for the address", "a key without a user id of addr: not learned")
    not_learned(inbound(PAT, ["addr=%s; unknown-critical=1; keydata=%s" % (PAT, keydata(pat, pat_fpr))],
                        [ar_pass("peer.example")]), "invalid-header", "an unknown critical attribute: not learned")
    not_learned(inbound(PAT, pat_ac, [ar_pass("peer.example")], extra="Content-Type: multipart/report; "
                        "report-type=delivery-status; boundary=x\r\n"), "multipart/report",
                "a multipart/report: not learned")

    # aligned DKIM, a subdomain signing
    o = learn_run(conf, inbound(PAT, pat_ac, ["%s; dkim=pass header.d=mail.peer.example header.s=s; dmarc=none" % ID]))
    t.ok("autocrypt=learned(dkim)" in o.log and ("<%s> %s" % (PAT, pat_fpr)) in listed(conf),
         "learned with dkim=pass aligned (relaxed) with the From domain", o.log)

    # older Date: ignored; newer: replaces
    pete2_home, pete2 = new_person("pete2", PETE)
    o = learn_run(conf, inbound(PETE, [ac(PETE, pete2_home, pete2)], [ar_pass("peer.example")],
                                date="Mon, 30 Nov 2026 10:00:00 +0000"))
    out = listed(conf)
    t.ok("autocrypt=ignored(older-than-stored)" in o.log and ("<%s> %s" % (PETE, pete_fpr)) in out,
         "an older Date: ignored, the stored key stays", o.log + out)
    o = learn_run(conf, inbound(PETE, [ac(PETE, pete, pete_fpr)], [ar_pass("peer.example")],
                                date="Tue, 01 Dec 2026 12:00:00 +0000"))
    out = listed(conf)
    t.ok("autocrypt=learned" in o.log and re.search(
        r"<%s> %s prefer-encrypt=nopreference last_seen=2026-12-01T12:00:00Z autocrypt_timestamp=2026-12-01T12:00:00Z"
        % (PETE, pete_fpr), out), "the same key again, newer: its dates and prefer-encrypt updated", o.log + out)
    # ---- the learned key used (key_trust any)
    o = mptest.run(OUT_MSG % (PETE, ""), [PETE], conf=conf, auth="alice")
    rc, text, status = mptest.gpg_decrypt(pete, mptest.armored(o.out)) if o.out and o.rcpts.get(PETE) == "encrypted" \
        else (1, b"", "")
    t.ok(o.rcpts == {PETE: "encrypted"} and rc == 0 and b"secret text" in text and "via autocrypt" in o.log,
         "a learned key is used to encrypt, and the message decrypts with gpg", o.stdout + o.log + status)
    o = mptest.run(OUT_MSG % (PETE, ""), [PETE], conf=mutual, auth="alice")
    t.ok(o.rcpts == {PETE: "plaintext"}, "key_trust = local: the peer store is not used", o.stdout + o.log)
    o = learn_run(conf, inbound(PETE, [ac(PETE, pete2_home, pete2)], [ar_pass("peer.example")],
                                date="Wed, 02 Dec 2026 09:00:00 +0000"))
    out = listed(conf)
    t.ok("autocrypt=learned" in o.log and ("<%s> %s" % (PETE, pete2)) in out, "a newer header replaces the key",
         o.log + out)

    # ---- keyring before the peer store
    bob2_home, bob2 = new_person("bob2", BOB)
    o = learn_run(conf, inbound(BOB, [ac(BOB, bob2_home, bob2)], [ar_pass("example.net")]))
    o2 = mptest.run(OUT_MSG % (BOB, ""), [BOB], conf=conf, auth="alice")
    rc, text, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o2.out)) if o2.out and \
        o2.rcpts.get(BOB) == "encrypted" else (1, b"", "")
    rc2, _, _ = mptest.gpg_decrypt(bob2_home, mptest.armored(o2.out)) if rc == 0 else (0, b"", "")
    t.ok("autocrypt=learned" in o.log and o2.rcpts == {BOB: "encrypted"} and rc == 0 and rc2 != 0,
         "the keyring's key comes before a learned one", o.log + o2.stdout + o2.log + status)

    # ---- forget
    rc, out, err = keys(conf, "autocrypt", "forget", PETE)
    o = mptest.run(OUT_MSG % (PETE, ""), [PETE], conf=conf, auth="alice")
    t.ok(rc == 0 and PETE not in listed(conf) and o.rcpts == {PETE: "plaintext"},
         "milter-pgp-keys autocrypt forget: gone, no longer used", out + err + o.stdout)
    rc, out, err = keys(conf, "autocrypt", "forget", PETE)
    t.ok(rc == 1 and "no Autocrypt peer" in err, "forget of an unknown address: a clear error", out + err)


t = Tap()
t.run(main)
t.done()
