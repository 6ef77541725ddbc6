#!/usr/bin/python3
"""tlspolicyd's decisions against a local DNS server (part of it
DNSSEC-signed for this run) and a local HTTPS server with a test CA:
the policy file, DANE (TLSA present, absent, unusable, bogus -> TEMP),
MTA-STS (enforce, testing, bad certificate, oversized, slow, wrong media
type, id change, cache across a restart, expired cache with the server
gone), DANE and MTA-STS together, DNS timeouts; one fetch for many
concurrent lookups."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import signzone  # noqa: E402
from tptest import Daemon, StsServer, TestCA, policy  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
TLSA = "3 1 1 " + "ab" * 32

STS = ["enforce", "testing", "badcert", "big", "slow", "ctype", "nopolicy", "shared", "idchange", "expire",
       "gone", "restart"]
plain = "".join("%s.example MX 10 mx.%s.example\n"
                "_mta-sts.%s.example TXT \"v=STSv1; id=%s1;\"\n"
                "mta-sts.%s.example A 127.0.0.1\n" % (d, d, d, d, d) for d in STS)
plain += ("none.example MX 10 mx.none.example\n"
          "timeout.example TIMEOUT\n"
          "twotxt.example MX 10 mx.twotxt.example\n"
          "_mta-sts.twotxt.example TXT \"v=STSv1; id=a;\"\n"
          "_mta-sts.twotxt.example TXT \"v=STSv1; id=b;\"\n"
          "badtxt.example MX 10 mx.badtxt.example\n"
          "_mta-sts.badtxt.example TXT \"v=STSv1; id=not_alnum;\"\n"
          "_mta-sts.txttimeout.example TIMEOUT\n"
          "txttimeout.example MX 10 mx.txttimeout.example\n")

signed_records = [
    ("dane.dnssec.example", "MX", "10 mx.dane.dnssec.example"),
    ("_25._tcp.mx.dane.dnssec.example", "TLSA", TLSA),
    ("danests.dnssec.example", "MX", "10 mx.danests.dnssec.example"),
    ("_25._tcp.mx.danests.dnssec.example", "TLSA", TLSA),
    ("_mta-sts.danests.dnssec.example", "TXT", '"v=STSv1; id=ds1;"'),
    ("notlsa.dnssec.example", "MX", "10 mx.none.example"),
    ("_mta-sts.notlsa.dnssec.example", "TXT", '"v=STSv1; id=nt1;"'),
    ("mta-sts.notlsa.dnssec.example", "A", "127.0.0.1"),
    ("bogus.dnssec.example", "MX", "10 mx.bogus.dnssec.example"),
    ("_25._tcp.mx.bogus.dnssec.example", "TLSA", TLSA),
    ("bogusmx.dnssec.example", "MX", "10 mx.dane.dnssec.example"),
    ("unusable.dnssec.example", "MX", "10 mx.unusable.dnssec.example"),
    ("_25._tcp.mx.unusable.dnssec.example", "TLSA", "1 1 1 " + "cd" * 32),
]
zone_text, anchor_text = signzone.sign("dnssec.example", signed_records,
                                       bogus={"_25._tcp.mx.bogus.dnssec.example", "bogusmx.dnssec.example"})
zdir = sandbox.mkdir("zones")
signed_path = os.path.join(zdir, "signed.zone")
with open(signed_path, "w") as f:
    f.write(zone_text)
anchor = os.path.join(zdir, "anchor.key")
with open(anchor, "w") as f:
    f.write(anchor_text)
dns = DnsServer(plain, files=[signed_path], ttl=1)

# badcert.example is left out of the certificate: a name mismatch
names = ["mta-sts.%s.example" % d for d in STS if d != "badcert"] + ["mta-sts.notlsa.dnssec.example",
                                                                     "mta-sts.danests.dnssec.example"]
ca = TestCA(names)
https = StsServer(ca)
for d in STS:
    https.serve(d + ".example", policy("enforce", ["mx.%s.example" % d, "*.%s.example" % d]))
https.serve("testing.example", policy("testing", ["mx.testing.example"]))
https.serve("big.example", policy("enforce", ["mx.big.example"]) + "x-padding: " + "x" * 70000 + "\r\n")
https.serve("slow.example", policy("enforce", ["mx.slow.example"]), delay=6)
https.serve("ctype.example", policy("enforce", ["mx.ctype.example"]), ctype="text/html")
os.unlink(os.path.join(https.dir, "mta-sts.nopolicy.example"))
https.serve("notlsa.dnssec.example", policy("enforce", ["mx.none.example"]))
https.serve("danests.dnssec.example", policy("enforce", ["mx.danests.dnssec.example"]))

pfile = os.path.join(zdir, "policy")
with open(pfile, "w") as f:
    f.write("# exceptions\n"
            "enforce.example   may\n"
            ".sub.example      secure match=.sub.example\n"
            "[relay.example]:587 verify\n")

COMMON = ("dns_resolver = %s\ndns_trust_anchor = %s\ndns_timeout = 2s\nmta_sts_port = %d\n"
          "mta_sts_ca_file = %s\n" % (dns.spec, anchor, https.port, ca.ca))
BASE = COMMON + "mta_sts_timeout = 2s\n"

tester = Daemon(BASE, name="tester", start=False)


bad_exits = []


def decide(domain, d=tester):
    policy_, reason, rc, err = d.test(domain)
    if rc != 0:  # also what a sanitizer build reports (a leak: exit 23)
        bad_exits.append((domain, rc, err[-2000:]))
    return policy_, reason or ""


def mta_sts(t):
    p, r = decide("none.example")
    t.eq(p, "OK encrypt", "no DANE, no MTA-STS: default_policy encrypt")
    t.contains(r, "no _mta-sts TXT record", "the reason names the missing TXT record")
    p, r = decide("enforce.example")
    t.eq(p, "OK secure match=mx.enforce.example:.enforce.example servername=hostname",
         "MTA-STS enforce: secure with the mx patterns ('*.' written as Postfix's '.')")
    t.contains(r, "mta-sts enforce (fetched policy id=enforce1", "the reason says fetched, with the id")
    p, r = decide("Enforce.Example")
    t.contains(p, "secure match=mx.enforce.example", "the domain is matched case-insensitively")
    t.ok(not os.path.exists(tester.cache), "-t reads the cache file but never writes it")
    p, r = decide("testing.example")
    t.eq(p, "OK encrypt", "MTA-STS testing: the default policy")
    t.contains(r, "mta-sts mode testing", "testing mode is named in the reason")
    p, r = decide("badcert.example")
    t.eq(p, "TEMP MTA-STS policy fetch failed", "a certificate for another name: TEMP, never a weaker policy")
    t.contains(r, "mta-sts.badcert.example", "the reason names the policy host")
    p, r = decide("big.example")
    t.eq(p, "TEMP MTA-STS policy fetch failed", "a policy over 64 KiB: TEMP")
    t.contains(r, "larger than 65536 bytes", "the reason says it was too large")
    # the server answers after 6 s, the fetch gives up after 2 s: an answer would have been OK
    p, r = decide("slow.example")
    t.eq(p, "TEMP MTA-STS policy fetch failed", "a server slower than mta_sts_timeout: TEMP")
    t.contains(r, "timed out", "the reason says it timed out")
    p, r = decide("ctype.example")
    t.eq(p, "TEMP MTA-STS policy fetch failed", "a policy served as text/html: TEMP (RFC 8461 3.3)")
    p, r = decide("nopolicy.example")
    t.eq(p, "TEMP MTA-STS policy fetch failed", "a TXT record but no policy (404): TEMP")
    t.contains(r, "HTTP status 404", "the reason gives the HTTP status")
    p, r = decide("twotxt.example")
    t.eq(p, "OK encrypt", "two STSv1 TXT records: no MTA-STS (RFC 8461 3.1)")
    p, r = decide("badtxt.example")
    t.eq(p, "OK encrypt", "an invalid STSv1 TXT record: no MTA-STS")


def on_fetch_error_default(t):
    d = Daemon(BASE + "on_fetch_error = default\n", name="fetchdefault", start=False)
    p, r = decide("badcert.example", d)
    t.eq(p, "OK encrypt", "on_fetch_error = default: a failed fetch gives default_policy")
    t.contains(r, "on_fetch_error = default", "and says so")


def dns_failures(t):
    t0 = time.monotonic()
    p, r = decide("timeout.example")
    t.eq(p, "TEMP DNS lookup failed", "MX lookup timing out: TEMP")
    t.contains(r, "MX timeout.example: timeout", "the reason names the lookup")
    p, r = decide("txttimeout.example")
    t.eq(p, "TEMP MTA-STS lookup failed", "_mta-sts TXT lookup timing out, nothing cached: TEMP")


def dane(t):
    p, r = decide("dane.dnssec.example")
    t.eq(p, "OK dane-only", "secure MX with secure TLSA: dane-only")
    t.contains(r, "secure TLSA on 1 of 1 MX hosts (mx.dane.dnssec.example)", "the reason names the MX host")
    p, r = decide("danests.dnssec.example")
    t.eq(p, "OK dane-only", "DANE and MTA-STS both published: DANE wins (RFC 8461 2)")
    t.eq(https.requests("danests.dnssec.example"), [], "and no MTA-STS fetch was made")
    p, r = decide("notlsa.dnssec.example")
    t.eq(p, "OK secure match=mx.none.example servername=hostname",
         "secure MX without TLSA (the host's zone is unsigned): MTA-STS applies")
    p, r = decide("bogus.dnssec.example")
    t.eq(p, "TEMP DNSSEC validation failed", "a bogus TLSA record: TEMP, not may")
    t.contains(r, "TLSA _25._tcp.mx.bogus.dnssec.example: bogus", "the reason names the bogus record")
    p, r = decide("bogusmx.dnssec.example")
    t.eq(p, "TEMP DNSSEC validation failed", "a bogus MX record set: TEMP")
    p, r = decide("unusable.dnssec.example")
    t.eq(p, "OK encrypt", "only unusable TLSA records (PKIX-EE): mandatory TLS (RFC 7672 2.2)")


def policy_file(t):
    d = Daemon(BASE + "policy_file = %s\n" % pfile, name="pfile", start=False)
    p, r = decide("enforce.example", d)
    t.eq(p, "OK may", "the policy file wins over MTA-STS")
    t.contains(r, "policy_file %s:2 (enforce.example)" % pfile, "the reason gives file:line")
    p, r = decide("a.b.sub.example", d)
    t.eq(p, "OK secure match=.sub.example", "a .parent entry matches subdomains at any depth")
    p, r = decide("sub.example", d)
    t.ok(p != "OK secure match=.sub.example", "a .parent entry does not match the parent itself")
    p, r = decide("[relay.example]:587", d)
    t.eq(p, "OK verify", "a [host]:port next hop from the file")
    p, r = decide("[other.example]:587", d)
    t.eq(p, "OK encrypt", "another [host]:port: default_policy, no DNS")
    with open(os.path.join(zdir, "badpolicy"), "w") as f:
        f.write("good.example encrypt\nbad.example encrypt match=x\n")
    bad = Daemon(BASE + "policy_file = %s\n" % os.path.join(zdir, "badpolicy"), name="badpfile", start=False)
    p, r, rc, err = bad.test("x.example")
    t.eq(rc, 2, "a bad policy file: exit 2")
    t.contains(err, "badpolicy:2: match= only goes with fingerprint, verify or secure", "file:line: what")


def daemon_cache(t):
    # a long fetch timeout: the shared fetch below takes 8 s on purpose
    # answer_cache_ttl = 0: every request below looks again (expiry, id change)
    d = Daemon(COMMON + "mta_sts_timeout = 30s\nworkers = 1\nanswer_cache_ttl = 0\n", name="daemon")
    c = d.client()
    t.eq(c.ask("enforce.example"), "OK secure match=mx.enforce.example:.enforce.example servername=hostname",
         "the daemon answers over the socketmap")
    # many concurrent lookups of one domain: one fetch
    # the server holds the answer 8 s: every request arrives while the one fetch runs
    https.serve("shared.example", policy("enforce", ["mx.shared.example"]), delay=8)
    answers = []

    def ask():
        cl = d.client()
        answers.append(cl.ask("shared.example"))
        cl.close()
    threads = [threading.Thread(target=ask) for _ in range(30)]
    for th in threads:
        th.start()
    sandbox.wait_for(lambda: https.requests("shared.example"), 30, what="the shared fetch to start")
    # the one worker is busy with that fetch: a next hop in brackets needs no lookup and is answered at once
    other = d.client()
    t.eq(other.ask("[relay.example]:25"), "OK encrypt", "a [host]:port next hop is answered during a slow fetch")
    t.eq(answers, [], "... before the slow fetch ends (it is not queued behind it)")
    other.close()
    for th in threads:
        th.join()
    t.eq(answers, ["OK secure match=mx.shared.example servername=hostname"] * 30, "30 concurrent lookups answered")
    t.eq(len(https.requests("shared.example")), 1, "30 concurrent lookups of one domain cost one fetch")
    t.contains(d.log(), "shared.example: OK secure match=mx.shared.example servername=hostname; reason: "
               "mta-sts enforce (fetched policy id=shared1, max_age=86400) (shared by concurrent requests)",
               "one log line for the shared lookup")

    # id change: a new policy is only fetched when the TXT id changes
    https.serve("idchange.example", policy("enforce", ["mx-a.idchange.example"]))
    t.contains(c.ask("idchange.example"), "match=mx-a.idchange.example", "idchange.example: first policy")
    https.serve("idchange.example", policy("enforce", ["mx-b.idchange.example"]))
    t.contains(c.ask("idchange.example"), "match=mx-a.idchange.example", "same id: the cached policy, no fetch")
    t.eq(len(https.requests("idchange.example")), 1, "one fetch so far")
    dns.set_zone(plain.replace('id=idchange1;', 'id=idchange2;'))
    dns.reload()

    def changed():
        return "mx-b" in c.ask("idchange.example")
    sandbox.wait_for(changed, 30, interval=0.5, what="the new id to be seen")
    t.ok(True, "a changed id: the new policy is fetched")

    # expired cache, server gone: TEMP; unexpired cache, server gone: the cache
    https.serve("expire.example", policy("enforce", ["mx.expire.example"], max_age=2))
    t.contains(c.ask("expire.example"), "secure", "expire.example fetched (max_age 2s)")
    t.contains(c.ask("gone.example"), "secure match=mx.gone.example", "gone.example fetched (max_age 1 day)")
    https.stop()
    dns.set_zone(plain.replace('id=idchange1;', 'id=idchange2;').replace("id=gone1;", "id=gone2;"))
    dns.reload()
    time.sleep(3)
    t.eq(c.ask("expire.example"), "TEMP MTA-STS policy fetch failed",
         "expired cache and the policy server gone: TEMP")
    mark = len(d.log())
    t.eq(c.ask("gone.example"), "OK secure match=mx.gone.example:.gone.example servername=hostname",
         "new id, server gone, cached policy in force: the cached policy (RFC 8461 5.1)")
    # the cached policy answers at once; the fetch of the new id runs (and fails) behind it
    d.wait_log("gone.example: MTA-STS background refresh failed", timeout=60, since=mark)
    t.ok(True, "the failed refresh is logged")
    c.close()

    # the cache survives a restart: server still gone, TXT unchanged
    d.stop()
    d.start()
    c = d.client()
    t.eq(c.ask("enforce.example"), "OK secure match=mx.enforce.example:.enforce.example servername=hostname",
         "after a restart, with the policy server gone: the cached policy")
    c.close()
    d.stop()
    https.start()


def answer_cache(t):
    d = Daemon(BASE + "answer_cache_ttl = 5m\n", name="answers")
    c = d.client()
    t.eq(c.ask("none.example"), "OK encrypt", "first ask: looked up")
    mark = len(d.log())
    t.eq(c.ask("none.example"), "OK encrypt", "asked again: the same answer")
    t.contains(d.log()[mark:], "none.example: OK encrypt; reason: the same answer within answer_cache_ttl",
               "... kept, without new lookups")
    t.eq(c.ask("timeout.example"), "TEMP DNS lookup failed", "a TEMP answer")
    mark = len(d.log())
    c.ask("timeout.example")
    t.ok("timeout.example: TEMP DNS lookup failed; reason: MX timeout.example" in d.log()[mark:],
         "a TEMP answer is never kept: asked again, looked up again")
    d.reload()
    mark = len(d.log())
    c.ask("none.example")
    t.contains(d.log()[mark:], "none.example: OK encrypt; reason: default_policy", "SIGHUP forgets kept answers")
    c.close()
    d.stop()


t.run(mta_sts)
t.run(answer_cache)
t.run(on_fetch_error_default)
t.run(dns_failures)
t.run(dane)
t.run(policy_file)
t.run(daemon_cache)
t.eq(bad_exits, [], "every tlspolicyd -t run exited 0")
t.done()
