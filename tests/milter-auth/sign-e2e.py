#!/usr/bin/python3
"""DKIM signing round trip through two private Postfix instances: the
provider's (submission with SMTP AUTH through Dovecot, milter-auth signing
with RSA and Ed25519 as an unprivileged daemon) relays to a receiver whose
milter-auth verifies: dkim=pass for both signatures, dmarc=pass (and
OpenDKIM beside it: dkim=pass for the RSA one). Also:
sender_login_check refuses at SMTP, SIGHUP swaps the signing table without
dropping an open connection."""
import base64
import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

NOBODY = pwd.getpwnam("nobody")
KEYDIR = sandbox.mkdir("e2e-keys", mode=0o755)


def owned_key(name, data):
    path = os.path.join(KEYDIR, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


RSA, RSA_PUB = matest.rsa_key(2048)
ED, ED_PUB = matest.ed25519_key()
RSA_PATH = owned_key("rsa.private", RSA)
ED_PATH = owned_key("ed.private", ED + b"\n")
ED_PUB = ED_PUB.decode() if isinstance(ED_PUB, bytes) else ED_PUB

ZONE = """
example.org                   TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.example.org            TXT "v=DMARC1; p=reject"
rsa._domainkey.example.org    TXT "v=DKIM1; k=rsa; p=%s"
ed._domainkey.example.org     TXT "v=DKIM1; k=ed25519; p=%s"
""" % (RSA_PUB, ED_PUB)


def write(name, text):
    path = sandbox.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def milter_dir(pf):
    d = os.path.join(pf.queue_dir, "mailward")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o750)
    os.chown(d, 0, pwd.getpwnam("postfix").pw_gid)
    return d


class Milter:
    def __init__(self, name, socket, text):
        self.conf = write("milter-auth-%s.conf" % name, text)
        self.log = sandbox.path("milter-auth-%s.log" % name)
        self.proc = sandbox.spawn([matest.MILTER_AUTH, "-f", "-c", self.conf], log=self.log)
        sandbox.wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, 30,
                         what="milter-auth %s to listen" % name)
        if self.proc.poll() is not None:
            raise RuntimeError("milter-auth exited: " + self.text())

    def text(self):
        return sandbox.read_text(self.log)


def message(subject, frm="Alice <alice@example.org>"):
    return ("From: %s\r\nTo: Bob <bob@example.net>\r\nSubject: %s\r\n"
            "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "X-Originating-IP: [10.1.2.3]\r\n\r\n"
            "Gr\xfc\xdfe, Bob.\r\n\r\n-- \r\nAlice\r\n" % (frm, subject, subject.replace(" ", "-"))).encode("utf-8")


def submit(pf, msg, user="alice", frm="alice@example.org"):
    return swaks("--from", frm, "--to", "bob@example.net", "--data", "-", "--auth", "PLAIN",
                 "--auth-user", user, "--auth-password", "pw-" + user, port=pf.submission_port,
                 input=msg)


def results(raw, authserv):
    import email
    m = email.message_from_bytes(raw)
    out = []
    for ar in m.get_all("Authentication-Results") or []:
        text = " ".join(ar.split())
        if text.startswith(authserv + ";"):
            out += [p.strip() for p in text.split(";")[1:]]
    return out


