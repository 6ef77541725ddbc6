"""Helpers for milter-pgp tests: a GnuPG keyring with the test people's
keys (made once per run, unprotected), milter-pgp's test mode (-t) with its
output parsed, and decryption/verification with gpg and Sequoia sq.

People: alice (sender, key pair), bob and carol (recipients with keys),
dave (no key), eve (expired key), frank (revoked key)."""
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))

from mwtest import sandbox  # noqa: E402

MILTER_PGP = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-pgp")
ALICE, BOB, CAROL, DAVE, EVE, FRANK = ("alice@example.org", "bob@example.net", "carol@example.net",
                                       "dave@example.com", "eve@example.com", "frank@example.com")


def gpg(home, *args, input=None, check=True):
    p = subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                        "--passphrase", ""] + list(args), input=input, capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise RuntimeError("gpg %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


def fingerprint(home, addr, secret=False):
    out = gpg(home, "--with-colons", "--list-secret-keys" if secret else "--list-keys", "<%s>" % addr).stdout.decode()
    return re.search(r"^fpr:+([0-9A-F]+):", out, re.M).group(1)


def _new_key(home, addr, faked_time=None, expire="2y"):
    pre = ["--faked-system-time", faked_time] if faked_time else []
    gpg(home, *pre, "--quick-gen-key", addr, "ed25519", "sign,cert", expire)
    fpr = fingerprint(home, addr)
    gpg(home, *pre, "--quick-add-key", fpr, "cv25519", "encr", expire)
    return fpr


_keyring = None


def keyring():
    """The keyring milter-pgp uses (public keys of everyone, alice's key
    pair) and one private home per person holding their secret key.
    Returns the keyring path; secret key files are in keys/NAME.sec."""
    global _keyring
    if _keyring:
        return _keyring
    make = sandbox.mkdir("keys", "make", mode=0o700)
    fprs = {}
    for addr in (ALICE, BOB, CAROL, FRANK):
        fprs[addr] = _new_key(make, addr)
    # eve's key expired in 2021: made then, valid for a day; the clock
    # frozen ("!"), or under load the subkey can predate its primary key
    fprs[EVE] = _new_key(make, EVE, faked_time="20210101T000000!", expire="1d")
    # frank's key revoked with the certificate gpg made with it
    rev = open(os.path.join(make, "openpgp-revocs.d", fprs[FRANK] + ".rev")).read()
    rev = rev.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    gpg(make, "--import", input=rev.encode())
    for addr in (ALICE, BOB, CAROL):  # alice first: the others import her key
        name = addr.split("@")[0]
        with open(sandbox.path("keys", name + ".sec"), "wb") as f:
            f.write(gpg(make, "--armor", "--export-secret-keys", fprs[addr]).stdout)
        with open(sandbox.path("keys", name + ".pub"), "wb") as f:
            f.write(gpg(make, "--armor", "--export", fprs[addr]).stdout)
        home = sandbox.mkdir("keys", name, mode=0o700)
        gpg(home, "--import", sandbox.path("keys", name + ".sec"))
        gpg(home, "--import", sandbox.path("keys", "alice.pub"))
    ring = sandbox.mkdir("keys", "ring", mode=0o700)
    pub = gpg(make, "--armor", "--export").stdout
    gpg(ring, "--import", input=pub)
    gpg(ring, "--import", sandbox.path("keys", "alice.sec"))
    _keyring = ring
    return ring


def person_home(name):
    keyring()
    return sandbox.path("keys", name)


TEMPLATES = os.path.join(sandbox.top_srcdir(), "milter-pgp/pem/templates")


def write_conf(text, name="milter-pgp.conf"):
    if "password_templates" not in text:  # the source tree's, not the installed ones
        # appended: the line numbers of the caller's settings stay
        text = "%s%spassword_templates = %s\n" % (text, "" if text.endswith("\n") or not text else "\n", TEMPLATES)
    path = sandbox.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def base_conf(extra=""):
    return write_conf("keyring = %s\ntmpdir = %s\n%s" % (keyring(), sandbox.mkdir("spool"), extra),
                      "mp-%d.conf" % abs(hash(extra)))



class Daemon:
    """milter-pgp in the foreground (-f -c CONF) behind a private MTA: its
    configuration is self.base (the socket, keyring, spool, user...) plus
    what a test adds; the log in the sandbox. argv_prefix runs it under a
    wrapper (unshare ...)."""

    def __init__(self, name, base, extra="", argv_prefix=(), wait=30):
        self.conf = sandbox.path("milter-pgp-%s.conf" % name)
        self.base = base
        self.write(extra)
        self.log = sandbox.path("milter-pgp-%s.log" % name)
        self.proc = sandbox.spawn(list(argv_prefix) + [MILTER_PGP, "-f", "-c", self.conf], log=self.log)
        sandbox.wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, wait,
                         what="milter-pgp to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("milter-pgp exited: " + self.text())

    def write(self, extra=""):
        with open(self.conf, "w") as f:
            f.write(self.base + extra)

    def reload(self, extra):
        """The configuration base + extra, applied (SIGHUP; waits for the log to say so)."""
        n = self.text().count("configuration reloaded")
        self.write(extra)
        os.kill(self.proc.pid, signal.SIGHUP)
        sandbox.wait_for(lambda: self.text().count("configuration reloaded") > n, 30, what="reload")

    def text(self):
        return sandbox.read_text(self.log)


class Outcome:
    def __init__(self, proc, out_path):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.log = proc.stderr
        lines = proc.stdout.splitlines()
        self.action_line = next((l for l in lines if l.startswith("action: ")), "")
        self.action = self.action_line.split()[1] if len(self.action_line.split()) > 1 else ""
        self.changes = [l for l in lines if l.split(":")[0] in ("add-header", "delete-header")] + \
            [l for l in lines if l == "replace-body"]
        self.rcpts = dict(l[len("rcpt: "):].rsplit(" ", 1) for l in lines if l.startswith("rcpt: "))
        self.refused = [l for l in lines if l.startswith("rcpt-refused: ")]
        self.out_path = out_path
        self.out = open(out_path, "rb").read() if os.path.exists(out_path) else None


_n = [0]


def run(message, rcpts, sender=ALICE, conf=None, auth=None, client_ip=None, tls=False):
    if isinstance(message, str):
        message = message.encode()
    _n[0] += 1
    msg_path = sandbox.path("msg-%d.eml" % _n[0])
    out_path = sandbox.path("out-%d.eml" % _n[0])
    with open(msg_path, "wb") as f:
        f.write(message)
    argv = [MILTER_PGP, "-c", conf or base_conf(), "-t", msg_path, "--mail-from", sender, "-o", out_path]
    for r in rcpts:
        argv += ["--rcpt", r]
    if auth:
        argv += ["--auth", auth]
    if tls:
        argv += ["--tls"]
    if client_ip:
        argv += ["--client-ip", client_ip]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    return Outcome(p, out_path)


# ------------------------------------------------------------ message shapes

def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def split(raw):
    """(list of header fields as bytes, each with its folds, body) of a
    message in CRLF form."""
    raw = crlf(raw)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, body = raw, b""
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body


# the fields milter-pgp copies into the signed or encrypted part (prothdr.h)
PROTECTED = (b"date", b"from", b"sender", b"reply-to", b"to", b"cc", b"message-id", b"in-reply-to", b"references",
             b"subject", b"comments", b"keywords")


def field_name(f):
    return f.split(b":", 1)[0].strip().lower()


def entity(raw, hp=None, obscure=False, subject=None):
    """The original MIME entity: the Content-* fields, a blank line, the
    body (CRLF), what the encrypted part must hold byte for byte.

    With hp ("cipher" or "clear"), as milter-pgp protects headers (RFC
    9788, prothdr.h): the same bytes with exactly these additions: the hp
    parameter on a line of its own at the end of the Content-Type (or that
    whole field when there is none), after the Content-* fields a copy of
    each protected field, and (cipher) one HP-Outer line per copy with the
    outer value (Subject "[...]" when obscured). subject: the first
    Subject's value inside (a password tag removed)."""
    fields, body = split(raw)
    content = [f for f in fields if f.lower().startswith(b"content-")]
    if hp is None:
        return b"".join(f + b"\r\n" for f in content) + b"\r\n" + body
    param = b'\r\n hp="' + hp.encode() + b'"'
    ct = next((i for i, f in enumerate(content) if field_name(f) == b"content-type"), None)
    if ct is None:
        content.insert(0, b"Content-Type: text/plain; charset=us-ascii;" + param)
    else:
        content[ct] += (b"" if content[ct].rstrip().endswith(b";") else b";") + param
    copies, outer = [], []
    for f in fields:
        if field_name(f) not in PROTECTED:
            continue
        if field_name(f) == b"subject" and subject is not None and not any(field_name(c) == b"subject" for c in copies):
            f = f.split(b":", 1)[0] + b":" + subject
        copies.append(f)
        if field_name(f) == b"subject" and obscure:
            f = f.split(b":", 1)[0] + b": [...]"
        outer.append(b"HP-Outer: " + f)
    block = copies + (outer if hp == "cipher" else [])
    return b"".join(f + b"\r\n" for f in content + block) + b"\r\n" + body


def header(raw, name):
    fields, _ = split(raw)
    name = name.lower().encode() + b":"
    return [f[len(name):].decode(errors="replace").strip() for f in fields if f.lower().startswith(name)]


def parts(raw):
    """The parts of a top-level multipart, exactly as between the delimiters
    (the CRLF before a delimiter belongs to it)."""
    ct = " ".join(header(raw, "Content-Type"))
    b = re.search(r'boundary="([^"]+)"', ct).group(1).encode()
    _, body = split(raw)
    first = body.split(b"--" + b + b"\r\n", 1)[1]
    pieces = first.split(b"\r\n--" + b)
    if not pieces[-1].startswith(b"--"):
        raise ValueError("no closing delimiter")
    return [pieces[0]] + [p[2:] for p in pieces[1:-1]]


def armored(raw):
    """The armored OpenPGP message of a PGP/MIME message."""
    p = parts(raw)[1]
    return p[p.index(b"-----BEGIN PGP MESSAGE-----"):]


def gpg_decrypt(home, data):
    """(returncode, plaintext, status lines) with gpg."""
    p = gpg(home, "--status-fd", "2", "--decrypt", input=data, check=False)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def sq_decrypt(secret_file, data, signer_pub=None):
    argv = ["sq", "decrypt", "--recipient-key", secret_file]
    if signer_pub:
        argv += ["--signer-cert", signer_pub]
    p = subprocess.run(argv, input=data, capture_output=True, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def have_sq():
    return shutil.which("sq") is not None
