#!/usr/bin/python3
"""milter-pgp's recipient keys from DNS OPENPGPKEY (used only when
DNSSEC-secure: a bogus signature tempfails, an unsigned zone is not used),
and key_trust = tofu: the first key seen is pinned, a changed key refused
and logged until milter-pgp-keys accept, pin and list; refresh."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kstest import (DBOG, DORA, DUNS, MSG, TOM, WALT, WANDA, conf_for, decrypts, enc_subkey, export,  # noqa: E402
                    fpr, keys, mptest, new_key, new_ring, sandbox, tom1, wkd_adv)
from mwtest.tap import Tap  # noqa: E402


def main(t):
    ring = new_ring("ring-dns")
    dnsconf = conf_for(ring, extra="key_lookup = openpgpkey\n")
    o = mptest.run(MSG, [DORA], conf=dnsconf)
    ok, status = decrypts(o)
    t.ok(o.rcpts == {DORA: "encrypted"} and ok and "via openpgpkey" in o.log,
         "OPENPGPKEY in a DNSSEC-signed zone: found and used", o.stdout + o.log)
    o = mptest.run(MSG, [DBOG], conf=dnsconf)
    t.ok(o.action == "tempfail" and "servfail" in o.log.lower(),
         "OPENPGPKEY with a bogus signature: not used, tempfail", o.stdout + o.log)
    o = mptest.run(MSG, [DUNS], conf=dnsconf)
    t.ok(o.action == "accept" and o.rcpts == {DUNS: "plaintext"} and "not DNSSEC-secure" in o.log,
         "OPENPGPKEY in an unsigned zone: not used", o.stdout + o.log)

    tring = new_ring("ring-tofu")
    tofu = conf_for(tring, trust="tofu")
    o = mptest.run(MSG, [TOM], conf=tofu)
    ok, status = decrypts(o)
    pins = sandbox.read_text(os.path.join(tring, "mailward-pins"))
    t.ok(o.rcpts == {TOM: "encrypted"} and ok and ("%s %s" % (TOM, tom1)) in pins,
         "tofu: the first key seen is used and pinned", o.stdout + o.log + pins)
    tom2 = new_key(TOM)
    wkd_adv(TOM, export(tom2))  # the published key changes
    o = mptest.run(MSG, [TOM], conf=tofu)
    t.ok(o.action == "tempfail" and re.search(r"key of <%s> changed: pinned %s.*now has %s" % (TOM, tom1, tom2), o.log),
         "tofu: a changed key is refused and logged, the message tempfails", o.stdout + o.log)
    rc, out, err = keys(tofu, "list")
    t.ok(rc == 0 and ("<%s> pinned %s changed-to %s refused" % (TOM, tom1, tom2)) in out,
         "list shows the pin and the refused key", out + err)
    o = mptest.run(MSG, [TOM], conf=conf_for(tring, trust="any"))
    t.ok(o.rcpts == {TOM: "encrypted"}, "key_trust = any takes the new key (pins are not read)", o.stdout + o.log)
    rc, out, err = keys(tofu, "accept", TOM)
    t.ok(rc == 0 and ("<%s> pinned %s" % (TOM, tom2)) in out, "accept: the changed key becomes the pin", out + err)
    o = mptest.run(MSG, [TOM], conf=tofu)
    ok, status = decrypts(o)
    t.ok(o.rcpts == {TOM: "encrypted"} and ok and enc_subkey(tom2) in status and enc_subkey(tom1) not in status,
         "... and the next message is encrypted to the new key", o.stdout + o.log + status)
    rc, out, err = keys(tofu, "pin", TOM, tom1)
    o = mptest.run(MSG, [TOM], conf=tofu)
    t.ok(rc == 0 and o.action == "tempfail", "pin ADDR FPR: pinned back to the old key, the new one refused again",
         out + err + o.stdout)
    rc, out, err = keys(tofu, "pin", TOM)
    t.ok(rc == 0 and ("<%s> pinned %s" % (TOM, tom2)) in out, "pin ADDR: pins the key found now", out + err)
    rc, out, err = keys(tofu, "accept", WANDA)
    t.ok(rc == 1 and "not pinned" in err, "accept of an address without a pin: a clear error", out + err)

    aconf = conf_for(tring, trust="any")
    mptest.run(MSG, [WANDA, WALT], conf=aconf)
    rc, out, err = keys(aconf, "refresh")
    t.ok(rc == 0 and ("<%s> %s via wkd-advanced" % (WANDA, fpr[WANDA])) in out and
         ("<%s> %s via wkd-direct" % (WALT, fpr[WALT])) in out and ("<%s> %s via" % (TOM, tom2)) in out,
         "refresh: every address pinned or found before is looked up again", out + err)


t = Tap()
t.run(main)
t.done()
