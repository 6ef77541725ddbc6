#!/usr/bin/python3
"""What policyd-rate limits, on the in-memory store: exactness at the
boundary, windows sliding over time (GCRA: no 2x burst at a window edge),
recipients and bytes, the stage at which mail is counted, key fallback for
unauthenticated mail, overrides re-read on SIGHUP, exemptions, actions, and
the admin command and metrics."""
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prtest import Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
overrides = sandbox.path("overrides")
with open(overrides, "w") as f:
    f.write("# per-user limits\nvip@example.org per-user 5/1h\nbig.example per-domain exempt\n"
            "robot@example.org * exempt\n")
# the metrics port: a new one if another program took it
metrics_port, d = sandbox.with_free_port(lambda port: Daemon("""
rule = per-user: key=sasl_username|sender limit=250/1h
rule = per-domain: key=sender_domain limit=1000/1h match=authenticated
rule = fast: key=sasl_username limit=3/3s networks=198.51.100.0/24
rule = rcpts: key=sasl_username limit=10/1h count=recipients networks=203.0.113.0/24
rule = bytes: key=sasl_username limit=100000/1h count=bytes networks=203.0.113.0/24
rule = anon-net: key=client_network/24 limit=4/1h match=unauthenticated action=reject
rule = held: key=sender limit=1/1h networks=100.64.0.99/32 action=hold
exempt_networks = 10.0.0.0/8
exempt = sasl_username:postmaster@example.org
overrides_file = %s
metrics_listen = inet:%d@127.0.0.1
""" % (overrides, port)))
c = d.client()


def boundary(t):
    got = [c.ask(user="alice@example.org") for _ in range(250)]
    t.eq(got.count("DUNNO"), 250, "messages 1..250 in the hour pass")
    r = c.ask(user="alice@example.org")
    t.ok(r.startswith("DEFER_IF_PERMIT 4.7.1 "), "message 251 is deferred with 4.7.1", r)
    t.contains(r, "alice@example.org", "the reply names the account")
    t.contains(r, "250 messages per hour", "the reply states the limit")
    t.ok(re.search(r"retry after \d+ (s|sec|min)", r), "the reply says when to retry", r)
    # GCRA: one message's worth returns every 3600/250 = 14.4 s
    t.contains(r, "retry after 15 s", "... 15 s: one message returns every 14.4 s")
    man = open(os.path.join(sandbox.top_srcdir(), "man", "policyd-rate.8")).read()
    t.contains(man, "250 messages per hour, retry after 15 s", "policyd-rate(8)'s example says the same")
    t.eq(c.ask(user="alice@example.org").split()[0], "DEFER_IF_PERMIT", "message 252 too")
    t.eq(c.ask(user="carol@example.org"), "DUNNO", "another account is not affected")
    # a deferred message was not counted: after a reset alice has 250 again
    rc, out = d.ctl("usage", "per-user:alice@example.org")
    t.ok(rc == 0 and "250" in out, "policyd-rate-ctl usage shows 250 used", out)
    rc, out = d.ctl("reset", "per-user:alice@example.org")
    t.ok(rc == 0 and "OK" in out, "policyd-rate-ctl reset", out)
    t.eq(c.ask(user="alice@example.org"), "DUNNO", "after reset the account may send again")


def sliding(t):
    # 3 per 3 s from 198.51.100.0/24: one more is allowed every second
    u = dict(user="slide@example.org", client="198.51.100.7")
    got = [c.ask(**u) for _ in range(3)]
    t.eq(got, ["DUNNO"] * 3, "a burst of 3 passes")
    t.eq(c.ask(**u).split()[0], "DEFER_IF_PERMIT", "the 4th at once is deferred")
    time.sleep(1.1)
    t.eq(c.ask(**u), "DUNNO", "1 s later one more passes (the window slides)")
    t.eq(c.ask(**u).split()[0], "DEFER_IF_PERMIT", "... but only one")
    time.sleep(3.1)
    got = [c.ask(**u) for _ in range(4)]
    t.eq([g.split()[0] for g in got], ["DUNNO"] * 3 + ["DEFER_IF_PERMIT"],
         "after a full period: 3 again, never 2x at a window edge")
    # steady sending at the rate is never deferred
    v = dict(user="steady@example.org", client="198.51.100.8")
    ok = 0
    for _ in range(4):
        ok += c.ask(**v) == "DUNNO"
        time.sleep(1.05)
    t.eq(ok, 4, "sending at exactly the rate (1/s) is never deferred")


def recipients(t):
    u = dict(user="rc@example.org", client="203.0.113.5")
    t.eq(c.ask(rcpt_count=6, **u), "DUNNO", "6 recipients of 10")
    t.eq(c.ask(rcpt_count=4, **u), "DUNNO", "4 more: 10 of 10")
    r = c.ask(rcpt_count=1, **u)
    t.ok(r.startswith("DEFER_IF_PERMIT") and "10 recipients per hour" in r, "the 11th recipient is deferred", r)
    w = dict(user="rc2@example.org", client="203.0.113.5")
    r = c.ask(rcpt_count=11, **w)
    t.ok(r.startswith("DEFER_IF_PERMIT"), "one message with 11 recipients is deferred whole", r)
    t.eq(c.ask(rcpt_count=10, **w), "DUNNO", "... and was not counted: 10 then pass")


