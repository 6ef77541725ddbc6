#!/usr/bin/python3
"""milter-pgp mixed_recipients = split and oversize.

Test mode: what split does to the transaction (delete-rcpt, reinject,
rcpt states) and the copy it would inject; oversize = reject | plaintext.

Through a private Postfix with contrib/postfix/milter-pgp.cf pasted
unchanged (its re-injection service on a port of its own): who received
what, per recipient, with To, Cc and Bcc recipients with and without keys;
no Bcc address in anyone's copy; the loop mark removed; a failed
re-injection tempfails the message and delivers nothing; a forged or
misapplied mark does not get past encryption, while a true one does (so
the forged-mark checks can fail); a message too big once encrypted for
Postfix's message_size_limit is refused with 552 5.3.4 or sent in clear,
as configured."""
import hashlib
import hmac
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, CAROL, DAVE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

ERIN = "erin@example.com"  # no key, Bcc

MSG = ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nCc: Dave <dave@example.com>\r\n"
       "%s"
       "Subject: split %d\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <split-%d@example.org>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
       "\r\nGrüße, split %d\r\n")


def msg(n, bcc=""):
    return (MSG % (bcc, n, n, n)).encode()


def head_of(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def test_mode(t):
    conf = mptest.base_conf("mixed_recipients = split\n")
    raw = msg(1, "Bcc: carol@example.net, erin@example.com\r\n")
    o = mptest.run(raw, [BOB, DAVE, CAROL, ERIN], conf=conf)
    t.eq(o.action, "accept", "split: accepted")
    t.eq(o.rcpts, {BOB: "encrypted", CAROL: "encrypted", DAVE: "plaintext(split)", ERIN: "plaintext(split)"},
         "split: key holders encrypted, the others plaintext(split)")
    lines = o.stdout.splitlines()
    t.eq(sorted(ln for ln in lines if ln.startswith("delete-rcpt: ")),
         ["delete-rcpt: " + DAVE, "delete-rcpt: " + ERIN], "split: delete-rcpt for each recipient without a key")
    rein = [ln for ln in lines if ln.startswith("reinject: ")]
    t.eq(rein, ["reinject: via=smtp:127.0.0.1:10026 from=<%s> to=<%s>,<%s>" % (ALICE, DAVE, ERIN)],
         "split: one reinject line, both recipients without a key in one copy")
    t.ok("replace-body" in o.changes and b"multipart/encrypted" in o.out, "the transaction's copy is encrypted")
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("carol"), mptest.armored(o.out))
    t.ok(rc == 0 and plain == mptest.entity(raw, "cipher"), "carol (Bcc, key) decrypts the transaction's copy")
    copy = open(o.out_path + ".reinject", "rb").read()
    t.ok(b"multipart/signed" in head_of(copy) and b"Bcc" not in head_of(copy) and b"erin" not in head_of(copy)
         and b"carol" not in head_of(copy) and b"X-Mailward" not in copy,
         "the copy is signed, without the Bcc field or its addresses", head_of(copy))
    signed = mptest.parts(copy)
    t.eq(signed[0], mptest.entity(raw, "clear"),
         "the copy's signed part is the original entity byte for byte (and its protected headers)")

    # no key pair for the sender: the copy is the original message (minus Bcc)
    o = mptest.run(raw.replace(b"alice@example.org", b"zed@example.org"), [BOB, DAVE], sender="zed@example.org",
                   conf=conf)
    copy = open(o.out_path + ".reinject", "rb").read()
    t.ok(o.rcpts == {BOB: "encrypted", DAVE: "plaintext(split)"} and b"multipart" not in head_of(copy)
         and copy.endswith("Grüße, split 1\r\n".encode()) and b"Bcc" not in copy,
         "sender without a key pair: the copy is the message as sent, minus Bcc", o.stdout)

    # only keyless recipients, or only key holders: no split, no copy
    o = mptest.run(msg(2), [DAVE, ERIN], conf=conf)
    t.ok("reinject:" not in o.stdout and o.rcpts == {DAVE: "plaintext", ERIN: "plaintext"},
         "nobody with a key: plaintext as usual, nothing re-injected", o.stdout)
    o = mptest.run(msg(3), [BOB], conf=conf)
    t.ok("reinject:" not in o.stdout and o.rcpts == {BOB: "encrypted"}, "everybody with a key: no copy", o.stdout)
    # require still refuses: never in clear when the sender forbids it
    o = mptest.run(msg(4).replace(b"Subject:", b"X-Mailward-Encrypt: require\r\nSubject:"), [BOB, DAVE], conf=conf)
    t.ok(o.action == "reject" and "reinject:" not in o.stdout, "split with require and a keyless recipient: 550",
         o.stdout)
    # per sender: split_mixed_for, the default stays plaintext
    conf2 = mptest.base_conf("split_mixed_for = example.org\n")
    o = mptest.run(msg(5), [BOB, DAVE], conf=conf2)
    t.eq(o.rcpts, {BOB: "encrypted", DAVE: "plaintext(split)"}, "split_mixed_for = example.org: alice splits")
    o = mptest.run(msg(5), [BOB, DAVE], conf=conf2, sender="zed@example.net")
    t.eq(o.rcpts, {BOB: "plaintext", DAVE: "plaintext"}, "another domain: mixed_recipients' default")

    # oversize: an 8 KB body is about 11 KB encrypted
    big = msg(6).replace(b"Gr\xc3\xbc\xc3\x9fe", b"x" * 8000)
    for mode, action in (("reject", "reject"), ("plaintext", "accept")):
        o = mptest.run(big, [BOB], conf=mptest.base_conf("max_message_size = 10k\noversize = %s\n" % mode))
        t.ok(o.action == action and ("552 5.3.4" in o.action_line if mode == "reject" else
                                     o.rcpts == {BOB: "plaintext"} and b"multipart/encrypted" not in o.out
                                     and b"x" * 8000 in o.out),
             "oversize = %s: %s" % (mode, "552 5.3.4" if mode == "reject" else "in clear (signed), whole"), o.stdout + o.log)
    o = mptest.run(msg(6), [BOB], conf=mptest.base_conf("max_message_size = 10k\noversize = reject\n"))
    t.eq(o.rcpts, {BOB: "encrypted"}, "a small message under the same limit is encrypted")
    o = mptest.run(big.replace(b"Subject:", b"X-Mailward-Encrypt: require\r\nSubject:"), [BOB],
                   conf=mptest.base_conf("max_message_size = 10k\noversize = plaintext\n"))
    t.ok(o.action == "reject" and "552" in o.action_line, "oversize = plaintext, but require: 552", o.stdout)


