#!/usr/bin/python3
"""milter-pgp soak and faults: sustained mail through a private Postfix
(contrib/postfix/milter-pgp.cf) for MW_SOAK_SECONDS (default 20; set it
higher for a long soak), every message to a recipient with a key, while
- its resident memory is sampled every second (no growth after warm-up),
- SIGHUP arrives every second, alternately with a good and a bad config,
- clients hang up in the middle of a message,
- the keyring vanishes for a while (renamed away) and comes back.
Afterwards: every message accepted at SMTP was delivered exactly once and
encrypted, none in clear (mixed_recipients = plaintext would send mail in
clear to a recipient whose key seems missing: a vanished keyring must be a
tempfail); mail was deferred while the keyring was gone; file descriptors
are back; the daemon still answers and exits cleanly."""
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.procwatch import check_fds_back, check_rss_flat, fds, rss_kb  # noqa: E402
from mwtest.smtp import SMTPRejected, send  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

SECONDS = int(os.environ.get("MW_SOAK_SECONDS", "20"))


def message(token):
    return ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "secret body of %s\r\n" % (token, token)).encode()


class Load:
    def __init__(self, pf):
        self.pf = pf
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {}  # token -> ("accepted"|"rejected"|"tempfail"|"error", text)
        self.n = 0

    def one(self, worker):
        with self.lock:
            self.n += 1
            token = "soak-%d-%d" % (worker, self.n)
        try:
            _, text = send(self.pf.port, ALICE, BOB, message(token), timeout=120)
            res = "accepted"
        except SMTPRejected as e:
            res, text = ("tempfail" if 400 <= e.smtp_code < 500 else "rejected"), str(e)
        except (OSError, smtplib.SMTPException) as e:
            res, text = "error", repr(e)
        with self.lock:
            self.results[token] = (res, text)

    def sender(self, worker):
        while not self.stop.is_set():
            self.one(worker)

    def hangups(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.pf.port), 30) as s:
                    s.sendall(b"EHLO client.example\r\nMAIL FROM:<alice@example.org>\r\n"
                              b"RCPT TO:<bob@example.net>\r\nDATA\r\n")
                    time.sleep(0.2)
                    s.sendall(b"From: alice@example.org\r\nSubject: cut\r\n\r\nhalf a bo")
            except OSError:
                pass
            self.stop.wait(0.5)


