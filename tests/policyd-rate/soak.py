#!/usr/bin/python3
"""policyd-rate soak and faults: sustained mail through a private Postfix
(contrib/postfix/policyd-rate.cf) counted in Redis for MW_SOAK_SECONDS
(default 60; higher for a long soak), while
- its resident memory is sampled every second (no growth after warm-up),
- SIGHUP arrives every second, alternately with a good and a bad config,
- clients hang up in the middle of a message,
- Redis is stalled (SIGSTOP) for a while, later killed and started again.
Afterwards: the count in Redis matches the mail Postfix accepted (none lost,
none counted twice; a message deferred because Redis was stalled may have
been counted when Redis woke up, and only that); every deferral was logged;
file descriptors are back; the daemon still answers."""
import os
import pwd
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import POLICYD, Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.procwatch import check_fds_back, check_rss_flat, fds, rss_kb  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.smtp import SMTPRejected, send  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

SECONDS = int(os.environ.get("MW_SOAK_SECONDS", "60"))
CLIENT = "127.0.0.5"
# the longest window (366 d), a limit the load never reaches: capacity comes
# back at LIMIT/366 d per second, a fraction of a message in a short run
# (allowed for: DECAY)
LIMIT = max(20000, SECONDS * 100)
DECAY = LIMIT / (366 * 86400.0)
RULE = "rule = per-client: key=client_address limit=%d/366d\n" % LIMIT


class Load:
    def __init__(self, pf):
        self.pf = pf
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []  # ("accepted"|"tempfail"|"rejected"|"error", text)

    def one(self, n):
        msg = "From: a@client.example\r\nTo: friend@remote.example\r\nSubject: soak %d\r\n\r\nbody\r\n" % n
        try:
            code, text = send(self.pf.port, "a@client.example", "friend@remote.example", msg,
                              source_address=CLIENT, timeout=120)
            res = ("accepted", text)
        except SMTPRejected as e:
            res = ("tempfail" if 400 <= e.smtp_code < 500 else "rejected", str(e))
        except (OSError, smtplib.SMTPException) as e:
            res = ("error", repr(e))
        with self.lock:
            self.results.append(res)

    def sender(self, worker):
        n = 0
        while not self.stop.is_set():
            n += 1
            self.one(worker * 1000000 + n)

    def hangups(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.pf.port), 30,
                                              source_address=(CLIENT, 0)) as s:
                    s.sendall(b"EHLO client.example\r\nMAIL FROM:<a@client.example>\r\n"
                              b"RCPT TO:<friend@remote.example>\r\nDATA\r\n")
                    time.sleep(0.2)
                    s.sendall(b"Subject: cut\r\n\r\nhalf a bo")
            except OSError:
                pass
            self.stop.wait(0.5)


def usage(d):
    rc, out = d.ctl("usage", "per-client:" + CLIENT)
    m = re.search(r"(\d+(?:\.\d+)?)\s*(?:/|of)\s*%d" % LIMIT, out)
    return (float(m.group(1)) if m else None), out


