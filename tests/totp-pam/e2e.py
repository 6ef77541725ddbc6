#!/usr/bin/python3
"""totp-pam end to end: private Dovecots whose passdb is PAM (the contrib
snippet, unchanged) with pam_totp.so in the contrib pam.d files (only the
module's and the state directory's paths, and the password module, swapped
for the sandbox's), run under pam_wrapper; IMAP logins with imaplib and SMTP
AUTH through Postfix with Dovecot SASL.

  contrib/pam.d/dovecot: an enrolled user must use an app password (IMAP and
    SMTP), the account password alone and password+code are refused; a user
    not enrolled logs in with the password (nullok).
  contrib/pam.d/dovecot-forward-pass: password+code in one field; the same
    code (or backup code) a second time is refused, also across IMAP and SMTP."""
import imaplib
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tptest  # noqa: E402
from tptest import SECRET, PamEnv, code  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap()
TOP = sandbox.top_srcdir()


def install(env, contrib):
    """contrib/pam.d/CONTRIB as env's "dovecot" PAM service."""
    with open(os.path.join(TOP, "contrib", "pam.d", contrib)) as f:
        text = f.read()
    text = text.replace("pam_totp.so", tptest.module_path()).replace("/var/lib/totp", env.state)
    # the machine's accounts are not the test's: the password module is
    # tptest's checker, the account module lets everyone in
    text = text.replace("@include common-auth", env.password_stack())
    text = text.replace("auth    requisite   pam_unix.so try_first_pass",
                        env.password_stack().replace("auth required", "auth requisite", 1))
    text = text.replace("@include common-account", "account required pam_permit.so")
    with open(os.path.join(env.svc, "dovecot"), "w") as f:
        f.write(text)


