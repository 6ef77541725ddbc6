#!/usr/bin/python3
"""Self-test of mwtest.postfix: a private Postfix relaying to smtp-sink."""
import os
import re
import socket
import subprocess
import sys

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import SMTPRejected, send, swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

HEADERS = b"From: a@friend.example\r\nTo: alice@example.org\r\nSubject: harness\r\n"
# swaks ends the data with its own CRLF before the final ".": no line break
# at the end here, one at the sink
BODY = b"line one\r\n.leading dot\r\n\r\n  indented, trailing space \r\nlast line"
ETC_MAIN_CF = "/etc/postfix/main.cf"


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def snippet(t, pf):
    path = sandbox.path("snippet.cf")
    with open(path, "w") as f:
        f.write("# a test snippet\n"
                "smtpd_helo_required = yes\n"
                "   # an indented comment\n"
                "smtpd_milters =\n"
                "    unix:/run/mailward/a.sock,\n"
                "    unix:/run/mailward/b.sock\n"
                "milter_default_action = tempfail\n"
                "# --- master.cf ---\n"
                "# a master.cf comment\n"
                "mwtest    unix  -       n       n       -       -       pipe\n"
                "  flags=Rq user=nobody argv=/bin/cat\n")
    run = sandbox.mkdir("run")
    got = pf.apply_snippet(path, replace={"/run/mailward/": run + "/"})
    t.eq(len(got), 3, "snippet: three main.cf settings")

    def postconf(*args):
        return subprocess.run(["postconf", "-c", pf.config_dir] + list(args),
                              capture_output=True, text=True).stdout.strip()
    t.eq(postconf("-h", "smtpd_helo_required"), "yes", "snippet: main.cf setting visible to postconf -c DIR -h")
    t.eq(postconf("-h", "smtpd_milters"), "unix:%s/a.sock, unix:%s/b.sock" % (run, run),
         "snippet: continuation lines joined, /run/mailward/ rewritten")
    t.ok(re.search(r"^mwtest\s+unix\s+-\s+n\s+n\s+-\s+-\s+pipe flags=Rq user=nobody argv=/bin/cat$",
                   postconf("-M", "mwtest/unix"), re.M),
         "snippet: master.cf service (with its continuation line) visible to postconf -M", postconf("-M"))
    pf.set(smtpd_milters="")  # nothing listens there


