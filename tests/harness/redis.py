#!/usr/bin/python3
"""Self-test of mwtest.redis: a private Redis that tests can kill and restart."""
import os
import socket
import subprocess
import sys

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest.redis import Redis  # noqa: E402
from mwtest.tap import Tap  # noqa: E402


def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def main(t):
    r = Redis()
    port, pid = r.port, r.proc.pid
    t.eq(r.cli("PING").strip(), "PONG", "started: answers PING")
    t.eq(r.cli("SET", "k", "v 1").strip(), "OK", "SET")
    t.eq(r.cli("GET", "k").strip(), "v 1", "GET reads it back")
    t.eq(r.cli("CONFIG", "GET", "dir").split("\n")[1], r.dir, "its directory is in the sandbox")
    t.eq(r.cli("CONFIG", "GET", "save").split("\n")[1], "", "no RDB snapshots")

    r.kill()
    t.ok(not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z",
         "kill: the process is gone")
    t.ok(not reachable(port), "kill: the port refuses connections")
    try:
        r.cli("PING")
        t.ok(False, "kill: redis-cli fails")
    except RuntimeError as e:
        t.contains(str(e), "Connection refused", "kill: redis-cli fails (connection refused)")

    r.restart()
    t.eq(r.port, port, "restart: same port")
    t.eq(r.cli("PING").strip(), "PONG", "restart: answers PING")
    t.eq(r.cli("DBSIZE").strip(), "0", "restart: empty (nothing was persisted)")
    t.eq(r.cli("GET", "k").strip(), "", "restart: the old key is gone")

    s = Redis(password="s3cret")
    out = subprocess.run(["redis-cli", "-p", str(s.port), "GET", "x"], capture_output=True, text=True).stdout
    t.contains(out, "NOAUTH", "password: unauthenticated commands are refused")
    t.eq(s.cli("PING").strip(), "PONG", "password: .cli() authenticates")

    r.stop()
    s.stop()
    t.ok(not reachable(port) and not reachable(s.port), "stop: both ports closed")
    t.ok(r.proc is None and s.proc is None, "stop: no process left")


t = Tap()
t.run(main)
t.done()
