#!/usr/bin/python3
"""policyd-rate on a Redis Cluster of 3 masters and 3 replicas (loopback):
exact limits for many users spread over every slot from two daemons; the
node holding a key (policyd-rate-ctl where) and per-node metrics; a master
killed under load (on_store_error during the failover, counting resumes
after promotion, the time printed). cluster-reshard.py: slots resharded
under load (every request answered, the same answers as a single Redis
gives the same requests).

MW_CLUSTER_USERS (default 10000) and MW_CLUSTER_RESHARD_SLOTS (default
600) make it bigger."""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import Daemon, request  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.rcluster import RedisCluster  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

USERS = int(os.environ.get("MW_CLUSTER_USERS", "10000"))
RESHARD_SLOTS = int(os.environ.get("MW_CLUSTER_RESHARD_SLOTS", "100"))
PREFIX = "mw:rate:"


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def keyslot(key):
    k = key.encode()
    o = k.find(b"{")
    if o >= 0:
        c = k.find(b"}", o + 1)
        if c > o + 1:
            k = k[o + 1:c]
    return crc16(k) % 16384


def counter_key(user):
    return "%s{per-user:sasl_username:%s}" % (PREFIX, user)


def conf(cluster, rule, extra="", timeout="2s"):
    return ("%sstore = redis\nredis_mode = cluster\nredis_servers = %s\nredis_timeout = %s\n%s"
            % (rule, cluster.seeds(3), timeout, extra))


def pipelined(d, reqs, chunk=400):
    """Sends reqs on one connection, chunk at a time without waiting for
    answers (as the policy protocol allows); the answers, in order."""
    c = d.client()
    c.s.settimeout(60)
    out = []
    for i in range(0, len(reqs), chunk):
        part = reqs[i:i + chunk]
        c.send("".join(part))
        for _ in part:
            out.append(c.reply())
    c.close()
    return out


def eom(user, rcpts):
    return request(user=user, rcpt_count=rcpts)


def metrics(d):
    rc, out = d.ctl("stats")
    got = {}
    for m in re.finditer(r'^policyd_rate_redis_node_(\w+)\{node="([^"]+)"\} (\d+)$', out, re.M):
        got.setdefault(m.group(2), {})[m.group(1).replace("_total", "")] = int(m.group(3))
    return got


