#!/usr/bin/python3
"""policyd-rate on a real Redis: two daemons enforce one limit together, a
restart loses nothing, keys carry one hash tag (Redis Cluster), password
authentication; Redis killed under load with each on_store_error setting
(every request answered, reconnect within a second of Redis coming back);
a Sentinel failover to a replica."""
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
RULE = "rule = per-user: key=sasl_username|sender limit=20/1h\n"


def sha1_of_cached(r):
    """The SHA-1 policyd-rate names its check script by (from its source)."""
    import hashlib
    src = open(os.path.join(sandbox.top_srcdir(), "policyd-rate", "store.c")).read()
    body = re.sub(r"/\*.*?\*/", "", re.search(r"static const char GCRA_LUA\[\] =(.*?);\n", src, re.S).group(1), flags=re.S)
    lua = "".join(bytes(x, "utf-8").decode("unicode_escape") for x in re.findall(r'"((?:[^"\\]|\\.)*)"', body))
    return hashlib.sha1(lua.encode()).hexdigest()


def conf(redis, extra=""):
    return "%sstore = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 300ms\n%s" % (RULE, redis.port, extra)


def shared(t):
    r = Redis()
    a, b = Daemon(conf(r)), Daemon(conf(r))
    ca, cb = a.client(), b.client()
    got = []
    for i in range(20):
        got.append((ca if i % 2 else cb).ask(user="shared@example.org"))
    t.eq(got.count("DUNNO"), 20, "20 messages through two daemons, alternating: all pass")
    t.eq(ca.ask(user="shared@example.org").split()[0], "DEFER_IF_PERMIT", "the 21st is deferred on daemon A")
    t.eq(cb.ask(user="shared@example.org").split()[0], "DEFER_IF_PERMIT", "... and on daemon B")
    keys = r.cli("--scan", "--pattern", "*").split()
    t.ok(keys and all(re.match(r"^mw:rate:\{per-user:sasl_username:[^}]+\}$", k) for k in keys),
         "one hash per check, its name (with the key kind) in a {hash tag}", keys)
    fields = r.cli("HGETALL", keys[0]).split()
    t.ok(any(f.startswith("t") for f in fields) and r.cli("PTTL", keys[0]).strip() not in ("-1", "-2"),
         "the hash holds the window state and expires", fields)
    # restart: nothing lost
    a.stop()
    a.start()
    ca = a.client()
    t.eq(ca.ask(user="shared@example.org").split()[0], "DEFER_IF_PERMIT", "after a daemon restart: still deferred")
    rc, out = a.ctl("usage", "per-user:shared@example.org")
    t.ok(rc == 0 and re.search(r"\b20\b", out), "usage read from Redis shows 20", out)
    rc, out = b.ctl("top", "3")
    t.ok(rc == 0 and "shared@example.org" in out, "top from Redis", out)
    rc, out = a.ctl("reset", "per-user:shared@example.org")
    t.ok(rc == 0 and "OK 1" in out, "reset deletes the Redis key", out)
    t.eq(cb.ask(user="shared@example.org"), "DUNNO", "after reset on A, B lets the account send")
    # Redis flushed its scripts (or restarted): EVALSHA's NOSCRIPT is handled
    r.cli("SCRIPT", "FLUSH")
    mark = len(b.log())
    t.eq(cb.ask(user="noscript@example.org"), "DUNNO", "after SCRIPT FLUSH: answered")
    t.ok(r.cli("EXISTS", "mw:rate:{per-user:sasl_username:noscript@example.org}").strip() == "1"
         and "not answering" not in b.log()[mark:],
         "... and counted in Redis (EVAL sent the script again), no fallback", b.log()[mark:])
    t.eq(r.cli("SCRIPT", "EXISTS", sha1_of_cached(r)).split(), ["1"], "... and the script is cached again")
    for d in (a, b):
        d.stop()
    r.stop()


def password(t):
    r = Redis(password="s3cret-pass")
    d = Daemon(conf(r, "redis_password = s3cret-pass\n"))
    c = d.client()
    t.eq(c.ask(user="pw@example.org"), "DUNNO", "AUTH with redis_password")
    t.ok("s3cret-pass" not in d.log(), "the password is not logged")
    t.ok(r.cli("--scan").strip() != "", "the counter is in the password-protected Redis")
    d.stop()
    r.stop()


class Load:
    """A client sending requests without pause on 4 connections; records
    every answer and any request left unanswered."""

    def __init__(self, d, user):
        self.d, self.user = d, user
        self.answers, self.errors = [], []
        self.running = True
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(4)]
        for th in self.threads:
            th.start()

    def run(self, i):
        try:
            c = self.d.client()
            while self.running:
                t0 = time.monotonic()
                a = c.ask(user="%s%d@example.org" % (self.user, i), stage="RCPT")
                self.answers.append((time.monotonic(), a, time.monotonic() - t0))
            c.close()
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))

    def stop(self):
        self.running = False
        for th in self.threads:
            th.join(20)
        return not any(th.is_alive() for th in self.threads)


