#!/usr/bin/python3
"""policyd-rate under hostile or broken clients (issue 17, items 6-7): a bad
request after an answered one in the same write (once a use after free), a
client that pipelines and never reads its answers (memory stays bounded, it is
dropped and logged), file descriptors exhausted (accepting pauses and is
logged once; the daemon serves again once descriptors are free), and
max_connections above the descriptor limit (lowered, with a warning)."""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import Client, Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
RULE = "rule = u: key=sasl_username limit=1000/1h\n"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def bad_after_answered(t):
    d = Daemon(RULE)
    for n in range(3):
        c = d.client()
        c.send("request=x\n\nbad line\n\n")
        t.eq(c.reply(), "DUNNO", "round %d: the request before the bad line is answered" % n)
        t.ok(c.closed(), "round %d: then the connection is closed" % n)
        c.close()
    # the same with a pipelined run of good requests before the bad one
    c = d.client()
    c.send("request=x\n\n" * 50 + "bad line\n\n")
    t.eq([c.reply() for _ in range(50)], ["DUNNO"] * 50, "50 answers before a bad request")
    t.ok(c.closed(), "... then closed")
    c.close()
    t.ok(d.proc.poll() is None, "the daemon is still running", d.log()[-3000:])
    t.eq(d.client().ask(user="after@example.org"), "DUNNO", "and serves another client")
    t.ok("AddressSanitizer" not in d.log(), "no sanitizer report", d.log()[-3000:])
    d.stop()


def tiny_requests(t):
    """Many tiny requests in one write: answered in a loop, not by recursion."""
    d = Daemon(RULE)
    c = d.client()
    n = 200000
    sender = threading.Thread(target=lambda: c.send(b"a=\n\n" * n))
    sender.start()
    got = 0
    while got < n:
        r = c.reply()
        if r is None:
            break
        got += 1
    sender.join()
    t.eq(got, n, "%d tiny pipelined requests: every one answered" % n)
    t.ok(d.proc.poll() is None, "the daemon is still running", d.log()[-2000:])
    c.close()
    d.stop()


def never_reads(t):
    d = Daemon(RULE + "client_write_timeout = 2s\n")
    pid = d.proc.pid
    warm = d.client()
    for _ in range(100):
        warm.ask(user="warm@example.org", stage="RCPT")
    warm.close()
    base = rss_kb(pid)
    c = d.client()
    total = 64 * 1024 * 1024  # 16 M requests whose answers are 3.5 times their size
    chunk = b"a=\n\n" * 16384
    state = {"sent": 0, "peak": base, "error": None}

    def send():
        c.s.settimeout(120)
        try:
            while state["sent"] < total:
                c.s.sendall(chunk)
                state["sent"] += len(chunk)
        except OSError as e:
            state["error"] = e
    th = threading.Thread(target=send)
    th.start()
    while th.is_alive():
        state["peak"] = max(state["peak"], rss_kb(pid))
        th.join(0.05)
    state["peak"] = max(state["peak"], rss_kb(pid))
    grown = (state["peak"] - base) // 1024
    t.ok(grown < 40, "a client that never reads: the daemon grew by %d MB (< 40 MB)" % grown)
    t.ok(state["error"] is not None and state["sent"] < total,
         "... and is dropped before it sent %d MB (sent %d MB, %r)" % (total >> 20, state["sent"] >> 20, state["error"]))
    try:
        d.wait_log("has not read its answers", timeout=30)
    except TimeoutError:
        pass
    t.contains(d.log(), "has not read its answers", "the drop is logged")
    c.close()
    t.eq(d.client().ask(user="after@example.org"), "DUNNO", "another client is served")
    d.stop()


def fd_exhaustion(t):
    port = sandbox.free_port()
    d = Daemon(RULE + "metrics_listen = inet:%d@127.0.0.1\n" % port, start=False)
    d.wrap = ["prlimit", "--nofile=64:64"]
    d.start()
    log = d.log()
    t.ok("max_connections = 10000" in log and "accepting at most" in log,
         "max_connections above the fd limit: lowered with a warning", log[-1500:])
    # metrics connections (not counted in max_connections) use up descriptors
    mark = len(d.log())
    held = []
    for _ in range(70):
        held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    c = Client(d.socket, timeout=60)
    c.send("request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=fd@example.org\n\n")
    try:
        d.wait_log("cannot accept connections", timeout=20, since=0)
    except TimeoutError:
        pass
    time.sleep(2)
    lines = [ln for ln in d.log()[mark:].splitlines() if "accept" in ln.lower()]
    t.ok(0 < len(lines) <= 3, "out of descriptors: logged once, not in a loop (%d lines)" % len(lines),
         "\n".join(lines[:5]))
    for s in held:
        s.close()
    t.eq(c.reply(), "DUNNO", "once descriptors are free, the waiting client is served")
    t.eq(d.client().ask(user="fd2@example.org", stage="RCPT"), "DUNNO", "and new clients too")
    t.contains(d.log(), "accepting connections again", "the recovery is logged")
    c.close()
    d.stop()


def clamped(t):
    d = Daemon(RULE + "max_connections = 1000\n", start=False)
    d.wrap = ["prlimit", "--nofile=64:64"]
    d.start()
    m = re.search(r"accepting at most (\d+) policy connections", d.log())
    n = int(m.group(1)) if m else 0
    t.ok(m and 16 <= n < 64, "max_connections 1000 with 64 fds: lowered to %d, with a warning" % n, d.log())
    clients = [d.client() for _ in range(n)]
    for c in clients:
        c.ask(user="clamp@example.org", stage="RCPT")
    extra = d.client()
    t.ok(extra.closed(timeout=10), "connection %d is closed" % (n + 1))
    extra.close()
    t.ok(d.proc.poll() is None, "the daemon is still running")
    for c in clients:
        c.close()
    d.stop()


t.run(bad_after_answered)
t.run(tiny_requests)
t.run(never_reads)
t.run(fd_exhaustion)
t.run(clamped)
t.done()