def main(t):
    ring = sandbox.path("soak-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*"))
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    pf = Postfix(name="postfix-soak", mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    conf = sandbox.path("milter-pgp-soak.conf")
    base = ("socket = unix:%s/milter-pgp.sock\nkeyring = %s\ntmpdir = %s\nuser = nobody\nsocket_group = postfix\n"
            "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\nmixed_recipients = plaintext\n"
            % (sockdir, ring, sandbox.mkdir("soak-spool", mode=0o1777)))
    open(conf, "w").write(base)
    log = sandbox.path("milter-pgp-soak.log")
    proc = sandbox.spawn([mptest.MILTER_PGP, "-f", "-c", conf], log=log)
    sandbox.at_cleanup(lambda: sandbox.stop(proc))
    sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or proc.poll() is not None, 30,
                     what="milter-pgp to listen")
    pf.apply_snippet("contrib/postfix/milter-pgp.cf", replace={"127.0.0.1:10026": "127.0.0.1:%d" % sandbox.free_port()})
    pf.start()
    pid = proc.pid

    load = Load(pf)
    for _ in range(5):  # warm-up: the key cache, gpg-agent, thread pools
        load.one(0)
    fd_before = fds(pid)
    rss, hups = [], {"good": 0, "bad": 0}
    threads = [threading.Thread(target=load.sender, args=(w,)) for w in (1, 2)]
    threads.append(threading.Thread(target=load.hangups))
    for th in threads:
        th.start()
    start = time.monotonic()
    gone = (SECONDS * 0.4, SECONDS * 0.4 + max(5, SECONDS * 0.2))
    ring_state = "here"
    results_gone = None
    try:
        while time.monotonic() - start < SECONDS:
            el = time.monotonic() - start
            if ring_state == "here" and gone[0] <= el < gone[1]:
                mark = set(load.results)
                os.rename(ring, ring + ".gone")
                ring_state = "gone"
            elif ring_state == "gone" and el >= gone[1]:
                os.rename(ring + ".gone", ring)
                ring_state = "back"
                results_gone = {k: v for k, v in load.results.items() if k not in mark}
            kind = "bad" if int(el) % 2 else "good"
            open(conf, "w").write(base + ("no_such_setting = 1\n" if kind == "bad" else ""))
            os.kill(pid, signal.SIGHUP)
            hups[kind] += 1
            rss.append(rss_kb(pid))
            time.sleep(1)
    finally:
        load.stop.set()
        for th in threads:
            th.join(180)
        if os.path.exists(ring + ".gone"):
            os.rename(ring + ".gone", ring)
    open(conf, "w").write(base)
    os.kill(pid, signal.SIGHUP)

    t.ok(proc.poll() is None, "milter-pgp survived %d s of load and faults" % SECONDS)
    counts = {}
    for r, _ in load.results.values():
        counts[r] = counts.get(r, 0) + 1
    t.diag("results: %s; SIGHUPs %s; RSS samples (kB) %s" % (sorted(counts.items()), hups, rss))
    accepted = {tok for tok, (r, _) in load.results.items() if r == "accepted"}
    t.ok(len(accepted) >= 10, "mail flowed: %d messages accepted" % len(accepted))
    t.eq(counts.get("rejected", 0), 0, "nothing refused for good")
    gone_counts = {}
    for r, _ in (results_gone or {}).values():
        gone_counts[r] = gone_counts.get(r, 0) + 1
    t.ok(gone_counts.get("tempfail", 0) > 0, "mail deferred (4xx) while the keyring was gone: %s" % gone_counts)

    def delivered():
        out = {}
        for m in pf.delivered():
            for tok in set(x.decode() for x in re.findall(rb"^Subject: (soak-\d+-\d+)", m, re.M)):
                out.setdefault(tok, []).append(m)
        return out
    try:
        sandbox.wait_for(lambda: accepted <= set(delivered()), 120, interval=1, what="every accepted message")
    except TimeoutError:
        pass
    got = delivered()
    t.eq(sorted(accepted - set(got)), [], "no accepted message lost")
    t.eq(sorted(tok for tok, ms in got.items() if len(ms) > 1), [], "none delivered twice")
    t.eq(sorted(set(got) - accepted), [], "nothing delivered that was not accepted")
    clear = [tok for tok, ms in got.items() if b"secret body" in ms[0] or b"multipart/encrypted" not in ms[0]]
    t.eq(clear, [], "every delivered message encrypted, none in clear (keyring gone or not)")

    text = sandbox.read_text(log)
    t.ok(text.count("reload failed") > 0 and text.count("configuration reloaded") > 0,
         "good and bad reloads logged (%d ok, %d failed)" % (text.count("configuration reloaded"),
                                                              text.count("reload failed")))
    t.ok("tempfail=" in text and "keyring" in text, "the missing keyring was logged")
    check_rss_flat(t, mptest.MILTER_PGP, rss)
    check_fds_back(t, pid, fd_before)

    pf.clear_delivered()
    load.one(0)
    last = max(load.results, key=lambda k: int(k.split("-")[2]))
    m = pf.wait_delivered(1, timeout=120)[0] if load.results[last][0] == "accepted" else b""
    t.ok(b"multipart/encrypted" in m, "afterwards mail still flows, encrypted", load.results[last])
    pf.stop()
    os.kill(pid, signal.SIGTERM)
    t.eq(proc.wait(30), 0, "milter-pgp exits cleanly on SIGTERM")


t = Tap()
t.run(main)
t.done()
