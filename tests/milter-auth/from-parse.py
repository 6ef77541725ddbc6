#!/usr/bin/python3
"""milter-auth's From parser (hdrparse.c, through tests/milter-auth/from-parse)
checked against an independent one, Python's email.headerregistry:

- a table of cases (the spoofs of issue 17 among them) with the verdict we
  want, each also compared with Python's reading;
- many generated From values (seeded, so a failure repeats: MW_FROM_SEED
  and MW_FROM_CASES change them) under two rules: whatever we accept,
  Python reads as the same single mailbox; whatever Python reads cleanly
  (no defect, one mailbox, a host name domain), we accept with the same
  domain.
"""
import base64
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")),
                                "tests/lib"))
from email.headerregistry import HeaderRegistry  # noqa: E402

from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

DRIVER = os.path.join(sandbox.top_builddir(), "tests/milter-auth/from-parse")
REG = HeaderRegistry()
LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def ours(values):
    """[("ok", local, domain) or ("err", mailboxes, reason)] for each value."""
    data = "".join(v.encode("utf-8", "surrogateescape").hex() + "\n" for v in values)
    out = subprocess.run([DRIVER], input=data, capture_output=True, text=True, check=True, timeout=300).stdout
    res = []
    for line in out.splitlines():
        kind, a, b = (line.split(" ", 2) + [""])[:3]
        if kind == "ok":
            res.append(("ok", bytes.fromhex(a if a != "-" else "").decode("utf-8", "replace"), b))
        else:
            res.append(("err", int(a), b))
    assert len(res) == len(values), "driver answered %d of %d" % (len(res), len(values))
    return res


def python(value):
    """(addresses [(username, domain)], defect names), or None when Python
    raises."""
    value = re.sub(r"\r?\n(?=[ \t])", "", value)  # unfolded, as Python's parser expects
    try:
        h = REG("From", value)
        return [(a.username, a.domain) for a in h.addresses], sorted({type(d).__name__ for d in h.defects})
    except AttributeError:
        return "bug"  # Python 3.11 crashes on a phrase ending in "." right before "<" or ":"
    except Exception:
        return None


def host_name(domain):
    labels = domain.lower().split(".")
    return len(domain) <= 253 and len(labels) >= 2 and all(LABEL.match(lb) for lb in labels)


def disagreement(value, our):
    """Why our verdict on value contradicts Python's, or None."""
    py = python(value)
    if py == "bug":
        return None
    if our[0] == "ok":
        if py is None:
            return "we accept, Python raises"
        addrs, defects = py
        if len(addrs) != 1 or addrs[0][1].lower() != our[2]:
            return "we accept %s@%s, Python reads %r" % (our[1], our[2], addrs)
        if len(our[1]) < 255 and addrs[0][0] != our[1]:
            return "local part: ours %r, Python's %r" % (our[1], addrs[0][0])
        return None  # Python's defects (display-name decoding, obsolete forms) do not matter
    if py is not None:
        addrs, defects = py
        # RFC 2047 forbids encoded words in an address, Python decodes them
        # we refuse any "=?" that is not a well-formed encoded word (readers
        # disagree on broken ones), and encoded words in an address (RFC 2047)
        encoded_local = "=?" in value
        # a line break that is not a fold: Python reads past it, we refuse
        stray_break = re.search(r"\r(?!\n)|\n(?![ \t])", value.rstrip("\r\n"))
        if not defects and not stray_break and len(addrs) == 1 and host_name(addrs[0][1]) and not encoded_local and \
                all(ord(c) < 128 for c in value) and addrs[0][0] != "":
            return "Python reads %r cleanly, we refuse: %s" % (addrs, our[2])
    return None


# (value, domain we accept or None for a DMARC permerror)
TABLE = [
    (" alice@example.org", "example.org"),
    (" Alice <alice@EXAMPLE.org>", "example.org"),
    (' "Doe, John" (the boss) <j@a.example>', "a.example"),
    (' "ceo@paypal.example" <bob@evil.example>', "evil.example"),
    (" =?utf-8?q?ceo=40paypal.example?= <bob@evil.example>", "evil.example"),
    (" =?utf-8?b?%s?= <bob@evil.example>" % base64.b64encode(b"<ceo@paypal.example>").decode(), "evil.example"),
    (" John Q. Public <jqp@example.com>", "example.com"),
    (" team: a@g.example;", "g.example"),
    (" <@relay.example:user@final.example>", "final.example"),
    (" (comment) a@b.example (another)", "b.example"),
    (" =?UTF-8?Q?Dr._M=C3=BCller?= <m@x.example>", "x.example"),
    (' "=?utf-8?q?J=C3=B6rg?=" <j@x.example>', "x.example"),
    # issue 17: each of these once gave dmarc=pass for evil.example
    (" ceo@paypal.example bob@evil.example", None),
    (" ceo@paypal.example@evil.example", None),
    (" <bob@evil.example> <ceo@paypal.example>", None),
    (" ceo@paypal", None),
    # more than one mailbox, none, or not a domain DMARC can look up
    (" a@one.example, b@two.example", None),
    (" a@one.example, b@one.example", None),
    (" team: a@g.example, b@h.example;", None),
    (" undisclosed-recipients:;", None),
    (" nobody", None),
    (" ", None),
    (" x@[192.0.2.1]", None),
    (" x@example.org.", None),
    (" x@exa mple.org", None),
    (" x@bad..example", None),
    (" john doe@example.com", None),
    (" <>", None),
    (' "unterminated <a@b.example>', None),
    (" a@b.example (unterminated", None),
    (" a@b.example\x01", None),
    # readers that decode "=?" up to the next "?=" would see another address
    (' "=?utf-8?q?x" <bob@evil.example> (?= <ceo@paypal.example>)', None),
    (" =?utf-8?q?a <bob@evil.example> b?= <ceo@paypal.example>", None),
    (" =?utf-8?q?=4?= <bob@evil.example>", None),
]


