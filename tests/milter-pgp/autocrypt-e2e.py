#!/usr/bin/python3
"""Autocrypt end to end: a private Postfix with smtpd_milters = milter-auth,
milter-pgp (both contrib snippets pasted), the local test DNS: milter-auth's
real Authentication-Results (DMARC pass for a DKIM-signed message) makes
milter-pgp learn the sender's Autocrypt key; a forged A-R of our
authserv-id on a message whose DMARC fails is removed by milter-auth before
milter-pgp sees the message, and nothing is learned from it. Outbound, the
daemon adds the header to each message of an opted-in sender, exporting
the key once."""
import base64
import os
import pwd
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../milter-auth"))
import matest  # noqa: E402
import mptest  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

KEYS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-keys")
RSA, RSA_PUB = matest.rsa_key(2048)
FRIEND_IP, SPOOFER_IP = "127.0.0.2", "127.0.0.3"
FRIEND, OPEN = "friend@friend.example", "someone@open.example"
ZONE = """
friend.example                  TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.friend.example           TXT "v=DMARC1; p=reject"
sel._domainkey.friend.example   TXT "v=DKIM1; p=%(rsa)s"
open.example                    TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.open.example             TXT "v=DMARC1; p=none"
""" % {"ip": FRIEND_IP, "rsa": RSA_PUB}


def person(name, addr):
    home = sandbox.mkdir("people", name, mode=0o700)
    mptest.gpg(home, "--quick-gen-key", addr, "ed25519", "sign,cert", "2y")
    fpr = mptest.fingerprint(home, addr)
    mptest.gpg(home, "--quick-add-key", fpr, "cv25519", "encr", "2y")
    raw = mptest.gpg(home, "--export", "--export-options", "export-minimal", fpr).stdout
    s = base64.b64encode(raw).decode()
    return fpr, "addr=%s; keydata=\r\n %s" % (addr, "\r\n ".join(s[i:i + 72] for i in range(0, len(s), 72)))


def send(pf, msg, client, mail_from):
    return swaks("--from", mail_from, "--to", "alice@example.org", "--helo", "mail.friend.example",
                 "--local-interface", client, "--data", "-", port=pf.port, input=msg)


def main(t):
    dns = DnsServer(ZONE)
    ring = sandbox.path("ac-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*"))
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    ma = matest.Milter(dns, "unix:%s/milter-auth.sock" % sockdir)
    sandbox.at_cleanup(lambda: sandbox.stop(ma.proc))
    conf = mptest.write_conf(
        "socket = unix:%s/milter-pgp.sock\nkeyring = %s\ntmpdir = %s\nuser = nobody\nsocket_group = postfix\n"
        "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\nlog_level = debug\nauthserv_id = mx.example.org\n"
        "autocrypt_for = example.org\n"
        % (sockdir, ring, sandbox.mkdir("ac-spool", mode=0o1777)), "milter-pgp-ac-e2e.conf")
    log = sandbox.path("milter-pgp-ac-e2e.log")
    mp = sandbox.spawn([mptest.MILTER_PGP, "-f", "-c", conf], log=log)
    sandbox.at_cleanup(lambda: sandbox.stop(mp))
    sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or mp.poll() is not None, 20,
                     what="milter-pgp to listen")
    pf.apply_snippet("contrib/postfix/milter-auth.cf")
    pf.apply_snippet("contrib/postfix/milter-pgp.cf",
                     replace={"127.0.0.1:10026": "127.0.0.1:%d" % sandbox.free_port()})
    # the order contrib/postfix/milter-pgp.cf asks for: milter-auth first
    pf.set(smtpd_milters="unix:mailward/milter-auth.sock, unix:mailward/milter-pgp.sock")
    pf.start()

    friend_fpr, friend_ac = person("friend", FRIEND)
    good = matest.sign(matest.message(frm="Friend <%s>" % FRIEND, extra="Autocrypt: %s\r\n" % friend_ac).encode(),
                       "sel", "friend.example", RSA)
    # a forgery of our A-R on top: milter-auth removes it
    forged = b"Authentication-Results: mx.example.org; dmarc=pass header.from=friend.example\r\n" + good
    code, tr = send(pf, forged, FRIEND_IP, FRIEND)
    t.eq(code, 0, "the friend's signed message with an Autocrypt header is accepted") or t.diag(tr)
    got = pf.wait_delivered(1, timeout=120)[0]
    out = subprocess.run([KEYS, "-c", conf, "autocrypt", "list"], capture_output=True, text=True, timeout=60)
    t.ok(b"dmarc=pass" in got and re.search(r"autocrypt=learned\(dmarc\)", sandbox.read_text(log)) and
         ("<%s> %s" % (FRIEND, friend_fpr)) in out.stdout,
         "learned from milter-auth's real Authentication-Results (DMARC pass)", sandbox.read_text(log)[-3000:] + out.stdout)

    open_fpr, open_ac = person("open", OPEN)
    spoof = ("Authentication-Results: mx.example.org; dkim=pass header.d=open.example;\r\n"
             "\tdmarc=pass header.from=open.example\r\n" +
             matest.message(frm="Someone <%s>" % OPEN, subject="spoof", extra="Autocrypt: %s\r\n" % open_ac)).encode()
    code, tr = send(pf, spoof, SPOOFER_IP, OPEN)
    t.eq(code, 0, "a message failing DMARC (p=none) with a forged A-R of our authserv-id is accepted") or t.diag(tr)
    got = pf.wait_delivered(2, timeout=120)[1]
    out = subprocess.run([KEYS, "-c", conf, "autocrypt", "list"], capture_output=True, text=True, timeout=60)
    t.ok(b"dmarc=fail" in got and b"dmarc=pass" not in got and
         "autocrypt=ignored(not-authenticated)" in sandbox.read_text(log) and OPEN not in out.stdout,
         "milter-auth removed the forgery before milter-pgp saw it: nothing learned",
         sandbox.read_text(log)[-3000:] + out.stdout)

    # outbound (trusted client): the header on each message, the key exported once
    for i in (1, 2):
        code, tr = send(pf, matest.message(frm="Alice <%s>" % mptest.ALICE, subject="out %d" % i).encode(),
                        "127.0.0.1", mptest.ALICE)
        t.eq(code, 0, "alice's message %d accepted" % i) or t.diag(tr)
    got = pf.wait_delivered(4, timeout=120)[2:]
    hs = [mptest.header(g.replace(b"\n", b"\r\n"), "Autocrypt") for g in got]
    t.ok(len(hs) == 2 and all(len(h) == 1 and h[0].startswith("addr=%s; keydata=" % mptest.ALICE) for h in hs) and
         re.sub(r"\s", "", hs[0][0]) == re.sub(r"\s", "", hs[1][0]),
         "the daemon adds alice's Autocrypt header to each of her messages", repr(hs))
    t.eq(sandbox.read_text(log).count("Autocrypt key of <%s>:" % mptest.ALICE), 1,
         "her key is exported once (a gpg process), then taken from the cache")


t = Tap()
t.run(main)
t.done()
