#!/usr/bin/python3
"""milter-pgp's password modes (issue 13) through its test mode: the
password header is honoured only from a user authenticated over TLS and is
always removed; a Subject tag asks for a generated password that reaches
the sender alone (re-injected through a sendmail(1) stand-in that keeps
what it is given); the hint travels in clear; the envelope's explanation
comes from the configured language's templates; message.asc decrypts with
gpg and message.html with milter-pgp-pem open; no password is left in a
log or in any file of the test directory."""
import email
import email.policy
import os
import re
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import ALICE, BOB, DAVE  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

PEM_TOOL = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp-pem")
TEMPLATES = mptest.TEMPLATES

PASSWORD = "correct horse battery staple 7"
BODY_TEXT = "Grüße aus Köln, the secret plan ✓\r\n"


def message(extra="", subject="Plans", ctype="text/plain; charset=utf-8", body=BODY_TEXT):
    raw = ("From: Alice <alice@example.org>\r\nTo: Dave <dave@example.com>\r\nSubject: %s\r\n"
           "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <pw-%d@example.org>\r\n%s"
           "MIME-Version: 1.0\r\nContent-Type: %s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           % (subject, abs(hash((extra, subject, body))), extra, ctype))
    return raw.encode() + (body.encode() if isinstance(body, str) else body)


_n = [0]


def sendmail_standin():
    """A sendmail(1) for reinject: keeps each message and its argv in a
    directory, as the MTA would take it."""
    _n[0] += 1
    d = sandbox.mkdir("injected-%d" % _n[0])
    script = sandbox.path("fake-sendmail-%d" % _n[0])
    with open(script, "w") as f:
        f.write("#!/bin/sh\nn=$(date +%%s%%N)-$$\nprintf '%%s\\n' \"$@\" > %s/$n.argv\ncat > %s/$n.eml\n" % (d, d))
    os.chmod(script, 0o755)
    return d, script


def conf(extra=""):
    inj_dir, script = sendmail_standin()
    text = ("password_templates = %s\nreinject = sendmail:%s\nreinject_secret_file = %s\n%s"
            % (TEMPLATES, script, sandbox.path("reinject.secret"), extra))
    return mptest.base_conf(text), inj_dir


def attachments(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {}
    for part in msg.walk():
        name = part.get_filename()
        if name:
            out[name] = part.get_payload(decode=True)
        elif part.get_content_type() in ("text/plain", "text/html") and not part.get_filename():
            out.setdefault("explanation-" + part.get_content_subtype(), part.get_content())
    return msg, out


def asc_decrypt(data, password):
    """(returncode, plaintext) of message.asc with gpg, the password on a pipe."""
    home = sandbox.mkdir("gpg-sym", mode=0o700)
    _write(sandbox.path("msg.asc"), data)
    p = subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                        "--passphrase-fd", "0", "--no-symkey-cache", "--decrypt", sandbox.path("msg.asc")],
                       input=password.encode() + b"\n", capture_output=True, timeout=120)
    return p.returncode, p.stdout


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def html_open(data, password):
    """(returncode, plaintext) of message.html with milter-pgp-pem open."""
    _write(sandbox.path("message.html"), data)
    p = subprocess.run([PEM_TOOL, "open", "--password-stdin", sandbox.path("message.html")], input=password.encode() + b"\n",
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout


def inner_of(raw_in, password_header=True):
    """What the sealed message must hold: the original without our headers."""
    fields, body = mptest.split(raw_in)
    keep = [f for f in fields if not f.lower().startswith((b"x-mailward-password:", b"x-mailward-password-hint:"))]
    return b"".join(f + b"\r\n" for f in keep) + b"\r\n" + body


def run(*args, **kw):
    o = mptest.run(*args, **kw)
    o.sent = o.out is not None
    o.out = o.out or b""
    return o


def main(t):
    c, inj = conf()

    # ---- the header from an authenticated user over TLS
    raw = message("X-Mailward-Password: %s\r\nX-Mailward-Password-Hint: our usual one\r\n" % PASSWORD)
    o = run(raw, [DAVE], conf=c, auth="alice", tls=True)
    t.ok(o.action == "accept" and "replace-body" in o.changes and o.rcpts.get(DAVE) == "password",
         "--auth --tls, a keyless recipient: the envelope replaces the body", o.stdout + o.log)
    t.ok(o.sent and PASSWORD.encode() not in o.out and b"X-Mailward-Password:" not in o.out,
         "the password header is gone from what leaves, the password nowhere in it")
    t.ok(b"X-Mailward-Password-Hint: our usual one" in o.out, "the hint header travels in clear")
    msg, att = attachments(o.out)
    t.ok(msg.get_content_type() == "multipart/mixed" and set(att) >= {"message.html", "message.asc"},
         "multipart/mixed with message.html and message.asc", sorted(att))
    t.ok("our usual one" in att.get("explanation-plain", "") and "our usual one" in att.get("explanation-html", ""),
         "the hint is in the explanation, text and HTML")
    t.ok("sent you a message encrypted with a password" in att.get("explanation-plain", ""),
         "the English templates by default")
    rc, plain = asc_decrypt(att.get("message.asc", b""), PASSWORD)
    want = inner_of(raw)
    t.ok(rc == 0 and plain == want, "message.asc decrypts with gpg to the original message, byte for byte",
         "%r\n%r" % (plain[-300:], want[-300:]))
    if os.path.exists(PEM_TOOL):
        rc, plain = html_open(att.get("message.html", b""), PASSWORD)
        t.ok(rc == 0 and plain == want, "message.html opens with milter-pgp-pem open, the same message")
        rc, plain = html_open(att.get("message.html", b""), PASSWORD + "x")
        t.ok(rc != 0 and b"Gr" not in plain, "a wrong password opens nothing")
    else:
        t.skip("message.html opens with milter-pgp-pem open", "milter-pgp-pem not built")
    t.ok("mode=password" in o.log and "source=header" in o.log and PASSWORD not in o.log,
         "log: mode=password source=header, no password", o.log)

    # ---- refused unless authenticated and over TLS; never left in
    for auth, tls, why in ((None, True, "without-auth"), ("alice", False, "without-tls")):
        o = run(raw, [DAVE], conf=c, auth=auth, tls=tls)
        t.ok(o.action == "reject" and "550 5.7.1" in o.action_line and "X-Mailward-Password" in o.action_line
             and not o.sent and "rejected=password-header-" + why in o.log,
             "header with auth=%s tls=%s: refused 550 5.7.1, nothing sent" % (auth, tls), o.stdout + o.log)

    # ---- inbound mail: the header removed, nothing refused
    o = run(raw, [ALICE], sender="someone@example.net", conf=c, client_ip="192.0.2.7")
    t.ok(o.action == "accept" and "delete-header: X-Mailward-Password" in o.changes and o.sent
         and PASSWORD.encode() not in o.out, "inbound: the password header removed, the message delivered",
         o.stdout)

    # ---- recipients with keys: PGP/MIME as before, the header removed
    o = run(raw, [BOB], conf=c, auth="alice", tls=True)
    t.ok(o.rcpts.get(BOB) == "encrypted" and PASSWORD.encode() not in o.out and b"multipart/encrypted" in o.out,
         "bob has a key: PGP/MIME, the password header removed", o.stdout)

    # ---- mixed: every recipient gets the envelope (no split configured)
    o = run(raw, [BOB, DAVE], conf=c, auth="alice", tls=True)
    t.ok(o.rcpts.get(BOB) == "password" and o.rcpts.get(DAVE) == "password" and PASSWORD.encode() not in o.out,
         "bob with a key and dave without: both get the envelope", o.stdout)

    # ---- mixed_recipients = split: bob PGP/MIME, dave the envelope re-injected
    cs, _ = conf("mixed_recipients = split\n")
    o = run(raw, [BOB, DAVE], conf=cs, auth="alice", tls=True)
    copy = open(o.out_path + ".reinject", "rb").read() if os.path.exists(o.out_path + ".reinject") else b""
    t.ok(o.rcpts == {BOB: "encrypted", DAVE: "password"} and b"multipart/encrypted" in o.out and
         "delete-rcpt: " + DAVE in o.stdout and "to=<%s>" % DAVE in o.stdout, "split: bob encrypted, dave split off",
         o.stdout + o.log)
    _, att = attachments(copy)
    rc, plain = asc_decrypt(att.get("message.asc", b""), PASSWORD)
    t.ok(rc == 0 and plain == inner_of(raw) and PASSWORD.encode() not in copy and PASSWORD.encode() not in o.out
         and b"X-Mailward-Password-Hint: our usual one" in copy,
         "split: dave's re-injected copy is the envelope (hint in clear), message.asc opens", copy[:600])
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out)) if o.sent else (1, b"", "")
    t.ok(rc == 0 and BODY_TEXT.encode() in plain, "split: bob decrypts his copy")

    # ---- a Subject tag: a generated password, to the sender alone
    before = set(os.listdir(inj))
    raw2 = message(subject="[secure] Contract draft")
    o = run(raw2, [DAVE], conf=c, auth="alice", tls=True)
    new = sorted(set(os.listdir(inj)) - before)
    notices = [n for n in new if n.endswith(".eml")]
    t.ok(o.action == "accept" and o.rcpts.get(DAVE) == "password" and len(notices) == 1,
         "Subject tag: the envelope, and one message re-injected", o.stdout + o.log)
    t.ok(mptest.header(o.out, "Subject") == ["Contract draft"], "the tag is removed from the Subject",
         mptest.header(o.out, "Subject"))
    if notices:
        argv = open(os.path.join(inj, notices[0][:-4] + ".argv")).read().split("\n")
        note = email.message_from_bytes(open(os.path.join(inj, notices[0]), "rb").read(), policy=email.policy.default)
        t.ok(argv[-2:] == [ALICE, ""] and DAVE not in argv, "the notice goes to the sender alone", argv)
        text = note.get_content()
        m = re.search(r"^    (\S+)\s*$", text, re.M)
        gen = m.group(1) if m else ""
        t.ok(len(gen) >= 20 and "Contract draft" in str(note["Subject"]),
             "the notice carries a generated password and names the message", text)
        _, att = attachments(o.out)
        rc, plain = asc_decrypt(att.get("message.asc", b""), gen)
        t.ok(rc == 0 and b"Subject: Contract draft\r\n" in plain and BODY_TEXT.encode() in plain,
             "message.asc opens with the generated password (the sealed Subject untagged)")
        t.ok(gen.encode() not in o.out and gen not in o.log, "the generated password is not in the recipients' copy "
             "nor in the log")
        t.ok("source=generated" in o.log and "password_to=sender" in o.log, "log: source=generated", o.log)

    # ---- password_generated_for: the sender's domain default, no tag needed
    c3, inj3 = conf("password_generated_for = example.org\n")
    o = run(message(subject="No tag"), [DAVE], conf=c3, auth="alice", tls=True)
    t.ok(o.rcpts.get(DAVE) == "password" and len([n for n in os.listdir(inj3) if n.endswith(".eml")]) == 1,
         "password_generated_for = example.org: a generated password without the tag", o.stdout + o.log)
    o = run(message(subject="No tag"), [DAVE], conf=c, auth="alice", tls=True)
    t.ok(o.rcpts.get(DAVE) == "plaintext", "without it and without the tag: as before (plaintext)", o.stdout)

    # ---- a language without templates stops the configuration check
    bad = mptest.base_conf("password_templates = %s\npassword_language = de\n" % TEMPLATES)
    p = subprocess.run([mptest.MILTER_PGP, "-C", "-c", bad], capture_output=True, text=True, timeout=60)
    t.ok(p.returncode != 0 and re.search(r":\d+: password_language: .*de/body.txt", p.stderr),
         "password_language = de (no such templates): file:line: what is wrong", p.stderr)

    # ---- odd inputs: a non-ASCII password in NFD, latin-1, HTML with scripts
    nfd = unicodedata.normalize("NFD", "Pässwörd été ✓ Ωmega")
    html = ("<html><body><p>hi</p><script>alert(1)</script><img src=\"https://tracker.example/x.png\">"
            "</body></html>\r\n")
    cfr, _ = conf("password_language = fr\n")
    for label, body, ctype, pw, cf in (
            ("a non-ASCII password (NFD in the header), a latin-1 body", "K\xf6ln \xe9t\xe9\r\n".encode("latin-1"),
             "text/plain; charset=iso-8859-1", nfd, cfr),
            ("a one-character password, HTML with a script and a remote image", html, "text/html; charset=utf-8",
             "x", c)):
        r = message("X-Mailward-Password: %s\r\n" % pw, ctype=ctype, body=body)
        o = run(r, [DAVE], conf=cf, auth="alice", tls=True)
        _, att = attachments(o.out)
        if cf is cfr:
            t.ok("vous a envoyé un message chiffré" in att.get("explanation-plain", "") and
                 "Indice du mot de passe" not in att.get("explanation-html", "x Indice du mot de passe"),
                 "password_language = fr: the French templates (no hint: its line left out)")
        rc, plain = asc_decrypt(att.get("message.asc", b""), unicodedata.normalize("NFC", pw))
        t.ok(o.action == "accept" and rc == 0 and plain == inner_of(r) and
             (len(pw) < 4 or pw.encode() not in o.out),
             "%s: message.asc decrypts (NFC password) to the original" % label, o.stdout + o.log)

    # ---- the password in no log and in no file left under the test directory
    for name in os.listdir(sandbox.tmpdir()):
        if name.startswith("msg-") and name.endswith(".eml"):
            os.unlink(sandbox.path(name))  # the inputs: the sender's own copies
    found = subprocess.run(["grep", "-rlF", "-e", PASSWORD, "-e", nfd, sandbox.tmpdir()],
                           capture_output=True, text=True).stdout.split()
    t.ok(found == [], "no file under the test directory holds a password", found)


t = Tap()
t.run(main)
t.done()
