#!/usr/bin/python3
"""The RFC 7208 SPF test suite (openspf.org, as kept by pyspf: 203 cases),
each case served by the local DNS server and checked through milter-auth.

MW_SPF_DRIVER=spfcheck (default until the test mode) runs the SPF engine
alone; MW_SPF_DRIVER=testmode runs `milter-auth -t` with the case as a
message and reads the spf= result from its Authentication-Results header.
Cases known to differ say why in KNOWN below; an unknown difference fails.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
import yaml  # noqa: E402

from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

SUITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rfc7208-tests.yml")
# mailward's own cases, same format, where libspf2 alone is wrong only sometimes
EXTRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spf-mailward-tests.yml")
BUILD = sandbox.top_builddir()

# case name -> why our result differs from the suite's (libspf2 behaviour
# we have not corrected). Empty when everything passes.
KNOWN = {}


DRIVER = os.environ.get("MW_SPF_DRIVER", "testmode")
MESSAGE = b"From: <postmaster@nowhere.invalid>\r\nSubject: RFC 7208 suite\r\n\r\ntest\r\n"


def run_spfcheck(dns, case):
    ip, helo, sender = case["host"], case.get("helo", ""), case.get("mailfrom", "")
    argv = [os.path.join(BUILD, "milter-auth/ma-spfcheck"), "-r", dns.spec, "-t", "1500", ip, helo, sender]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    lines = p.stdout.splitlines()
    result = lines[0] if lines else "(no output: %s)" % p.stderr.strip()
    expl = next((line[len("explanation: "):] for line in lines if line.startswith("explanation: ")), None)
    return result, expl, p.stdout + p.stderr


def run_testmode(dns, case):
    """milter-auth -t, rejecting SPF fail (the domains publish no DMARC
    record) so that the explanation shows in the SMTP reply."""
    conf = sandbox.path("rfc7208.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write("authserv_id = mx.example.org\ntrusted_networks = 192.0.2.250\n"
                    "spf_reject_fail = yes\nspf_check_helo = no\nmalformed_from = accept\n"
                    "dns_timeout = 1500ms\n")
    msg = sandbox.path("rfc7208.eml")
    if not os.path.exists(msg):
        with open(msg, "wb") as f:
            f.write(MESSAGE)
    with open(conf) as f:
        text = f.read()
    with open(conf + ".run", "w") as f:
        f.write(text + "dns_resolver = %s\n" % dns.spec)
    argv = [os.path.join(BUILD, "milter-auth/milter-auth"), "-c", conf + ".run", "-t", msg,
            "--client-ip", case["host"], "--helo", case.get("helo", ""),
            "--mail-from", case.get("mailfrom", "")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    import re
    m = re.search(r" spf=(\w+)", p.stderr)
    result = m.group(1) if m else "(no result: %s)" % p.stderr.strip()
    first = p.stdout.splitlines()[0] if p.stdout else ""
    expl = None
    m = re.match(r"action: reject 550 5\.7\.23 (.*)$", first)
    if m:
        expl = m.group(1)
    return result, expl, p.stdout + p.stderr


def run_case(dns, case):
    return run_testmode(dns, case) if DRIVER == "testmode" else run_spfcheck(dns, case)


def run_suite(t, path, tag):
    """Runs every case of one file; returns (passed, total)."""
    docs = list(yaml.safe_load_all(open(path, encoding="utf-8")))
    passed = total = 0
    for i, doc in enumerate(docs):
        zone = sandbox.path("%s-%d.yml" % (tag, i))
        with open(zone, "w", encoding="utf-8") as f:
            yaml.safe_dump({"zonedata": doc["zonedata"]}, f, allow_unicode=True)
        dns = DnsServer(files=[zone])
        for name, case in sorted(doc["tests"].items()):
            total += 1
            want = case["result"] if isinstance(case["result"], list) else [case["result"]]
            got, expl, out = run_case(dns, case)
            ok = got in want
            if ok and "explanation" in case and got == "fail":
                # "DEFAULT" means: the receiver's own explanation
                ok = (expl is not None and expl.endswith("designated mail servers")) \
                    if case["explanation"] == "DEFAULT" else expl == case["explanation"]
            passed += ok
            label = "%s: %s (%s)" % (doc.get("description", "")[:40], name, "/".join(want))
            if name in KNOWN and not ok:
                t.ok(True, label + " # TODO " + KNOWN[name])
            else:
                t.ok(ok, label, "got %s%s\nspec: %s\n%s" % (
                    got, " explanation %r" % expl if expl else "", case.get("spec", ""), out))
        dns.stop()
    return passed, total


def main():
    t = Tap()
    passed, total = run_suite(t, SUITE, "rfc7208")
    t.diag("RFC 7208 suite: %d of %d cases pass" % (passed, total))
    passed, total = run_suite(t, EXTRA, "mailward")
    t.diag("mailward's own SPF cases: %d of %d pass" % (passed, total))
    t.done()

main()
