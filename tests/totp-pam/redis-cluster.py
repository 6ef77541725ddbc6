#!/usr/bin/python3
"""pam_totp.so with state=redis on a Redis Cluster (3 masters, 3 replicas;
redis_mode=cluster, seed nodes in redis_servers): the cases of
redis-state.py across two servers (replay, backup codes, lockout, parallel
logins with one code, app passwords), each user's keys on the master of
its slot; a master killed: its users' logins follow on_redis_error until a
replica is promoted, then work again with the replay state kept."""
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tptest  # noqa: E402
from tptest import SECRET, T0, code  # noqa: E402
from mwtest.rcluster import RedisCluster  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

spec = importlib.util.spec_from_file_location("redis_state", os.path.join(HERE, "redis-state.py"))
rs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rs)


class OnCluster:
    """What redis-state.py's cases use of a Redis, on the cluster."""

    def __init__(self, cl):
        self.cl = cl
        self.servers = cl.seeds(3)
        self.mode_arg = "redis_mode=cluster"

    def cli(self, *args):
        return self.cl.cli(*args)


def spread(t, cl):
    slots = {u: cl.keyslot("totp:{%s}" % u) for u in ("ann", "bea", "cid", "dov", "eve")}
    owners = {cl.master_of_slot_cached(s).port for s in slots.values()}
    t.ok(len(owners) >= 2, "the users' keys live on %d different masters" % len(owners), slots)
    for u in ("ann", "bea", "dov"):
        owner = cl.master_of_slot_cached(slots[u])
        keys = owner.cli("KEYS", "totp:{%s}*" % u).split()
        t.ok("totp:{%s}" % u in keys, "%s's state is on the master of its slot (port %d)" % (u, owner.port), keys)


def failover(t, cl):
    r = OnCluster(cl)
    a, b = rs.setup(r)
    a.user("fay")
    rs.share(a, b, "fay")
    c = code(SECRET, T0)
    t.ok(a.login("mail", "fay", [c], at=T0).ok, "fay logs in on server A")
    cl.invalidate()
    victim = cl.master_of_slot_cached(cl.keyslot("totp:{fay}"))
    victim.cli("WAIT", "1", "10000")
    cl.kill(victim)
    r1 = b.login("mail", "fay", [code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(not r1.ok, "her master down: server B refuses (on_redis_error=refuse)", r1)
    took = cl.wait_promoted(victim, 90)
    print("# a replica served fay's slot %.1f s after the kill" % took)
    r2 = b.login("mail", "fay", [c], at=T0 + 31)
    t.ok(not r2.ok and "replay" in r2.log, "after promotion the replayed code is still refused (state kept)", r2)
    r3 = b.login("mail", "fay", [code(SECRET, T0 + 60)], at=T0 + 60)
    t.ok(r3.ok, "and the next code is accepted on the promoted replica", r3)


t = Tap()
gone = tptest.missing_tools()
if gone:
    t.skip("totp-pam with Redis Cluster", "missing: " + ", ".join(gone))
else:
    cl = RedisCluster(masters=3, replicas=1)
    rs.t = t
    on = OnCluster(cl)
    for f in (rs.replay_across_servers, rs.backup_across_servers, rs.lockout_across_servers, rs.parallel_one_code,
              rs.app_password):
        t.run(f, on)
    t.run(spread, cl)
    t.run(failover, cl)
    cl.stop()
t.done()