def main(t):
    etc_before = os.path.exists(ETC_MAIN_CF)
    pf = Postfix(main={"relay_domains": "example.org"})
    snippet(t, pf)

    pf.start()
    pid = pf.master_pid()
    t.ok(pid and os.path.exists("/proc/%d" % pid), "start: master runs")
    t.ok(listening(pf.port) and listening(pf.sink_port), "start: smtpd and the sink listen on loopback")
    t.eq(os.path.exists(ETC_MAIN_CF), etc_before, "nothing created in /etc/postfix")

    # --- one message through swaks ---
    code, transcript = swaks("--from", "a@friend.example", "--to", "alice@example.org",
                             "--helo", "client.friend.example", "--data", "-",
                             port=pf.port, input=HEADERS + b"\r\n" + BODY)
    t.eq(code, 0, "swaks: message accepted") or t.diag(transcript)
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as (\w+)", transcript)
    t.ok(m, "swaks: transcript shows the queue id", transcript)
    qid = m.group(1) if m else "NOQID"
    msgs = pf.wait_delivered(1)
    t.eq(len(msgs), 1, "one message at the sink")
    head, sep, body = msgs[0].partition(b"\r\n\r\n")
    t.eq(body, BODY + b"\r\n", "body arrives byte-exact (CRLF, dot unstuffed, spaces kept)")
    received = (rb"^Received: from client\.friend\.example \(localhost \[127\.0\.0\.1\]\)\r\n"
                rb"\tby mx\.example\.org \(Postfix\) with ESMTP id %s\r\n\tfor <alice@example\.org>;" % qid.encode())
    t.ok(re.search(received, head, re.M),
         "Postfix's Received header names the HELO and the queue id", head.decode(errors="replace"))
    t.contains(head, HEADERS.rstrip(b"\r\n"), "the client's headers arrive unchanged")
    env = pf.envelopes()[0]
    t.eq((env["mail_from"].split()[0], [r.split()[0] for r in env["rcpts"]]),
         ("<a@friend.example>", ["<alice@example.org>"]), "sink: the envelope as sent")
    t.ok(not msgs[0].startswith(b"X-") and b"(smtp-sink)" not in msgs[0],
         "sink: its own lines are not part of delivered()")

    # --- the log ---
    pf.wait_log(r"%s: removed" % qid)
    log = pf.log()
    t.ok(re.search(r"postfix/smtpd\[\d+\]: %s: client=localhost\[127\.0\.0\.1\]" % qid, log),
         "maillog: smtpd logged the client", log)
    t.ok(re.search(r"postfix/(relay/)?smtp\[\d+\]: %s: to=<alice@example\.org>, "
                   r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent \(250 " % (qid, pf.sink_port), log),
         "maillog: relayed to the sink, status=sent", log)
    t.eq(pf.queue(), [], "queue is empty afterwards")

    # --- relay policy ---
    code, _ = send(pf.port, "a@friend.example", "bob@elsewhere.example", HEADERS + b"\r\nrelay\r\n")
    t.eq(code, 250, "relay: 127.0.0.1 (in mynetworks) may relay anywhere")
    pf.wait_delivered(2)  # before the reload below, which restarts qmgr
    pf.set(mynetworks="127.0.0.1/32")  # reloads the running instance
    try:
        send(pf.port, "a@friend.example", "bob@elsewhere.example", HEADERS + b"\r\nx\r\n",
             source_address="127.0.0.2")
        t.ok(False, "relay: 127.0.0.2 outside mynetworks may not relay")
    except SMTPRejected as e:
        t.ok(e.smtp_code == 554 and e.stage == "RCPT" and "Relay access denied" in e.smtp_error,
             "relay: 127.0.0.2 outside mynetworks may not relay (554 at RCPT)", str(e))
    code, _ = send(pf.port, "a@friend.example", "carol@example.org", HEADERS + b"\r\ninbound\r\n",
                   source_address="127.0.0.2")
    t.eq(code, 250, "relay: but may send to relay_domains")
    msgs = pf.wait_delivered(3)
    t.ok(msgs[1].endswith(b"\r\n\r\nrelay\r\n") and msgs[2].endswith(b"\r\n\r\ninbound\r\n"),
         "delivered() lists messages in arrival order", [m[-20:] for m in msgs])

    # --- a held message: queue(), postcat() ---
    checks = sandbox.path("header_checks")
    with open(checks, "w") as f:
        f.write("/^Subject: hold me/ HOLD\n")
    pf.set(header_checks="regexp:" + checks)
    code, text = send(pf.port, "a@friend.example", "dave@example.org", b"Subject: hold me\r\n\r\nheld\r\n")
    held = re.search(r"queued as (\w+)", text).group(1)
    pf.wait_log(r"%s: .*header Subject: hold me" % held)
    t.eq([(q["queue_name"], q["queue_id"]) for q in pf.queue()], [("hold", held)], "queue(): the held message")
    t.contains(pf.postcat(held), "Subject: hold me", "postcat(): its content")
    subprocess.run(["postsuper", "-c", pf.config_dir, "-d", held], capture_output=True, check=True)
    t.eq(pf.queue(), [], "queue is empty once it is deleted")

    # --- the next hop down: deferred, then delivered on flush() ---
    pf.stop_sink()
    code, text = send(pf.port, "a@friend.example", "erin@example.org", b"Subject: later\r\n\r\nlater\r\n")
    later = re.search(r"queued as (\w+)", text).group(1)
    pf.wait_log(r"%s: to=<erin@example\.org>, .*status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                r"Connection refused\)" % (later, pf.sink_port))
    # qmgr moves it to "active" for each retry (every second or two here),
    # and postqueue is slow on a loaded machine: a generous ceiling. Under
    # make -j2 a qmgr still draining after the reload above may hold the file
    # ("skipped, still being delivered"): the new qmgr then puts it back in
    # incoming for 60 s before it defers it, so wait well past that.
    def in_deferred():
        return [q for q in pf.queue() if q["queue_name"] == "deferred"]
    try:
        deferred = sandbox.wait_for(in_deferred, 120, what="the deferred queue")
    except TimeoutError:
        # seen under heavy load: "skipped, still being delivered" and the
        # file left in the active queue by qmgr for minutes (once > 240 s in
        # CI). Keep what it looked like, then ask for a new delivery attempt
        # (postqueue -f, what an admin does): with the next hop still down it
        # must end in the deferred queue with the same reason.
        t.diag("queue: %r\nmaillog:\n%s" % (pf.queue(), pf.log()[-4000:]))
        pf.flush()
        deferred = sandbox.wait_for(in_deferred, 180, what="the deferred queue after postqueue -f")
    t.ok(deferred[0]["queue_id"] == later and "Connection refused" in deferred[0]["recipients"][0]["delay_reason"],
         "next hop down: queue() shows the message deferred, with the reason", deferred)
    pf.start_sink()
    pf.flush()
    msgs = pf.wait_delivered(4)
    t.ok(msgs[3].endswith(b"\r\n\r\nlater\r\n"), "next hop back: flush() delivers it")
    pf.wait_log(r"%s: removed" % later)
    t.eq(pf.queue(), [], "queue is empty again")

    # --- a reload applies at once ---
    pf.set(smtpd_banner="$myhostname ESMTP reloaded")
    with socket.create_connection(("127.0.0.1", pf.port), 5) as s:
        banner = s.recv(200)
    t.eq(banner, b"220 mx.example.org ESMTP reloaded\r\n", "set() on a running instance: the next client sees it")

    # --- stop ---
    sink_port = pf.sink_port
    pf.stop()
    t.eq(pf.pids(pid), [], "stop: no process of this instance left")
    t.ok(not listening(pf.port) and not listening(sink_port), "stop: smtpd and the sink no longer listen")
    t.eq(os.path.exists(ETC_MAIN_CF), etc_before, "still nothing created in /etc/postfix")


t = Tap()
t.run(main)
t.done()
