#!/usr/bin/python3
"""policyd-rate speaks the Postfix policy protocol: every attribute Postfix
sends, pipelined requests, slow clients, malformed and oversized requests
(closed with a clear log line while others are still served), idle clients,
the connection limit, and the daemon contract (-C, -n, exit 2)."""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prtest  # noqa: E402
from prtest import Daemon, request  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
d = Daemon("rule = per-user: key=sasl_username|sender limit=3/1h\nclient_timeout = 2s\nmax_connections = 20\n")


def all_attributes(t):
    c = d.client()
    t.eq(c.ask(user="attrs@example.org"), "DUNNO", "a request with every Postfix attribute is answered DUNNO")
    # Postfix may add attributes in later versions: ignored, not an error
    c.send(request(user="attrs@example.org", future_attribute="x", another_one="y=z"))
    t.eq(c.reply(), "DUNNO", "unknown attributes are ignored")
    # values may contain '=' and spaces
    t.eq(c.ask(user="attrs@example.org", helo_name="a = b"), "DUNNO", "a value with '=' and spaces")
    # stages that are never limited
    for stage in ("CONNECT", "EHLO", "HELO", "MAIL", "VRFY", "ETRN"):
        t.eq(c.ask(stage=stage, user="attrs@example.org"), "DUNNO", "%s stage answered DUNNO" % stage)
    c.close()


def pipelined(t):
    c = d.client()
    # 3/1h: of 6 pipelined end-of-message requests, the first 3 pass, in order
    c.send("".join(request(user="pipe@example.org") for _ in range(6)))
    got = [c.reply() for _ in range(6)]
    t.eq([g.split()[0] for g in got], ["DUNNO"] * 3 + ["DEFER_IF_PERMIT"] * 3,
         "6 pipelined requests: 6 answers in order, the 4th deferred")
    # many requests in one write, on a fresh key each: all answered
    c.send("".join(request(user="p%d@example.org" % i) for i in range(500)))
    got = [c.reply() for _ in range(500)]
    t.eq(got.count("DUNNO"), 500, "500 pipelined requests in one write: 500 answers")
    c.close()


def slow_client(t):
    c = d.client()
    data = request(user="slow@example.org").encode()
    for i in range(0, len(data), 7):
        c.send(data[i:i + 7])
        time.sleep(0.002)
    t.eq(c.reply(), "DUNNO", "a request sent 7 bytes at a time is answered")
    # a slow client does not hold up others
    other = d.client()
    c.send(data[:20])
    t.eq(other.ask(user="fast@example.org"), "DUNNO", "another client is served while one is half-way")
    c.send(data[20:])
    t.eq(c.reply(), "DUNNO", "the slow client is answered when its request ends")
    other.close()
    c.close()


