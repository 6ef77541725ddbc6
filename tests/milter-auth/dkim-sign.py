#!/usr/bin/python3
"""DKIM signing through milter-auth's test mode (--auth USER): the
DKIM-Signature headers it adds verify with python3-dkim (RSA, Ed25519,
dual) and with OpenDKIM's own verifier (opendkim-testmsg, RSA), for
awkward messages; a header added after signing breaks the signature;
sender_login_check, X-Originating-IP, and every bad table or key is a
clear error."""
import base64
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
import matest as _m  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

import dkim  # noqa: E402

KEYDIR = sandbox.mkdir("signkeys", mode=0o700)
SANITIZER_REPORTS = []


def run(*args, **kw):
    """matest.run, remembering any sanitizer report (a leak per signature
    would grow a daemon without bound: the sanitizer build must show none)."""
    o = _m.run(*args, **kw)
    if "Sanitizer" in o.log:
        SANITIZER_REPORTS.append(o.log)
    return o


def keyfile(name, data, mode=0o600):
    path = os.path.join(KEYDIR, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def ed25519_pem():
    """An Ed25519 key as OpenSSL writes it (PKCS#8 PEM) and its p=."""
    path = os.path.join(KEYDIR, "ed-openssl.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", path], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    os.chmod(path, 0o600)
    return path, base64.b64encode(der[-32:]).decode()


RSA, RSA_PUB = matest.rsa_key(2048)
RSA_PATH = keyfile("rsa.private", RSA)
ED_PATH, ED_PUB = ed25519_pem()
# dkimpy's dknewkey format: the raw 32-byte key in base64
ED2, ED2_PUB = matest.ed25519_key()
ED2_PATH = keyfile("ed-raw.private", ED2 + b"\n")

RECORDS = {
    "rsa._domainkey.example.org": "v=DKIM1; k=rsa; p=" + RSA_PUB,
    "ed._domainkey.example.org": "v=DKIM1; k=ed25519; p=" + ED_PUB,
    "raw._domainkey.sub.example.org": "v=DKIM1; k=ed25519; p=" + ED2_PUB,
    "rsa._domainkey.example.net": "v=DKIM1; k=rsa; p=" + RSA_PUB,
}


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    rec = RECORDS.get(name.rstrip("."))
    return rec.encode() if rec else None


def write(name, text):
    path = sandbox.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


KEYS = write("keytable", "rsa  example.org:rsa:%s\ned   example.org:ed:%s\nraw  %%:raw:%s\n"
             "net  example.net:rsa:%s\n" % (RSA_PATH, ED_PATH, ED2_PATH, RSA_PATH))
SIGNING = write("signingtable", "# OpenDKIM refile\n*@example.org rsa\n*@example.org ed\n"
                "*@*.example.org raw\nboss@example.net net\n")


def conf(extra="", keys=KEYS, signing="refile:" + SIGNING):
    return matest.write_conf("authserv_id = mx.example.org\ndns_resolver = 127.0.0.1@1\n"
                             "dns_timeout = 1s\ntrusted_networks = 192.0.2.250\n"
                             "dkim_key_table = %s\ndkim_signing_table = %s\n%s" % (keys, signing, extra))


def msg(frm="Alice <alice@example.org>", body="Hello Bob.\n", extra="", nl="\n"):
    text = ("From: %s\nTo: Bob <bob@example.net>\nSubject: Lunch\nDate: Tue, 01 Dec 2026 10:00:00 +0000\n"
            "Message-ID: <m%d@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "%s\n" % (frm, random.randrange(10**9), extra))
    data = (text + body) if isinstance(body, str) else text.encode() + body
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data.replace(b"\n", nl.encode()) if nl != "\n" else data


def signed(o, m):
    """The message as the MTA would send it: our DKIM-Signature headers on
    top, in the line ending the message uses."""
    nl = b"\r\n" if b"\r\n" in m else b"\n"
    sigs = [h for h in o.added if h.startswith("DKIM-Signature:")]
    return b"".join(s.encode() + nl for s in reversed(sigs)) + m, sigs


def verify_all(m):
    """python3-dkim's verdict for each signature, in order."""
    d = dkim.DKIM(m)
    n = sum(1 for line in m.split(b"\n") if line.lower().startswith(b"dkim-signature:"))
    out = []
    for i in range(n):
        try:
            out.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.ValidationError:
            out.append(False)  # e.g. a body hash mismatch: not a pass
    return out


def tag(sig, name):
    for part in sig.split(":", 1)[1].split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return "".join(v.split())
    return None


AUTH = ["--auth", "alice@example.org"]


def python_checks(t, c):
    cases = [
        ("LF line ends", msg()),
        ("CRLF line ends", msg(nl="\r\n")),
        ("a 5000-character line", msg(body="x" * 5000 + "\nend\n")),
        ("a long folded Subject", msg(extra="Subject-Long: " + "word " * 400 + "\n")),
        ("an 8-bit UTF-8 body", msg(body="Grüße, Łukasz — 日本語\n".encode("utf-8"))),
        ("a raw Latin-1 body", msg(body=b"caf\xe9 cr\xe8me\n")),
        ("an empty body", msg(body="")),
        ("trailing empty lines and white space", msg(body="a  \t b \n\n\n\n")),
        ("no final newline", msg(body="no newline at the end")),
        ("250 headers", msg(extra="".join("X-Trace-%d: hop %d\n" % (i, i) for i in range(243)))),
    ]
    for name, m in cases:
        o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
        full, sigs = signed(o, m)
        if not t.eq(len(sigs), 2, "%s: two signatures (RSA and Ed25519)" % name):
            t.diag(repr(o))
            continue
        algs = sorted(tag(s, "a") for s in sigs)
        t.eq(algs, ["ed25519-sha256", "rsa-sha256"], "%s: one rsa-sha256, one ed25519-sha256" % name)
        t.eq(verify_all(full), [True, True], "%s: both verify with python3-dkim" % name)
    return cases


def oversign_checks(t, c):
    m = msg()
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    full, sigs = signed(o, m)
    rsa = next(s for s in sigs if tag(s, "a") == "rsa-sha256")
    h = [x.lower() for x in tag(rsa, "h").split(":")]
    t.eq(h.count("from"), 2, "From is over-signed (twice in h=, once in the message)")
    for name in ("to", "subject", "date", "message-id", "mime-version", "content-type", "cc", "reply-to"):
        t.ok(name in h, "%s is signed" % name, tag(rsa, "h"))
    t.eq(tag(rsa, "c"), "relaxed/relaxed", "relaxed/relaxed by default")
    t.ok(tag(rsa, "t") is not None and tag(rsa, "x") is None, "t= and no x= by default", rsa)
    t.eq(tag(rsa, "d"), "example.org", "d= is the From domain")
    t.eq(verify_all(full), [True, True], "the untouched message verifies")
    sep = full.index(b"\n\n")
    t.eq(verify_all(full[:sep] + b"\nX-Mailer: added later" + full[sep:]), [True, True],
         "an unsigned header added later changes nothing")
    t.eq(verify_all(full[:sep] + b"\nFrom: Mallory <ceo@example.org>" + full[sep:]), [False, False],
         "a second From added below breaks both signatures (over-signing)")
    t.eq(verify_all(full[:sep] + b"\nCc: extra@example.net" + full[sep:]), [False, False],
         "a Cc added where there was none breaks both signatures")
    t.eq(verify_all(full.replace(b"Hello Bob.", b"Hello Eve.")), [False, False],
         "a changed body breaks both signatures")


def routing_checks(t, c):
    # subdomain pattern, the key's domain "%", a raw base64 Ed25519 key
    m = msg(frm="ops@mail.sub.example.org")
    o = run(c, m, client_ip="203.0.113.9", mail_from="ops@mail.sub.example.org",
            extra=["--auth", "ops@mail.sub.example.org"])
    full, sigs = signed(o, m)
    t.eq([tag(s, "d") for s in sigs], ["mail.sub.example.org"],
         "*@*.example.org: d= is the From domain (KeyTable %)")
    RECORDS["raw._domainkey.mail.sub.example.org"] = RECORDS["raw._domainkey.sub.example.org"]
    t.eq(verify_all(full), [True], "a dkimpy-format (raw base64) Ed25519 key signs and verifies")
    # a sender with no row: nothing signed
    m = msg(frm="someone@example.net")
    o = run(c, m, client_ip="203.0.113.9", mail_from="someone@example.net",
            extra=["--auth", "someone@example.net"])
    t.eq([h for h in o.added if h.startswith("DKIM-Signature")], [],
         "no signing table row for the From: no signature")
    t.contains(o.log, "not signed: no signing table row for someone@example.net", "and the log says why")
    m = msg(frm="boss@example.net")
    o = run(c, m, client_ip="203.0.113.9", mail_from="boss@example.net", extra=["--auth", "boss@example.net"])
    t.eq([tag(h, "d") for h in o.added if h.startswith("DKIM-Signature")], ["example.net"],
         "a user@domain row signs for that user")
    # inbound mail is verified, never signed
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org")
    t.eq([h for h in o.added if h.startswith("DKIM-Signature")], [], "unauthenticated inbound mail: not signed")
    t.ok(" spf=" in o.log and "skipped" not in o.log, "and it is verified as usual", repr(o))
    # a trusted network's mail is signed
    o = run(c, msg(), client_ip="192.0.2.250", mail_from="alice@example.org")
    t.eq(len([h for h in o.added if h.startswith("DKIM-Signature")]), 2, "mail from trusted_networks is signed")
    # two From fields: never signed (which one would the receiver show?)
    m = msg(extra="From: other@example.org\n")
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    t.eq([h for h in o.added if h.startswith("DKIM-Signature")], [], "two From fields: not signed")


def options_checks(t):
    c = conf("dkim_canonicalization = relaxed/simple\ndkim_signature_ttl = 7d\n"
             "dkim_oversign_headers = From\n")
    m = msg(body="body with  spaces\n")
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    full, sigs = signed(o, m)
    s = sigs[0]
    t.eq(tag(s, "c"), "relaxed/simple", "dkim_canonicalization = relaxed/simple")
    t.ok(tag(s, "x") is not None and int(tag(s, "x")) - int(tag(s, "t")) == 7 * 86400,
         "dkim_signature_ttl = 7d: x= is t= + 604800", s)
    t.eq(verify_all(full), [True, True], "relaxed/simple signatures verify")
    t.eq(verify_all(full.replace(b"with  spaces", b"with spaces")), [False, False],
         "simple body canonicalization: white space matters")


def simple_checks(t):
    """simple header canonicalization: the signer writes no folds outside
    b= there, so the test mode's one-line output is the field as the MTA
    writes it (Postfix round trip: sign-e2e.py)."""
    c = conf("dkim_canonicalization = simple/simple\n")
    m = msg(extra="X-Folded: a\n  b\n", body="body  with spaces \n\n")
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    full, sigs = signed(o, m)
    t.eq([tag(x, "c") for x in sigs], ["simple/simple"] * 2, "simple/simple (RSA and Ed25519)")
    t.eq(verify_all(full), [True, True], "simple/simple signatures verify")
    t.eq(verify_all(full.replace(b"Subject: Lunch", b"Subject:  Lunch")), [False, False],
         "simple: a space added in a signed header breaks them")
    t.eq(verify_all(full.replace(b"body  with", b"body with")), [False, False], "simple: a body change breaks them")
    c = conf("dkim_canonicalization = simple/relaxed\n")
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    full, sigs = signed(o, m)
    t.eq(verify_all(full), [True, True], "simple/relaxed signatures verify")
    t.eq(verify_all(full.replace(b"body  with", b"body with")), [True, True], "relaxed body: white space is free")


def login_checks(t):
    logins = write("sender_login", "# smtpd_sender_login_maps\nalice@example.org alice\n"
                   "info@example.org alice, bob\n@sub.example.org ops\n")
    c = conf("sender_login_check = yes\nsender_login_maps = %s\n" % logins)
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org", extra=["--auth", "alice"])
    t.eq(o.action, "accept", "login alice sends as alice@example.org")
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org", extra=["--auth", "bob"])
    t.eq(o.action, "reject", "login bob sending as alice@example.org: refused")
    t.contains(o.action_line, "550 5.7.1", "with 550 5.7.1")
    t.contains(o.action_line, "alice@example.org belongs to another user", "saying why")
    o = run(c, msg(frm="info@example.org"), client_ip="203.0.113.9", mail_from="info@example.org",
            extra=["--auth", "bob"])
    t.eq(o.action, "accept", "info@ has two owners: bob may use it")
    o = run(c, msg(frm="x@example.com"), client_ip="203.0.113.9", mail_from="x@example.com",
            extra=["--auth", "alice"])
    t.contains(o.action_line, "has no owner", "an address nobody owns: refused")
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="bob@example.org", extra=["--auth", "alice"])
    t.eq(o.action, "reject", "header From fine but envelope sender not owned: refused")
    o = run(c, msg(), client_ip="192.0.2.250", mail_from="bob@example.org")
    t.eq(o.action, "accept", "trusted networks are not login-checked")
    # no map: the login is an address of the From domain
    c = conf("sender_login_check = yes\n")
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org", extra=["--auth", "carol@example.org"])
    t.eq(o.action, "accept", "no map: carol@example.org may send as example.org")
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org", extra=["--auth", "carol@example.com"])
    t.eq(o.action, "reject", "no map: carol@example.com may not")
    c = conf("sender_login_check = no\n")
    o = run(c, msg(), client_ip="203.0.113.9", mail_from="alice@example.org", extra=["--auth", "bob"])
    t.eq(o.action, "accept", "sender_login_check = no (the default): not checked")


def origip_checks(t):
    m = msg(extra="X-Originating-IP: [10.9.9.9]\nX-Originating-IP: [10.8.8.8]\n")
    for mode, deleted, added in (("strip", 2, []), ("keep", 2, []), ("add", 2, ["X-Originating-IP: [203.0.113.9]"])):
        o = run(conf("originating_ip = %s\n" % mode), m, client_ip="203.0.113.9",
                mail_from="alice@example.org", extra=AUTH)
        t.eq(o.deleted.count("X-Originating-IP"), deleted,
             "originating_ip = %s: the client's own X-Originating-IP fields are removed" % mode)
        t.eq([h for h in o.added if h.startswith("X-Originating-IP")], added,
             "originating_ip = %s: %s" % (mode, "adds the client's address" if added else "adds none"))
    o = run(conf(""), msg(extra="X-Originating-IP: [10.9.9.9]\n"), client_ip="203.0.113.9",
            mail_from="alice@example.org", extra=AUTH)
    t.eq(o.deleted.count("X-Originating-IP"), 1, "default strip")
    o = run(conf("originating_ip = keep\n"), msg(extra="X-Originating-IP: [10.9.9.9]\n"),
            client_ip="192.0.2.250", mail_from="alice@example.org")
    t.eq(o.deleted, [], "keep: a trusted relay's (webmail's) X-Originating-IP stays")
    o = run(conf(""), msg(extra="X-Originating-IP: [10.9.9.9]\n"), client_ip="198.51.100.7",
            mail_from="alice@example.org")
    t.eq(o.deleted, [], "inbound mail's X-Originating-IP is not ours to touch")


def error_checks(t):
    rsa_only = write("signing-rsa-only", "*@example.org rsa\n")

    def conf(extra="", keys=KEYS, signing="refile:" + rsa_only):
        return globals()["conf"](extra, keys, signing)

    def check(name, c, want):
        p = subprocess.run([matest.MILTER_AUTH, "-c", c, "-C"], capture_output=True, text=True, timeout=60)
        t.ok(p.returncode == 2 and want in p.stderr, name, "rc=%d\n%s" % (p.returncode, p.stderr))

    bad = write("keytable-bad", "rsa example.org:rsa:%s\ned example.org/ed/%s\n" % (RSA_PATH, ED_PATH))
    check("a malformed key table line: file:line error", conf(keys=bad),
          "%s:2: \"example.org/ed/%s\" is not DOMAIN:SELECTOR:/path/to/key" % (bad, ED_PATH))
    missing = write("keytable-missing", "\nrsa example.org:rsa:%s/nonexistent.private\n" % KEYDIR)
    check("a missing key: file:line error", conf(keys=missing),
          "%s:2: key file %s/nonexistent.private does not exist" % (missing, KEYDIR))
    world = keyfile("world.private", RSA, 0o644)
    wt = write("keytable-world", "rsa example.org:rsa:%s\n" % world)
    check("a world-readable key: refused", conf(keys=wt),
          "%s:1: key file %s is accessible to its group or others (mode 0644)" % (wt, world))
    group = keyfile("group.private", RSA, 0o640)
    gt = write("keytable-group", "rsa example.org:rsa:%s\n" % group)
    check("a group-readable key: refused", conf(keys=gt), "is accessible to its group or others (mode 0640)")
    short, _ = matest.rsa_key(1024)
    st = write("keytable-short", "rsa example.org:rsa:%s\n" % keyfile("short.private", short))
    check("an RSA key under 2048 bits: refused", conf(keys=st), "is a 1024-bit RSA key")
    junk = write("keytable-junk", "rsa example.org:rsa:%s\n" % keyfile("junk.private", b"not a key\n"))
    check("a file that is not a key: refused", conf(keys=junk), "holds no usable private key")
    other = keyfile("nobody.private", RSA)
    os.chown(other, 65534, 65534)
    ot = write("keytable-owner", "rsa example.org:rsa:%s\n" % other)
    check("a key owned by another user: refused", conf(keys=ot), "is owned by uid 65534")
    sgn = write("signing-bad", "*@example.org rsa\n*@example.org nosuchkey\n")
    check("a signing table naming an unknown key: file:line error", conf(signing="refile:" + sgn),
          "%s:2: key name \"nosuchkey\" is not in the key table" % sgn)
    check("a wildcard in a file: table says to use refile:", conf(signing=sgn),
          "wildcard pattern \"*@example.org\" in a file: table")
    check("a key table without a signing table", matest.write_conf(
          "authserv_id = mx.example.org\ndkim_key_table = %s\n" % KEYS), "dkim_key_table and dkim_signing_table go together")
    check("dkim_sign_headers without From", conf("dkim_sign_headers = To Subject\n"), "must include From")
    p = subprocess.run([matest.MILTER_AUTH, "-c", conf(), "-C"], capture_output=True, text=True, timeout=60)
    t.eq(p.returncode, 0, "the good tables and keys pass -C")


def opendkim_checks(t, cases):
    """OpenDKIM's own verifier, opendkim-testmsg, on RSA signatures: it
    resolves through the system resolver, so it reads a resolv.conf of
    ours through resolv_wrapper, pointing at a DNS server on port 53 of a
    loopback address of its own."""
    if shutil.which("opendkim-testmsg") is None:
        t.skip("opendkim-testmsg", "opendkim-tools is not installed (tools/install-deps --tests)")
        return
    zone = "\n".join('%s TXT "%s"' % (k, v) for k, v in RECORDS.items() if "k=rsa" in v)
    rnd = random.Random()
    dns = None
    for _ in range(20):
        addr = "127.53.%d.%d" % (rnd.randrange(256), rnd.randrange(1, 255))
        try:
            dns = DnsServer(zone, addr=addr, port=53)
            break
        except RuntimeError as e:
            if "Address already in use" not in str(e):
                raise
    resolv = write("resolv-sign.conf", "nameserver %s\n" % addr)
    env = dict(os.environ, LD_PRELOAD="libresolv_wrapper.so", RESOLV_WRAPPER_CONF=resolv)
    rsa_only = write("signing-rsa", "*@example.org rsa\n")
    c = conf(signing="refile:" + rsa_only)

    def testmsg(data):
        p = subprocess.run(["opendkim-testmsg"], input=data, capture_output=True, env=env, timeout=60)
        return p.returncode, (p.stdout + p.stderr).decode(errors="replace")

    for name, m in cases:
        o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
        full, sigs = signed(o, m)
        if not t.eq(len(sigs), 1, "%s: one RSA signature" % name):
            continue
        rc, out = testmsg(full)
        t.ok(rc == 0 and out.strip() == "", "%s: opendkim-testmsg verifies it" % name, "rc=%d %s" % (rc, out))
    # and it can tell a broken one: the test can fail
    m = msg()
    o = run(c, m, client_ip="203.0.113.9", mail_from="alice@example.org", extra=AUTH)
    full, _ = signed(o, m)
    rc, out = testmsg(full.replace(b"Hello Bob.", b"Hello Eve."))
    t.ok(rc != 0 or out.strip() != "", "opendkim-testmsg refuses a changed body", "rc=%d %s" % (rc, out))
    dns.stop()


def main(t):
    c = conf()
    cases = python_checks(t, c)
    oversign_checks(t, c)
    routing_checks(t, c)
    options_checks(t)
    simple_checks(t)
    login_checks(t)
    origip_checks(t)
    error_checks(t)
    opendkim_checks(t, cases)
    t.ok(not SANITIZER_REPORTS, "no sanitizer report in any run (leaks, overflows)",
         "\n".join(SANITIZER_REPORTS)[:4000])


t = Tap()
t.run(main)
t.done()
