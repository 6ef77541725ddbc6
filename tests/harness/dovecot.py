#!/usr/bin/python3
"""Self-test of mwtest.dovecot: IMAP, POP3, and Postfix SASL through it."""
import imaplib
import os
import poplib
import smtplib
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import auth_send  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

MSG = b"From: alice@example.org\r\nSubject: via submission\r\n\r\nhello\r\n"


def main(t):
    dc = Dovecot(users={"alice": "alice-pw", "bob": "bob-pw"})
    im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
    t.eq(im.login("alice", "alice-pw")[0], "OK", "IMAP LOGIN with the right password")
    im.append("INBOX", None, None, b"From: x@y.example\r\nSubject: stored\r\n\r\nbody\r\n")
    im.select("INBOX")
    typ, data = im.search(None, "ALL")
    t.eq(data[0].split(), [b"1"], "a message appended over IMAP is listed")
    im.logout()
    im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
    try:
        im.login("alice", "wrong")
        t.ok(False, "IMAP LOGIN with a wrong password fails")
    except imaplib.IMAP4.error:
        t.ok(True, "IMAP LOGIN with a wrong password fails")
    pop = poplib.POP3("127.0.0.1", dc.pop3_port)
    pop.user("bob")
    t.ok(pop.pass_("bob-pw").startswith(b"+OK"), "POP3 login")
    pop.quit()

    pf = Postfix()
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()
    code, _ = auth_send(pf.submission_port, "alice", "alice-pw", "alice@example.org",
                        "friend@friend.example", MSG)
    t.eq(code, 250, "submission: AUTH PLAIN through Dovecot, message accepted")
    t.ok(b"Subject: via submission" in pf.wait_delivered(1)[0], "and relayed to the next hop")
    try:
        auth_send(pf.submission_port, "alice", "nope", "alice@example.org", "friend@friend.example", MSG)
        t.ok(False, "submission: a wrong password is refused")
    except smtplib.SMTPAuthenticationError as e:
        t.eq(e.smtp_code, 535, "submission: a wrong password is refused (535)")
    t.contains(dc.log(), "auth", "Dovecot logs to its own file")
    pf.stop()
    dc.stop()


t = Tap()
t.run(main)
t.done()
