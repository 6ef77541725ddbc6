#!/usr/bin/python3
"""Self-test of mwtest.redis: a private Redis that tests can kill and restart."""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
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
    t.eq(r.cli("SET", "k", "v").strip(), "OK", "SET")
    t.eq(r.cli("GET", "k").strip(), "v", "GET reads it back")
    port = r.port
    r.kill()
    t.ok(not reachable(port), "killed: the port refuses connections")
    r.restart()
    t.eq(r.port, port, "restarted on the same port")
    t.eq(r.cli("GET", "k").strip(), "", "no persistence: the key is gone after a restart")
    s = Redis(password="s3cret")
    t.ok("NOAUTH" in __import__("subprocess").run(["redis-cli", "-p", str(s.port), "GET", "x"],
                                                    capture_output=True, text=True).stdout,
         "a password-protected instance refuses unauthenticated commands")
    t.eq(s.cli("PING").strip(), "PONG", "and answers with the password")
    r.stop()
    s.stop()
    t.ok(not reachable(port), "stopped")


t = Tap()
t.run(main)
t.done()
