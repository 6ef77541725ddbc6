#!/usr/bin/python3
"""milter-pgp inbound encryption at rest (milter-pgp-keys at-rest on|off).

Test mode: mail from outside to a user who opted in becomes PGP/MIME
encrypted to that user's key only (not signed), the original entity inside
byte for byte, the other header fields outside unchanged; already
encrypted (PGP/MIME, S/MIME) mail unchanged; a user who did not opt in (or
opted out again) gets the message as it came; mixed recipients: one copy
each, the others split off and re-injected in clear; all opted in: one
message encrypted to all of them; an opted-in user whose key expired gets
the message in clear with a warning; too big once encrypted: in clear;
mail from our own users takes the outbound path. The opt-in list is read
at each message: no reload.

Through a private Postfix delivering to a private Dovecot (LMTP), with
contrib/postfix/milter-pgp.cf pasted unchanged: the Maildir file of the
user who opted in holds no byte of the text and decrypts to the original
entity; the other's holds the text."""
import glob
import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, CAROL, DAVE, EVE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

KEYS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-keys")
OUTSIDE = "news@lists.example.com"
CLIENT = "192.0.2.7"  # not in trusted_networks: inbound

MSG = ("Return-Path: <news@lists.example.com>\r\n"
       "Received: from mx.lists.example.com (mx.lists.example.com [192.0.2.7])\r\n\tby mx.example.net; "
       "Tue, 01 Dec 2026 10:00:00 +0000\r\n"
       "Authentication-Results: mx.example.net; dkim=pass header.d=lists.example.com; spf=pass\r\n"
       "DKIM-Signature: v=1; a=rsa-sha256; d=lists.example.com; s=s1; h=from:to:subject;\r\n"
       "\tbh=AAAA; b=BBBB\r\n"
       "From: News <news@lists.example.com>\r\nTo: %s\r\n"
       "Subject: at rest %d\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <atrest-%d@lists.example.com>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
       "\r\nGrüße, secret text %d\r\nsecond line\r\n")


def msg(n, to=BOB):
    return (MSG % (to, n, n, n)).encode()