def main(t):
    # every write on disk before Redis answers: a killed Redis keeps what
    # it counted, so a count lost across the kill is policyd-rate's
    r = Redis(extra=["--appendonly", "yes", "--appendfsync", "always"])
    pf = Postfix(main={"relay_domains": "remote.example"})
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    good = ("%sstore = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 300ms\non_store_error = defer\n"
            "socket = unix:%s/policyd-rate.sock\nuser = nobody\nsocket_group = postfix\nsocket_mode = 0660\n"
            % (RULE, r.port, sockdir))
    d = Daemon(good, name="pr-soak")
    pf.apply_snippet("contrib/postfix/policyd-rate.cf")
    pf.start()
    pid = d.proc.pid
    t0 = time.monotonic()

    fd_before = fds(pid)  # no policy connection yet
    load = Load(pf)
    for i in range(10):
        load.one(i)
    t.eq([x[0] for x in load.results], ["accepted"] * 10, "warm-up mail accepted")
    rss, hups = [], {"good": 0, "bad": 0}
    threads = [threading.Thread(target=load.sender, args=(w,)) for w in (1, 2)]
    threads.append(threading.Thread(target=load.hangups))
    for th in threads:
        th.start()
    start = time.monotonic()
    # each fault lasts a tenth of the run, at least 3 s
    length = max(3, SECONDS * 0.1)
    stall = (SECONDS * 0.2, SECONDS * 0.2 + length)
    killed = (SECONDS * 0.5, SECONDS * 0.5 + length)
    state = "up"
    try:
        while time.monotonic() - start < SECONDS:
            el = time.monotonic() - start
            if state == "up" and stall[0] <= el:
                os.kill(r.proc.pid, signal.SIGSTOP)
                state = "stalled"
            elif state == "stalled" and el >= stall[1]:
                os.kill(r.proc.pid, signal.SIGCONT)
                state = "resumed"
            elif state == "resumed" and el >= killed[0]:
                r.kill()
                state = "killed"
            elif state == "killed" and el >= killed[1]:
                r.start(same_port=True)
                state = "back"
            kind = "bad" if int(el) % 2 else "good"
            d.write(good + ("no_such_setting = 1\n" if kind == "bad" else ""))
            os.kill(pid, signal.SIGHUP)
            hups[kind] += 1
            rss.append(rss_kb(pid))
            time.sleep(1)
    finally:
        load.stop.set()
        for th in threads:
            th.join(180)
        if state == "stalled":
            os.kill(r.proc.pid, signal.SIGCONT)
        if r.proc is None:
            r.start(same_port=True)
    d.write(good)
    os.kill(pid, signal.SIGHUP)

    t.ok(d.proc.poll() is None, "policyd-rate survived %d s of load and faults" % SECONDS)
    counts = {}
    for res, _ in load.results:
        counts[res] = counts.get(res, 0) + 1
    t.diag("results: %s; SIGHUPs %s; RSS samples (kB) %s" % (sorted(counts.items()), hups, rss))
    t.ok(counts.get("accepted", 0) >= 30, "mail flowed: %d accepted" % counts.get("accepted", 0))
    t.eq(counts.get("rejected", 0), 0, "nothing refused permanently (the limit is far)")
    t.ok(counts.get("tempfail", 0) > 0, "mail deferred while Redis was stalled or down (on_store_error = defer)")
    t.eq([x for x in load.results if x[0] == "error"], [], "no client saw a broken connection")

    accepted = counts.get("accepted", 0)
    # Postfix counts once at end of data; a message the daemon deferred
    # because Redis answered too late may have been counted by Redis after
    # all (the script ran when Redis woke up): only those may be extra
    late = sum(1 for res, text in load.results if res == "tempfail")
    try:
        sandbox.wait_for(lambda: usage(d)[0] is not None, 30, what="policyd-rate-ctl usage")
    except TimeoutError:
        t.diag(usage(d)[1])
        raise
    used, out = usage(d)
    slack = int(DECAY * (time.monotonic() - t0)) + 1
    used = round(used)
    t.ok(accepted - slack <= used <= accepted + late,
         "Redis counted every accepted message once: %d counted, %d accepted, %d deferred" % (used, accepted, late),
         out)

    log = d.log()
    t.ok(log.count("reload failed") > 0 and log.count("configuration reloaded") > 0,
         "good and bad reloads logged (%d ok, %d failed)" % (log.count("configuration reloaded"),
                                                              log.count("reload failed")))
    t.ok("no_such_setting" in log, "a failed reload says what is wrong")
    t.ok("Redis is not answering" in log, "the Redis outage was logged")

    check_rss_flat(t, POLICYD, rss)

    before = len(load.results)
    load.one(0)
    t.eq(load.results[before][0], "accepted", "afterwards mail still flows")
    t.ok(abs(usage(d)[0] - (used + 1)) < 1, "and is counted")
    pf.stop()  # smtpd processes close their policy connections
    check_fds_back(t, pid, fd_before)
    os.kill(pid, signal.SIGTERM)
    t.eq(d.proc.wait(30), 0, "policyd-rate exits cleanly on SIGTERM")


t = Tap()
t.run(main)
t.done()