def size(t):
    u = dict(user="bytes@example.org", client="203.0.113.6", rcpt_count=1)
    t.eq(c.ask(size=60000, **u), "DUNNO", "60 kB of 100 kB")
    r = c.ask(size=50000, **u)
    t.ok(r.startswith("DEFER_IF_PERMIT") and "bytes" in r, "50 kB more is over: deferred", r)
    t.eq(c.ask(size=40000, **u), "DUNNO", "40 kB still fits")


def stages(t):
    u = dict(user="stage@example.org", client="198.51.100.9")
    for _ in range(10):
        c.ask(stage="RCPT", **u)
        c.ask(stage="DATA", **u)
    t.eq([c.ask(**u) for _ in range(3)], ["DUNNO"] * 3,
         "RCPT and DATA requests do not count (count_at = end-of-message)")
    r = c.ask(stage="RCPT", **u)
    t.ok(r.startswith("DEFER_IF_PERMIT"), "once over the limit, RCPT is refused early (check_at_rcpt)", r)
    t.eq(c.ask(stage="RCPT", user="other-stage@example.org", client="198.51.100.9"), "DUNNO",
         "RCPT for an account under its limit passes")


def fallback(t):
    # no SASL login: per-user falls back to the sender; anon-net counts the /24
    u = dict(user="", sender="web@shop.example", client="192.0.2.50")
    got = [c.ask(**u) for _ in range(4)]
    t.eq(got, ["DUNNO"] * 4, "4 unauthenticated messages from one /24")
    r = c.ask(user="", sender="other@shop.example", client="192.0.2.51")
    t.ok(r.startswith("REJECT 5.7.1"), "the 5th from the same /24 is rejected (action=reject)", r)
    rc, out = d.ctl("usage", "per-user:web@shop.example")
    t.ok(rc == 0 and re.search(r"\b4\b", out), "per-user counted the unauthenticated sender", out)
    rc, out = d.ctl("usage", "anon-net:192.0.2.0/24")
    t.ok(rc == 0 and re.search(r"\b5\b|\b4\b", out), "anon-net counted by network", out)
    r = c.ask(user="", sender="x@held.example", client="100.64.0.99")
    r2 = c.ask(user="", sender="x@held.example", client="100.64.0.99")
    t.ok(r == "DUNNO" and r2.startswith("HOLD"), "action=hold puts the 2nd in the hold queue", r2)


def exemptions(t):
    got = [c.ask(user="intra@example.org", client="10.1.2.3") for _ in range(300)]
    t.eq(got.count("DUNNO"), 300, "exempt_networks: 300 messages from 10/8 pass")
    got = [c.ask(user="postmaster@example.org") for _ in range(300)]
    t.eq(got.count("DUNNO"), 300, "exempt = sasl_username:postmaster: 300 messages pass")
    got = [c.ask(user="robot@example.org") for _ in range(300)]
    t.eq(got.count("DUNNO"), 300, "override 'exempt' for every rule")


def overrides_and_sighup(t):
    got = [c.ask(user="vip@example.org") for _ in range(6)]
    t.eq([g.split()[0] for g in got], ["DUNNO"] * 5 + ["DEFER_IF_PERMIT"], "override: vip limited to 5/1h")
    t.contains(got[-1], "5 messages per hour", "the reply states the overridden limit")
    with open(overrides, "w") as f:
        f.write("vip@example.org per-user 8/1h\nrobot@example.org * exempt\n")
    log = d.reload()
    t.contains(log, "configuration reloaded", "SIGHUP reloads")
    got = [c.ask(user="vip@example.org") for _ in range(4)]
    t.eq([g.split()[0] for g in got], ["DUNNO"] * 3 + ["DEFER_IF_PERMIT"],
         "after SIGHUP vip has 8/1h: 3 more pass (count kept across reload)")
    # a broken overrides file: the running configuration stays
    with open(overrides, "w") as f:
        f.write("vip@example.org per-user many/1h\n")
    log = d.reload()
    t.ok("reload failed" in log and overrides in log, "a bad overrides file: reload refused, file named", log)
    t.eq(c.ask(user="vip@example.org").split()[0], "DEFER_IF_PERMIT", "... and the old limits still apply")
    t.eq(c.ask(user="newcomer@example.org"), "DUNNO", "... and mail still flows")


def admin(t):
    rc, out = d.ctl("top", "5")
    t.ok(rc == 0 and "alice@example.org" in out or "rc@example.org" in out, "top lists the busiest keys", out)
    rc, out = d.ctl("stats")
    t.ok(rc == 0 and re.search(r"policyd_rate_requests_total \d+", out), "stats prints counters", out[:300])
    m = re.search(r'policyd_rate_actions_total\{action="defer"\} (\d+)', out)
    t.ok(m and int(m.group(1)) >= 5, "deferred requests are counted", out[:600])
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=5).read().decode()
    t.ok("policyd_rate_latency_seconds_bucket" in body and "policyd_rate_store_up 1" in body,
         "Prometheus metrics over HTTP", body[:300])
    rc, out = d.ctl("usage", "nosuchrule:x")
    t.ok("nothing counted" in out or "ERROR" in out, "usage of an unknown key says so", out)
    rc, out = d.ctl("frobnicate")
    t.ok(rc != 0, "an unknown command is refused", out)


t.run(boundary)
t.run(sliding)
t.run(recipients)
t.run(size)
t.run(stages)
t.run(fallback)
t.run(exemptions)
t.run(overrides_and_sighup)
t.run(admin)
c.close()
t.done()
