#!/usr/bin/python3
"""milter-pgp's encryption and signing through its test mode, checked with
the real gpg and Sequoia sq: a corpus of message shapes each decrypts to
the original MIME entity byte for byte with a good signature; tampering is
detected; protected mail passes unchanged; keys that are expired, revoked
or missing are never used and never lead to mail in clear that must not be."""
import base64
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, CAROL, DAVE, EVE, FRANK  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

HEAD = ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: shape %s\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n")


def shape(name, mime_and_body, lf=False):
    raw = (HEAD % (name, name)).encode() + mime_and_body
    return raw.replace(b"\r\n", b"\n") if lf else raw


def b64(data):
    s = base64.b64encode(data).decode()
    return ("\r\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\r\n").encode()


def corpus():
    rnd = random.Random(7)
    png = bytes(rnd.randrange(256) for _ in range(3000))
    pdf = bytes(rnd.randrange(256) for _ in range(20000))
    big = bytes(rnd.randrange(256) for _ in range(1 << 16)) * 320  # 20 MB
    yield "utf-8 8bit", shape("utf8", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, Ελλάδα, 日本語 ✓\r\n".encode())
    yield "iso-8859-1 quoted-printable", shape("latin1", b"MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n"
                                                      b"\tcharset=\"iso-8859-1\"\r\nContent-Transfer-Encoding: "
                                                      b"quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln=\r\nsoft "
                                                      b"break\r\n")
    yield "iso-8859-1 8bit raw", shape("latin1-8bit", b"Content-Type: text/plain; charset=iso-8859-1\r\n"
                                              b"Content-Transfer-Encoding: 8bit\r\n\r\nK\xf6ln \xe9t\xe9\r\n")
    yield "HTML with inline images", shape("html", (
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the picture.\r\n"
        "--alt\r\nContent-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\r\n\r\n"
        "--rel\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<html><body><p>See <img src=3D\"cid:pic1@x\"> and <img src=3D\"cid:pic2@x\"></p></body></html>\r\n"
        "--rel\r\nContent-Type: image/png\r\nContent-ID: <pic1@x>\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: inline\r\n\r\n").encode() + b64(png) +
        b"--rel\r\nContent-Type: image/png\r\nContent-ID: <pic2@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
        b64(png[::-1]) + b"--rel--\r\n--alt--\r\n")
    yield "several attachments", shape("attach", (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\npreamble\r\n"
        "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThree files.\r\n"
        "--mix\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; "
        "filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode() + b64(pdf) +
        b"--mix\r\nContent-Type: image/png; name=\"b.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
        b64(png) + b"--mix\r\nContent-Type: text/csv; name=\"c.csv\"\r\n\r\na,b\r\n1,2\r\n--mix--\r\nepilogue\r\n")
    yield "nested multiparts", shape("nested", (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"l1\"\r\n\r\n"
        "--l1\r\nContent-Type: multipart/mixed; boundary=\"l2\"\r\n\r\n"
        "--l2\r\nContent-Type: multipart/alternative; boundary=\"l3\"\r\n\r\n"
        "--l3\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--l3\r\nContent-Type: text/html\r\n\r\n<b>deep</b>\r\n"
        "--l3--\r\n--l2\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: inner\r\n\r\nforwarded\r\n"
        "--l2--\r\n--l1--\r\n").encode())
    yield "long lines", shape("long", b"Content-Type: text/plain\r\n\r\n" + b"x" * 5000 + b"\r\n" +
                              b" trailing spaces   \r\n\tTab\r\n" + b"y" * 999 + b"\r\n")
    yield "LF line ends", shape("lf", "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Transfer-Encoding: 8bit\r\n\r\nLF only ✓\r\nsecond line\r\n".encode(),
                                lf=True)
    yield "no MIME fields at all", shape("nomime", b"\r\njust text\r\n")
    yield "no final line end", shape("noeol", b"Content-Type: text/plain\r\n\r\nlast line without end")
    yield "20 MB attachment", shape("big", b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                                    b"--b\r\nContent-Type: text/plain\r\n\r\nbig\r\n--b\r\nContent-Type: "
                                    b"application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(big) +
                                    b"--b--\r\n")


def encrypted_shapes(t):
    bob_home = mptest.person_home("bob")
    alice_home = mptest.person_home("alice")
    alice_fpr = mptest.fingerprint(mptest.keyring(), ALICE)
    for name, raw in corpus():
        o = mptest.run(raw, [BOB, CAROL])
        if not t.ok(o.action == "accept" and "replace-body" in o.changes and o.out is not None,
                    "%s: accepted, body replaced" % name, o.stdout + o.log):
            continue
        t.ok(o.rcpts == {BOB: "encrypted", CAROL: "encrypted"}, "%s: both recipients encrypted" % name, o.stdout)
        ct = mptest.header(o.out, "Content-Type")
        t.ok(len(ct) == 1 and ct[0].startswith('multipart/encrypted; protocol="application/pgp-encrypted"')
             and mptest.header(o.out, "Content-Transfer-Encoding") == [],
             "%s: one outer Content-Type, multipart/encrypted (RFC 3156)" % name, ct)
        want = mptest.entity(raw, "cipher")  # protected headers: the entity plus that block
        arm = mptest.armored(o.out)
        rc, plain, status = mptest.gpg_decrypt(bob_home, arm)
        t.ok(rc == 0 and plain == want, "%s: gpg decrypts to the original entity byte for byte" % name,
             "rc %d, %d vs %d bytes; %s" % (rc, len(plain), len(want), status[-500:]))
        t.ok("VALIDSIG %s" % alice_fpr in status, "%s: gpg: good signature by alice's key" % name, status[-500:])
        rc, plain, _ = mptest.gpg_decrypt(alice_home, arm)
        t.ok(rc == 0 and plain == want, "%s: the sender's own key decrypts it too (Sent copy)" % name)
        rc, plain, err = mptest.sq_decrypt(sandbox.path("keys", "bob.sec"), arm, sandbox.path("keys", "alice.pub"))
        t.ok(rc == 0 and plain == want and "1 good signature" in err,
             "%s: sq decrypts to the same bytes, good signature" % name, err[-500:])
        if name == "utf-8 8bit":
            # tampering: one base64 character of the ciphertext changed
            lines = arm.split(b"\n")
            i = len(lines) // 2
            ln = bytearray(lines[i])
            ln[10] = ord("A") if ln[10] != ord("A") else ord("B")
            lines[i] = bytes(ln)
            bad = b"\n".join(lines)
            rc, plain, status = mptest.gpg_decrypt(bob_home, bad)
            t.ok(rc != 0 and "DECRYPTION_OKAY" not in status, "tampered ciphertext: gpg fails", status[-300:])
            rc, plain, err = mptest.sq_decrypt(sandbox.path("keys", "bob.sec"), bad)
            t.ok(rc != 0, "tampered ciphertext: sq fails", err[-300:])
            t.eq(mptest.header(o.out, "Subject"), ["shape utf8"], "outer Subject, From, To kept")
            # milter-pgp on its own output: already PGP/MIME, unchanged
            again = mptest.run(o.out, [BOB])
            t.ok(again.action == "accept" and "replace-body" not in again.changes and again.out == o.out,
                 "an encrypted message is not encrypted again", again.stdout + again.log)
            t.contains(again.log, "already=PGP/MIME", "... and the log says why")


def protected_unchanged(t):
    inline = HEAD % ("inline", "inline") + "Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n" \
        "hF4DAAAAAAAAAAASAQdA\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n"
    smime = HEAD % ("smime", "smime") + "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; " \
        "smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n"
    smime_signed = HEAD % ("smimes", "smimes") + "MIME-Version: 1.0\r\nContent-Type: multipart/signed; " \
        "protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s\"\r\n\r\n--s\r\n" \
        "Content-Type: text/plain\r\n\r\nsigned\r\n--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIAG\r\n--s--\r\n"
    for name, raw, kind in (("inline PGP", inline, "inline PGP"), ("S/MIME encrypted", smime, "S/MIME"),
                            ("S/MIME signed", smime_signed, "S/MIME")):
        o = mptest.run(raw, [BOB])
        t.ok(o.action == "accept" and "replace-body" not in o.changes and o.out == raw.encode(),
             "%s: passes unchanged" % name, o.stdout + o.log)
        t.contains(o.log, "already=%s" % kind, "%s: logged as already protected" % name)
    # the armor line inside a prose message is no reason to skip encryption
    prose = HEAD % ("prose", "prose") + "Content-Type: text/plain\r\n\r\nPaste:\r\n-----BEGIN PGP MESSAGE-----\r\n"
    o = mptest.run(prose, [BOB])
    t.ok("replace-body" in o.changes and o.rcpts.get(BOB) == "encrypted",
         "the armor quoted in a text (not the whole part) is still encrypted", o.stdout)


def bad_keys(t):
    msg = HEAD % ("keys", "keys") + "Content-Type: text/plain\r\n\r\nhello\r\n"
    for who, what in ((EVE, "expired"), (FRANK, "revoked"), (DAVE, "missing")):
        o = mptest.run(msg, [who])
        t.ok(o.action == "accept" and o.rcpts == {who: "plaintext"} and
             "multipart/encrypted" not in o.out.decode(errors="replace"),
             "%s key: never used; mail goes in clear (mixed_recipients = plaintext)" % what, o.stdout + o.log)
        o = mptest.run(msg.replace("Subject:", "X-Mailward-Encrypt: require\r\nSubject:"), [BOB, who])
        t.ok(o.action == "reject" and "550 5.7.1" in o.action_line and who in o.action_line and o.out is None,
             "%s key with X-Mailward-Encrypt: require: 550 5.7.1 naming %s" % (what, who), o.stdout)
    # mixed: one without a key sends the whole message in clear, signed
    o = mptest.run(msg, [BOB, DAVE])
    t.ok(o.rcpts == {BOB: "plaintext", DAVE: "plaintext"} and "multipart/signed" in o.out.decode(),
         "mixed recipients, plaintext mode: in clear for all, signed", o.stdout)
    t.contains(o.log, "first_without_key=<%s>" % DAVE, "... and the log names the recipient without a key")


def signed_only(t):
    alice_fpr = mptest.fingerprint(mptest.keyring(), ALICE)
    raw = HEAD % ("none", "none") + "X-Mailward-Encrypt: none\r\nMIME-Version: 1.0\r\n" \
        "Content-Type: text/plain; charset=utf-8\r\n\r\nsigned, not encrypted\r\n"
    o = mptest.run(raw, [BOB])
    t.ok(o.action == "accept" and o.rcpts == {BOB: "plaintext"}, "X-Mailward-Encrypt: none: not encrypted", o.stdout)
    t.ok(mptest.header(o.out, "X-Mailward-Encrypt") == [], "the control header is removed")
    ct = " ".join(mptest.header(o.out, "Content-Type"))
    t.ok(ct.startswith("multipart/signed;") and 'protocol="application/pgp-signature"' in ct and
         'micalg="pgp-sha' in ct, "multipart/signed with micalg (RFC 3156 5)", ct)
    p = mptest.parts(o.out)
    t.eq(p[0], mptest.entity(raw.encode(), "clear"),
         "the signed part is the original entity byte for byte (and its protected headers)")
    sig = sandbox.path("sig.asc")
    data = sandbox.path("signed.bin")
    open(sig, "wb").write(p[1][p[1].index(b"-----BEGIN PGP SIGNATURE-----"):])
    open(data, "wb").write(p[0])
    v = mptest.gpg(mptest.person_home("bob"), "--status-fd", "1", "--verify", sig, data, check=False)
    t.ok(v.returncode == 0 and ("VALIDSIG %s" % alice_fpr) in v.stdout.decode(), "gpg verifies the signature",
         v.stdout.decode() + v.stderr.decode())
    s = subprocess.run(["sq", "verify", "--detached", sig, "--signer-cert", sandbox.path("keys", "alice.pub"), data],
                       capture_output=True, text=True, timeout=60)
    t.ok(s.returncode == 0 and "1 good signature" in s.stderr, "sq verifies the signature", s.stderr)
    open(data, "ab").write(b"x")
    v = mptest.gpg(mptest.person_home("bob"), "--verify", sig, data, check=False)
    t.ok(v.returncode != 0, "a changed signed part fails verification")


def policies(t):
    msg = HEAD % ("pol", "pol") + "Content-Type: text/plain\r\n\r\nhello\r\n"
    conf = mptest.base_conf("mixed_recipients = reject\n")
    o = mptest.run(msg, [BOB, DAVE, EVE], conf=conf)
    t.ok(len(o.refused) == 2 and "550 5.7.1" in o.refused[0] and DAVE in o.refused[0] and EVE in o.refused[1],
         "mixed_recipients = reject: 550 5.7.1 at RCPT naming each recipient without a key", o.stdout)
    t.ok(o.rcpts == {BOB: "encrypted", DAVE: "rejected", EVE: "rejected"},
         "... the one with a key gets it encrypted", o.stdout)
    conf = mptest.base_conf("mixed_recipients = reject\nplaintext_mixed_for = example.org\n")
    o = mptest.run(msg, [BOB, DAVE], conf=conf)
    t.ok(not o.refused and o.rcpts == {BOB: "plaintext", DAVE: "plaintext"},
         "plaintext_mixed_for a sender domain overrides the default", o.stdout)
    conf = mptest.base_conf("reject_mixed_for = alice@example.org\n")
    o = mptest.run(msg, [DAVE], conf=conf)
    t.ok(len(o.refused) == 1, "reject_mixed_for one address", o.stdout)
    # inbound mail: untouched, but a forged control header goes
    o = mptest.run(msg.replace("Subject:", "X-Mailward-Encrypt: none\r\nSubject:"), [BOB], client_ip="203.0.113.9")
    t.ok(o.action == "accept" and "replace-body" not in o.changes and o.rcpts == {BOB: "plaintext"}
         and "delete-header: X-Mailward-Encrypt" in o.changes, "inbound mail: not encrypted, control header removed",
         o.stdout)
    o = mptest.run(msg, [BOB], client_ip="203.0.113.9", auth="alice")
    t.eq(o.rcpts, {BOB: "encrypted"}, "an authenticated user from anywhere is outbound")
    # a sender without a key pair: encrypted, not signed
    o = mptest.run(msg, [BOB], sender=DAVE)
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(rc == 0 and "GOODSIG" not in status and plain == mptest.entity(msg.encode(), "cipher"),
         "a sender without a key pair: encrypted, unsigned", status[-300:])
    # hidden recipients
    o = mptest.run(msg, [BOB, CAROL], conf=mptest.base_conf("hide_recipients = yes\n"))
    pk = mptest.gpg(mptest.person_home("bob"), "--list-packets", input=mptest.armored(o.out), check=False)
    text = pk.stdout.decode(errors="replace")
    keyids = re.findall(r"keyid ([0-9A-F]{16})", text)
    t.ok(keyids and all(k == "0000000000000000" for k in re.findall(r":pubkey enc packet:.*keyid ([0-9A-F]{16})", text)),
         "hide_recipients: no recipient key id in the message", text[:600])
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("carol"), mptest.armored(o.out))
    # gpg exits 2 after trying her key on bob's anonymous packet: what counts is the plaintext
    t.ok("DECRYPTION_OKAY" in status and plain == mptest.entity(msg.encode(), "cipher"), "... and carol still decrypts it",
         status[-800:])
    # compression: gpg's, on by default; compress = no turns it off (lengths that tell of the content)
    for conf, want in ((None, True), (mptest.base_conf("compress = no\n"), False)):
        o = mptest.run(msg, [BOB], conf=conf)
        pk = mptest.gpg(mptest.person_home("bob"), "--list-packets", input=mptest.armored(o.out), check=False)
        text = pk.stdout.decode(errors="replace")
        rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
        t.ok((":compressed packet:" in text) == want and ":literal data packet:" in text and rc == 0
             and plain == mptest.entity(msg.encode(), "cipher"),
             "compress = %s: %s compressed packet, decrypts to the entity" % ("yes (default)" if want else "no",
                                                                               "a" if want else "no"), text[:800])


def broken(t):
    msg = HEAD % ("broken", "broken") + "Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\n--never\r\n" \
        "Content-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nno end\r\n"
    o = mptest.run(msg, [BOB])
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(o.rcpts == {BOB: "encrypted"} and plain == mptest.entity(msg.encode(), "cipher"),
         "a boundary that never closes: encrypted as it is, byte for byte", o.stdout + o.log)
    empty = sandbox.mkdir("emptyring", mode=0o700)
    o = mptest.run(HEAD % ("v", "v") + "\r\nhello\r\n", [BOB], conf=mptest.write_conf(
        "keyring = %s\ntmpdir = %s\n" % (empty, sandbox.path("spool")), "vanished.conf"))
    t.ok(o.action == "tempfail" and "451 4.7.0" in o.action_line and o.out is None,
         "a keyring without its key files: 451 tempfail, never in clear", o.stdout + o.log)
    o = mptest.run(HEAD % ("v", "v") + "\r\nhello\r\n", [BOB], conf=mptest.write_conf(
        "keyring = %s\ntmpdir = %s\nmixed_recipients = reject\n" % (empty, sandbox.path("spool")), "vanished2.conf"))
    t.ok(o.refused and "451 4.7.0" in o.refused[0], "... in reject mode: 451 at RCPT", o.stdout)
    bad = mptest.write_conf("keyring = relative/path\n", "bad.conf")
    p = subprocess.run([mptest.MILTER_PGP, "-C", "-c", bad], capture_output=True, text=True)
    t.ok(p.returncode == 2 and "bad.conf:1: keyring" in p.stderr, "a bad keyring setting: file:line, exit 2", p.stderr)
    o = mptest.run(HEAD % ("big", "big") + "\r\n" + "x" * 3000 + "\r\n", [BOB],
                   conf=mptest.base_conf("max_message_size = 2k\n"))
    t.ok(o.action == "reject" and "552 5.3.4" in o.action_line, "over max_message_size: 552, never truncated", o.stdout)


t = Tap()
t.run(encrypted_shapes)
t.run(protected_unchanged)
t.run(bad_keys)
t.run(signed_only)
t.run(policies)
t.run(broken)
t.done()