def keys(conf, *args):
    p = subprocess.run([KEYS, "-c", conf] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def outside_fields(raw):
    fields, _ = mptest.split(raw)
    return [f for f in fields if not f.lower().startswith(b"content-") and not f.lower().startswith(b"mime-version")]


def test_mode(t):
    conf = mptest.base_conf()
    ring = mptest.keyring()

    def run(raw, rcpts, **kw):
        kw.setdefault("client_ip", CLIENT)
        return mptest.run(raw, rcpts, sender=kw.pop("sender", OUTSIDE), conf=kw.pop("conf", conf), **kw)

    # nobody opted in yet: inbound mail as it came
    o = run(msg(1), [BOB])
    t.ok(o.rcpts == {BOB: "plaintext"} and "replace-body" not in o.changes and "direction=inbound action=none" in o.log,
         "nobody opted in: unchanged", o.stdout + o.log)

    for a in (BOB, CAROL, EVE, DAVE):
        rc, out = keys(conf, "at-rest", "on", a)
        t.ok(rc == 0, "at-rest on %s" % a, out)
    rc, out = keys(conf, "at-rest", "off", DAVE)
    t.ok(rc == 0 and "off" in out, "at-rest off dave", out)
    rc, out = keys(conf, "at-rest", "on", "not-an-address")
    t.ok(rc != 0 and "not an address" in out, "at-rest on a non-address: refused", out)
    rc, out = keys(conf, "list")
    t.ok(rc == 0 and "at-rest <%s> on\n" % BOB in out and "at-rest <%s> on\n" % CAROL in out
         and "at-rest <%s> on, no usable key" % EVE in out and DAVE not in out.split("at-rest", 1)[-1],
         "list: who opted in, eve's key unusable, dave not", out)
    with open(os.path.join(ring, "mailward-atrest")) as f:
        listed = f.read().split()
    t.eq(sorted(listed), sorted([BOB, CAROL, EVE]), "the opt-in file lists exactly those left on")

    # one opted-in recipient
    raw = msg(2)
    o = run(raw, [BOB])
    t.ok(o.action == "accept" and o.rcpts == {BOB: "encrypted(at-rest)"} and "replace-body" in o.changes,
         "bob opted in: encrypted(at-rest)", o.stdout + o.log)
    t.ok("atrest=encrypted keys=1" in o.log and "direction=inbound" in o.log, "log: atrest=encrypted keys=1", o.log)
    t.ok(o.out is not None and b"multipart/encrypted" in o.out and "secret text 2".encode() not in o.out,
         "the stored message is PGP/MIME, no byte of the text in clear")
    t.eq(outside_fields(o.out), outside_fields(raw),
         "Received, Authentication-Results, DKIM-Signature, From, To, Subject, Date... kept outside, unchanged")
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(rc == 0 and plain == mptest.entity(raw), "bob decrypts it to the original entity byte for byte", status)
    t.ok("NEWSIG" not in status and "GOODSIG" not in status, "not signed", status)
    rc, _, status = mptest.gpg_decrypt(mptest.person_home("carol"), mptest.armored(o.out))
    t.ok(rc != 0, "encrypted to bob's key only: carol cannot decrypt it", status)
    if mptest.have_sq():
        rc, plain, err = mptest.sq_decrypt(mptest.sandbox.path("keys", "bob.sec"), mptest.armored(o.out))
        t.ok(rc == 0 and plain == mptest.entity(raw), "sq decrypts it too", err)

    # already protected: unchanged
    pgpmime = (b"From: x@lists.example.com\r\nTo: bob@example.net\r\nSubject: enc\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n"
               b"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n"
               b"-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n")
    smime = (b"From: x@lists.example.com\r\nTo: bob@example.net\r\nSubject: smime\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n")
    for name, m in (("PGP/MIME", pgpmime), ("S/MIME", smime)):
        o = run(m, [BOB])
        t.ok(o.rcpts == {BOB: "plaintext"} and "replace-body" not in o.changes and "atrest=already" in o.log
             and o.out.endswith(m.split(b"\r\n\r\n", 1)[1]), "already %s: unchanged" % name, o.stdout + o.log)

    # not opted in (dave opted out again): plaintext, untouched
    o = run(msg(3, DAVE), [DAVE])
    t.ok(o.rcpts == {DAVE: "plaintext"} and "replace-body" not in o.changes and "secret text 3".encode() in o.out,
         "dave opted out: plaintext", o.stdout + o.log)

    # mixed: bob encrypted in the transaction, dave split off in clear
    raw = msg(4, "bob@example.net, dave@example.com")
    o = run(raw, [BOB, DAVE])
    t.eq(o.rcpts, {BOB: "encrypted(at-rest)", DAVE: "plaintext(split)"}, "mixed: one copy each")
    lines = o.stdout.splitlines()
    t.ok("delete-rcpt: " + DAVE in lines and "reinject: via=smtp:127.0.0.1:10026 from=<%s> to=<%s>" % (OUTSIDE, DAVE)
         in lines and sum(ln.startswith("reinject:") for ln in lines) == 1,
         "mixed: dave removed, one copy re-injected to dave alone", o.stdout)
    copy = open(o.out_path + ".reinject", "rb").read()
    t.ok(copy == mptest.crlf(raw), "dave's copy is the message as it came, byte for byte", copy[:300])
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(rc == 0 and plain == mptest.entity(raw) and "secret text 4".encode() not in o.out,
         "bob's copy is encrypted and decrypts to the original entity", status)
    t.ok("split=1" in o.log and "atrest=encrypted keys=1" in o.log, "log: atrest=encrypted split=1", o.log)

    # all opted in: one message encrypted to both, nothing re-injected
    raw = msg(5, "bob@example.net, carol@example.net")
    o = run(raw, [BOB, CAROL])
    t.ok(o.rcpts == {BOB: "encrypted(at-rest)", CAROL: "encrypted(at-rest)"} and "reinject:" not in o.stdout
         and "keys=2" in o.log, "all opted in: encrypted to both keys, no copy", o.stdout + o.log)
    for who in ("bob", "carol"):
        rc, plain, status = mptest.gpg_decrypt(mptest.person_home(who), mptest.armored(o.out))
        t.ok(rc == 0 and plain == mptest.entity(raw), "%s decrypts the common copy" % who, status)

    # eve opted in, her key expired: in clear, loudly; never refused or held
    raw = msg(6, EVE)
    o = run(raw, [EVE])
    t.ok(o.action == "accept" and o.rcpts == {EVE: "plaintext(at-rest-no-usable-key)"}
         and "replace-body" not in o.changes and "secret text 6".encode() in o.out,
         "expired key: delivered in clear", o.stdout + o.log)
    t.ok("atrest=no-usable-key" in o.log and "no usable key" in o.log and "warn" in o.log.lower(),
         "expired key: logged as a warning", o.log)
    o = run(msg(7, "bob@example.net, eve@example.com"), [BOB, EVE])
    t.ok(o.rcpts == {BOB: "encrypted(at-rest)", EVE: "plaintext(at-rest-no-usable-key)"}
         and "delete-rcpt: " + EVE in o.stdout.splitlines() and "to=<%s>" % EVE in o.stdout
         and "atrest_without_key=<%s>" % EVE in o.log,
         "bob and expired eve: bob encrypted, eve split off in clear", o.stdout + o.log)

    # too big once encrypted (8 KB is about 11 KB encrypted): in clear, whole
    big = msg(8).replace("Grüße".encode(), b"x" * 8000)
    for mode in ("reject", "plaintext"):
        o = run(big, [BOB], conf=mptest.base_conf("max_message_size = 10k\noversize = %s\n" % mode))
        t.ok(o.action == "accept" and o.rcpts == {BOB: "plaintext(at-rest-oversize)"}
             and b"x" * 8000 in o.out and "atrest=oversize" in o.log,
             "oversize = %s: an inbound message too big encrypted is delivered in clear" % mode, o.stdout + o.log)

    # mail from our own users takes the outbound path, not at-rest
    o = run(msg(9), [BOB], sender=ALICE, auth="alice")
    t.ok(o.rcpts == {BOB: "encrypted"} and "atrest" not in o.log, "authenticated sender: outbound", o.stdout + o.log)

    # the list is read at each message: opting out applies at once
    keys(conf, "at-rest", "off", BOB)
    o = run(msg(10), [BOB])
    t.ok(o.rcpts == {BOB: "plaintext"} and "replace-body" not in o.changes, "bob opted out: at once, no reload",
         o.stdout)
    keys(conf, "at-rest", "on", BOB)


def maildir(dc, user):
    return sorted(glob.glob(os.path.join(dc.mail_dir, user, "Maildir", "new", "*")))


def e2e(t):
    if os.geteuid() != 0:
        t.skip("Postfix and Dovecot end to end", "needs root")
        return
    # the milter's own keyring (owned by the user it runs as) with everyone's public keys
    nobody = pwd.getpwnam("nobody")
    ring = sandbox.path("e2e-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*", "mailward-atrest*"))
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    lmtp = sandbox.free_port()
    dc = Dovecot(users={BOB: "x", DAVE: "x"},
                 extra="protocols = imap pop3 lmtp\nservice lmtp {\n  inet_listener lmtp {\n"
                       "    address = 127.0.0.1\n    port = %d\n  }\n}\n" % lmtp)
    # our domains delivered to Dovecot over LMTP
    pf = Postfix(name="postfix-atrest", main={
        "virtual_mailbox_domains": "example.net example.com",
        "virtual_transport": "lmtp:inet:127.0.0.1:%d" % lmtp,
        "smtpd_reject_unlisted_recipient": "no",
    })
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    rport = sandbox.free_port()
    conf = sandbox.path("milter-pgp-atrest-e2e.conf")
    with open(conf, "w") as f:
        # trusted_networks elsewhere: the test's mail from 127.0.0.1 is inbound
        f.write("socket = unix:%s/milter-pgp.sock\nkeyring = %s\ntmpdir = %s\nuser = nobody\n"
                "socket_group = postfix\nsocket_mode = 0660\ntrusted_networks = 192.0.2.0/24\n"
                "log_level = debug\nreinject = smtp:127.0.0.1:%d\npassword_templates = %s\n"
                % (sockdir, ring, sandbox.mkdir("atrest-e2e-spool", mode=0o1777), rport, mptest.TEMPLATES))
    rc, out = keys(conf, "at-rest", "on", BOB)
    t.ok(rc == 0 and "at-rest <%s> on" % BOB in out, "milter-pgp-keys at-rest on bob (as root, for the keyring's owner)",
         out)
    t.eq(os.stat(os.path.join(ring, "mailward-atrest")).st_uid, nobody.pw_uid, "the opt-in file is the milter's")
    log = sandbox.path("milter-pgp-atrest-e2e.log")
    mp = sandbox.spawn([mptest.MILTER_PGP, "-f", "-c", conf], log=log)
    sandbox.at_cleanup(lambda: sandbox.stop(mp))
    sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or mp.poll() is not None, 30,
                     what="milter-pgp to listen")
    pf.apply_snippet("contrib/postfix/milter-pgp.cf", replace={"127.0.0.1:10026": "127.0.0.1:%d" % rport})
    pf.start()
    sandbox.wait_port(pf.port, timeout=60)

    sent = {}
    for n, rcpts in ((21, [BOB]), (22, [DAVE]), (23, [BOB, DAVE])):
        raw = msg(n, ", ".join(rcpts))
        sent[n] = raw
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=120) as s:
            s.sendmail(OUTSIDE, rcpts, raw)
    sandbox.wait_for(lambda: len(maildir(dc, BOB)) >= 2 and len(maildir(dc, DAVE)) >= 2, 180,
                     what="delivery to bob's and dave's Maildir")
    time.sleep(1)  # a duplicate would show up now
    bob = [open(p, "rb").read() for p in maildir(dc, BOB)]
    dave = [open(p, "rb").read() for p in maildir(dc, DAVE)]
    t.eq((len(bob), len(dave)), (2, 2), "one copy per recipient: bob 2 messages, dave 2")
    t.ok(all(b"secret text" not in m and b"Gr\xc3\xbc\xc3\x9fe" not in m for m in bob),
         "bob's Maildir holds no byte of the text (ciphertext only)")
    t.ok(all(b"secret text" in m for m in dave), "dave's Maildir holds the text (he did not opt in)")
    for m in bob:
        n = int(mptest.header(m, "Subject")[0].split()[-1])
        rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(m))
        t.ok(rc == 0 and plain == mptest.entity(sent[n]), "bob's stored message %d decrypts to the original entity" % n,
             status)
        t.ok(b"Authentication-Results: mx.example.net" in m and mptest.header(m, "From") == ["News <news@lists.example.com>"],
             "message %d: the header fields for filtering stay outside" % n)
    text = sandbox.read_text(log)
    t.ok("atrest=encrypted" in text and "split=1 reinjected=1" in text, "milter-pgp logs atrest= and the split",
         text[-1500:])


t = Tap()
t.run(test_mode)
t.run(e2e)
t.done()