def Milter(socket, keyring, extra, user="nobody", name="split"):
    return mptest.Daemon(name, "socket = %s\nkeyring = %s\ntmpdir = %s\nuser = %s\nsocket_group = postfix\n"
                               "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\nlog_level = debug\n"
                               "mixed_recipients = split\n"
                         % (socket, keyring, sandbox.mkdir("split-spool", mode=0o1777), user), extra)


def send(pf, rcpts, data):
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.example", timeout=180) as s:
        return s.sendmail(ALICE, rcpts, data)


def by_rcpt(pf):
    """{recipient: [message, ...]} of what the sink received."""
    out = {}
    for env, raw in zip(pf.envelopes(), pf.delivered()):
        for r in env["rcpts"]:
            out.setdefault(re.match(r"<([^>]*)>", r).group(1), []).append(raw)
    return out


def make_mark(secret_hex, t, sender, rcpts, body):
    """The X-Mailward-Reinjected value, as inject.c makes it."""
    canon = body.replace(b"\r", b"").rstrip(b"\n")
    data = b"mailward-reinject v1\0" + str(t).encode() + b"\0" + sender.lower().encode() + b"\0" + \
        str(len(rcpts)).encode() + b"\0" + b"".join(r.lower().encode() + b"\0" for r in sorted(rcpts)) + \
        hashlib.sha256(canon).digest()
    return "v=1; t=%d; mac=%s" % (t, hmac.new(bytes.fromhex(secret_hex), data, hashlib.sha256).hexdigest())