def dovecot(env):
    with open(os.path.join(TOP, "contrib", "dovecot", "totp-pam.conf")) as f:
        passdb = f.read()
    pam = env.env()
    keep = {k: pam[k] for k in ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR")}
    extra = ""
    if tptest.sanitized():
        # The ASan build of pam_totp.so in a Dovecot that is not: ASan's
        # runtime preloaded first (env.env() does), Dovecot's own leaks not
        # ours to report, and no address-space limit on Dovecot's processes
        # (ASan reserves terabytes of shadow memory; default_vsz_limit 256M
        # would stop the auth process that loads the module).
        keep["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        keep["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        extra = "default_vsz_limit = 0\n"
    return Dovecot(users={}, passdb=passdb, env=keep, extra=extra)


def stop(t, dc):
    dc.stop()
    # a memory error in the module aborts Dovecot's auth process; its
    # report is in Dovecot's log
    t.ok(not re.search(r"AddressSanitizer|runtime error:", dc.log()), "no sanitizer report in Dovecot's log",
         dc.log()[-3000:])


def imap_login(dc, user, password):
    try:
        m = imaplib.IMAP4("127.0.0.1", dc.imap_port, timeout=20)
    except OSError as e:
        return "connect: %s" % e
    try:
        m.login(user, password)
        m.logout()
        return "ok"
    except imaplib.IMAP4.error as e:
        return "refused: %s" % e


def smtp_auth(pf, user, password):
    code_, tr = swaks("--from", "%s@example.org" % user, "--to", "friend@remote.example",
                      "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
                      "--header", "Subject: 2fa", port=pf.submission_port)
    return code_, tr


def app_passwords(t):
    env = PamEnv("e2e-app")
    install(env, "dovecot")
    env.user("alice", SECRET)
    env.set_password("alice", "alice-pw")
    env.set_password("bob", "bob-pw")  # not enrolled
    rc, out, err = env.admin("app-password", "add", "alice", "thunderbird")
    apppw = out.strip().splitlines()[-1].strip()
    t.ok(rc == 0 and len(apppw) == 19, "totp-admin app-password add", out + err)
    dc = dovecot(env)
    t.eq(imap_login(dc, "alice", apppw), "ok", "IMAP: alice logs in with her app password")
    t.ok(env.read_state("alice").get("app", [""])[0].split()[2] != "0",
         "... and its last use is recorded in her state file", env.read_state("alice"))
    t.ok(imap_login(dc, "alice", "alice-pw").startswith("refused"),
         "IMAP: her account password alone is refused (two-factor is on)")
    t.ok(imap_login(dc, "alice", "alice-pw" + code(SECRET, time.time())).startswith("refused"),
         "IMAP: password+code is refused where app passwords are required")
    t.eq(imap_login(dc, "bob", "bob-pw"), "ok", "IMAP: bob, not enrolled, logs in with his password (nullok)")
    t.ok(imap_login(dc, "bob", "wrong").startswith("refused"), "IMAP: ... and not with a wrong one")

    pf = Postfix()
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()
    rc, tr = smtp_auth(pf, "alice", apppw)
    t.eq(rc, 0, "SMTP AUTH through Dovecot SASL: alice's app password is accepted") or t.diag(tr[-600:])
    rc, tr = smtp_auth(pf, "alice", "alice-pw")
    t.ok(rc != 0 and "535" in tr, "SMTP AUTH: her account password alone is refused (535)", tr[-400:])
    rc, out, err = env.admin("app-password", "revoke", "alice", "thunderbird")
    t.ok(rc == 0 and imap_login(dc, "alice", apppw).startswith("refused"),
         "a revoked app password stops working at once", out + err)
    pf.stop()
    stop(t, dc)


def forward_pass(t):
    env = PamEnv("e2e-fwd")
    install(env, "dovecot-forward-pass")
    env.set_password("carol", "carol-pw")
    env.set_password("dave", "dave-pw")  # not enrolled
    rc, out, err = env.admin("enroll", "carol", "--backup-codes", "4")
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    backups = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and len(ln.strip()) == 11
               and ln.strip()[5] == "-"]
    rc2, out2, err2 = env.admin("confirm", "carol", code(key, time.time()))
    t.ok(rc == 0 and rc2 == 0 and len(backups) == 4, "carol enrolled and confirmed with totp-admin", out + err + err2)
    dc = dovecot(env)
    # the next step's code (inside the default window of 1): the
    # confirmation used this step's
    now_code = code(key, time.time() + 30)
    t.eq(imap_login(dc, "carol", "carol-pw" + now_code), "ok", "IMAP: password+code in one field")
    r = imap_login(dc, "carol", "carol-pw" + now_code)
    t.ok(r.startswith("refused"), "IMAP: the same code again is refused (replay)", r)
    t.ok(imap_login(dc, "carol", "wrong-pw" + backups[3]).startswith("refused"),
         "IMAP: a right backup code with a wrong password is refused")
    t.eq(imap_login(dc, "carol", "carol-pw" + backups[3]), "ok",
         "IMAP: ... and did not spend the code: with the right password it works (defer, commit)")
    t.ok(imap_login(dc, "carol", "carol-pw").startswith("refused"), "IMAP: the password without a code is refused")
    t.eq(imap_login(dc, "dave", "dave-pw"), "ok", "IMAP: dave, not enrolled, logs in with his password (nullok)")

    pf = Postfix()
    pf.sasl_dovecot(dc.auth_socket)
    pf.start()
    rc, tr = smtp_auth(pf, "carol", "carol-pw" + backups[0])
    t.eq(rc, 0, "SMTP AUTH: password+backup code accepted") or t.diag(tr[-600:])
    rc, tr = smtp_auth(pf, "carol", "carol-pw" + backups[0])
    t.ok(rc != 0 and "535" in tr, "SMTP AUTH: the same backup code again is refused", tr[-300:])
    t.eq(imap_login(dc, "carol", "carol-pw" + backups[1]), "ok", "IMAP: another backup code works once")
    t.ok(imap_login(dc, "carol", "carol-pw" + backups[1]).startswith("refused"), "... and only once")
    rc, tr = smtp_auth(pf, "carol", "carol-pw" + now_code)
    t.ok(rc != 0, "SMTP AUTH: the TOTP code used for IMAP is refused for SMTP too", tr[-300:])
    pf.stop()
    stop(t, dc)


gone = tptest.missing_tools()
if gone:
    t.skip("totp-pam end to end", "missing: " + ", ".join(gone))
else:
    t.run(app_passwords)
    t.run(forward_pass)
t.done()
