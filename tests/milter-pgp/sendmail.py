#!/usr/bin/python3
"""milter-pgp end to end behind Sendmail: a private Sendmail (unpacked from
Debian's sendmail-bin, tests/lib/mwtest/sendmail.py) whose .cf is built
from contrib/sendmail/milter-pgp.mc pasted unchanged but for the socket's
path, milter-pgp running as a daemon (unprivileged), mail sent with swaks
by an authenticated user (SMTP AUTH) or from loopback addresses playing
the internet; what the next hop received is decrypted with gpg.

milter-pgp runs with the host name mx.example.org (its own UTS namespace,
as Sendmail's daemon does): the split copy goes through
`reinject = sendmail:SENDMAIL -C submit.cf`, a submission program as
Debian's /usr/sbin/sendmail is, which wants a qualified host name."""
import email
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, CAROL, DAVE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest import sendmail  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

ERIN = "erin@example.com"  # no key, Bcc
SNIPPET_SOCKET = "unix:/run/mailward/milter-pgp.sock"
EXTERNAL_IP = "127.0.0.3"  # not in trusted_networks
PASSWORD = "correct horse battery staple"
MILTER_AUTH = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth")
MSG = ("From: Alice <alice@example.org>\r\nTo: %(to)s\r\n%(extra)s"
       "Subject: sendmail %(n)d\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
       "Message-ID: <sendmail-%(n)d@example.org>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain;\r\n\tcharset=utf-8\r\nContent-Transfer-Encoding:  8bit\r\n"
       "\r\nGrüße through Sendmail %(n)d\r\n.leading dot\r\n")


def msg(n, to="Bob <bob@example.net>, Carol <carol@example.net>", extra=""):
    return (MSG % {"to": to, "extra": extra, "n": n}).encode()


def head_of(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def cf_option(cf, name):
    m = re.search(r"^O %s=(.*)$" % re.escape(name), cf, re.M)
    return [x.strip() for x in m.group(1).split(",")] if m else []


def Milter(socket, keyring, extra):
    """milter-pgp -f as nobody, in a UTS namespace named like the mail host."""
    prefix = []
    if "." not in os.uname().nodename:
        prefix = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', sendmail.Sendmail.HOSTNAME]
    return mptest.Daemon("sendmail", "socket = %s\nkeyring = %s\ntmpdir = %s\nuser = nobody\nsocket_group = root\n"
                                     "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\nlog_level = debug\n"
                                     "password_templates = %s\n"
                         % (socket, keyring, sandbox.mkdir("sendmail-spool", mode=0o1777), mptest.TEMPLATES),
                         extra, argv_prefix=prefix)


class MilterAuth:
    """milter-auth -f as nobody (its own DNS server: nothing to find)."""

    def __init__(self, socket):
        self.dns = DnsServer("friend.example TXT \"v=spf1 -all\"\n")
        conf = sandbox.path("milter-auth-sendmail.conf")
        with open(conf, "w") as f:
            f.write("authserv_id = mx.example.org\ndns_resolver = %s\ndns_timeout = 1s\n"
                    "trusted_networks = 127.0.0.1/32\nsocket = %s\nuser = nobody\nsocket_group = root\n"
                    "socket_mode = 0660\nlog_level = debug\n" % (self.dns.spec, socket))
        self.log = sandbox.path("milter-auth-sendmail.log")
        self.proc = sandbox.spawn([MILTER_AUTH, "-f", "-c", conf], log=self.log)
        sandbox.wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, 30,
                         what="milter-auth to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("milter-auth exited: " + self.text())

    def text(self):
        return sandbox.read_text(self.log)


def send(sm, rcpts, data, auth=True, client=EXTERNAL_IP, tls=False):
    """(swaks exit status, transcript): SMTP AUTH as alice unless auth is
    False; from client (a loopback address); STARTTLS first with tls."""
    args = ["--from", ALICE, "--to", ",".join(rcpts), "--helo", "client.example", "--local-interface", client,
            "--data", "-"]
    if tls:
        args += ["--tls"]
    if auth:
        args += ["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice-pw"]
    # swaks ends the data with its own CRLF
    return swaks(*args, port=sm.port, input=data[:-2] if data.endswith(b"\r\n") else data, timeout=180)


def by_rcpt(sm):
    """{recipient: [message, ...]} of what the sink received."""
    out = {}
    for env, raw in zip(sm.envelopes(), sm.delivered()):
        for r in env["rcpts"]:
            out.setdefault(re.match(r"<([^>]*)>", r).group(1).lower(), []).append(raw)
    return out


def decrypts(who, m, want):
    """None when who's gpg decrypts m to want with alice's good signature,
    else why not."""
    if b"multipart/encrypted" not in head_of(m):
        return "not PGP/MIME: %r" % head_of(m)[:300]
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home(who), mptest.armored(m))
    if rc != 0 or plain != want or "GOODSIG" not in status:
        return "rc=%d\n%r\n%r\n%s" % (rc, plain[-200:], want[-200:], status[-300:])
    return None