def e2e(t):
    ring = sandbox.path("split-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*"))
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    pf = Postfix(name="postfix-split", mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    rport = sandbox.free_port()
    reinject = "reinject = smtp:127.0.0.1:%d\n" % rport
    mp = Milter("unix:%s/milter-pgp.sock" % sockdir, ring, reinject)
    sandbox.at_cleanup(lambda: sandbox.stop(mp.proc))
    pf.apply_snippet("contrib/postfix/milter-pgp.cf", replace={"127.0.0.1:10026": "127.0.0.1:%d" % rport})
    pf.start()
    secret = open(os.path.join(ring, "reinject.key")).read().strip()
    st = os.stat(os.path.join(ring, "reinject.key"))
    t.ok(st.st_uid == nobody.pw_uid and st.st_mode & 0o777 == 0o600,
         "the re-injection secret was created in the keyring, 0600, owned by the daemon's user")

    # To: bob (key), Cc: dave (no key), Bcc: carol (key), erin (no key),
    # with a Bcc field in the message as some clients send it
    raw = msg(10, "Bcc: Carol <carol@example.net>, erin@example.com\r\n")
    t.eq(send(pf, [BOB, DAVE, CAROL, ERIN], raw), {}, "split: all four recipients accepted")
    pf.wait_delivered(2, timeout=120)
    time.sleep(1)  # a third (duplicate) copy would be close behind
    got = by_rcpt(pf)
    counts = sorted((k, len(v)) for k, v in got.items())
    t.eq(counts, [(BOB, 1), (CAROL, 1), (DAVE, 1), (ERIN, 1)], "exactly one copy per recipient")
    t.eq(len(pf.delivered()), 2, "two messages: the encrypted one and the re-injected one")
    want = mptest.entity(raw, "cipher")
    for who, addr in (("bob", BOB), ("carol", CAROL)):
        m = got.get(addr, [b""])[0]
        rc, plain, status = mptest.gpg_decrypt(mptest.person_home(who), mptest.armored(m)) \
            if b"multipart/encrypted" in m else (1, b"", "")
        t.ok(rc == 0 and plain == want and "GOODSIG" in status,
             "%s (key) gets it encrypted, decrypts to the original entity, signed by alice" % who)
    for addr in (DAVE, ERIN):
        m = got.get(addr, [b""])[0]
        ok = b"multipart/signed" in head_of(m) and "Grüße".encode() in m
        if ok:
            signed, sig = mptest.parts(m)[0], mptest.parts(m)[1]
            sig = sig[sig.index(b"-----BEGIN PGP SIGNATURE-----"):]
            sigfile = sandbox.path("sig-%s.asc" % addr)
            datafile = sandbox.path("signed-%s" % addr)
            open(sigfile, "wb").write(sig)
            open(datafile, "wb").write(signed)
            p = mptest.gpg(mptest.person_home("bob"), "--status-fd", "1", "--verify", sigfile, datafile, check=False)
            ok = p.returncode == 0 and b"GOODSIG" in p.stdout and signed == mptest.entity(raw, "clear")
        t.ok(ok, "%s (no key) gets the plaintext copy, signed by alice, the entity byte for byte" % addr)
    for m in pf.delivered():
        h = head_of(m).lower()
        t.ok(b"carol" not in h and b"erin" not in h and b"bcc" not in h,
             "no Bcc recipient in the headers of the %s copy" %
             ("encrypted" if b"multipart/encrypted" in h else "plaintext"), head_of(m))
        t.ok(b"x-mailward" not in h, "no loop mark or control header leaves", head_of(m))
    t.ok(re.search(r"action=sign\+encrypt keys=3 split=2 split_signed .*reinjected=2", mp.text())
         and "action=none reinjected" in mp.text(), "milter-pgp logs the split and recognises its copy",
         mp.text()[-1500:])

    # a forged mark (no secret), and a true mark made for another envelope:
    # processed as any message, encrypted; the mark removed
    pf.clear_delivered()
    raw = msg(11).replace(b"Cc: Dave <dave@example.com>\r\n", b"")
    body = raw.split(b"\r\n\r\n", 1)[1]
    now = int(time.time())
    forged = raw.replace(b"Subject:", ("X-Mailward-Reinjected: v=1; t=%d; mac=%s\r\nSubject:"
                                       % (now, "ab" * 32)).encode())
    misapplied = raw.replace(b"Subject:", ("X-Mailward-Reinjected: %s\r\nSubject:"
                                           % make_mark(secret, now, ALICE, [DAVE], body)).encode())
    true = raw.replace(b"Subject:", ("X-Mailward-Reinjected: %s\r\nSubject:"
                                     % make_mark(secret, now, ALICE, [BOB], body)).encode())
    for name, data in (("a forged mark", forged), ("a true mark for another recipient", misapplied)):
        pf.clear_delivered()
        send(pf, [BOB], data)
        m = pf.wait_delivered(1, timeout=120)[0]
        t.ok(b"multipart/encrypted" in m and "Grüße, split 11".encode() not in m and b"X-Mailward-Reinjected" not in m,
             "%s does not get past encryption (and is removed)" % name)
    t.ok("reinject_mark=invalid" in mp.text(), "the invalid mark is logged")
    pf.clear_delivered()
    send(pf, [BOB], true)
    m = pf.wait_delivered(1, timeout=120)[0]
    t.ok(b"multipart/encrypted" not in m and "Grüße, split 11".encode() in m and b"X-Mailward-Reinjected" not in m,
         "a true mark for exactly this envelope and body passes unchanged (the loop check works), mark removed")

    # mp_inject_buf through the test mode's --inject: LF line ends and a
    # leading dot arrive as CRLF, dot-stuffed and unstuffed on the way;
    # the milter on the re-injection service recognises the mark
    pf.clear_delivered()
    lf = msg(16).replace(b"Cc: Dave <dave@example.com>\r\n", b"").replace(b"\r\n", b"\n") + b".dot\n..two\n"
    path = sandbox.path("inject.eml")
    open(path, "wb").write(lf)
    p = subprocess.run([mptest.MILTER_PGP, "-c", mp.conf, "-t", path, "--inject", "--mail-from", ALICE,
                        "--rcpt", BOB], capture_output=True, text=True, timeout=120)
    t.ok(p.returncode == 0 and "reinject: via=smtp:127.0.0.1:%d" % rport in p.stdout,
         "milter-pgp -t --inject hands the message to the re-injection service", p.stdout + p.stderr)
    m = pf.wait_delivered(1, timeout=120)[0] if p.returncode == 0 else b""
    t.ok(m.split(b"\r\n\r\n", 1)[-1] == lf.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
         and b"X-Mailward-Reinjected" not in m, "it arrives byte for byte (CRLF), its mark checked and removed",
         m[-300:])

    # re-injection fails (nothing listens there): 451, nothing delivered
    dead = sandbox.free_port()
    mp.reload("reinject = smtp:127.0.0.1:%d\nreinject_timeout = 5s\n" % dead)
    pf.clear_delivered()
    try:
        send(pf, [BOB, DAVE], msg(12))
        t.ok(False, "failed re-injection: the message is refused")
    except smtplib.SMTPDataError as e:
        t.ok(e.smtp_code == 451 and b"4.3.0" in e.smtp_error, "failed re-injection: 451 4.3.0 at end of data", e)
    # a sentinel behind it: once it is through, nothing else is coming
    send(pf, [BOB], msg(13).replace(b"Cc: Dave <dave@example.com>\r\n", b""))
    pf.wait_delivered(1, timeout=120)
    time.sleep(1)
    t.eq([b"split 13" in m or b"multipart/encrypted" in m for m in pf.delivered()], [True],
         "failed re-injection: no copy of it delivered to anyone")

    # oversize through Postfix: message_size_limit 40000, milter told the same
    mp.reload(reinject + "max_message_size = 40000\noversize = reject\n")
    pf.set(message_size_limit=40000)
    lines = b"".join(b"%05d " % i + b"y" * 74 + b"\r\n" for i in range(400))  # 32 KB
    big = msg(14).replace(b"Gr\xc3\xbc\xc3\x9fe", lines).replace(b"Cc: Dave <dave@example.com>\r\n", b"")
    pf.clear_delivered()
    try:
        send(pf, [BOB], big)
        t.ok(False, "oversize = reject: refused")
    except smtplib.SMTPDataError as e:
        t.ok(e.smtp_code == 552 and b"5.3.4" in e.smtp_error and b"too big to send encrypted" in e.smtp_error,
             "oversize = reject: 552 5.3.4 saying why", e)
    mp.reload(reinject + "max_message_size = 40000\noversize = plaintext\n")
    send(pf, [BOB], big)
    m = pf.wait_delivered(1, timeout=120)[0]
    t.ok(lines in m and b"multipart/encrypted" not in m, "oversize = plaintext: sent in clear, whole")
    t.ok("reason=oversize" in mp.text(), "and logged as oversize")

    # reinject = sendmail: Postfix's sendmail(1), the copy through pickup and
    # non_smtpd_milters. A non-root sendmail may not use a private -C
    # directory, so this instance stays root.
    pf.set(message_size_limit=10240000)
    sandbox.stop(mp.proc)
    mp = Milter("unix:%s/milter-pgp.sock" % sockdir, ring,
                "reinject = sendmail:/usr/sbin/sendmail -C %s\n" % pf.config_dir, user="", name="split-sendmail")
    sandbox.at_cleanup(lambda: sandbox.stop(mp.proc))
    pf.clear_delivered()
    raw = msg(15, "Bcc: erin@example.com\r\n")
    t.eq(send(pf, [BOB, DAVE, ERIN], raw), {}, "reinject = sendmail: accepted")
    pf.wait_delivered(2, timeout=120)
    time.sleep(1)
    got = by_rcpt(pf)
    counts = sorted((k, len(v)) for k, v in got.items())
    t.eq(counts, [(BOB, 1), (DAVE, 1), (ERIN, 1)], "reinject = sendmail: exactly one copy per recipient")
    plain = got.get(DAVE, [b""])[0]
    t.ok(b"multipart/signed" in head_of(plain) and b"erin" not in head_of(plain).lower()
         and b"X-Mailward-Reinjected" not in plain and b"multipart/encrypted" in got.get(BOB, [b""])[0],
         "reinject = sendmail: bob's copy encrypted, the others' signed in clear, no Bcc, no mark",
         head_of(plain))
    t.ok("action=none reinjected" in mp.text(), "the copy came back through non_smtpd_milters, its mark checked",
         mp.text()[-1500:])


t = Tap()
t.run(test_mode)
t.run(e2e)
t.done()
