"""milter-pgp in the demo: alice's outbound mail encrypted to recipients
whose keys the provider knows, signed with her key pair."""
import os
import pwd
import subprocess

NAME = "milter-pgp"
BINARY = "milter-pgp/milter-pgp"
KEYS = "milter-pgp/milter-pgp-keys"
CAROL = "carol@partner.example"


def available(demo):
    return demo.binary(BINARY) is not None and demo.binary(KEYS) is not None


def _gpg(home, *args, data=None):
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                           "--passphrase", ""] + list(args), input=data, capture_output=True, timeout=120)


def attach(demo):
    from mwtest import sandbox
    nobody = pwd.getpwnam("nobody")
    ring = os.path.join(demo.dir, "pgp-keyring")
    os.makedirs(ring, mode=0o700, exist_ok=True)
    os.chown(ring, nobody.pw_uid, nobody.pw_gid)  # the daemon's user owns its keyring
    sockdir = os.path.join(demo.postfix.queue_dir, "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(sockdir, 0o750)
    spool = os.path.join(demo.dir, "pgp-spool")
    os.makedirs(spool, mode=0o1777, exist_ok=True)
    os.chmod(spool, 0o1777)
    conf = os.path.join(demo.dir, "milter-pgp.conf")
    with open(conf, "w") as f:
        f.write("socket = unix:%s/milter-pgp.sock\nsocket_group = postfix\nuser = nobody\n"
                "keyring = %s\ntmpdir = %s\ntrusted_networks = 127.0.0.1/32\n" % (sockdir, ring, spool))
    keys = demo.binary(KEYS)
    # alice's key pair, made by the provider; carol's key, made by carol elsewhere
    subprocess.run([keys, "-c", conf, "generate", "alice@example.org"], check=True, capture_output=True)
    demo.milter_pgp_carol = os.path.join(demo.dir, "carol-gnupg")
    os.makedirs(demo.milter_pgp_carol, mode=0o700, exist_ok=True)
    _gpg(demo.milter_pgp_carol, "--quick-gen-key", CAROL, "ed25519", "sign,cert", "1y")
    fpr = [ln.split(":")[9] for ln in _gpg(demo.milter_pgp_carol, "--with-colons", "-k").stdout.decode().splitlines()
           if ln.startswith("fpr:")][0]
    _gpg(demo.milter_pgp_carol, "--quick-add-key", fpr, "cv25519", "encr", "1y")
    pub = os.path.join(demo.dir, "carol.asc")
    with open(pub, "wb") as f:
        f.write(_gpg(demo.milter_pgp_carol, "--armor", "--export", CAROL).stdout)
    subprocess.run([keys, "-c", conf, "import", pub], check=True, capture_output=True)
    demo.milter_pgp_log = os.path.join(demo.dir, "milter-pgp.log")
    proc = sandbox.spawn([demo.binary(BINARY), "-f", "-c", conf], log=demo.milter_pgp_log)
    sandbox.wait_for(lambda: "listening on" in _log(demo) or proc.poll() is not None, 20, what="milter-pgp")
    # The snippet an admin pastes; with milter-auth attached too, both run,
    # milter-auth first (as the snippet's comment says).
    before = demo.postfix.get("smtpd_milters")
    demo.postfix.apply_snippet("contrib/postfix/milter-pgp.cf")
    if before and "milter-pgp" not in before:
        demo.postfix.set(smtpd_milters="%s, unix:mailward/milter-pgp.sock" % before)


def _log(demo):
    from mwtest import sandbox
    return sandbox.read_text(demo.milter_pgp_log)


def messages(demo):
    m = __import__("__main__").Message
    pw = demo.users["alice"]
    body = "Carol, the contract draft: Grüße, and 8-bit text survives.\n"
    return [
        m("an encrypted letter to carol", "Alice writes to carol@partner.example, whose key the provider "
          "has: milter-pgp encrypts it (PGP/MIME) to carol and to alice, signed with alice's key.",
          kind="submission", mail_from="alice@example.org", rcpt=CAROL, user="alice", password=pw,
          headers={"From": "Alice <alice@example.org>", "Content-Type": "text/plain; charset=utf-8",
                   "Content-Transfer-Encoding": "8bit", "MIME-Version": "1.0"}, body=body, plugin=NAME),
        m("a letter to someone without a key", "dave@elsewhere.example has no key: sent in clear "
          "(mixed_recipients = plaintext), signed.", kind="submission", mail_from="alice@example.org",
          rcpt="dave@elsewhere.example", user="alice", password=pw, plugin=NAME),
        # from the web mail server on the trusted network (127.0.0.1), not
        # the submission port: alice's hourly sending limit is spent
        m("encryption required, but no key", "The same, from the web mail on the trusted network, with "
          "X-Mailward-Encrypt: require: refused rather than sent in clear.", mail_from="alice@example.org",
          rcpt="dave@elsewhere.example", client_ip="127.0.0.1", helo="webmail.example.org",
          headers={"X-Mailward-Encrypt": "require"}, plugin=NAME),
    ]


def describe(demo, msg):
    if msg.plugin != NAME:
        return []
    out = []
    d = msg.delivered
    if d is not None and d.get_content_type() == "multipart/encrypted":
        armored = d.get_payload()[1].get_payload().encode()
        p = _gpg(demo.milter_pgp_carol, "--status-fd", "2", "--decrypt", data=armored)
        first = p.stdout.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip().splitlines()[:1]
        signed = "GOODSIG" in p.stderr.decode() or "ERRSIG" in p.stderr.decode()
        out.append("milter-pgp: delivered as PGP/MIME (multipart/encrypted)%s" % (", signed" if signed else ""))
        out.append("milter-pgp: carol decrypts it with gpg: %r" % (first[0] if first else ""))
    elif d is not None and d.get_content_type() == "multipart/signed":
        out.append("milter-pgp: no key for the recipient: sent in clear, signed (multipart/signed)")
    elif msg.smtp_reply and "5.7.1" in msg.smtp_reply:
        out.append("milter-pgp: refused: " + msg.smtp_reply)
    return out


def finish(demo, messages):
    lines = [ln.split("]: ", 1)[-1] for ln in _log(demo).splitlines() if " from=<" in ln]
    demo.notes.append("milter-pgp logged %d messages, one line each, e.g.:" % len(lines))
    for ln in lines[:2]:
        demo.notes.append("  " + ln)
