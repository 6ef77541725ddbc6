"""Redis Cluster: masters and replicas (redis-server --cluster-enabled yes)
on loopback ports from the port registry, joined with redis-cli --cluster
create, torn down with the sandbox.

    c = RedisCluster(masters=3, replicas=1)   # started, every slot served
    c.seeds()                 # "127.0.0.1:p1,127.0.0.1:p2,..." for redis_servers
    c.cli("GET", "k")         # redis-cli -c (follows redirections)
    c.master_of_slot(1234)    # the Redis instance serving that slot
    c.kill(node)              # SIGKILL, as a crash would
    c.wait_ok()               # until every node says cluster_state:ok

Each node's cluster bus port comes from the registry too (--cluster-port),
not port + 10000, so no two tests collide on it.
"""
import subprocess
import time

from . import sandbox
from .redis import Redis


class RedisCluster:
    def __init__(self, masters=3, replicas=1, node_timeout_ms=2000):
        self.nodes = []
        for _ in range(masters * (1 + replicas)):
            bus = sandbox.free_port()
            n = Redis(start=False, extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), "--cluster-port", str(bus),
                # a replica takes over however long it was away from its master
                "--cluster-replica-validity-factor", "0",
                # a failed master's slots must not stop the others' (counts go on)
                "--cluster-require-full-coverage", "no"])
            n.start()
            self.nodes.append(n)
        addrs = ["127.0.0.1:%d" % n.port for n in self.nodes]
        if masters * (1 + replicas) < 3:
            # redis-cli --cluster create wants 3 masters: one node takes every slot itself
            if len(self.nodes) != 1:
                raise ValueError("fewer than 3 masters: one node, no replicas")
            self.nodes[0].cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            self.wait_ok()
            return
        p = subprocess.run(["redis-cli", "--cluster", "create"] + addrs +
                           ["--cluster-replicas", str(replicas), "--cluster-yes"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("redis-cli --cluster create: %s%s" % (p.stdout, p.stderr))
        self.wait_ok()

    def seeds(self, n=None):
        return ",".join("127.0.0.1:%d" % x.port for x in self.nodes[:n])

    def alive(self):
        return [n for n in self.nodes if n.proc is not None]

    def cli(self, *args):
        """redis-cli -c against the first live node."""
        n = self.alive()[0]
        p = subprocess.run(["redis-cli", "-c", "-h", "127.0.0.1", "-p", str(n.port)] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("redis-cli %s: %s" % (" ".join(map(str, args)), p.stderr or p.stdout))
        return p.stdout

    def info(self, node):
        out = node.cli("CLUSTER", "INFO")
        return dict(ln.strip().split(":", 1) for ln in out.splitlines() if ":" in ln)

    def ok(self, fully_covered=True):
        try:
            for n in self.alive():
                i = self.info(n)
                if i.get("cluster_state") != "ok":
                    return False
                if fully_covered and i.get("cluster_slots_ok") != "16384":
                    return False
                if int(i.get("cluster_known_nodes", "0")) < len(self.nodes):
                    return False
            # every live node agrees on who serves what
            maps = {self.slots_text(n) for n in self.alive()}
            return len(maps) == 1
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def wait_ok(self, timeout=120):
        sandbox.wait_for(self.ok, timeout, what="Redis Cluster state ok on every node")

    def slots_text(self, n):
        return n.cli("CLUSTER", "SLOTS")

    def masters(self):
        """The live masters, by ROLE."""
        return [n for n in self.alive() if n.cli("ROLE").split("\n")[0].strip() == "master"]

    def node_id(self, n):
        return n.cli("CLUSTER", "MYID").strip()

    def master_of_slot(self, slot):
        for n in self.masters():
            for line in n.cli("CLUSTER", "NODES").splitlines():
                f = line.split()
                if "myself" in f[2] and "master" in f[2]:
                    for r in f[8:]:
                        a, _, b = r.partition("-")
                        if r.startswith("["):
                            continue
                        if int(a) <= slot <= int(b or a):
                            return n
        return None

    def master_of_slot_cached(self, slot):
        """The same from one CLUSTER SLOTS reply (cached until invalidate())."""
        if getattr(self, "_ranges", None) is None:
            by_port = {n.port: n for n in self.nodes}
            self._ranges = []
            for line in self.alive()[0].cli("CLUSTER", "NODES").splitlines():
                f = line.split()
                if "master" not in f[2] or "fail" in f[2]:
                    continue
                port = int(f[1].split("@")[0].rsplit(":", 1)[1])
                for r in f[8:]:
                    if r.startswith("["):
                        continue
                    a, _, b = r.partition("-")
                    self._ranges.append((int(a), int(b or a), by_port.get(port)))
        for a, b, n in self._ranges:
            if a <= slot <= b:
                return n
        return None

    def invalidate(self):
        self._ranges = None

    def keyslot(self, key):
        return int(self.alive()[0].cli("CLUSTER", "KEYSLOT", key).strip())

    def kill(self, node):
        node.kill()

    def dbsize(self):
        return sum(int(n.cli("DBSIZE").strip()) for n in self.masters())

    def reshard(self, src, dst, nslots, pipeline=10):
        """redis-cli --cluster reshard: moves nslots slots from src to dst
        (keys migrate with MIGRATE while clients keep going)."""
        p = subprocess.run(["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % src.port,
                            "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
                            "--cluster-slots", str(nslots), "--cluster-yes",
                            "--cluster-pipeline", str(pipeline)],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError("reshard: %s%s" % (p.stdout[-2000:], p.stderr[-2000:]))
        return p.stdout

    def wait_promoted(self, dead, timeout=60):
        """Until a replica of the dead master serves its slots; seconds taken."""
        t0 = time.monotonic()
        sandbox.wait_for(lambda: self.ok(fully_covered=True) and len(self.masters()) >= 3, timeout,
                         what="a replica promoted in place of port %d" % dead.port)
        return time.monotonic() - t0

    def stop(self):
        for n in self.nodes:
            n.stop()
