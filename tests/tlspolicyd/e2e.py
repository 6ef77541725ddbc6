#!/usr/bin/python3
"""tlspolicyd end to end: a private Postfix with contrib/postfix/tlspolicyd.cf
pasted (the socket path pointed into the sandbox), tlspolicyd as an
unprivileged daemon, and two next hops on loopback: one that offers
STARTTLS, one that cannot do TLS. Under default_policy = encrypt the
message to the plaintext one is deferred and never sent in clear; a `may`
exception in the policy file (SIGHUP) lets it go. The submission service
from the snippet refuses MAIL FROM without STARTTLS; milter-tls refuses it
too on a service that left TLS optional, and logs the TLS version and
cipher of a submission over TLS.

DANE (a wrong TLSA record deferred, a right one delivered) is in
e2e_dane.py: Postfix needs a validating system resolver and port 25 there,
hence its own network namespace."""
import os
import pwd
import smtplib
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tptest import BUILD, Daemon, TestCA  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
t = Tap()


def sink(name, ca=None):
    d = sandbox.mkdir(name)
    port = sandbox.free_port()
    argv = ["/usr/bin/python3", os.path.join(HERE, "tlssink.py"), "--port", str(port), "--dir", d]
    if ca:
        argv += ["--cert", ca.cert, "--key", ca.key]
    sandbox.spawn(argv, log=os.path.join(d, "..", name + ".log"))
    sandbox.wait_port(port)
    return port, d


def kept(d):
    return [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d)) if not f.endswith(".tmp")]


