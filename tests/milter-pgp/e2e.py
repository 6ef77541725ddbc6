#!/usr/bin/python3
"""milter-pgp end to end: a private Postfix with contrib/postfix/milter-pgp.cf
pasted unchanged, milter-pgp running as a daemon (unprivileged), mail sent
over SMTP; what the next hop received is decrypted with gpg, per recipient."""
import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, CAROL, DAVE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

MSG = ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>, Carol <carol@example.net>\r\n"
       "Subject: e2e\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <e2e-%d@example.org>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\nContent-Transfer-Encoding:  8bit\r\n"
       "X-Mailward-Encrypt: require\r\n\r\nGrüße through Postfix %d\r\n.leading dot\r\n")


def Milter(socket, keyring, extra=""):
    return mptest.Daemon("e2e", "socket = %s\nkeyring = %s\ntmpdir = %s\nuser = nobody\nsocket_group = postfix\n"
                         "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\nlog_level = debug\n"
                         "password_templates = %s\n%s"
                         % (socket, keyring, sandbox.mkdir("e2e-spool", mode=0o1777), mptest.TEMPLATES, extra))


def send(pf, rcpts, data):
    """{rcpt: refusal (code, text)} for the refused ones; raises if DATA fails."""
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.example", timeout=120) as s:
        return s.sendmail(ALICE, rcpts, data)


def main(t):
    # the keyring belongs to the daemon's user, as milter-pgp-keys leaves it
    ring = sandbox.path("e2e-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*"))
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    pf = Postfix(mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    mp = Milter("unix:%s/milter-pgp.sock" % sockdir, ring)
    sandbox.at_cleanup(lambda: sandbox.stop(mp.proc))
    status = open("/proc/%d/status" % mp.proc.pid).read()
    t.ok("Uid:\t65534\t65534\t65534\t65534" in status, "the daemon runs as nobody after binding")
    # the re-injection service on a port of its own (split.py uses it)
    pf.apply_snippet("contrib/postfix/milter-pgp.cf",
                     replace={"127.0.0.1:10026": "127.0.0.1:%d" % sandbox.free_port()})
    pf.start()

    raw = (MSG % (1, 1)).encode()
    refused = send(pf, [BOB, CAROL], raw)
    t.eq(refused, {}, "alice's mail to bob and carol is accepted")
    got = pf.wait_delivered(1, timeout=60)[0]
    env = pf.envelopes()[0]
    t.ok(len(env["rcpts"]) == 2, "one copy, both recipients in its envelope", env)
    t.ok(b"multipart/encrypted" in got and "Grüße".encode() not in got and b"X-Mailward-Encrypt" not in got,
         "what leaves Postfix is PGP/MIME, nothing in clear, no control header")
    want = mptest.entity(raw.replace(b"\r\n.leading", b"\r\n.leading"), "cipher")
    for who in ("bob", "carol", "alice"):
        rc, plain, status = mptest.gpg_decrypt(mptest.person_home(who), mptest.armored(got))
        t.ok(rc == 0 and plain == want and "GOODSIG" in status,
             "%s decrypts it to the original entity byte for byte, signed by alice" % who,
             "%r\n%r\n%s" % (plain[-200:], want[-200:], status[-300:]))
    t.ok("action=sign+encrypt keys=3" in mp.text(), "milter-pgp logs one line for it", mp.text()[-500:])

    # X-Mailward-Encrypt: require, and dave has no key: refused, nothing sent
    try:
        send(pf, [BOB, DAVE], (MSG % (2, 2)).encode())
        t.ok(False, "require with a keyless recipient is refused")
    except smtplib.SMTPDataError as e:
        t.ok(e.smtp_code == 550 and b"5.7.1" in e.smtp_error and DAVE.encode() in e.smtp_error,
             "require with a keyless recipient: 550 5.7.1 at end of data naming him", e)

    # mixed_recipients = reject, after a reload: dave refused at RCPT, bob gets it encrypted
    mp.write("mixed_recipients = reject\n")
    os.kill(mp.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "configuration reloaded" in mp.text(), 20, what="reload")
    pf.clear_delivered()
    raw = (MSG % (3, 3)).replace("X-Mailward-Encrypt: require\r\n", "").encode()
    refused = send(pf, [BOB, DAVE], raw)
    t.ok(DAVE in refused and refused[DAVE][0] == 550 and b"5.7.1" in refused[DAVE][1]
         and DAVE.encode() in refused[DAVE][1], "mixed_recipients = reject: 550 5.7.1 at RCPT naming dave", refused)
    got = pf.wait_delivered(1, timeout=60)[0]
    env = pf.envelopes()[0]
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(got))
    t.ok(len(env["rcpts"]) == 1 and BOB in env["rcpts"][0] and rc == 0 and plain == mptest.entity(raw, "cipher"),
         "bob alone receives it, encrypted", env)

    # a key deleted from the keyring while milter-pgp runs is no longer used
    # (its key cache follows the keyring's files)
    carol = mptest.fingerprint(ring, CAROL)
    p = subprocess.run(["gpg", "--homedir", ring, "--batch", "--yes", "--delete-keys", carol], capture_output=True,
                       preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
    refused = send(pf, [BOB, CAROL], raw) if p.returncode == 0 else {}
    t.ok(CAROL in refused and refused[CAROL][0] == 550, "a key deleted while running is no longer used",
         (p.stderr, refused))

    # milter-pgp down: mail deferred, never sent in clear
    os.kill(mp.proc.pid, signal.SIGTERM)
    t.eq(mp.proc.wait(30), 0, "SIGTERM: milter-pgp exits cleanly")
    try:
        send(pf, [BOB], (MSG % (4, 4)).encode())
        t.ok(False, "milter down: mail deferred")
    except (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as e:
        t.ok("4" == str(getattr(e, "smtp_code", 451))[0] or isinstance(e, smtplib.SMTPRecipientsRefused),
             "milter down: mail deferred (4xx), never sent in clear", e)


t = Tap()
t.run(main)
t.done()
