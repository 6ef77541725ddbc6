#!/usr/bin/python3
"""Self-test of the sandbox's ports: sandbox.free_port() never hands out a
port twice, not even to two test processes running at once (make -j), and
never one of the kernel's ephemeral ports; a server whose port another
program took (Redis, Postfix and its next hop, Dovecot, the DNS server)
starts again on new ports instead of failing the test, and the DNS server
stopped and started again (the soak tests' "DNS gone and back") gets its own
port back: the registry's, which no client socket can take meanwhile."""
import os
import socket
import subprocess
import sys

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

HAND_OUT = """
import sys
sys.path.insert(0, %r)
from mwtest import sandbox
print(" ".join(str(sandbox.free_port()) for _ in range(%d)), flush=True)
sys.stdin.read()  # holds its ports until told to go
"""


def occupied():
    """A port this process listens on, as another program would."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", sandbox.free_port()))
    s.listen()
    sandbox.at_cleanup(s.close)
    return s, s.getsockname()[1]


def unique(t):
    ports = [sandbox.free_port() for _ in range(200)]
    t.eq(len(set(ports)), 200, "200 ports in one process: all different")
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    t.ok(all(not low <= p <= high for p in ports), "none in the kernel's ephemeral range %d-%d" % (low, high))
    # three processes at once, each taking 100 while the others do
    procs = [subprocess.Popen([sys.executable, "-c", HAND_OUT % (os.path.join(TOP, "tests", "lib"), 100)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    got = [p.stdout.readline().split() for p in procs]
    for p in procs:
        p.communicate("")
    every = [int(x) for g in got for x in g] + ports
    t.eq(len(every), 500, "three processes at once: 100 ports each")
    t.eq(len(set(every)), len(every), "no port handed out twice across processes")
    t.ok(sandbox.free_port() not in every, "the next one is new too")


def redis_retries(t):
    from mwtest.redis import Redis
    s, port = occupied()
    r = Redis(start=False)
    r.port = port
    r.start()
    t.ok(r.port != port and r.ping(), "Redis: its port taken, it starts on another one", r.port)
    r.stop()


def postfix_retries(t):
    from mwtest.postfix import Postfix
    s1, p1 = occupied()
    s2, p2 = occupied()
    pf = Postfix()
    pf.port, pf.sink_port = p1, p2
    pf._write_master()
    pf.postconf("-e", "relayhost = [127.0.0.1]:%d" % p2)
    pf.start()
    t.ok(pf.port != p1 and pf.sink_port != p2, "Postfix: smtpd's and the sink's ports taken, new ones",
         (pf.port, pf.sink_port))
    t.eq(pf.get("relayhost"), "[127.0.0.1]:%d" % pf.sink_port, "relayhost follows the sink's new port")
    with socket.create_connection(("127.0.0.1", pf.port), 10) as c:
        t.ok(c.recv(100).startswith(b"220 "), "Postfix answers on its new port")
    pf.stop()


def dovecot_retries(t):
    from mwtest.dovecot import Dovecot
    s, port = occupied()
    dc = Dovecot(start=False)
    dc.pop3_port = port
    dc._write()
    dc.start()
    t.ok(dc.pop3_port != port, "Dovecot: a port taken, it starts on new ones", dc.pop3_port)
    ports = [dc.imap_port, dc.pop3_port]
    t.eq(len(set(ports + [port])), 3, "... all different")
    with socket.create_connection(("127.0.0.1", dc.imap_port), 10) as c:
        t.ok(c.recv(100).startswith(b"* OK"), "Dovecot answers IMAP on its new port")
    dc.stop()


def dns_port(t):
    from mwtest.dns import DnsServer
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = map(int, f.read().split())
    dns = DnsServer("a.test A 192.0.2.1\n")
    port = dns.port
    t.ok(not low <= port <= high, "DNS server: its port from the registry, not the ephemeral range", port)
    dns.stop()
    dns.start()
    t.eq(dns.port, port, "started again on the same port")
    dns.stop()
    s, taken = occupied()
    d2 = DnsServer("a.test A 192.0.2.1\n", start=False)
    d2.port = None
    real = sandbox.free_port
    given = iter([taken])
    sandbox.free_port = lambda host="127.0.0.1": next(given, None) or real(host)
    try:
        d2.start()
    finally:
        sandbox.free_port = real
    t.ok(d2.port not in (None, taken), "DNS server: its port taken, it starts on another one", d2.port)
    d2.stop()


t = Tap()
t.run(unique)
t.run(redis_retries)
t.run(dns_port)
if os.geteuid() == 0:
    t.run(postfix_retries)
    t.run(dovecot_retries)
else:
    t.skip("Postfix and Dovecot start again on new ports", "needs root")
t.done()
