#!/usr/bin/python3
"""milter-auth-keygen: the keys it writes (mode 0600, owned by the daemon's
user), the TXT record it prints (255-byte strings; a message signed with
the key verifies against exactly that record), and --check against a DNS
server: match, mismatch, revoked, missing, temporary failure."""
import os
import pwd
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import run  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

import dkim  # noqa: E402

KEYGEN = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth-keygen")


def keygen(*args):
    p = subprocess.run([KEYGEN] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def record(out, name):
    """The TXT record printed for name: its strings, and their join."""
    m = re.search(re.escape(name) + r"\. IN TXT \((.*?)\)", out, re.S)
    strings = re.findall(r'"([^"]*)"', m.group(1)) if m else []
    return strings, "".join(strings)


def main(t):
    d = sandbox.mkdir("keygen", mode=0o755)
    nobody = pwd.getpwnam("nobody")
    rc, out, err = keygen("-d", "Example.ORG", "-s", "rsa4096", "-b", "4096", "-D", d, "-u", "nobody")
    t.eq(rc, 0, "RSA 4096 key made") or t.diag(err)
    path = os.path.join(d, "rsa4096.private")
    st = os.stat(path)
    t.ok(st.st_mode & 0o777 == 0o600 and st.st_uid == nobody.pw_uid, "written mode 0600, owned by the daemon's user")
    strings, rsa_rec = record(out, "rsa4096._domainkey.example.org")
    t.ok(len(strings) >= 3 and all(len(s) <= 255 for s in strings) and max(len(s) for s in strings) == 255,
         "the TXT record is split into strings of at most 255 bytes", strings)
    t.ok(rsa_rec.startswith("v=DKIM1; k=rsa; p=MII"), "and is a DKIM RSA key record", rsa_rec[:40])
    t.contains(out, "example.org-rsa4096 example.org:rsa4096:%s" % path, "prints the key table line (absolute path)")
    t.contains(out, '"v=spf1 mx -all"', "prints a starting SPF record")
    t.contains(out, '_dmarc.example.org. IN TXT "v=DMARC1; p=none;', "prints a starting DMARC record")
    rc, out2, err = keygen("-d", "example.org", "-s", "rsa4096", "-D", d, "-u", "nobody")
    t.ok(rc == 2 and "exists already" in err and os.stat(path).st_mtime == st.st_mtime,
         "an existing key is never replaced", err)
    rc, out, err = keygen("-d", "example.org", "-s", "ed", "-t", "ed25519", "-D", d, "-u", "nobody")
    t.eq(rc, 0, "Ed25519 key made") or t.diag(err)
    _, ed_rec = record(out, "ed._domainkey.example.org")
    t.ok(re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed_rec), "a one-string Ed25519 record", ed_rec)
    rc, _, err = keygen("-d", "example.org", "-s", "short", "-b", "1024", "-D", d)
    t.ok(rc == 2 and "2048" in err, "-b 1024 refused (RFC 8301)", err)
    rc, _, err = keygen("-d", "example.org", "-s", "x", "-D", d, "-u", "no-such-user-here")
    t.ok(rc == 2 and "no user no-such-user-here" in err, "an unknown daemon user is an error", err)

    # the keys sign, and what they sign verifies against the printed records
    keys = sandbox.path("kg-keytable")
    with open(keys, "w") as f:
        f.write("rsa example.org:rsa4096:%s\ned example.org:ed:%s/ed.private\n" % (path, d))
    signing = sandbox.path("kg-signing")
    with open(signing, "w") as f:
        f.write("*@example.org rsa\n*@example.org ed\n")
    conf = matest.write_conf("authserv_id = mx.example.org\ndns_resolver = 127.0.0.1@1\nuser = nobody\n"
                             "dkim_key_table = %s\ndkim_signing_table = refile:%s\n" % (keys, signing))
    msg = b"From: a@example.org\nTo: b@example.net\nSubject: keygen\n\nhello\n"
    o = run(conf, msg, client_ip="203.0.113.1", mail_from="a@example.org", extra=["--auth", "a@example.org"])
    sigs = [h for h in o.added if h.startswith("DKIM-Signature:")]
    full = b"".join(s.encode() + b"\n" for s in sigs) + msg
    recs = {b"rsa4096._domainkey.example.org.": rsa_rec.encode(), b"ed._domainkey.example.org.": ed_rec.encode()}
    dk = dkim.DKIM(full)
    ok = [dk.verify(idx=i, dnsfunc=lambda n, timeout=5: recs.get(n if n.endswith(b".") else n + b"."))
          for i in range(len(sigs))]
    t.eq(ok, [True, True], "messages signed with the new keys verify against the printed records")

    # --check through a DNS server
    dns = DnsServer("""
rsa4096._domainkey.example.org  TXT "%s"
ed._domainkey.example.org       TXT "%s"
wrong._domainkey.example.org    TXT "v=DKIM1; k=rsa; p=%s"
revoked._domainkey.example.org  TXT "v=DKIM1; k=rsa; p="
slow._domainkey.example.org     SERVFAIL
""" % (rsa_rec, ed_rec, matest.rsa_key(2048)[1]))
    spec = dns.spec

    def check(sel, key, want_rc, want, name):
        rc, out, err = keygen("--check", "-d", "example.org", "-s", sel, "-k", key, "--dns", spec)
        t.ok(rc == want_rc and want in out + err, name, "rc=%d\n%s%s" % (rc, out, err))

    check("rsa4096", path, 0, "the published key matches", "--check: the RSA key matches what DNS has")
    check("ed", d + "/ed.private", 0, "matches", "--check: the Ed25519 key matches")
    check("wrong", path, 1, "does NOT match", "--check: another key published: mismatch, exit 1")
    check("ed", path, 1, "does NOT match", "--check: an RSA key against an Ed25519 record: mismatch")
    check("revoked", path, 1, "revoked", "--check: an empty p= is reported as revoked")
    check("missing", path, 1, "no TXT record", "--check: nothing published: exit 1")
    check("slow", path, 3, "try again", "--check: SERVFAIL is a temporary failure, exit 3")
    dns.stop()


t = Tap()
t.run(main)
t.done()