def bad(name, payload, log_text):
    mark = len(d.log())
    bystander = d.client()
    c = d.client()
    try:
        c.send(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    t.ok(c.closed(), "%s: connection closed" % name)
    try:
        sandbox.wait_for(lambda: log_text in d.log()[mark:], 5, what=log_text)
    except TimeoutError:
        pass
    t.contains(d.log()[mark:], log_text, "%s: logged" % name)
    t.eq(bystander.ask(user="bystander@example.org", stage="RCPT"), "DUNNO", "%s: another connection is still served" % name)
    bystander.close()
    c.close()


def malformed(t):
    bad("a line without '='", "request=smtpd_access_policy\nthis is not an attribute\n\n", "closing a policy connection")
    bad("a NUL byte", b"request=smtpd_access_policy\nsender=a\x00b\n\n", "closing a policy connection")
    bad("a line over 4096 bytes", "request=smtpd_access_policy\nsender=" + "a" * 5000 + "\n\n",
        "closing a policy connection")
    bad("over 128 attributes", "request=smtpd_access_policy\n" + "".join("x%d=1\n" % i for i in range(200)) + "\n",
        "closing a policy connection")
    bad("a request over 64 KB", "request=smtpd_access_policy\n" + ("x=" + "b" * 4000 + "\n") * 20 + "\n",
        "closing a policy connection")
    c = d.client()
    c.send("request=something_else\nsender=a\n\n")
    t.eq(c.reply(), "DUNNO", "a request of another type is answered DUNNO")
    c.close()
    t.ok(d.proc.poll() is None, "the daemon is still running after malformed input")


def idle_timeout(t):
    c = d.client()
    t.eq(c.ask(user="idle@example.org"), "DUNNO", "idle client: first request answered")
    start = time.monotonic()
    t.ok(c.closed(timeout=10), "an idle client is disconnected (client_timeout = 2s)")
    t.ok(time.monotonic() - start < 8, "... within a bound of client_timeout")
    c.close()


def connection_limit(t):
    clients = [d.client() for _ in range(20)]
    for c in clients:
        c.ask(user="conn@example.org", stage="RCPT")
    extra = d.client()
    t.ok(extra.closed(timeout=5), "connection 21 over max_connections = 20 is closed")
    extra.close()
    clients.pop().close()
    time.sleep(0.2)
    again = d.client()
    t.eq(again.ask(user="conn@example.org", stage="RCPT"), "DUNNO", "a slot freed is used again")
    again.close()
    for c in clients:
        c.close()


def concurrent_clients(t):
    errors = []

    def worker(i):
        try:
            c = d.client()
            for j in range(50):
                if c.ask(user="w%d-%d@example.org" % (i, j % 10), stage="RCPT") != "DUNNO":
                    errors.append("unexpected answer")
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.eq(errors, [], "16 concurrent clients x 50 requests, all answered")


def contract(t):
    conf = sandbox.path("contract.conf")
    with open(conf, "w") as f:
        f.write("rule = u: key=sasl_username limit=10/1m\nstore = memory\n")
    p = subprocess.run([prtest.POLICYD, "-C", "-c", conf], capture_output=True, text=True)
    t.eq(p.returncode, 0, "-C on a good file exits 0")
    p = subprocess.run([prtest.POLICYD, "-n", "-c", conf], capture_output=True, text=True)
    t.ok(p.returncode == 0 and "rule = u:" in p.stdout and "on_store_error = local" in p.stdout,
         "-n prints the effective configuration with defaults", p.stdout[:400])
    cases = [
        ("rule = u: key=nonsense limit=10/1m\n", ":1: "),
        ("rule = u: key=sasl_username limit=10/1fortnight\n", ":1: "),
        ("rule = u: key=sasl_username limit=10/1m\nstore = sql\n", ":2: "),
        ("rule = u: key=sasl_username limit=10/1m\nrate = 5\n", ":2: "),
        ("rule = u: key=sasl_username limit=10/1m\nrule = u: key=sender limit=1/1m\n", ":2: "),
        ("store = memory\n", "no rule"),
    ]
    for text, want in cases:
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.run([prtest.POLICYD, "-C", "-c", conf], capture_output=True, text=True)
        t.ok(p.returncode == 2 and want in p.stderr and conf in p.stderr,
             "bad config %r: exit 2 with %r" % (text.splitlines()[-1], want), p.stderr)
    ov = sandbox.path("contract.overrides")
    with open(ov, "w") as f:
        f.write("alice@example.org u 5/1h\nbob@example.org nosuchrule 5/1h\n")
    with open(conf, "w") as f:
        f.write("rule = u: key=sasl_username limit=10/1m\noverrides_file = %s\n" % ov)
    p = subprocess.run([prtest.POLICYD, "-C", "-c", conf], capture_output=True, text=True)
    t.ok(p.returncode == 2 and ov + ":" in p.stderr and "nosuchrule" in p.stderr,
         "a bad overrides line: exit 2 naming the file and the rule", p.stderr)


def sigterm(t):
    c = d.client()
    c.ask(user="term@example.org")
    rc = d.stop()
    t.eq(rc, 0, "SIGTERM: exits 0")
    t.contains(d.log(), "stopped after", "SIGTERM: logs how many requests it answered")


t.run(all_attributes)
t.run(pipelined)
t.run(slow_client)
t.run(malformed)
t.run(idle_timeout)
t.run(connection_limit)
t.run(concurrent_clients)
t.run(contract)
t.run(sigterm)
t.done()
