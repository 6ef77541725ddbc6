#!/usr/bin/python3
"""Self-test of mwtest.postfix: a private Postfix relaying to smtp-sink."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import send, swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

BODY = b"Subject: harness\r\nFrom: a@friend.example\r\n\r\nline one\r\n.leading dot\r\n"


def main(t):
    snippet = sandbox.path("snippet.cf")
    with open(snippet, "w") as f:
        f.write("# a test snippet\nsmtpd_helo_required = yes\nsmtpd_milters =\n"
                "    unix:/run/mailward/none.sock\n# --- master.cf ---\n"
                "mwtest    unix  -       -       n       -       -       error\n")
    pf = Postfix(main={"relay_domains": "example.org"})
    pf.apply_snippet(snippet, replace={"/run/mailward/": sandbox.path("run") + "/"})
    t.eq(pf.get("smtpd_helo_required"), "yes", "snippet: main.cf setting pasted")
    t.eq(pf.get("smtpd_milters"), "unix:%s/none.sock" % sandbox.path("run"),
         "snippet: continuation joined and path rewritten")
    pf.set(smtpd_milters="")
    master = open(os.path.join(pf.conf, "master.cf")).read()
    t.ok("\nmwtest    unix" in master, "snippet: master.cf service appended")
    pf.start()
    code, transcript = swaks("--from", "a@friend.example", "--to", "alice@example.org", "--data", "-",
                             "--helo", "client.friend.example", port=pf.port, input=BODY)
    t.eq(code, 0, "swaks: accepted", ) or t.diag(transcript)
    msgs = pf.wait_delivered(1)
    t.eq(len(msgs), 1, "one message at the sink")
    t.ok(b"\n\nline one\n.leading dot\n" in msgs[0], "body arrives intact (dot unstuffed)", repr(msgs[0][-80:]))
    t.ok(b"Received: from client.friend.example" in msgs[0], "Postfix added its Received header")
    t.ok(b"X-Mail-Args" not in msgs[0] and b"<a@friend.example>" in pf.delivered_raw()[0],
         "sink envelope lines kept apart from the message")
    pf.wait_log(r"status=sent")
    t.contains(pf.log(), "to=<alice@example.org>", "maillog records the delivery")
    t.eq(pf.queue(), [], "queue is empty afterwards")
    try:
        send(pf.port, "a@friend.example", "someone@elsewhere.example", BODY, source_address=None)
        relayed = True
    except Exception:
        relayed = False
    t.ok(not relayed or pf.get("mynetworks") == "127.0.0.0/8",
         "relay policy: mynetworks may relay (the default 127.0.0.0/8)")
    pid = pf.master_pid()
    t.ok(pid and os.path.exists("/proc/%d" % pid), "master runs")
    pf.stop()
    t.ok(not os.path.exists("/proc/%d" % pid), "stop: master gone")
    left = subprocess.run(["pgrep", "-f", pf.conf], capture_output=True, text=True).stdout.strip()
    t.eq(left, "", "stop: no process of this instance left")


t = Tap()
t.run(main)
t.done()
