"""Helpers for milter-auth tests: keys, signed messages, a DNS zone, and
milter-auth's test mode (-t) with its output parsed."""
import base64
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))

import dkim  # noqa: E402
import nacl.encoding  # noqa: E402
import nacl.signing  # noqa: E402

from mwtest import sandbox  # noqa: E402

MILTER_AUTH = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth")


def rsa_key(bits):
    """(private PEM bytes, public key base64 for the DNS p= tag)."""
    d = sandbox.mkdir("keys")
    priv = os.path.join(d, "rsa%d.pem" % bits)
    if not os.path.exists(priv):
        subprocess.run(["openssl", "genrsa", "-out", priv, str(bits)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", priv, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return open(priv, "rb").read(), base64.b64encode(der).decode()


def ed25519_key(seed=b"mailward-test-ed25519-key-seed!!"):
    sk = nacl.signing.SigningKey(seed)
    return (base64.b64encode(bytes(sk)), base64.b64encode(bytes(sk.verify_key)).decode())


def sign(msg, selector, domain, key, alg=b"rsa-sha256", canon=(b"relaxed", b"relaxed"),
         length=False, headers=None, extra_fields=None):
    """msg with a DKIM-Signature prepended (python3-dkim). extra_fields
    (e.g. [(b"x", b"12345")]) are put into the signature before it is
    signed: dkimpy cannot write x= itself."""
    if isinstance(msg, str):
        msg = msg.encode()
    d = dkim.DKIM(msg)
    if extra_fields:
        orig = d.gen_header

        def gen_header(fields, *args, **kw):
            return orig(list(fields) + list(extra_fields), *args, **kw)
        d.gen_header = gen_header
    sig = d.sign(selector.encode(), domain.encode(), key, signature_algorithm=alg,
                 canonicalize=canon, length=length,
                 include_headers=headers or [b"from", b"to", b"subject", b"date"])
    return sig + msg


def message(frm="Friend <friend@friend.example>", subject="hello", body="Hello Alice.\r\n",
            extra=""):
    return ("From: %s\r\nTo: alice@example.org\r\nSubject: %s\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@friend.example>\r\n%s\r\n%s" % (frm, subject, abs(hash(subject + body)), extra, body))



def report_counts(path):
    """An aggregate report file (gzip XML, RFC 9990): message counts by source IP."""
    import gzip
    import xml.etree.ElementTree as ET
    ns = {"d": "urn:ietf:params:xml:ns:dmarc-2.0"}
    by = {}
    for r in ET.fromstring(gzip.open(path).read()).findall("d:record", ns):
        ip = r.find("d:row/d:source_ip", ns).text
        by[ip] = by.get(ip, 0) + int(r.find("d:row/d:count", ns).text)
    return by


def write_conf(text):
    path = sandbox.path("milter-auth-%d.conf" % abs(hash(text)))
    with open(path, "w") as f:
        f.write(text)
    return path


def base_conf(dns, extra=""):
    return write_conf("authserv_id = mx.example.org\ndns_resolver = %s\ndns_timeout = 1s\n"
                      "trusted_networks = 192.0.2.250\n%s" % (dns.spec, extra))


class Outcome:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.log = proc.stderr
        lines = proc.stdout.splitlines()
        self.action_line = lines[0] if lines else ""
        self.action = self.action_line.split()[1] if len(self.action_line.split()) > 1 else ""
        self.added = [l[len("add-header: "):] for l in lines if l.startswith("add-header: ")]
        self.deleted = [l[len("delete-header: "):] for l in lines if l.startswith("delete-header: ")]
        self.ar = next((h[len("Authentication-Results: "):] for h in self.added
                        if h.startswith("Authentication-Results:")), "")

    def methods(self, name):
        """The results of one method in our A-R header, in order: e.g. for
        "dkim" ["pass", "fail"]."""
        out = []
        for part in self.ar.split(";")[1:]:
            part = part.strip()
            if part.startswith(name + "="):
                out.append(part[len(name) + 1:].split()[0])
        return out

    def verdict(self, name):
        """A method's result from the A-R header, or from the log line when
        no header was added (the message was refused)."""
        got = self.methods(name)
        if got:
            return got
        import re
        return re.findall(r" %s=(\w+)" % re.escape(name), self.log)

    def method_text(self, name):
        return [p.strip() for p in self.ar.split(";")[1:] if p.strip().startswith(name + "=")]

    def __repr__(self):
        return "rc=%s\n%s%s" % (self.rc, self.stdout, self.log)


def run(conf, msg, client_ip="198.51.100.7", helo="mail.friend.example", mail_from="friend@friend.example",
        extra=None):
    path = sandbox.path("msg-%d.eml" % abs(hash(msg if isinstance(msg, bytes) else msg.encode())))
    with open(path, "wb") as f:
        f.write(msg if isinstance(msg, bytes) else msg.encode())
    argv = [MILTER_AUTH, "-c", conf, "-t", path, "--client-ip", client_ip, "--helo", helo,
            "--mail-from", mail_from] + list(extra or [])
    return Outcome(subprocess.run(argv, capture_output=True, text=True, timeout=60))


class Milter:
    """milter-auth as a daemon (-f), unprivileged (nobody) after binding socket,
    debug log in the sandbox; .write(text) replaces its config file."""
    def __init__(self, dns, socket, conf_extra="", socket_group="postfix", log_level="debug"):
        self.conf = sandbox.path("milter-auth-e2e-%d.conf" % abs(hash(socket)))
        self.base = ("authserv_id = mx.example.org\ndns_resolver = %s\ndns_timeout = 1s\n"
                     "trusted_networks = 127.0.0.1/32\nsocket = %s\nuser = nobody\n"
                     "socket_group = %s\nsocket_mode = 0660\nlog_level = %s\n%s" % (dns.spec, socket, socket_group, log_level, conf_extra))
        self.write(self.base)
        self.log = sandbox.path("milter-auth-%d.log" % abs(hash(socket)))
        self.proc = sandbox.spawn([MILTER_AUTH, "-f", "-c", self.conf], log=self.log)
        sandbox.wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, 15,
                         what="milter-auth to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("milter-auth exited: " + self.text())

    def write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def text(self):
        return sandbox.read_text(self.log)

    def stop(self):
        sandbox.stop(self.proc)