def main(t):
    dns = DnsServer(ZONE)
    # the receiver: verifies
    rx = Postfix(name="receiver", main={"relay_domains": "example.net"}, mynetworks="127.0.0.254/32")
    rxdir = milter_dir(rx)
    Milter("rx", "unix:%s/milter-auth.sock" % rxdir,
           "authserv_id = mx.example.net\ndns_resolver = %s\ndns_timeout = 2s\n"
           "trusted_networks = 192.0.2.250\nsocket = unix:%s/milter-auth.sock\nuser = nobody\n"
           "socket_group = postfix\nsocket_mode = 0660\n" % (dns.spec, rxdir))
    rx.apply_snippet("contrib/postfix/milter-auth.cf")
    # and OpenDKIM verifying beside it, its keys from a file (TestPublicKeys)
    peer = shutil.which("opendkim") is not None
    if peer:
        run = sandbox.mkdir("rx-opendkim", mode=0o777)
        keys = write("rx-opendkim-keys", "rsa._domainkey.example.org v=DKIM1; k=rsa; p=%s\n"
                     "ed._domainkey.example.org v=DKIM1; k=ed25519; p=%s\n" % (RSA_PUB, ED_PUB))
        conf = write("rx-opendkim.conf", "Mode v\nSocket local:%s/opendkim.sock\nUMask 000\n"
                     "AuthservID opendkim.test\nSyslog no\nBaseDirectory %s\nAlwaysAddARHeader yes\n"
                     "TestPublicKeys %s\n" % (run, run, keys))
        sandbox.spawn(["opendkim", "-f", "-x", conf], log=os.path.join(run, "opendkim.log"))
        sandbox.wait_for(lambda: os.path.exists(run + "/opendkim.sock"), 30, what="OpenDKIM")
        rx.set(smtpd_milters="unix:mailward/milter-auth.sock unix:%s/opendkim.sock" % run)
    rx.start()

    # the provider: signs what its users submit
    tx = Postfix(name="provider", main={"relayhost": "[127.0.0.1]:%d" % rx.port})
    txdir = milter_dir(tx)
    keys = write("e2e-keytable", "rsa example.org:rsa:%s\ned example.org:ed:%s\n" % (RSA_PATH, ED_PATH))
    signing = write("e2e-signingtable", "*@example.org rsa\n*@example.org ed\n")
    logins = write("e2e-logins", "@example.org alice\n")
    base = ("authserv_id = mx.example.org\ndns_resolver = %s\ndns_timeout = 2s\n"
            "socket = unix:%s/milter-auth.sock\nuser = nobody\nsocket_group = postfix\nsocket_mode = 0660\n"
            "dkim_key_table = %s\ndkim_signing_table = refile:%s\nsender_login_check = yes\n"
            "sender_login_maps = %s\n" % (dns.spec, txdir, keys, signing, logins))
    ma = Milter("tx", "unix:%s/milter-auth.sock" % txdir, base)
    tx.apply_snippet("contrib/postfix/milter-auth.cf")
    dc = Dovecot(users={"alice": "pw-alice", "mallory": "pw-mallory"})
    tx.sasl_dovecot(dc.auth_socket)
    tx.start()

    code, tr = submit(tx, message("dual signed"))
    t.eq(code, 0, "authenticated submission accepted by the provider") or t.diag(tr)
    got = rx.wait_delivered(1, timeout=60)[0]
    res = results(got, "mx.example.net")
    dkim = sorted(r for r in res if r.startswith("dkim="))
    t.ok(len(dkim) == 2 and all(r.startswith("dkim=pass header.d=example.org") for r in dkim)
         and any("header.s=rsa" in r for r in dkim) and any("header.s=ed" in r for r in dkim),
         "the receiver's milter-auth: dkim=pass for the RSA and the Ed25519 signature", res)
    t.ok(any(r.startswith("dmarc=pass") for r in res), "and dmarc=pass", res)
    if peer:
        theirs = results(got, "opendkim.test")
        t.ok(any(r.startswith("dkim=pass") and "header.s=rsa" in r for r in theirs),
             "OpenDKIM at the receiver: dkim=pass for the RSA signature", theirs)
    else:
        t.skip("OpenDKIM at the receiver", "opendkim is not installed (tools/install-deps --tests)")
    t.ok(b"X-Originating-IP" not in got, "the user's X-Originating-IP did not leave the provider")
    t.ok("dkim-signed(d=example.org s=rsa a=rsa-sha256) dkim-signed(d=example.org s=ed a=ed25519-sha256)"
         in ma.text(), "the provider's log line names both signatures", ma.text()[-2000:])

    # sender_login_check: refused at end of data, 550 5.7.1
    code, tr = submit(tx, message("not mine", frm="CEO <ceo@example.org>"), user="mallory",
                      frm="ceo@example.org")
    t.ok(code != 0 and "550 5.7.1" in tr and "not owned" in tr,
         "mallory sending as ceo@example.org: 550 5.7.1 at SMTP", tr)

    # SIGHUP swaps the signing table; a connection opened before keeps working
    held = smtplib.SMTP("127.0.0.1", tx.submission_port, timeout=60)
    held.login("alice", "pw-alice")
    held.mail("alice@example.org")
    held.rcpt("bob@example.net")
    with open(signing, "w") as f:
        f.write("*@example.org ed\n")
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "configuration reloaded" in ma.text(), 30, what="reload")
    code, resp = held.data(message("across the reload"))
    held.quit()
    t.eq(code, 250, "a connection opened before the SIGHUP still delivers")
    code, tr = submit(tx, message("after reload"))
    t.eq(code, 0, "submission after the reload accepted") or t.diag(tr)
    delivered = rx.wait_delivered(3, timeout=60)
    after = next(m for m in delivered if b"Subject: after reload" in m)
    across = next(m for m in delivered if b"Subject: across the reload" in m)
    res = [r for r in results(after, "mx.example.net") if r.startswith("dkim=")]
    t.ok(len(res) == 1 and res[0].startswith("dkim=pass") and "header.s=ed" in res[0],
         "after SIGHUP: signed with the new table only (Ed25519)", res)
    res = [r for r in results(across, "mx.example.net") if r.startswith("dkim=")]
    t.ok(res and all(r.startswith("dkim=pass") for r in res), "the held connection's message verifies", res)

    # a key the daemon's user cannot read (root's, mode 0600): the reload
    # fails with file:line, the running keys stay
    os.chown(ED_PATH, 0, 0)
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "reload failed" in ma.text(), 30, what="failed reload")
    t.ok("e2e-keytable:2: cannot open key file %s: Permission denied" % ED_PATH in ma.text(),
         "a key the daemon cannot read: file:line error on SIGHUP", ma.text()[-1500:])
    os.chown(ED_PATH, NOBODY.pw_uid, NOBODY.pw_gid)
    # a key made world-readable: the same
    fails = ma.text().count("reload failed")
    os.chmod(ED_PATH, 0o644)
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: ma.text().count("reload failed") > fails, 30, what="failed reload")
    t.ok(ma.proc.poll() is None and "is accessible to its group or others" in ma.text(),
         "a world-readable key on SIGHUP: logged with file:line, daemon keeps signing with the old keys")
    code, tr = submit(tx, message("after failed reload"))
    got = rx.wait_delivered(4, timeout=60)
    last = next(m for m in got if b"Subject: after failed reload" in m)
    t.ok(any(r.startswith("dkim=pass") for r in results(last, "mx.example.net")), "and mail is still signed")
    os.chmod(ED_PATH, 0o600)

    # simple/simple through Postfix: libopendkim's folded RSA header and our
    # Ed25519 one both survive the MTA byte for byte
    with open(signing, "w") as f:
        f.write("*@example.org rsa\n*@example.org ed\n")
    with open(ma.conf, "w") as f:
        f.write(base + "dkim_canonicalization = simple/simple\n")
    mark = ma.text().count("configuration reloaded")
    os.kill(ma.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: ma.text().count("configuration reloaded") > mark, 30, what="reload")
    code, tr = submit(tx, message("simple canonicalization"))
    got = rx.wait_delivered(5, timeout=60)
    last = next(m for m in got if b"Subject: simple canonicalization" in m)
    res = [r for r in results(last, "mx.example.net") if r.startswith("dkim=")]
    t.ok(len(res) == 2 and all(r.startswith("dkim=pass") for r in res) and b"c=simple/simple" in last,
         "simple/simple: both signatures pass at the receiver", res)
    if peer:
        theirs = results(last, "opendkim.test")
        t.ok(any(r.startswith("dkim=pass") and "header.s=rsa" in r for r in theirs),
             "simple/simple: OpenDKIM passes the RSA signature too", theirs)

    # SIGTERM: a clean exit, and (in the sanitizer build) no leak report
    sandbox.stop(ma.proc, timeout=60)  # libmilter lets open sessions end first
    t.ok(ma.proc.returncode == 0 and "Sanitizer" not in ma.text(),
         "the signing daemon exits cleanly on SIGTERM, no sanitizer report",
         "rc=%s\n%s" % (ma.proc.returncode, ma.text()[-3000:]))


t = Tap()
t.run(main)
t.done()