def main(t):
    why = sendmail.unavailable()
    if why:
        t.skip("milter-pgp behind Sendmail", why)
        return
    # the keyring belongs to the daemon's user, as milter-pgp-keys leaves it
    ring = sandbox.path("sendmail-ring")
    shutil.copytree(mptest.keyring(), ring, ignore=shutil.ignore_patterns("S.*"))
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)

    sm = sendmail.Sendmail(name="sendmail-pgp")
    no_auth = sm.sasl_users({"alice": "alice-pw"})
    if no_auth:
        t.skip("milter-pgp behind Sendmail", no_auth)
        return
    sockdir = sandbox.mkdir("sendmail-pgp-milter", mode=0o750)
    sock = os.path.join(sockdir, "milter-pgp.sock")
    # milter-auth's snippet before ours, as its comment says, when both run
    ma = None
    if os.access(MILTER_AUTH, os.X_OK):
        ma_sock = os.path.join(sockdir, "milter-auth.sock")
        ma = MilterAuth("unix:" + ma_sock)
        sm.apply_snippet("contrib/sendmail/milter-auth.mc",
                         replace={"unix:/run/mailward/milter-auth.sock": "unix:" + ma_sock})
    else:
        t.diag("milter-auth not built: milter-pgp's snippet alone")
    snippet = sm.apply_snippet("contrib/sendmail/milter-pgp.mc", replace={SNIPPET_SOCKET: "unix:" + sock})
    t.ok("unix:" + sock in snippet, "the snippet names the socket its comment says (replaced for the sandbox)")
    # STARTTLS with a self-signed certificate, for {tls_version}
    cert, key = sandbox.path("sendmail-pgp-cert.pem"), sandbox.path("sendmail-pgp-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.example.org",
                    "-days", "2", "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=120)
    os.chmod(key, 0o600)
    sm.add_mc("define(`confCACERT_PATH', `%s')dnl\ndefine(`confCACERT', `%s')dnl\n"
              "define(`confSERVER_CERT', `%s')dnl\ndefine(`confSERVER_KEY', `%s')dnl\n"
              % (os.path.dirname(cert), cert, cert, key))
    cf = sm.build_cf()
    t.ok(re.search(r"^Xmilter-pgp, S=unix:%s, F=T," % re.escape(sock), cf, re.M),
         "the .cf has the milter, tempfail when it is down (F=T)")
    if ma:
        t.eq(cf_option(cf, "InputMailFilters"), ["milter-auth", "milter-pgp"],
             "with milter-auth's snippet first: both milters, milter-auth first")
    t.ok("{client_addr}" in cf_option(cf, "Milter.macros.connect"), "{client_addr} is sent at connect")
    envfrom = cf_option(cf, "Milter.macros.envfrom")
    t.ok("{auth_authen}" in envfrom and "{tls_version}" in envfrom,
         "{auth_authen} and {tls_version} are sent at MAIL FROM", envfrom)
    t.ok("i" in cf_option(cf, "Milter.macros.eom"), "the queue id (i) is sent at end of message")
    sm.start()
    submit = sm.submit_cf("nobody")
    # the binary where nobody may run it (the harness's cache is root's)
    exe = os.path.join(sandbox.mkdir("sendmail-bin"), "sendmail")
    shutil.copyfile(sm.exe, exe)
    os.chmod(exe, 0o755)
    reinject = "reinject = sendmail:%s -C %s\nreinject_timeout = 60s\n" % (exe, submit)
    mp = Milter("unix:" + sock, ring, reinject)
    sandbox.at_cleanup(lambda: sandbox.stop(mp.proc))
    status = open("/proc/%d/status" % mp.proc.pid).read()
    t.ok("Uid:\t65534\t65534\t65534\t65534" in status, "milter-pgp runs as nobody after binding")
    delivered = 0

    # an authenticated user from an address outside trusted_networks:
    # outbound only because {auth_authen} reached the milter
    raw = msg(1)
    code, tr = send(sm, [BOB, CAROL], raw)
    t.ok(code == 0 and "235 2.0.0" in tr, "alice, authenticated, sends to bob and carol: accepted", tr)
    got = sm.wait_delivered(1, timeout=120)[0]
    delivered = 1
    env = sm.envelopes()[0]
    t.ok(len(env["rcpts"]) == 2, "one copy, both recipients in its envelope", env)
    t.ok(b"multipart/encrypted" in head_of(got) and "Grüße".encode() not in got,
         "what leaves Sendmail is PGP/MIME, nothing in clear", head_of(got))
    want = mptest.entity(raw, "cipher")
    for who in ("bob", "carol", "alice"):
        why = decrypts(who, got, want)
        t.ok(why is None, "%s decrypts it to the original entity byte for byte, signed by alice" % who, why)
    qid = sendmail.received_id(got)
    line = next((ln for ln in mp.text().splitlines() if "%s: from=<%s>" % (qid, ALICE) in ln), "")
    t.ok(qid and "action=sign+encrypt keys=3" in line,
         "milter-pgp logs one line for it, with Sendmail's queue id (macro i)", (qid, mp.text()[-800:]))

    # an unauthenticated client outside trusted_networks: inbound, unchanged
    raw = msg(2, to="Alice <alice@example.org>")
    code, tr = send(sm, [ALICE], raw, auth=False)
    t.eq(code, 0, "mail from an external client to alice (who has a key) is accepted") or t.diag(tr)
    got = sm.wait_delivered(delivered + 1, timeout=120)[-1]
    delivered += 1
    t.ok(b"multipart/encrypted" not in got and got.endswith(raw.split(b"\r\n\r\n", 1)[1]),
         "it is delivered unchanged ({client_addr}: inbound)", got[-300:])
    if ma:
        t.ok(b"Authentication-Results: mx.example.org;" in head_of(got),
             "milter-auth, first in line, verified it (Authentication-Results)", head_of(got))
    qid = sendmail.received_id(got)
    t.ok(qid and re.search(r"%s: from=<%s> .*direction=inbound" % (qid, re.escape(ALICE)), mp.text()),
         "logged as inbound with its queue id", mp.text()[-500:])

    # from trusted_networks without AUTH: outbound
    raw = msg(3, to="Bob <bob@example.net>")
    code, tr = send(sm, [BOB], raw, auth=False, client="127.0.0.1")
    t.eq(code, 0, "mail from a trusted network (127.0.0.1) without AUTH is accepted") or t.diag(tr)
    got = sm.wait_delivered(delivered + 1, timeout=120)[-1]
    delivered += 1
    t.ok(decrypts("bob", got, mptest.entity(raw, "cipher")) is None, "and encrypted (outbound)",
         decrypts("bob", got, mptest.entity(raw, "cipher")))

    # X-Mailward-Encrypt: require, dave has no key: refused, nothing sent
    raw = msg(4, to="Bob <bob@example.net>, Dave <dave@example.com>", extra="X-Mailward-Encrypt: require\r\n")
    code, tr = send(sm, [BOB, DAVE], raw)
    t.ok(code != 0 and re.search(r"<~?\*\* 550[ -]5\.7\.1 .*%s" % re.escape(DAVE), tr),
         "require with a keyless recipient: 550 5.7.1 at end of data, naming him", tr)

    # {tls_version}: a password header is honoured only from an
    # authenticated user over TLS
    raw = msg(5, to="Dave <dave@example.com>", extra="X-Mailward-Password: %s\r\n" % PASSWORD)
    code, tr = send(sm, [DAVE], raw)
    t.ok(code != 0 and re.search(r"<~?\*\* 550[ -]5\.7\.1 .*X-Mailward-Password", tr)
         and "rejected=password-header-without-tls" in mp.text(),
         "the password header with AUTH but without TLS: 550 5.7.1", tr[-600:])
    code, tr = send(sm, [DAVE], raw, tls=True)
    t.ok(code == 0 and re.search(r"<-  220 2\.0\.0 Ready to start TLS", tr), "the same over STARTTLS: accepted", tr[-1500:])
    got = sm.wait_delivered(delivered + 1, timeout=120)[-1] if code == 0 else b""
    delivered += 1 if code == 0 else 0
    asc = next((p.get_payload(decode=True) for p in email.message_from_bytes(got).walk()
                if p.get_filename() == "message.asc"), b"")
    home = sandbox.mkdir("sendmail-gpg-sym", mode=0o700)
    p = subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase",
                        PASSWORD, "--decrypt"], input=asc, capture_output=True, timeout=120)
    t.ok(p.returncode == 0 and "Grüße through Sendmail 5".encode() in p.stdout and PASSWORD.encode() not in got
         and re.search(r"mode=password source=header envelopes=1 action=password-envelope", mp.text()),
         "it leaves as the password envelope, message.asc opens with the password ({tls_version} reached the milter)",
         (p.stdout[-300:], p.stderr[-300:], mp.text()[-600:]))

    # mixed_recipients = reject: dave refused at RCPT, bob gets it encrypted
    mp.reload(reinject + "mixed_recipients = reject\n")
    raw = msg(6, to="Bob <bob@example.net>, Dave <dave@example.com>")
    code, tr = send(sm, [BOB, DAVE], raw)
    t.ok(re.search(r"<~?\*\* 550[ -]5\.7\.1 .*%s" % re.escape(DAVE), tr) and "RCPT TO:<%s>" % DAVE in tr,
         "mixed_recipients = reject: 550 5.7.1 at RCPT naming dave", tr)
    got = sm.wait_delivered(delivered + 1, timeout=120)[-1]
    delivered += 1
    env = sm.envelopes()[-1]
    t.ok(env["rcpts"] == ["<%s>" % BOB] and decrypts("bob", got, mptest.entity(raw, "cipher")) is None,
         "bob alone receives it, encrypted", (env, decrypts("bob", got, mptest.entity(raw, "cipher"))))

    # mixed_recipients = split through the submission program: To bob
    # (key), Cc dave (no key), Bcc carol (key) and erin (no key)
    mp.reload(reinject + "mixed_recipients = split\n")
    sm.clear_delivered()
    raw = msg(7, to="Bob <bob@example.net>",
              extra="Cc: Dave <dave@example.com>\r\nBcc: Carol <carol@example.net>, erin@example.com\r\n")
    code, tr = send(sm, [BOB, DAVE, CAROL, ERIN], raw)
    t.eq(code, 0, "split: all four recipients accepted") or t.diag(tr + mp.text()[-1500:])
    sm.wait_delivered(2, timeout=120)
    time.sleep(2)  # a third (duplicate or looping) copy would be close behind
    sm.wait_delivered(2, timeout=120)
    got = by_rcpt(sm)
    t.eq(sorted((k, len(v)) for k, v in got.items()), [(BOB, 1), (CAROL, 1), (DAVE, 1), (ERIN, 1)],
         "exactly one copy per recipient")
    t.eq(len(sm.delivered()), 2, "two messages: the encrypted one and the re-injected one")
    want = mptest.entity(raw, "cipher")
    for who, addr in (("bob", BOB), ("carol", CAROL)):
        why = decrypts(who, got.get(addr, [b""])[0], want)
        t.ok(why is None, "%s (key) gets it encrypted, the original entity, signed by alice" % who, why)
    for addr in (DAVE, ERIN):
        m = got.get(addr, [b""])[0]
        ok = b"multipart/signed" in head_of(m) and "Grüße".encode() in m
        if ok:
            signed, sig = mptest.parts(m)[0], mptest.parts(m)[1]
            sigfile, datafile = sandbox.path("sig-%s.asc" % addr), sandbox.path("signed-%s" % addr)
            with open(sigfile, "wb") as f:
                f.write(sig[sig.index(b"-----BEGIN PGP SIGNATURE-----"):])
            with open(datafile, "wb") as f:
                f.write(signed)
            p = mptest.gpg(mptest.person_home("bob"), "--status-fd", "1", "--verify", sigfile, datafile, check=False)
            ok = p.returncode == 0 and b"GOODSIG" in p.stdout and signed == mptest.entity(raw, "clear")
        t.ok(ok, "%s (no key) gets the plaintext copy, signed by alice, the entity byte for byte" % addr, m[:600])
    for m in sm.delivered():
        h = head_of(m).lower()
        t.ok(b"carol" not in h and b"erin" not in h and b"bcc" not in h and b"x-mailward" not in h,
             "no Bcc recipient, loop mark or control header in the %s copy" %
             ("encrypted" if b"multipart/encrypted" in h else "plaintext"), head_of(m))
    plain = got.get(DAVE, [b""])[0]
    t.ok(re.search(rb"^Received: .*by mx\.example\.org \(8[./0-9]*/Submit\)", head_of(plain).replace(b"\r\n\t", b" "),
                   re.M) and len(re.findall(rb"^Received: ", head_of(plain), re.M)) == 2,
         "the plaintext copy came through the submission program, then Sendmail", head_of(plain))
    # milter-pgp's user among submit.cf's trusted users, as the snippet says
    t.ok(b"set sender to" not in head_of(plain), "no X-Authentication-Warning for its -f", head_of(plain))
    t.ok(re.search(r"action=sign\+encrypt keys=3 split=2 .*reinjected=2 via=sendmail:", mp.text())
         and "action=none reinjected" in mp.text(),
         "the copy went through the submission program, Sendmail and milter-pgp again, its mark accepted",
         mp.text()[-1500:])
    delivered = 2

    # milter-pgp down: F=T makes Sendmail defer, never send in clear
    os.kill(mp.proc.pid, signal.SIGTERM)
    rc = mp.proc.wait(30)
    t.ok(rc == 0 and "Sanitizer" not in mp.text() and "runtime error" not in mp.text(),
         "milter-pgp exits cleanly, no sanitizer report", "rc=%s\n%s" % (rc, mp.text()[-3000:]))
    code, tr = send(sm, [BOB], msg(8, to="Bob <bob@example.net>"))
    t.ok(code != 0 and re.search(r"\b4\d\d[ -]4\.", tr), "milter down: mail deferred (4xx), never sent in clear", tr)
    if ma:
        t.ok(ma.proc.poll() is None and "skipped: authenticated as alice" in ma.text(),
             "milter-auth ran beside it all along (outbound mail of alice skipped)", ma.text()[-800:])
    time.sleep(1)
    t.eq(len(sm.wait_delivered(delivered)), delivered, "and nothing delivered")
    sm.stop()


t = Tap()
t.run(main)
t.done()
