#!/usr/bin/python3
"""tlspolicyd's background refresh of cached MTA-STS policies (RFC 8461
10.2): a cached policy is fetched again before it is old (mta_sts_refresh,
or half its max_age) with no lookup asking; a new id in DNS is fetched
behind the cached answer, so no lookup waits on HTTPS (the policy server
holds the new policy for seconds, and a lookup meanwhile still gets the
cached one at once); a failed refresh leaves the cached policy in force."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tptest import Daemon, StsServer, TestCA, policy  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
ZONE = ("refresh.example MX 10 mx-a.refresh.example\n"
        "_mta-sts.refresh.example TXT \"v=STSv1; id=%s;\"\n"
        "mta-sts.refresh.example A 127.0.0.1\n")
OLD = "OK secure match=mx-a.refresh.example servername=hostname"
NEW = "OK secure match=mx-b.refresh.example servername=hostname"
HOLD = 8  # seconds the policy server holds the new policy


def main(t):
    dns = DnsServer(ZONE % "r1", ttl=1)
    ca = TestCA(["mta-sts.refresh.example"])
    https = StsServer(ca)
    https.serve("refresh.example", policy("enforce", ["mx-a.refresh.example"]))
    # answer_cache_ttl = 0: every ask below is a full lookup (DNS, the MTA-STS cache)
    d = Daemon("dns_resolver = %s\nmta_sts_port = %d\nmta_sts_ca_file = %s\nmta_sts_timeout = 10s\n"
               "mta_sts_refresh = 2s\nanswer_cache_ttl = 0\n" % (dns.spec, https.port, ca.ca), name="refresh")
    c = d.client()
    t.eq(c.ask("refresh.example"), OLD, "first lookup: the policy fetched")
    t.eq(len(https.requests("refresh.example")), 1, "one fetch")

    # nobody asks: the policy is fetched again all the same
    sandbox.wait_for(lambda: len(https.requests("refresh.example")) >= 2, 60, interval=0.2,
                     what="a background refresh")
    d.wait_log("refresh.example: MTA-STS policy refreshed in the background: id=r1, mode enforce", timeout=60)
    t.ok(True, "the cached policy is refreshed before it is old, with no lookup asking")

    # a new id, and a policy server that takes HOLD seconds for the new policy
    https.serve("refresh.example", policy("enforce", ["mx-b.refresh.example"]), delay=HOLD)
    dns.set_zone(ZONE % "r2")
    dns.reload()
    before = len(https.requests("refresh.example"))
    sandbox.wait_for(lambda: len(https.requests("refresh.example")) > before, 60, interval=0.1,
                     what="the fetch of the new policy to start")
    t.eq(c.ask("refresh.example"), OLD, "while the new policy is being fetched, a lookup gets the cached one")
    t.ok("refreshed in the background: id=r2" not in d.log(),
         "... before that fetch ended: the lookup did not wait on HTTPS")
    d.wait_log("refresh.example: MTA-STS policy refreshed in the background: id=r2", timeout=90)
    t.eq(c.ask("refresh.example"), NEW, "the new id's policy is picked up once fetched")

    # the policy server gone: every refresh fails, the cached policy stays in force
    https.stop()
    mark = len(d.log())
    d.wait_log("refresh.example: MTA-STS background refresh failed (id=r2), the cached policy stays in force",
               timeout=90, since=mark)
    t.ok(True, "a failed refresh is logged")
    t.eq(c.ask("refresh.example"), NEW, "after a failed refresh the cached policy is still in force")
    t.contains(d.log()[mark:], "refresh.example: " + NEW + "; reason: mta-sts enforce (cached",
               "... and the lookup says it answered from the cache")
    c.close()
    t.eq(d.stop(), 0, "tlspolicyd stops cleanly")


t.run(main)
t.done()
