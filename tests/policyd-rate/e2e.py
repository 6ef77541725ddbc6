#!/usr/bin/python3
"""policyd-rate end to end: a private Postfix with contrib/postfix/policyd-rate.cf
pasted unchanged, Dovecot SASL on a submission port, policyd-rate as an
unprivileged daemon; swaks sends as an authenticated user until the limit
defers it. Then: refused recipients are not counted, and Postfix keeps
delivering (default_action=DUNNO) when policyd-rate is down."""
import os
import pwd
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()


def send(pf, user, password, rcpts=("friend@remote.example",), subject="hello"):
    args = ["--from", "%s@example.org" % user, "--helo", "laptop.example",
            "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
            "--header", "Subject: %s" % subject, "--body", "just a test"]
    for r in rcpts:
        args += ["--to", r]
    return swaks(*args, port=pf.submission_port)


def main(t):
    pf = Postfix(main={"smtpd_recipient_restrictions":
                       "check_recipient_access inline:{ refused@remote.example=REJECT }"})
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    d = Daemon("rule = per-user: key=sasl_username|sender limit=3/1h\n"
               "socket = unix:%s/policyd-rate.sock\nuser = nobody\nsocket_group = postfix\nsocket_mode = 0660\n"
               % sockdir, name="pr-e2e")
    st = os.stat(os.path.join(sockdir, "policyd-rate.sock"))
    t.ok(st.st_mode & 0o777 == 0o660 and st.st_uid == pwd.getpwnam("nobody").pw_uid,
         "policy socket mode 0660, owned by the daemon's user")
    status = open("/proc/%d/status" % d.proc.pid).read()
    t.ok("Uid:\t65534\t65534\t65534\t65534" in status, "the daemon runs as nobody after binding")

    settings = pf.apply_snippet("contrib/postfix/policyd-rate.cf")
    t.ok(any(n == "smtpd_end_of_data_restrictions" for n, _ in settings),
         "the contrib snippet sets smtpd_end_of_data_restrictions")
    dc = Dovecot(users={"alice": "alice-pw", "bob": "bob-pw"})
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()

    results = [send(pf, "alice", "alice-pw", subject="msg %d" % i) for i in range(1, 4)]
    t.eq([r[0] for r in results], [0, 0, 0], "alice's messages 1-3 are accepted") or t.diag(results[-1][1])
    code, tr = send(pf, "alice", "alice-pw", subject="msg 4")
    t.ok(code != 0 and "4.7.1" in tr and "Sending rate limit exceeded for alice" in tr and "3 messages per hour" in tr,
         "the 4th is deferred at end of data with 4.7.1 and the reason", tr[-800:])
    t.ok(any(ln.startswith("<** 45") for ln in tr.splitlines()), "... with a 45x (temporary) SMTP reply", tr[-400:])
    t.eq(send(pf, "bob", "bob-pw")[0], 0, "bob is not affected")
    pf.wait_delivered(4, timeout=20)
    t.contains(d.log(), "sasl_username=alice", "policyd-rate logs the deferral with the user")
    t.ok(any("Sending rate limit exceeded for alice" in ln and "postfix/submission" in ln
             for ln in pf.log().splitlines()), "Postfix logs the refusal")

    # a message refused before end of data is not counted
    code, tr = send(pf, "bob", "bob-pw", rcpts=("refused@remote.example",))
    t.ok(code != 0, "a message to a refused recipient is refused at RCPT", tr[-300:])
    results = [send(pf, "bob", "bob-pw", subject="bob %d" % i)[0] for i in range(2)]
    t.eq(results, [0, 0], "... and not counted: bob still has 2 of 3 left")

    # policyd-rate down: default_action=DUNNO lets mail flow
    d.stop()
    code, tr = send(pf, "alice", "alice-pw", subject="while down")
    t.eq(code, 0, "policyd-rate down: mail is accepted (default_action=DUNNO)") or t.diag(tr[-500:])
    d.start()
    code, tr = send(pf, "alice", "alice-pw", subject="after restart")
    t.ok(code == 0, "after a restart the in-memory store starts empty (use store = redis to keep counts)", tr[-300:])
    pf.stop()
    dc.stop()
    d.stop()


t.run(main)
t.done()
