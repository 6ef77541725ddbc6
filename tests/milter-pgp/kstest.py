"""What the milter-pgp key discovery tests (keysrc_wkd.py, keysrc_trust.py)
share: the people whose keys are discovered (their key pairs in one home,
"web"), a local HTTPS server (tests/tlspolicyd's, --static) with a test CA
serving their keys by WKD, a DNS server with their OPENPGPKEY records (a
DNSSEC-signed zone, a bogus signature, an unsigned zone), and a keyring
for milter-pgp that holds none of them."""
import hashlib
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tlspolicyd"))
import mptest  # noqa: E402
from mptest import ALICE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
import signzone  # noqa: E402
from tptest import StsServer, TestCA  # noqa: E402

KEYS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-keys")
MSG = "From: alice@example.org\r\nTo: x\r\nSubject: keys\r\nContent-Type: text/plain\r\n\r\nhello\r\n"

WANDA, WALT, NOBODY = "wanda@wkd-adv.example", "walt@wkd-direct.example", "nobody@wkd-adv.example"
OLD, REVOKED = "old@wkd-adv.example", "rev@wkd-adv.example"
BIG, SLOW, BADCERT = "big@wkd-big.example", "slow@wkd-slow.example", "bc@wkd-badcert.example"
DBADCERT = "dbc@wkd-dbadcert.example"  # the direct method's host, its certificate not for that name
TOM = "tom@wkd-adv.example"
DORA, DBOG, DUNS = "dora@dnssec.example", "dbog@dnssec.example", "duns@unsigned.example"
PAULA, PETE = "paula@wkd-pub.example", "pete@wkd-pubd.example"


def zbase32_sha1(local):
    """An implementation of our own, to cross-check wkd.c."""
    digest = hashlib.sha1(local.lower().encode()).digest()
    bits = "".join("{:08b}".format(b) for b in digest)
    return "".join("ybndrfg8ejkmcpqxot1uwisza345h769"[int(bits[i:i + 5], 2)] for i in range(0, 160, 5))


def openpgpkey_name(addr):
    local, domain = addr.rsplit("@", 1)
    return hashlib.sha256(local.encode()).hexdigest()[:56] + "._openpgpkey." + domain


