#!/usr/bin/python3
"""Self-test of mwtest.rcluster: a private Redis Cluster (3 masters, 3
replicas) on registry ports, cluster bus ports included, torn down."""
import os
import socket
import sys

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest.rcluster import RedisCluster  # noqa: E402
from mwtest.tap import Tap  # noqa: E402


def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def main(t):
    c = RedisCluster(masters=3, replicas=1)
    t.eq(len(c.nodes), 6, "six nodes")
    t.eq(len(c.masters()), 3, "three masters (ROLE)")
    t.ok(c.ok(), "every node: cluster_state ok, 16384 slots, the same map")
    buses = [int(n.cli("CONFIG", "GET", "cluster-port").split("\n")[1]) for n in c.nodes]
    t.ok(all(b != n.port + 10000 and reachable(b) for b, n in zip(buses, c.nodes)),
         "cluster bus ports from the registry, not port + 10000", buses)
    t.eq(c.cli("SET", "{user1000}.x", "v").strip(), "OK", "redis-cli -c writes through redirections")
    t.eq(c.keyslot("{user1000}.following"), 3443, "CLUSTER KEYSLOT as the specification's example")
    owner = c.master_of_slot(3443)
    t.eq(owner.cli("GET", "{user1000}.x").strip(), "v", "master_of_slot names the node holding the key")
    t.eq(c.master_of_slot_cached(3443), owner, "... the cached map agrees")
    ports = [n.port for n in c.nodes]
    c.stop()
    t.ok(not any(reachable(p) for p in ports + buses), "stopped: no port answers")


t = Tap()
t.run(main)
t.done()