def send(pf, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as s:
        s.sendmail("sender@example.org", [rcpt], "From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nhi\r\n"
                   % (rcpt, subject))


def main(t):
    ca = TestCA(["sink.example", "mx.example.org"])
    tls_port, tls_dir = sink("tls-sink", ca)
    plain_port, plain_dir = sink("plain-sink")
    pf = Postfix(main={
        "transport_maps": "inline:{ tls.example=smtp:[127.0.0.1]:%d, plain.example=smtp:[127.0.0.1]:%d }"
                          % (tls_port, plain_port),
        "smtpd_tls_chain_files": "%s, %s" % (ca.key, ca.cert),
    })
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    pfile = os.path.join(sandbox.mkdir("tp-e2e-policy"), "policy")
    with open(pfile, "w") as f:
        f.write("# exceptions\n")
    os.chmod(os.path.dirname(pfile), 0o755)
    os.chmod(pfile, 0o644)
    d = Daemon("socket = unix:%s/tlspolicyd.sock\nuser = nobody\nsocket_group = postfix\n"
               "policy_file = %s\ncache_file = \n" % (sockdir, pfile), name="tp-e2e")
    status = open("/proc/%d/status" % d.proc.pid).read()
    t.ok("Uid:\t65534\t65534\t65534\t65534" in status, "tlspolicyd runs as nobody after binding")

    mdir = sandbox.mkdir("milter-tls")
    mconf = os.path.join(mdir, "milter-tls.conf")
    with open(mconf, "w") as f:
        f.write("socket = unix:%s/milter-tls.sock\nuser = nobody\nsocket_group = postfix\npid_file =\n" % sockdir)
    mlog = os.path.join(mdir, "milter-tls.log")
    milter = sandbox.spawn([os.path.join(BUILD, "milter-pgp", "milter-tls"), "-f", "-c", mconf], log=mlog)
    sandbox.wait_for(lambda: "listening on" in sandbox.read_text(mlog) or milter.poll() is not None, 30,
                     what="milter-tls to listen")
    t.ok(milter.poll() is None, "milter-tls started", sandbox.read_text(mlog))

    sub_port, subs_port, loose_port = sandbox.free_port(), sandbox.free_port(), sandbox.free_port()
    # a service that leaves TLS optional (an -o override gone wrong): the milter still refuses
    pf.add_master(["127.0.0.1:%d inet n - n - - smtpd" % loose_port,
                   "  -o smtpd_tls_security_level=may",
                   "  -o smtpd_milters=unix:%s/milter-tls.sock" % sockdir,
                   "  -o milter_macro_daemon_name=submission"])
    settings = pf.apply_snippet("contrib/postfix/tlspolicyd.cf", replace={
        "socketmap:unix:mailward/tlspolicyd.sock": "socketmap:unix:%s/tlspolicyd.sock" % sockdir,
        "unix:mailward/milter-tls.sock": "unix:%s/milter-tls.sock" % sockdir,
        "submission inet n       -       y": "127.0.0.1:%d inet n - n" % sub_port,
        "submissions inet n       -       y": "127.0.0.1:%d inet n - n" % subs_port,
    })
    t.ok(("smtp_tls_policy_maps", "socketmap:unix:%s/tlspolicyd.sock:tlspolicy" % sockdir) in settings,
         "the snippet sets smtp_tls_policy_maps to the socketmap")
    # the harness keeps DNS off for its loopback next hops
    pf.set(smtp_dns_support_level="disabled")
    pf.start()

    send(pf, "user@tls.example", "to the TLS sink")
    send(pf, "user@plain.example", "to the plaintext sink")
    sandbox.wait_for(lambda: kept(tls_dir), 120, interval=0.5, what="delivery to the TLS sink")
    msg = kept(tls_dir)[0]
    t.ok(msg.startswith(b"X-Sink-TLS: TLSv1."), "encrypt: the message to the STARTTLS sink went over TLS",
         msg[:60])
    sandbox.wait_for(lambda: "TLS is required, but was not offered" in sandbox.read_text(pf.maillog), 120,
                     interval=0.5, what="the plaintext delivery to be deferred")
    log = sandbox.read_text(pf.maillog)
    t.ok("status=deferred" in log and "TLS is required, but was not offered by host 127.0.0.1" in log,
         "encrypt: the message to the plaintext sink is deferred (TLS required, not offered)")
    t.eq(kept(plain_dir), [], "and nothing was sent in clear")
    t.contains(d.log(), "[127.0.0.1]:%d: OK encrypt" % plain_port, "tlspolicyd logged its answer for that next hop")

    with open(pfile, "a") as f:
        f.write("[127.0.0.1]:%d may\n" % plain_port)
    d.reload()
    pf.flush()
    sandbox.wait_for(lambda: kept(plain_dir), 120, interval=0.5, what="delivery to the plaintext sink")
    t.ok(kept(plain_dir)[0].startswith(b"X-Sink-TLS: none"), "with a may exception the deferred message goes")

    # submission: MAIL FROM without STARTTLS is refused
    with smtplib.SMTP("127.0.0.1", sub_port, timeout=60) as s:
        s.ehlo("laptop.example")
        t.ok(s.has_extn("starttls"), "submission offers STARTTLS")
        code, text = s.mail("sender@example.org")
        t.eq(code, 530, "submission: MAIL FROM without STARTTLS is refused with 530")
        t.contains(text.decode(), "5.7.0", "... and 5.7.0")
        t.ok(not s.has_extn("auth"), "and offers no AUTH before TLS (smtpd_tls_auth_only)")

    # milter-tls on a service where TLS is optional
    with smtplib.SMTP("127.0.0.1", loose_port, timeout=60) as s:
        s.ehlo("laptop.example")
        code, text = s.mail("sender@example.org")
        t.eq(code, 530, "milter-tls: MAIL FROM without TLS refused with 530")
        t.contains(text.decode(), "5.7.0 Must issue a STARTTLS command first, or use port 465",
                   "... 5.7.0 and what to do")
    t.contains(sandbox.read_text(mlog), "daemon=submission: MAIL FROM without TLS refused (530 5.7.0)",
               "milter-tls logs the refusal")
    with smtplib.SMTP("127.0.0.1", loose_port, timeout=60) as s:
        ctx = ssl.create_default_context(cafile=ca.ca)
        ctx.check_hostname = False
        s.starttls(context=ctx)
        s.ehlo("laptop.example")
        code, text = s.mail("sender@example.org")
        t.eq(code, 250, "milter-tls: MAIL FROM after STARTTLS accepted")
    sandbox.wait_for(lambda: "daemon=submission tls=TLSv1." in sandbox.read_text(mlog), 30,
                     what="milter-tls to log the TLS version")
    t.ok(" cipher=TLS_" in sandbox.read_text(mlog), "milter-tls logs the TLS version and cipher")


t.run(main)
t.done()
