#!/usr/bin/python3
"""milter-pgp-keys on the keyring milter-pgp.conf names: import (many files,
armored and binary, junk refused), list, generate (several key pairs per
user, the first is the default), default, export, delete; and milter-pgp
signs with the default key pair it set."""
import os
import pwd
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import BOB, CAROL  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

KEYS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-keys")
ZED = "zed@example.org"


def keys(conf, *args):
    p = subprocess.run([KEYS, "-c", conf] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main(t):
    mptest.keyring()
    ring = sandbox.mkdir("kring", mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(ring, nobody.pw_uid, nobody.pw_gid)  # the daemon's user owns it
    conf = mptest.write_conf("keyring = %s\ntmpdir = %s\n" % (ring, sandbox.mkdir("spool")), "keys.conf")

    junk = sandbox.path("junk.asc")
    open(junk, "w").write("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n")
    rc, out, err = keys(conf, "import", junk)
    t.ok(rc == 1 and "junk.asc: no OpenPGP key in it" in err, "a junk key file: a clear error, exit 1", err)
    binary = sandbox.path("carol.gpg")
    open(binary, "wb").write(mptest.gpg(mptest.person_home("carol"), "--export", CAROL).stdout)
    rc, out, err = keys(conf, "import", sandbox.path("keys", "bob.pub"), binary)
    t.ok(rc == 0 and "bob.pub: 1 key(s): 1 imported" in out and "carol.gpg: 1 key(s): 1 imported" in out,
         "import: an armored and a binary file at once", out + err)
    st = os.stat(os.path.join(ring, "pubring.kbx"))
    t.eq(st.st_uid, nobody.pw_uid, "run as root, it writes the keyring as its owner")

    rc, out, err = keys(conf, "generate", ZED)
    m = re.search(r"key pair ([0-9A-F]{40}) \(ed25519\), default", out)
    t.ok(rc == 0 and m, "generate: an Ed25519/Cv25519 key pair, the first is the default", out + err)
    first = m.group(1) if m else ""
    rc, out, err = keys(conf, "generate", ZED, "rsa3072")
    m = re.search(r"key pair ([0-9A-F]{40}) \(rsa3072\)$", out.strip())
    t.ok(rc == 0 and m, "generate rsa3072: a second key pair for the same user, not the default", out + err)
    second = m.group(1) if m else ""
    rc, out, err = keys(conf, "list")
    t.ok(rc == 0 and re.search(first + r" ok key-pair created=\S+ expires=\S+\n  <zed@example.org> default", out)
         and re.search(second + r" ok key-pair .*\n  <zed@example.org>\n", out) and "<bob@example.net>" in out,
         "list: keys, validity, expiry, the default marker", out)

    msg = "From: zed@example.org\r\nTo: bob@example.net\r\nSubject: k\r\n\r\nhi\r\n"
    o = mptest.run(msg, [BOB], sender=ZED, conf=conf)
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out)) if o.out else (1, b"", "")
    # bob's home does not hold zed's key: the signer shows as ERRSIG with the fingerprint
    t.ok(first and first in status, "milter-pgp signs with the default key pair", status[-400:] + o.log)
    rc, out, err = keys(conf, "default", ZED, second)
    t.ok(rc == 0 and ("%s signs with %s" % (ZED, second)) in out, "default: another key pair", out + err)
    o = mptest.run(msg, [BOB], sender=ZED, conf=conf)
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(second in status, "... and milter-pgp now signs with it", status[-400:])
    rc, out, err = keys(conf, "default", BOB, first)
    t.ok(rc == 1 and "not a usable signing key pair of bob@example.net" in err,
         "default: a key pair of someone else is refused", err)

    rc, out, err = keys(conf, "export", BOB)
    imp = mptest.gpg(sandbox.mkdir("exp", mode=0o700), "--import", input=out.encode(), check=False)
    t.ok(rc == 0 and out.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----") and imp.returncode == 0,
         "export: an armored public key gpg imports")
    bob_fpr = mptest.fingerprint(ring, BOB)
    rc, out, err = keys(conf, "delete", bob_fpr)
    rc2, out2, _ = keys(conf, "list")
    t.ok(rc == 0 and "<bob@example.net>" not in out2, "delete: the key is gone", out + err)
    o = mptest.run(msg, [BOB], sender=ZED, conf=conf)
    t.eq(o.rcpts, {BOB: "plaintext"}, "... and no longer used")
    rc, out, err = keys(conf, "bogus")
    t.eq(rc, 2, "an unknown command: usage, exit 2")


t = Tap()
t.run(main)
t.done()
