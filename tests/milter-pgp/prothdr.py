#!/usr/bin/python3
"""milter-pgp's protected headers (RFC 9788, draft-ietf-lamps-header-protection)
through its test mode, checked with gpg and Sequoia sq: the encrypted part
carries copies of Subject, From, To, Cc, Date, Message-ID... with
hp="cipher" and HP-Outer lines, never Bcc, non-ASCII verbatim, the rest of
the entity byte for byte; protect_subject = yes obscures the outer Subject
to "[...]"; signed-only messages carry them with hp="clear";
protected_headers = no gives the entity alone, as before."""
import email
import email.policy
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mptest  # noqa: E402
from mptest import BOB, CAROL  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

SUBJECT = b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n =?UTF-8?Q?_und_mehr?="
RAW = (b"Received: from client by mx.example.org\r\n"
       b"From: Alice Example <alice@example.org>\r\n"
       b"To: Bob <bob@example.net>\r\n"
       b"Cc: Carol <carol@example.net>\r\n"
       b"Bcc: Hidden Person <hidden@example.net>\r\n"
       b"Reply-To: replies@example.org\r\n"
       b"Subject: " + SUBJECT + b"\r\n"
       b"Date: Wed, 02 Dec 2026 04:00:00 +0000\r\n"
       b"Message-ID: <prothdr-1@example.org>\r\n"
       b"In-Reply-To: <earlier@example.net>\r\n"
       b"References: <earlier@example.net>\r\n"
       b"Keywords: Vertrag, \xc3\xbcbersicht\r\n"
       b"X-Other: not protected\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed;\r\n\tboundary=\"mix\"\r\n"
       b"\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       b"Gr\xc3\xbc\xc3\x9fe\r\n--mix\r\nContent-Type: text/csv\r\n\r\na,b\r\n--mix--\r\n")
COPIED = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Keywords")


def fields_of(head):
    """{lowercased name: [raw value bytes]} of a header section."""
    fields, _ = mptest.split(head + b"\r\n\r\n")
    out = {}
    for f in fields:
        if b":" in f:
            n, v = f.split(b":", 1)
            out.setdefault(n.strip().lower().decode(), []).append(v)
    return out


def strip_protected(plain, hp):
    """The entity without the protected block milter-pgp added: the hp
    parameter line of the Content-Type, the copies and HP-Outer lines
    (every field after the Content-* ones). Anything else left over makes
    the comparison with the original fail."""
    head, _, body = plain.partition(b"\r\n\r\n")
    fields, _ = mptest.split(head + b"\r\n\r\n")
    content = [f for f in fields if f.lower().startswith(b"content-")]
    param = b';\r\n hp="%s"' % hp.encode()
    content = [f[:-len(param)] if mptest.field_name(f) == b"content-type" and f.endswith(param) else f
               for f in content]
    return b"".join(f + b"\r\n" for f in content) + b"\r\n" + body


def decrypt_both(t, o, what):
    """The plaintext gpg (bob) and sq (bob's key) get; checks they agree."""
    arm = mptest.armored(o.out)
    rc, plain, status = mptest.gpg_decrypt(mptest.person_home("bob"), arm)
    t.ok(rc == 0 and "GOODSIG" in status, "%s: gpg decrypts it, good signature" % what, status[-400:])
    src, splain, err = mptest.sq_decrypt(sandbox.path("keys", "bob.sec"), arm, sandbox.path("keys", "alice.pub"))
    t.ok(src == 0 and splain == plain and "1 good signature" in err, "%s: sq decrypts it to the same bytes" % what,
         err[-400:])
    return plain


def encrypted(t):
    o = mptest.run(RAW, [BOB, CAROL])
    t.ok(o.action == "accept" and o.rcpts == {BOB: "encrypted", CAROL: "encrypted"}, "encrypted to bob and carol",
         o.stdout + o.log)
    plain = decrypt_both(t, o, "default")
    head = plain.partition(b"\r\n\r\n")[0]
    inner = fields_of(head)
    orig = fields_of(RAW.partition(b"\r\n\r\n")[0])
    t.ok(b'hp="cipher"' in b"".join(inner.get("content-type", [])),
         'the Cryptographic Payload\'s Content-Type has hp="cipher"', head)
    for name in COPIED:
        t.eq(inner.get(name.lower()), orig[name.lower()], "%s copied inside, value verbatim" % name)
    t.ok("bcc" not in inner and b"hidden" not in plain.lower(), "Bcc never copied inside", head)
    t.ok("received" not in inner and "x-other" not in inner and "mime-version" not in inner,
         "trace and other fields are not copied", head)
    t.ok(SUBJECT in head and b"Keywords: Vertrag, \xc3\xbcbersicht" in head,
         "an RFC 2047 Subject (folded) and a raw UTF-8 field are copied byte for byte", head)
    outer = [v.strip() for v in inner.get("hp-outer", [])]
    t.ok(b"Subject: " + SUBJECT in outer and b"From: Alice Example <alice@example.org>" in outer and
         len(outer) == len(COPIED), "one HP-Outer per copy with the outer value (the Subject not obscured)", outer)
    t.eq(strip_protected(plain, "cipher"), mptest.entity(RAW),
         "without the protected block, the rest is the original entity byte for byte")
    t.eq(plain, mptest.entity(RAW, "cipher"), "the whole part as milter-pgp documents it (prothdr.h)")
    msg = email.message_from_bytes(plain, policy=email.policy.default)
    t.ok(str(msg["Subject"]) == "Grüße aus Köln und mehr" and msg.get_content_type() == "multipart/mixed" and
         msg.get_param("hp") == "cipher" and msg.get_param("boundary") == "mix" and len(msg.get_payload()) == 2,
         "a MIME parser reads the inner Subject, the type, its boundary and both parts",
         "%s %s" % (msg["Subject"], msg.get_content_type()))
    t.ok(b"Subject: " + SUBJECT + b"\r\n" in o.out and "change-header: Subject" not in o.stdout,
         "protect_subject = no (the default): the outer Subject is kept", o.stdout)


def obscured(t):
    conf = mptest.base_conf("protect_subject = yes\n")
    o = mptest.run(RAW, [BOB], conf=conf)
    t.ok(o.action == "accept" and "change-header: Subject: [...]" in o.stdout, "protect_subject = yes: the outer "
         "Subject is changed to [...]", o.stdout)
    t.eq(mptest.header(o.out, "Subject"), ["[...]"], "the outer Subject is the obscured literal [...]")
    outer_head = o.out.partition(b"\r\n\r\n")[0]
    t.ok(b"Gr=C3=BC" not in o.out and b"und_mehr" not in o.out, "the real Subject is nowhere in clear", outer_head)
    plain = decrypt_both(t, o, "protect_subject")
    inner = fields_of(plain.partition(b"\r\n\r\n")[0])
    t.eq(inner.get("subject"), [b" " + SUBJECT], "the real Subject is inside")
    t.ok(b" Subject: [...]" in inner.get("hp-outer", []), "HP-Outer: Subject: [...] records what the outside shows",
         inner.get("hp-outer"))
    t.eq(plain, mptest.entity(RAW, "cipher", obscure=True), "the part byte for byte as documented")
    # signed only: nothing to hide the Subject in, it stays
    o = mptest.run(RAW.replace(b"X-Other:", b"X-Mailward-Encrypt: none\r\nX-Other:"), [BOB], conf=conf)
    t.ok(o.rcpts == {BOB: "plaintext"} and b"Subject: " + SUBJECT + b"\r\n" in o.out and
         "change-header" not in o.stdout,
         "protect_subject and a message not encrypted (signed only): the Subject stays", o.stdout)
    # protect_subject without protected headers would lose the Subject: not obscured
    o = mptest.run(RAW, [BOB], conf=mptest.base_conf("protect_subject = yes\nprotected_headers = no\n"))
    t.ok(b"Subject: " + SUBJECT + b"\r\n" in o.out and "change-header" not in o.stdout,
         "protect_subject with protected_headers = no: the Subject stays outside (it is nowhere else)", o.stdout)


def verify_both(t, part0, part1, what):
    sig = sandbox.path("sig-%s.asc" % what)
    data = sandbox.path("signed-%s.bin" % what)
    open(sig, "wb").write(part1[part1.index(b"-----BEGIN PGP SIGNATURE-----"):])
    open(data, "wb").write(part0)
    v = mptest.gpg(mptest.person_home("bob"), "--status-fd", "1", "--verify", sig, data, check=False)
    t.ok(v.returncode == 0 and b"GOODSIG" in v.stdout, "%s: gpg verifies the signature" % what, v.stderr[-300:])
    s = subprocess.run(["sq", "verify", "--detached", sig, "--signer-cert", sandbox.path("keys", "alice.pub"), data],
                       capture_output=True, text=True, timeout=120)
    t.ok(s.returncode == 0 and "1 good signature" in s.stderr, "%s: sq verifies the signature" % what, s.stderr)


def signed_only(t):
    raw = RAW.replace(b"X-Other:", b"X-Mailward-Encrypt: none\r\nX-Other:")
    o = mptest.run(raw, [BOB])
    t.ok(o.rcpts == {BOB: "plaintext"} and b"multipart/signed" in o.out, "X-Mailward-Encrypt: none: signed only",
         o.stdout)
    p = mptest.parts(o.out)
    verify_both(t, p[0], p[1], "signed only")
    inner = fields_of(p[0].partition(b"\r\n\r\n")[0])
    t.ok(b'hp="clear"' in b"".join(inner.get("content-type", [])), 'the signed part\'s Content-Type has hp="clear"',
         p[0][:600])
    t.ok(inner.get("subject") == [b" " + SUBJECT] and inner.get("from") == [b" Alice Example <alice@example.org>"] and
         "bcc" not in inner and "hp-outer" not in inner,
         "the copies are there (Subject, From...), no Bcc, no HP-Outer (nothing is hidden)", p[0][:800])
    t.eq(strip_protected(p[0], "clear"), mptest.entity(raw), "the rest is the original entity byte for byte")
    t.eq(p[0], mptest.entity(raw, "clear"), "the signed part byte for byte as documented")


def switched_off(t):
    conf = mptest.base_conf("protected_headers = no\n")
    o = mptest.run(RAW, [BOB], conf=conf)
    arm = mptest.armored(o.out)
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), arm)
    src, splain, _ = mptest.sq_decrypt(sandbox.path("keys", "bob.sec"), arm)
    t.ok(rc == 0 and src == 0 and plain == splain == mptest.entity(RAW),
         "protected_headers = no: the encrypted part is the original entity alone, as before")
    raw = RAW.replace(b"X-Other:", b"X-Mailward-Encrypt: none\r\nX-Other:")
    o = mptest.run(raw, [BOB], conf=conf)
    t.eq(mptest.parts(o.out)[0], mptest.entity(raw), "... and the signed part too")


def edges(t):
    # no Content-Type: RFC 2045's default gets the parameter
    raw = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bare\r\n\r\njust text\r\n"
    o = mptest.run(raw, [BOB])
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(rc == 0 and plain.startswith(b'Content-Type: text/plain; charset=us-ascii;\r\n hp="cipher"\r\n') and
         plain == mptest.entity(raw, "cipher"), "no Content-Type: text/plain; charset=us-ascii with hp", plain[:300])
    # an entity whose Content-Type has an hp parameter (its mail program protects headers itself)
    raw = (b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: own\r\n"
           b"Content-Type: text/plain; hp=\"clear\"\r\n\r\nSubject: own\r\n")
    o = mptest.run(raw, [BOB], conf=mptest.base_conf("protect_subject = yes\n"))
    rc, plain, _ = mptest.gpg_decrypt(mptest.person_home("bob"), mptest.armored(o.out))
    t.ok(rc == 0 and plain == mptest.entity(raw) and mptest.header(o.out, "Subject") == ["own"],
         "an hp parameter already there: the entity as it is, the Subject not obscured", plain[:300])


t = Tap()
t.run(encrypted)
t.run(obscured)
t.run(signed_only)
t.run(switched_off)
t.run(edges)
t.done()