def limits(t, cl):
    """USERS users, 250 recipients an hour each: 100+100+49+1 pass, 1 more is
    deferred; the requests alternate between two daemons."""
    rule = "rule = per-user: key=sasl_username limit=250/1h count=recipients\n"
    a, b = Daemon(conf(cl, rule)), Daemon(conf(cl, rule))
    for d in (a, b):
        d.wait_log("every slot served", 60)
    users = ["u%d@example.org" % i for i in range(USERS)]
    slots = {keyslot(counter_key(u)) for u in users}
    sample = users[::max(1, USERS // 25)]
    t.ok(all(keyslot(counter_key(u)) == cl.keyslot(counter_key(u)) for u in sample),
         "our CRC16 slot agrees with CLUSTER KEYSLOT for %d keys" % len(sample))
    t0 = time.monotonic()
    got = {u: [] for u in users}
    plan = [100, 100, 49, 1, 1]
    # GCRA gives one recipient back every 14.4 s (250/1h): each user's five
    # requests go within a second or two, users in chunks, 4 connections
    # per daemon at once
    chunk = 400
    for c0 in range(0, USERS, chunk):
        group = users[c0:c0 + chunk]
        for step, n in enumerate(plan):
            # half the users on each daemon, swapped each round
            parts = []
            for half, d in enumerate((a, b) if step % 2 == 0 else (b, a)):
                for k in range(4):
                    parts.append((d, group[half + 2 * k::8]))
            res = [None] * len(parts)

            def one(i, d, us):
                res[i] = pipelined(d, [eom(u, n) for u in us])
            th = [threading.Thread(target=one, args=(i, d, us)) for i, (d, us) in enumerate(parts)]
            for x in th:
                x.start()
            for x in th:
                x.join(120)
            for (d, us), answers in zip(parts, res):
                for u, ans in zip(us, answers or []):
                    got[u].append(ans.split()[0] if ans else None)
    took = time.monotonic() - t0
    want = ["DUNNO"] * 4 + ["DEFER_IF_PERMIT"]
    bad = [(u, g) for u, g in got.items() if g != want]
    t.ok(not bad, "%d users over %d slots, two daemons: 250 recipients pass, the 251st is deferred, "
         "for every user (%d requests in %.1f s)" % (USERS, len(slots), USERS * len(plan), took), bad[:5])
    per_master = [int(m.cli("DBSIZE").strip()) for m in cl.masters()]
    t.ok(sum(per_master) == USERS and all(n > USERS // 6 for n in per_master),
         "one counter per user, spread over the 3 masters", per_master)
    m = metrics(a)
    t.ok(len(m) == 3 and all(v["up"] == 1 and v["requests"] > 0 for v in m.values())
         and sum(v["slots"] for v in m.values()) == 16384,
         "metrics per master: up, slots, requests", m)
    rc, out = a.ctl("where", "per-user:sasl_username:u7@example.org")
    node = cl.master_of_slot(keyslot(counter_key("u7@example.org")))
    t.ok(rc == 0 and re.search(r"slot %d node 127\.0\.0\.1:%d\b" % (keyslot(counter_key("u7@example.org")), node.port),
                               out), "policyd-rate-ctl where names the master holding the key", out)
    rc, out = b.ctl("usage", "per-user:u7@example.org")
    used = re.search(r"(\d+)/250", out)
    t.ok(rc == 0 and used and 245 <= int(used.group(1)) <= 250,
         "usage read from the cluster (250 less what GCRA gave back since)", out)
    rc, out = b.ctl("reset", "per-user:u7@example.org")
    t.ok(rc == 0 and "OK 1" in out, "reset on the cluster", out)
    t.eq(pipelined(a, [eom("u7@example.org", 1)])[0], "DUNNO", "after reset the user sends again")
    for d in (a, b):
        d.stop()


class Stream:
    """Fixed requests (user, n-th message), each user's in order, on 4
    connections; every answer recorded."""

    def __init__(self, d, users, per_user):
        self.reqs = [[] for _ in range(4)]
        for i, u in enumerate(users):
            for _ in range(per_user):
                self.reqs[i % 4].append(u)
        self.answers = {}
        self.errors = []
        self.d = d
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(4)]
        for th in self.threads:
            th.start()

    def run(self, k):
        try:
            c = self.d.client()
            c.s.settimeout(60)
            for u in self.reqs[k]:
                self.answers.setdefault(u, []).append(c.ask(user=u))
            c.close()
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))

    def join(self):
        for th in self.threads:
            th.join(300)
        return not any(th.is_alive() for th in self.threads)


def verdicts(answers):
    return {u: [a.split()[0] if a else None for a in v] for u, v in answers.items()}


def reshard(t, cl):
    rule = "rule = per-user: key=sasl_username limit=20/1h\n"
    masters = cl.masters()
    src, dst = masters[0], masters[1]
    cl.invalidate()
    # redis-cli moves the source's lowest slots first: users whose
    # counters live there, so that the load meets the migration
    mine = sorted(sl for sl in range(16384) if cl.master_of_slot_cached(sl) is src)[:RESHARD_SLOTS]
    moving = set(mine)
    users, i = [], 0
    while len(users) < 400:
        u = "rs%d@example.org" % i
        i += 1
        if keyslot(counter_key(u)) in moving:
            users.append(u)
    per_user = 30
    # the same requests on one Redis first: the reference
    r = Redis()
    ref = Daemon("%sstore = redis\nredis_servers = 127.0.0.1:%d\non_store_error = defer\n" % (rule, r.port))
    s = Stream(ref, users, per_user)
    s.join()
    reference = verdicts(s.answers)
    ref.stop()
    r.stop()
    d = Daemon(conf(cl, rule, "on_store_error = defer\n"))
    d.wait_log("every slot served", 60)
    # keys in the slots that move, before and during the move
    pre = [pipelined(d, [request(user=u) for u in users[:200]])]
    done = {}

    def move():
        try:
            done["out"] = cl.reshard(src, dst, RESHARD_SLOTS)
        except Exception as e:  # noqa: BLE001
            done["error"] = repr(e)
    mover = threading.Thread(target=move)
    mover.start()
    s = Stream(d, users, per_user)
    finished = s.join()
    mover.join(600)
    t.ok(finished and not s.errors and sum(len(v) for v in s.answers.values()) == len(users) * per_user
         and all(a for v in s.answers.values() for a in v),
         "resharding %d slots under load: every request answered" % RESHARD_SLOTS, s.errors)
    t.ok("error" not in done, "redis-cli --cluster reshard succeeded", done.get("error", ""))
    cluster_run = verdicts(s.answers)
    # the 200 users asked once before: their first answer is the reference's
    # first, and the stream continues from count 1
    expect = {}
    for u, v in reference.items():
        expect[u] = v[1:] + ["DEFER_IF_PERMIT"] if u in users[:200] else v
    diff = [(u, cluster_run.get(u), expect[u]) for u in users if cluster_run.get(u) != expect[u]]
    t.ok(not diff and all(a == "DUNNO" for a in pre[0]),
         "the same answers as on one Redis: no count lost or doubled while slots moved", diff[:3])
    m = metrics(d)
    moved = sum(v["redirections"] for v in m.values())
    t.ok(moved > 0, "redirections (MOVED/ASK) were followed: %d" % moved, m)
    t.ok("cannot be checked" not in "".join(a for v in s.answers.values() for a in v),
         "no request fell back to on_store_error during the reshard")
    # one more each: all at the limit, wherever their slot went
    last = pipelined(d, [request(user=u) for u in users])
    t.ok(all(a.split()[0] == "DEFER_IF_PERMIT" for a in last), "after the move every user is still at the limit")
    d.stop()


