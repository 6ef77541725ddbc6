#!/usr/bin/python3
"""Whose quota a request spends (issue 17, items 8-9): exemptions match only
the attribute they name (an authenticated user sending with an exempt
envelope sender is still limited), counters are named after the kind of
their key (an unauthenticated sender=alice@... never spends SASL user
alice@...'s quota), overrides without a kind follow the rule's first key
only, the old exempt_users key is refused with file:line and what to write,
and the contrib configuration limits authenticated submissions by SASL
name."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prtest  # noqa: E402
from prtest import Daemon  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
overrides = sandbox.path("whose.overrides")
with open(overrides, "w") as f:
    f.write("trusted@example.org per-user exempt\nsender:web@shop.example per-user 5/1h\n")
d = Daemon("""
rule = per-user: key=sasl_username|sender limit=2/1h
exempt = sasl_username:postmaster@example.org
exempt = sender:bounces@lists.example, client_address:10.0.0.0/8
overrides_file = %s
""" % overrides)
c = d.client()


def verdicts(n, **kw):
    return [c.ask(**kw).split()[0] for _ in range(n)]


def counter_kind(t):
    t.eq(verdicts(1, user="alice@example.org"), ["DUNNO"], "SASL user alice sends 1 of 2")
    got = verdicts(3, user="", sender="alice@example.org", client="192.0.2.7")
    t.eq(got, ["DUNNO", "DUNNO", "DEFER_IF_PERMIT"],
         "unauthenticated sender=alice@example.org has a quota of its own (2 of 2, then deferred)")
    t.eq(verdicts(2, user="alice@example.org"), ["DUNNO", "DEFER_IF_PERMIT"],
         "... and did not spend SASL user alice's: she still has 1 left")
    rc, out = d.ctl("usage", "per-user:alice@example.org")
    t.ok(rc == 0 and "per-user:sasl_username:alice@example.org" in out and
         "per-user:sender:alice@example.org" in out, "usage shows one counter per kind", out)
    t.ok(re.search(r"per-user:sasl_username:alice@example\.org.*\b2\b", out), "... with what each counted", out)
    log = d.log()
    t.contains(log, "key=sender:alice@example.org", "the log says which kind was limited")
    rc, out = d.ctl("reset", "per-user:sender:alice@example.org")
    t.ok(rc == 0 and "OK 1" in out, "reset of one kind's counter", out)
    t.eq(verdicts(1, user="", sender="alice@example.org", client="192.0.2.7"), ["DUNNO"],
         "... frees that kind only")
    t.eq(verdicts(1, user="alice@example.org"), ["DEFER_IF_PERMIT"], "... not the SASL user's")


def exemptions(t):
    t.eq(verdicts(5, user="postmaster@example.org"), ["DUNNO"] * 5, "exempt sasl_username: never limited")
    got = verdicts(3, user="mallory@example.org", sender="postmaster@example.org")
    t.eq(got, ["DUNNO", "DUNNO", "DEFER_IF_PERMIT"],
         "an authenticated user with sender=postmaster@ (an exempt SASL name) is limited")
    got = verdicts(5, user="", sender="bounces@lists.example", client="192.0.2.8")
    t.eq(got, ["DUNNO"] * 5, "exempt sender: that envelope sender is never limited")
    t.eq(verdicts(5, user="carol@example.org", client="10.9.8.7"), ["DUNNO"] * 5, "exempt client_address")


def overrides_by_kind(t):
    t.eq(verdicts(5, user="trusted@example.org"), ["DUNNO"] * 5,
         "an override without a kind applies to the rule's first key (sasl_username)")
    got = verdicts(3, user="", sender="trusted@example.org", client="192.0.2.9")
    t.eq(got, ["DUNNO", "DUNNO", "DEFER_IF_PERMIT"], "... not to a sender claiming the same name")
    got = verdicts(6, user="", sender="web@shop.example", client="192.0.2.10")
    t.eq(got, ["DUNNO"] * 5 + ["DEFER_IF_PERMIT"], "an override naming sender: applies to the sender fallback")


def check(text):
    conf = sandbox.path("whose-check.conf")
    with open(conf, "w") as f:
        f.write(text)
    p = subprocess.run([prtest.POLICYD, "-C", "-c", conf], capture_output=True, text=True)
    return p.returncode, p.stderr, conf


def old_key(t):
    rc, err, conf = check("rule = u: key=sasl_username limit=1/1h\nexempt_users = postmaster@example.org\n")
    t.ok(rc == 2 and conf + ":2:" in err and "exempt = sasl_username:" in err,
         "exempt_users is refused at file:line, saying what to write", err)
    rc, err, conf = check("rule = u: key=sasl_username limit=1/1h\nexempt = postmaster@example.org\n")
    t.ok(rc == 2 and conf + ":2:" in err and "does not say what it matches" in err,
         "an exemption without a kind is refused", err)
    rc, err, conf = check("rule = u: key=sasl_username limit=1/1h\nexempt = client_address:10.0.0.300/8\n")
    t.ok(rc == 2 and conf + ":2:" in err, "a bad client_address network is refused", err)
    ov = sandbox.path("whose-bad.overrides")
    with open(ov, "w") as f:
        f.write("sasl_user:alice@example.org u 5/1h\n")
    rc, err, conf = check("rule = u: key=sasl_username limit=1/1h\noverrides_file = %s\n" % ov)
    t.ok(rc == 2 and ov + ":1:" in err and "unknown kind" in err, "an override with an unknown kind is refused", err)


def contrib(t):
    top = sandbox.top_srcdir()
    with open(os.path.join(top, "contrib", "mailward", "policyd-rate.conf")) as f:
        text = f.read()
    text = text.replace("/etc/mailward/policyd-rate.overrides",
                        os.path.join(top, "contrib", "mailward", "policyd-rate.overrides"))
    conf = sandbox.path("contrib.conf")
    with open(conf, "w") as f:
        f.write(text)
    p = subprocess.run([prtest.POLICYD, "-n", "-c", conf], capture_output=True, text=True)
    t.ok(p.returncode == 0, "the contrib configuration loads", p.stderr)
    rules = [ln for ln in p.stdout.splitlines() if ln.startswith("rule = per-user")]
    t.ok(rules and all("key=sasl_username " in r and "match=authenticated" in r for r in rules),
         "contrib: the per-user rules count authenticated submissions by SASL name only", "\n".join(rules))
    ex = [ln for ln in p.stdout.splitlines() if ln.startswith("exempt =")]
    t.ok(ex and all("sender:" not in e for e in ex) and any("sasl_username:" in e for e in ex),
         "contrib: exempts by SASL name only", "\n".join(ex))


t.run(counter_kind)
t.run(exemptions)
t.run(overrides_by_kind)
t.run(old_key)
t.run(contrib)
t.done()