def outage(t, mode):
    r = Redis()
    d = Daemon(conf(r, "on_store_error = %s\n" % mode))
    c = d.client()
    for _ in range(20):
        c.ask(user="outage@example.org")
    t.eq(c.ask(user="outage@example.org").split()[0], "DEFER_IF_PERMIT", "%s: at the limit before the outage" % mode)
    load = Load(d, "load-%s" % mode)
    time.sleep(0.3)
    mark = len(d.log())
    r.kill()
    d.wait_log("Redis is not answering", 5, since=mark)
    t.contains(d.log()[mark:], "on_store_error = %s" % mode, "%s: the outage is logged loudly, naming the setting" % mode)
    fresh = c.ask(user="fresh-%s@example.org" % mode)
    if mode == "allow":
        t.eq(fresh, "DUNNO", "allow: mail passes while Redis is down")
        got = [c.ask(user="burst@example.org") for _ in range(30)]
        t.eq(got.count("DUNNO"), 30, "allow: no limit while Redis is down")
    elif mode == "defer":
        t.ok(fresh.startswith("DEFER_IF_PERMIT 4.") and "try" in fresh.lower(),
             "defer: counted mail is deferred with a temporary error", fresh)
    else:
        t.eq(fresh, "DUNNO", "local: mail passes while Redis is down")
        got = [c.ask(user="burst@example.org") for _ in range(30)]
        t.eq(got.count("DUNNO"), 20, "local: the limit is still enforced in memory (20 of 30)")
    time.sleep(0.5)
    down_at = time.monotonic()
    r.start()
    up_at = time.monotonic()
    # reconnect: a request answered from Redis again
    back = None
    while time.monotonic() - up_at < 5:
        rc, out = d.ctl("stats")
        if "policyd_rate_store_up 1" in out:
            back = time.monotonic() - up_at
            break
        time.sleep(0.05)
    t.ok(back is not None and back < 1.0, "%s: back on Redis within a second of its return" % mode,
         "took %s s" % back)
    del down_at
    time.sleep(0.3)
    all_stopped = load.stop()
    slow = [a for a in load.answers if a[2] > 2.0]
    t.ok(all_stopped and not load.errors and not slow,
         "%s: under load every request was answered, none waited over 2 s (%d answered)" % (mode, len(load.answers)),
         "errors=%s slow=%s" % (load.errors[:3], slow[:3]))
    t.ok(len(load.answers) > 50, "%s: the load ran (%d answers)" % (mode, len(load.answers)))
    t.eq(c.ask(user="after-%s@example.org" % mode), "DUNNO", "%s: counting in Redis again" % mode)
    t.ok(r.cli("--scan", "--pattern", "*after-%s*" % mode).strip() != "", "%s: the new count is in Redis" % mode)
    d.stop()
    r.stop()


def sentinel(t):
    master = Redis()
    replica = Redis(extra=["--replicaof", "127.0.0.1", str(master.port)])
    sdir = sandbox.mkdir("sentinel")
    sconf = os.path.join(sdir, "sentinel.conf")
    slog = os.path.join(sdir, "sentinel.log")

    def start_sentinel(sport):
        with open(sconf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mwmaster 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds mwmaster 500\nsentinel failover-timeout mwmaster 3000\n"
                    "sentinel parallel-syncs mwmaster 1\n" % (sport, sdir, master.port))
        mark = len(sandbox.read_text(slog))
        p = sandbox.spawn(["redis-server", sconf, "--sentinel"], log=slog)
        sandbox.wait_for(lambda: p.poll() is not None or sandbox.listens([p.pid], sport), 20,
                         what="sentinel to listen")
        if p.poll() is not None:  # e.g. its port taken: with_free_port tries another
            raise RuntimeError("sentinel exited: " + sandbox.read_text(slog)[mark:])
        return p
    sport, sent = sandbox.with_free_port(start_sentinel)

    def sentinel_knows():
        p = subprocess.run(["redis-cli", "-p", str(sport), "SENTINEL", "replicas", "mwmaster"],
                           capture_output=True, text=True)
        return "slave" in p.stdout or "replica" in p.stdout
    sandbox.wait_for(sentinel_knows, 20, what="sentinel to see the replica")
    d = Daemon("%sstore = redis\nredis_servers = sentinel:mwmaster@127.0.0.1:%d\nredis_timeout = 300ms\n"
               "on_store_error = defer\n" % (RULE, sport))
    c = d.client()
    try:  # reported from the discovery thread: it may come after "listening on" on a loaded machine
        d.wait_log("master mwmaster is at 127.0.0.1:%d" % master.port, timeout=30)
    except TimeoutError:
        pass
    # 15 messages counted; on a loaded machine a look-up may pass the 300 ms
    # timeout and be deferred uncounted (on_store_error = defer): asked again
    counted = 0
    for _ in range(200):
        if counted == 15:
            break
        if "cannot be checked" in c.ask(user="failover@example.org"):
            time.sleep(0.1)
        else:
            counted += 1
    t.ok(counted == 15 and "master mwmaster is at 127.0.0.1:%d" % master.port in d.log(),
         "Sentinel: the master is discovered", d.log())
    # every count on the replica before the master dies
    master.cli("WAIT", "1", "10000")
    sandbox.wait_for(lambda: replica.cli("--scan").strip() != "", 60, what="replication")
    mark = len(d.log())
    master.kill()
    sandbox.wait_for(lambda: "master mwmaster is at 127.0.0.1:%d" % replica.port in d.log()[mark:], 30,
                     what="the daemon to follow the failover")
    t.ok(True, "Sentinel failover: the daemon connects to the promoted replica")
    got = None
    for _ in range(50):
        got = c.ask(user="failover@example.org")
        if "cannot be checked" not in got:
            break
        time.sleep(0.1)
    got = [got] + [c.ask(user="failover@example.org") for _ in range(5)]
    t.eq([g.split()[0] for g in got], ["DUNNO"] * 5 + ["DEFER_IF_PERMIT"],
         "the count survived the failover: 5 more of 20, then deferred")
    d.stop()
    sandbox.stop(sent)
    replica.stop()


t.run(shared)
t.run(password)
for mode in ("local", "allow", "defer"):
    t.run(outage, mode)
t.run(sentinel)
t.done()
