#!/usr/bin/python3
"""Self-test of mwtest.dovecot: IMAP, POP3, TLS, and Postfix SASL through
Dovecot's auth socket."""
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import stat
import sys

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import SMTPRejected, auth_send, send  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

MSG = b"From: alice@example.org\r\nTo: friend@friend.example\r\nSubject: via submission\r\n\r\nhello\r\n"
STORED = b"From: x@y.example\r\nSubject: stored over IMAP\r\n\r\nbody\r\n"


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def imap_pop3(t, dc):
    im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
    t.eq(im.login("alice", "alice-pw")[0], "OK", "IMAP: LOGIN with the right password")
    t.eq(im.append("INBOX", None, None, STORED)[0], "OK", "IMAP: APPEND")
    im.select("INBOX")
    typ, data = im.search(None, "ALL")
    t.eq(data[0].split(), [b"1"], "IMAP: the appended message is listed")
    typ, data = im.fetch(b"1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    t.contains(data[0][1], b"Subject: stored over IMAP", "IMAP: and fetched back")
    im.logout()
    t.ok(os.path.isdir(os.path.join(dc.mail_dir, "alice", "Maildir", "cur")), "IMAP: the maildir is in the sandbox")

    im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
    try:
        im.login("alice", "wrong")
        t.ok(False, "IMAP: LOGIN with a wrong password fails")
    except imaplib.IMAP4.error as e:
        t.contains(str(e), "AUTHENTICATIONFAILED", "IMAP: LOGIN with a wrong password fails")
    im.shutdown()

    pop = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=5)
    pop.user("alice")
    t.ok(pop.pass_("alice-pw").startswith(b"+OK"), "POP3: login")
    t.eq(pop.stat()[0], 1, "POP3: sees the message stored over IMAP")
    pop.quit()
    pop = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=5)
    pop.user("bob")
    try:
        pop.pass_("alice-pw")
        t.ok(False, "POP3: a wrong password fails")
    except poplib.error_proto:
        t.ok(True, "POP3: a wrong password fails")
    pop.close()

    rc, out = dc.doveadm("auth", "test", "bob", "bob-pw")
    t.ok(rc == 0 and "auth succeeded" in out, "doveadm -c CONF talks to this instance", out)


def submission(t, dc):
    mode = stat.S_IMODE(os.stat(dc.auth_socket).st_mode)
    t.ok(stat.S_ISSOCK(os.stat(dc.auth_socket).st_mode) and mode == 0o666, "auth socket exists, mode 0666")
    pf = Postfix()
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()
    t.ok(pf.submission_port and pf.submission_port != pf.port, "Postfix: submission on its own port")
    try:
        send(pf.submission_port, "alice@example.org", "friend@friend.example", MSG)
        t.ok(False, "submission: no AUTH, no relay")
    except SMTPRejected as e:
        t.eq((e.smtp_code, e.stage), (554, "RCPT"), "submission: no AUTH, no relay")
    code, text = auth_send(pf.submission_port, "alice", "alice-pw", "alice@example.org",
                           "friend@friend.example", MSG)
    t.eq(code, 250, "submission: AUTH PLAIN through Dovecot, message accepted")
    qid = re.search(r"queued as (\w+)", text).group(1)
    got = pf.wait_delivered(1)[0]
    t.ok(b"\r\nSubject: via submission\r\n" in got and got.endswith(b"\r\n\r\nhello\r\n")
         and re.search(rb"by mx\.example\.org \(Postfix\) with ESMTPA id %s\r\n" % qid.encode(), got),
         "and relayed to the next hop (received with ESMTPA)", got)
    t.ok(re.search(r"%s: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice$" % qid,
                   pf.log(), re.M), "Postfix logs the SASL user", pf.log())
    try:
        auth_send(pf.submission_port, "alice", "nope", "alice@example.org", "friend@friend.example", MSG)
        t.ok(False, "submission: a wrong password is refused")
    except smtplib.SMTPAuthenticationError as e:
        t.eq(e.smtp_code, 535, "submission: a wrong password is refused (535)")
    t.ok(re.search(r"auth: Info: passwd-file\(alice,127\.0\.0\.1[^)]*\): Password mismatch", dc.log()),
         "Dovecot logged the mismatch in its own log file", dc.log())
    pf.stop()


def tls_and_passdb(t):
    # a raw passdb block (one line, as later tests write it) and TLS
    dc = Dovecot(ssl=True, passdb="passdb { driver = static  args = password=letmein }")
    ctx = ssl._create_unverified_context()
    im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
    im.starttls(ctx)
    t.eq(im.login("zed", "letmein")[0], "OK", "ssl=True: IMAP STARTTLS, then LOGIN (passdb block)")
    im.logout()
    im = imaplib.IMAP4_SSL("127.0.0.1", dc.imaps_port, ssl_context=ctx)
    t.eq(im.login("yan", "letmein")[0], "OK", "ssl=True: IMAPS port")
    im.logout()
    pop = poplib.POP3_SSL("127.0.0.1", dc.pop3s_port, context=ctx, timeout=5)
    pop.user("yan")
    t.ok(pop.pass_("letmein").startswith(b"+OK"), "ssl=True: POP3S port")
    pop.quit()
    sid = dc.proc.pid
    dc.stop()
    t.eq(dc.pids(sid), [], "stop: no process of the TLS instance left")


def main(t):
    dc = Dovecot(users={"alice": "alice-pw", "bob": "bob-pw"})
    imap_pop3(t, dc)
    submission(t, dc)
    tls_and_passdb(t)
    sid = dc.proc.pid
    dc.stop()
    t.eq(dc.pids(sid), [], "stop: no process of this instance left")
    t.ok(not listening(dc.imap_port) and not listening(dc.pop3_port), "stop: IMAP and POP3 ports closed")


t = Tap()
t.run(main)
t.done()
