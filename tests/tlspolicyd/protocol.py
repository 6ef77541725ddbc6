#!/usr/bin/python3
"""tlspolicyd speaks Postfix's socketmap protocol: well-formed requests
(pipelined, split into pieces), malformed and oversized netstrings (the
connection is closed with a log line, others are still served), a wrong
map name or key (PERM), a client that sends half a request and stalls,
1,000 idle connections, the connection limit, SIGHUP reload and the
daemon contract (-C, -n, exit 2 with file:line). No DNS needed: every
answer here comes from the policy file or for [host] next hops."""
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tptest import TLSPOLICYD, Daemon, netstring  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
d0 = Daemon(start=False)
pfile = os.path.join(d0.dir, "policy")
with open(pfile, "w") as f:
    f.write("example.com encrypt\n.example.net may\n")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
d = Daemon("policy_file = %s\nclient_timeout = 3s\nmax_connections = 1100\n" % pfile)


def well_formed(t):
    c = d.client()
    t.eq(c.ask("example.com"), "OK encrypt", "a policy_file entry")
    t.eq(c.ask("EXAMPLE.COM"), "OK encrypt", "keys are case-insensitive")
    t.eq(c.ask("mx.example.net"), "OK may", "a .parent entry")
    t.eq(c.ask(".example.org"), "NOTFOUND ", "a parent-domain key without an entry: NOTFOUND")
    t.eq(c.ask("[relay.example]:587"), "OK encrypt", "a [host]:port next hop: default_policy")
    # pipelined, in order
    c.send(b"".join(netstring("tlspolicy " + k) for k in ("example.com", "a.example.net", "[x]:25")))
    t.eq([c.reply() for _ in range(3)], ["OK encrypt", "OK may", "OK encrypt"], "3 pipelined requests, in order")
    # one byte at a time
    data = netstring("tlspolicy example.com")
    for i in range(len(data)):
        c.send(data[i:i + 1])
        time.sleep(0.005)
    t.eq(c.reply(), "OK encrypt", "a request sent one byte at a time")
    t.eq(c.ask("example.com", name="other"), "PERM unknown map name", "another map name: PERM")
    t.eq(c.ask("exa mple.com"), "PERM malformed request", "a key with a space: PERM")
    t.eq(c.ask("exa/mple.com"), "PERM not a domain or next hop", "a key that is no domain: PERM")
    t.eq(c.ask("example.com"), "OK encrypt", "the connection still works after PERM answers")
    c.close()


def malformed(t):
    for name, data in (("a netstring without its comma", b"5:hello;"),
                       ("a length with a leading zero", b"05:hello,"),
                       ("no length", b":hello,"),
                       ("letters for a length", b"abc:hello,"),
                       ("an oversized netstring (100000 bytes announced)", b"100000:" + b"x" * 1000),
                       ("a huge length", b"9" * 40)):
        mark = len(d.log())
        c = d.client()
        c.send(data)
        t.ok(c.closed(), "%s: the connection is closed" % name)
        d.wait_log("request, connection closed", since=mark)
        t.ok(True, "%s: logged" % name)
        c.close()
    other = d.client()
    t.eq(other.ask("example.com"), "OK encrypt", "others are still served")
    other.close()


def stalls(t):
    half = d.client()
    half.send(b"21:tlspolicy exa")
    other = d.client()
    t.eq(other.ask("example.com"), "OK encrypt", "another client is served while one stalls half-way")
    t.ok(half.closed(timeout=30), "the stalled client is closed after client_timeout")
    other.close()


def idle(t):
    clients = [d.client() for _ in range(1000)]
    c = d.client()
    t.eq(c.ask("example.com"), "OK encrypt", "1,000 idle connections: another is still answered")
    t.eq(clients[500].ask("example.com"), "OK encrypt", "and so is one of the idle ones")
    for x in clients:
        x.close()
    c.close()


def reload(t):
    with open(pfile, "w") as f:
        f.write("example.com dane-only\n")
    log = d.reload()
    t.contains(log, "configuration reloaded (1 policy_file entries)", "SIGHUP re-reads the policy file")
    c = d.client()
    t.eq(c.ask("example.com"), "OK dane-only", "the new policy applies")
    with open(pfile, "w") as f:
        f.write("example.com wrong\n")
    log = d.reload()
    t.contains(log, "reload refused, the running configuration stays: %s:1: unknown TLS policy" % pfile,
               "a bad policy file at reload: refused with file:line")
    t.eq(c.ask("example.com"), "OK dane-only", "and the old one stays in force")
    c.close()
    with open(pfile, "w") as f:
        f.write("example.com encrypt\n")


def contract(t):
    p = subprocess.run([TLSPOLICYD, "-C", "-c", d.conf], capture_output=True, text=True)
    t.eq(p.returncode, 0, "-C: a good configuration exits 0")
    p = subprocess.run([TLSPOLICYD, "-n", "-c", d.conf], capture_output=True, text=True)
    t.contains(p.stdout, "default_policy = encrypt", "-n prints the effective configuration")
    bad = Daemon("default_policy = plaintext\n", start=False)
    p = subprocess.run([TLSPOLICYD, "-C", "-c", bad.conf], capture_output=True, text=True)
    t.eq(p.returncode, 2, "a bad default_policy: exit 2")
    t.contains(p.stderr, "tlspolicyd.conf:8: default_policy = plaintext: unknown TLS policy \"plaintext\"",
               "file:line: what is wrong")
    sample = os.path.join(sandbox.top_srcdir(), "contrib", "mailward", "tlspolicyd.conf")
    p = subprocess.run([TLSPOLICYD, "-C", "-c", sample], capture_output=True, text=True)
    t.eq((p.returncode, p.stderr), (0, ""), "contrib/mailward/tlspolicyd.conf passes -C")
    p = subprocess.run([TLSPOLICYD, "-c", d.conf, "-t", "[relay.example]:587"], capture_output=True, text=True)
    t.eq(p.stdout, "policy: OK encrypt\nreason: default_policy (an explicit next hop: no DANE or MTA-STS lookup)\n",
         "-t DOMAIN prints policy: and reason:")
    t.eq(p.returncode, 0, "-t exits 0")


def unwritable_cache(t):
    rootonly = sandbox.mkdir("rootonly", mode=0o755)
    d2 = Daemon("user = nobody\ncache_file = %s/tlspolicyd.cache\n" % rootonly, name="unwritable")
    t.contains(d2.log(), "cache_file: %s is not writable by this daemon's user" % rootonly,
               "a cache directory the daemon cannot write: a warning at start")
    d2.stop()


t.run(well_formed)
t.run(unwritable_cache)
t.run(malformed)
t.run(stalls)
t.run(idle)
t.run(reload)
t.run(contract)
t.eq(d.stop(), 0, "SIGTERM: clean exit")
t.done()