def failover(t, cl):
    rule = "rule = per-user: key=sasl_username limit=20/1h\n"
    d = Daemon(conf(cl, rule, "on_store_error = defer\n", timeout="500ms"))
    d.wait_log("every slot served", 60)
    victim = cl.masters()[0]
    users = ["fo%d@example.org" % i for i in range(300)]
    cl.invalidate()
    on_victim = [u for u in users if cl.master_of_slot_cached(keyslot(counter_key(u))) is victim]
    elsewhere = [u for u in users if u not in on_victim]
    # one of the victim's users at the limit, and replicated
    full = on_victim[0]
    got = pipelined(d, [request(user=full)] * 20)
    t.ok(all(a == "DUNNO" for a in got), "20 messages counted on the master about to fail")
    victim.cli("WAIT", "1", "10000")
    answers = {"victim": [], "other": []}
    stop = threading.Event()

    def load(kind, us):
        c = d.client()
        c.s.settimeout(30)
        i = 0
        while not stop.is_set():
            u = us[i % len(us)]
            i += 1
            a = c.ask(user=u, stage="RCPT")
            answers[kind].append((time.monotonic(), a))
        c.close()
    threads = [threading.Thread(target=load, args=("victim", on_victim[1:])),
               threading.Thread(target=load, args=("other", elsewhere))]
    for th in threads:
        th.start()
    time.sleep(0.5)
    killed = time.monotonic()
    cl.kill(victim)
    promoted = cl.wait_promoted(victim, 90)
    back = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and back is None:
        for ts, a in list(answers["victim"]):
            if ts > killed and a == "DUNNO" and any(ts2 > killed and "cannot be checked" in a2
                                                    for ts2, a2 in answers["victim"] if ts2 < ts):
                back = ts
                break
        time.sleep(0.1)
    stop.set()
    for th in threads:
        th.join(30)
    during = [a for ts, a in answers["victim"] if killed < ts < (back or time.monotonic())]
    t.ok(during and all(a == "DUNNO" or "cannot be checked" in a for a in during)
         and any("cannot be checked" in a for a in during),
         "during the failover the dead master's users get on_store_error (defer)", during[:3])
    other = [a for ts, a in answers["other"] if ts > killed]
    t.ok(other and all(a == "DUNNO" for a in other),
         "the other masters' users are answered from Redis throughout (%d requests)" % len(other),
         [a for a in other if a != "DUNNO"][:3])
    t.ok(back is not None, "counting resumed on the promoted replica without a restart")
    if back is not None:
        print("# master killed: policyd-rate answered from the promoted replica %.1f s after the kill "
              "(every node agreed on the new map after %.1f s)" % (back - killed, promoted))
    t.eq(pipelined(d, [request(user=full)])[0].split()[0], "DEFER_IF_PERMIT",
         "the replicated count survived the failover: the user is still at the limit")
    m = metrics(d)
    t.ok(sum(v["reconnects"] for v in m.values()) >= 4, "reconnects counted per node", m)
    d.stop()


def main(parts):
    t = Tap()
    cl = RedisCluster(masters=3, replicas=1)
    for part in parts:
        t0 = time.monotonic()
        t.run(part, cl)
        print("# %s: %.1f s" % (part.__name__, time.monotonic() - t0))
    cl.stop()
    t.done()


if __name__ == "__main__":
    # cluster-reshard.py runs the reshard: each file stays near a minute
    main([limits, failover])