def table(t):
    res = ours([v for v, _ in TABLE])
    for (value, want), got in zip(TABLE, res):
        if want is None:
            t.ok(got[0] == "err", "refused: %r (%s)" % (value, got[2]), repr(got))
        else:
            t.eq((got[0], got[2]), ("ok", want), "accepted: %r" % value)
        why = disagreement(value, got)
        t.ok(why is None, "Python agrees on %r" % value, why)


# --- generated cases ---------------------------------------------------------

def gen_atom(r):
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
                   for _ in range(r.randint(1, 8)))


def gen_word(r):
    k = r.random()
    if k < 0.6:
        return gen_atom(r).replace("=?", "=")
    if k < 0.85:
        inner = "".join(r.choice('abc xyz@<>,;:.()[]\\"') for _ in range(r.randint(0, 8)))
        return '"%s"' % inner.replace("\\", "\\\\").replace('"', '\\"')
    text = "".join(r.choice("ab@<>,;:. xyz()\"") for _ in range(r.randint(1, 10)))
    if r.random() < 0.5:
        return "=?utf-8?b?%s?=" % base64.b64encode(text.encode()).decode()
    return "=?utf-8?q?%s?=" % "".join("=%02X" % ord(c) if not c.isalnum() else c for c in text)


def gen_comment(r):
    inner = "".join(r.choice("abc @<>,;:.\"") for _ in range(r.randint(0, 6)))
    if r.random() < 0.2:
        inner += "(%s)" % gen_atom(r)
    return "(%s)" % inner


def cfws(r):
    k = r.random()
    if k < 0.6:
        return r.choice(["", " "])
    if k < 0.85:
        return " " + gen_comment(r) + " "
    return "\r\n\t"


def gen_label(r):
    k = r.random()
    if k < 0.85:
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(r.randint(1, 10)))
    return r.choice(["-a", "a-", "a-b", "a_b", "A", "", "x" * 64, "b c"])


def gen_domain(r):
    k = r.random()
    if k < 0.05:
        return "[192.0.2.%d]" % r.randint(0, 255)
    n = r.choice([1, 2, 2, 2, 3, 3, 4])
    sep = "." if r.random() < 0.9 else r.choice([" . ", ". ", "..", "(c)."])
    d = sep.join(gen_label(r) for _ in range(n))
    if r.random() < 0.05:
        d += "."
    return d


def gen_local(r):
    k = r.random()
    if k < 0.7:
        return ".".join(gen_atom(r).replace("=?", "=") for _ in range(r.randint(1, 3)))
    if k < 0.85:
        return gen_word(r)
    return r.choice([".a", "a.", "a..b", "a b", "a . b", ""])


def gen_addr_spec(r):
    return gen_local(r) + cfws(r) + "@" + cfws(r) + gen_domain(r)


def gen_mailbox(r):
    if r.random() < 0.4:
        return cfws(r) + gen_addr_spec(r) + cfws(r)
    name = " ".join(gen_word(r) for _ in range(r.randint(0, 3)))
    if r.random() < 0.1:
        name += " Q. " + gen_atom(r)
    route = ""
    if r.random() < 0.05:
        route = "@%s,@%s:" % (gen_domain(r), gen_domain(r))
    return cfws(r) + name + cfws(r) + "<" + route + gen_addr_spec(r) + ">" + cfws(r)


def gen_from(r):
    k = r.random()
    if k < 0.7:
        v = gen_mailbox(r)
    elif k < 0.85:
        v = ",".join(gen_mailbox(r) for _ in range(r.randint(0, 3)))
    else:
        v = "%s:%s;" % (gen_word(r), ",".join(gen_mailbox(r) for _ in range(r.randint(0, 2))))
    if r.random() < 0.3:
        # damage it: the parser must never be fooled by half a syntax
        chars = list(v)
        for _ in range(r.randint(1, 3)):
            op = r.random()
            pos = r.randint(0, len(chars))
            if op < 0.5:
                chars.insert(pos, r.choice('<>@,;:."()[]\\ \t\x00\x01\x7f\xe9a'))
            elif chars:
                del chars[min(pos, len(chars) - 1)]
        v = "".join(chars)
    return " " + v


def generated(t):
    seed = int(os.environ.get("MW_FROM_SEED", "17"))
    n = int(os.environ.get("MW_FROM_CASES", "20000"))
    r = random.Random(seed)
    values = [gen_from(r) for _ in range(n)]
    res = ours(values)
    accepted = sum(1 for x in res if x[0] == "ok")
    bad = []
    for v, o in zip(values, res):
        why = disagreement(v, o)
        if why:
            bad.append("%r: %s" % (v, why))
    t.ok(not bad, "%d generated From values (seed %d, %d accepted): no disagreement with Python" %
         (n, seed, accepted), "\n".join(bad[:30]) + ("\n... %d in all" % len(bad) if len(bad) > 30 else ""))
    t.ok(accepted > n // 10 and accepted < n - n // 10,
         "the generated cases exercise both verdicts (%d of %d accepted)" % (accepted, n))


t = Tap()
t.run(table)
t.run(generated)
t.done()
