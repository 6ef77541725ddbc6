"""totp-pam in the demo: a Dovecot whose passdb is PAM with pam_totp.so
(contrib/dovecot/totp-pam.conf and contrib/pam.d/dovecot, under
pam_wrapper so nothing on the machine changes). Carol turns two-factor on
with totp-admin; her mail client then needs an app password."""
import imaplib
import os
import sys

NAME = "totp-pam"


def _tptest(demo):
    sys.path.insert(0, os.path.join(demo.top, "tests", "totp-pam"))
    import tptest
    return tptest


def missing(demo):
    if demo.binary("totp-pam/totp-admin") is None:
        return "not built (configured with --disable-totp-pam?)"
    t = _tptest(demo)
    gone = t.missing_tools()
    if gone:
        return "needs %s (tools/install-deps --demo installs them)" % ", ".join(gone)
    if t.sanitized():
        return "the demo build is an ASan build; the demo shows a plain one"


def _imap(dc, user, password):
    try:
        m = imaplib.IMAP4("127.0.0.1", dc.imap_port, timeout=20)
        m.login(user, password)
        m.logout()
        return "logged in"
    except imaplib.IMAP4.error as e:
        return "refused (%s)" % (e.args[0].decode() if isinstance(e.args[0], bytes) else e.args[0])


def finish(demo, messages):
    t = _tptest(demo)
    from mwtest.dovecot import Dovecot
    env = t.PamEnv("demo-totp")
    with open(os.path.join(demo.top, "contrib", "pam.d", "dovecot")) as f:
        text = f.read()
    text = text.replace("pam_totp.so", t.module_path()).replace("/var/lib/totp", env.state)
    text = text.replace("@include common-auth", env.password_stack())
    text = text.replace("@include common-account", "account required pam_permit.so")
    with open(os.path.join(env.svc, "dovecot"), "w") as f:
        f.write(text)
    env.set_password("carol", "carol-password")
    with open(os.path.join(demo.top, "contrib", "dovecot", "totp-pam.conf")) as f:
        passdb = f.read()
    pam = env.env()
    dc = Dovecot(users={}, passdb=passdb,
                 env={k: pam[k] for k in ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR")})
    n = demo.notes
    n.append("totp-pam: a Dovecot with pam_totp.so (contrib/pam.d/dovecot), IMAP on port %d" % dc.imap_port)
    n.append("  carol, not enrolled, password:      " + _imap(dc, "carol", "carol-password"))
    rc, out, err = env.admin("enroll", "carol", "--issuer", "mailward demo", "--backup-codes", "3")
    uri = [ln.strip() for ln in out.splitlines() if "otpauth://" in ln]
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")]
    n.append("  totp-admin enroll carol:            %s" % (uri[0] if uri else err.strip()))
    if key:
        rc, out2, err2 = env.admin("confirm", "carol", t.code(key[0], __import__("time").time()))
        n.append("  totp-admin confirm carol CODE:      %s" % ("two-factor on" if rc == 0 else err2.strip()))
    n.append("  carol, password only:               " + _imap(dc, "carol", "carol-password"))
    rc, out, err = env.admin("app-password", "add", "carol", "thunderbird")
    apppw = out.strip().splitlines()[-1].strip() if rc == 0 else ""
    n.append("  totp-admin app-password add carol thunderbird:  %s" % (apppw or err.strip()))
    n.append("  carol, app password:                " + _imap(dc, "carol", apppw))
    rc, out, err = env.admin("status", "carol")
    n.append("  totp-admin status carol:            " + "; ".join(ln.strip() for ln in out.splitlines()[:4]))
    dc.stop()