def keys(conf, *args):
    p = subprocess.run([KEYS, "-c", conf] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


web = sandbox.mkdir("web", mode=0o700)  # the secret keys of the people we discover


def fprs(home, addr):
    out = mptest.gpg(home, "--with-colons", "--list-keys", "<%s>" % addr, check=False).stdout.decode()
    keys, prev = [], ""
    for ln in out.splitlines():
        if ln.startswith("fpr:") and prev.startswith("pub:"):
            keys.append(ln.split(":")[9])
        prev = ln
    return keys


def new_key(addr, faked_time=None, expire="2y"):
    """A new Ed25519/Cv25519 key pair for addr in web: its fingerprint."""
    pre = ["--faked-system-time", faked_time] if faked_time else []
    out = mptest.gpg(web, *pre, "--status-fd", "1", "--quick-gen-key", addr, "future-default", "default",
                     expire).stdout.decode()
    return re.search(r"KEY_CREATED \w ([0-9A-F]+)", out).group(1)


def export(fpr):
    return mptest.gpg(web, "--export", fpr).stdout


def enc_subkey(fpr):
    out = mptest.gpg(web, "--with-colons", "--list-keys", fpr).stdout.decode()
    return [ln.split(":")[4] for ln in out.splitlines() if ln.startswith("sub:")][-1]


static = sandbox.mkdir("static")


def publish(host, path, data):
    """data at https://HOST/PATH on the test server."""
    full = os.path.join(static, host, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)


def wkd_adv(addr, data):
    local, domain = addr.rsplit("@", 1)
    publish("openpgpkey." + domain, "/.well-known/openpgpkey/%s/hu/%s" % (domain, zbase32_sha1(local)), data)


def wkd_direct(addr, data):
    local, domain = addr.rsplit("@", 1)
    publish(domain, "/.well-known/openpgpkey/hu/%s" % zbase32_sha1(local), data)


fpr = {}
for a in (WANDA, WALT, DORA, DBOG, DUNS):
    fpr[a] = new_key(a)
for a in (BIG, SLOW, BADCERT, DBADCERT):  # refused before their contents count: any key will do
    fpr[a] = fpr[WANDA]
fpr[OLD] = new_key(OLD, faked_time="20210101T000000", expire="1d")
fpr[REVOKED] = new_key(REVOKED)
rev = open(os.path.join(web, "openpgp-revocs.d", fpr[REVOKED] + ".rev")).read()
mptest.gpg(web, "--import", input=rev.replace(":-----BEGIN", "-----BEGIN").encode())
tom1 = new_key(TOM)
tom1_data = export(tom1)

wkd_adv(WANDA, export(fpr[WANDA]))
wkd_direct(WALT, export(fpr[WALT]))
wkd_adv(OLD, export(fpr[OLD]))
wkd_adv(REVOKED, export(fpr[REVOKED]))
wkd_adv(BIG, export(fpr[BIG]) + b"\xb4\x01x" * 30000)  # a user attribute padding it past 64 KB
wkd_adv(SLOW, export(fpr[SLOW]))
wkd_adv(BADCERT, export(fpr[BADCERT]))
wkd_direct(DBADCERT, export(fpr[DBADCERT]))
wkd_adv(TOM, tom1_data)
with open(os.path.join(static, "openpgpkey.wkd-slow.example.delay"), "w") as f:
    f.write("20")

dns_key = export(fpr[DORA])
signed = [(openpgpkey_name(DORA), "OPENPGPKEY", "\\# %d %s" % (len(dns_key), dns_key.hex()))]
bog_key = export(fpr[DBOG])
signed.append((openpgpkey_name(DBOG), "OPENPGPKEY", "\\# %d %s" % (len(bog_key), bog_key.hex())))
zone_text, anchor_text = signzone.sign("dnssec.example", signed, bogus={openpgpkey_name(DBOG)})
zdir = sandbox.mkdir("zones")
with open(os.path.join(zdir, "signed.zone"), "w") as f:
    f.write(zone_text)
anchor = os.path.join(zdir, "anchor.key")
with open(anchor, "w") as f:
    f.write(anchor_text)
uns_key = export(fpr[DUNS])
plain = "".join("%s A 127.0.0.1\n" % h for h in (
    "openpgpkey.wkd-adv.example", "wkd-adv.example", "wkd-direct.example", "openpgpkey.wkd-big.example",
    "openpgpkey.wkd-slow.example", "openpgpkey.wkd-badcert.example", "openpgpkey.wkd-pub.example",
    "wkd-pubd.example", "wkd-dbadcert.example"))
plain += "%s OPENPGPKEY \\# %d %s\n" % (openpgpkey_name(DUNS), len(uns_key), uns_key.hex())
dns = DnsServer(plain, files=[os.path.join(zdir, "signed.zone")], ttl=1)

# openpgpkey.wkd-badcert.example and wkd-dbadcert.example are left out of the certificate
ca = TestCA(["openpgpkey.wkd-adv.example", "wkd-adv.example", "wkd-direct.example", "openpgpkey.wkd-big.example",
             "openpgpkey.wkd-slow.example", "openpgpkey.wkd-pub.example", "wkd-pubd.example"])
https = StsServer(ca, name="wkd", static=static)


def conf_for(ring, trust="any", extra=""):
    return mptest.write_conf(
        "keyring = %s\ntmpdir = %s\nkey_trust = %s\nwkd_ca_file = %s\nwkd_port = %d\ndns_resolver = %s\n"
        "dns_trust_anchor = %s\nkey_lookup_timeout = 4s\nwkd_max_size = 64k\n%s"
        % (ring, sandbox.mkdir("spool"), trust, ca.ca, https.port, dns.spec, anchor, extra),
        "ks-%s-%d.conf" % (trust, abs(hash(ring + extra))))


def fetches(path_part):
    return len([ln for ln in sandbox.read_text(os.path.join(https.dir, "requests.log")).splitlines()
                if path_part in ln])


def new_ring(name):
    """A keyring for milter-pgp without any of their keys (alice has none
    either: nothing is signed, the messages go to the discovered keys)."""
    ring = sandbox.mkdir(name, mode=0o700)
    mptest.gpg(ring, "--list-keys")
    return ring


def decrypts(o, home=None):
    """Decrypted (the signer's key is not there to check: not the point)."""
    if not o.out or o.action != "accept":
        return False, ""
    rc, plaintext, status = mptest.gpg_decrypt(home or web, mptest.armored(o.out))
    return "DECRYPTION_OKAY" in status and b"hello" in plaintext, status


