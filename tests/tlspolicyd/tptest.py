"""What the tlspolicyd tests share: the daemon under test, a socketmap
client (netstrings, as Postfix's dict_sockmap speaks), a test CA and the
local HTTPS server for MTA-STS policies."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest import daemon, sandbox  # noqa: E402

BUILD = sandbox.top_builddir()
TLSPOLICYD = os.path.join(BUILD, "milter-pgp", "tlspolicyd")



def netstring(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"%d:%s," % (len(payload), payload)


class Client(daemon.Client):
    """One socketmap connection, kept open as Postfix keeps it."""

    timeout = 60
    closed_timeout = 10
    connect_blocking = True

    def reply(self):
        """The next reply's payload; None when the connection closed."""
        while True:
            if b":" in self.pending:
                n, rest = self.pending.split(b":", 1)
                if len(rest) > int(n):
                    assert rest[int(n):int(n) + 1] == b",", self.pending
                    self.pending = rest[int(n) + 1:]
                    return rest[:int(n)].decode()
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.pending += chunk

    def ask(self, key, name="tlspolicy"):
        self.send(netstring("%s %s" % (name, key)))
        return self.reply()


class Daemon(daemon.Daemon):
    """tlspolicyd in the foreground with its own config in the sandbox."""

    program = TLSPOLICYD
    prefix = "tp"
    socket_file = "tlspolicyd.sock"
    ready = "ready:"
    start_timeout = 30
    stop_timeout = 30
    log_timeout = 20
    client_class = Client

    @property
    def cache(self):
        return os.path.join(self.dir, "tlspolicyd.cache")

    def settings(self):
        return [("socket", self.socket), ("pid_file", ""), ("user", ""), ("log_level", "info"),
                ("cache_file", self.cache), ("dns_trust_anchor", "none"), ("dns_resolver", "127.0.0.1@9")]

    def test(self, domain, timeout=120):
        """tlspolicyd -t DOMAIN: (policy, reason, exit status)."""
        p = subprocess.run([TLSPOLICYD, "-c", self.conf, "-t", domain], capture_output=True, text=True,
                           timeout=timeout)
        policy = reason = None
        for ln in p.stdout.splitlines():
            if ln.startswith("policy: "):
                policy = ln[8:]
            elif ln.startswith("reason: "):
                reason = ln[8:]
        return policy, reason, p.returncode, p.stderr


def run(argv):
    subprocess.run(argv, check=True, capture_output=True)


class TestCA:
    """A CA and one server certificate for the given names."""

    def __init__(self, names, name="ca"):
        self.dir = sandbox.mkdir(name)
        d = self.dir
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(d, "ca.key"), "-out", self.ca, "-days", "2", "-subj", "/CN=mailward test CA"])
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=%s\n" % ",".join("DNS:" + n for n in names))
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-out", os.path.join(d, "server.csr"), "-subj", "/CN=" + names[0]])
        run(["openssl", "x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", self.ca, "-CAkey",
             os.path.join(d, "ca.key"), "-CAcreateserial", "-out", self.cert, "-days", "2",
             "-extfile", os.path.join(d, "ext.cnf")])


class StsServer:
    """tests/tlspolicyd/stsserver.py on a free loopback port."""

    def __init__(self, ca, name="sts", port=None, static=None):
        self.dir = sandbox.mkdir(name)
        self.static = static  # a ROOT for --static (see stsserver.py)
        self.ca = ca
        self.port = port or sandbox.free_port()
        self.proc = None
        self.start()

    def start(self):
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = sandbox.spawn(["/usr/bin/python3", os.path.join(HERE, "stsserver.py"), "--port", str(self.port),
                                   "--cert", self.ca.cert, "--key", self.ca.key, "--dir", self.dir,
                                   "--ready-file", ready] + (["--static", self.static] if self.static else []),
                                  log=os.path.join(self.dir, "server.log"))
        sandbox.wait_for(lambda: os.path.exists(ready) or self.proc.poll() is not None, 20, what="the HTTPS server")
        if self.proc.poll() is not None:
            raise RuntimeError(sandbox.read_text(os.path.join(self.dir, "server.log")))

    def stop(self):
        sandbox.stop(self.proc)

    def serve(self, domain, text, delay=None, ctype=None):
        base = os.path.join(self.dir, "mta-sts." + domain)
        with open(base, "w") as f:
            f.write(text)
        for ext, val in ((".delay", delay), (".type", ctype)):
            if val is None:
                if os.path.exists(base + ext):
                    os.unlink(base + ext)
            else:
                with open(base + ext, "w") as f:
                    f.write(str(val))

    def requests(self, domain=None):
        lines = sandbox.read_text(os.path.join(self.dir, "requests.log")).splitlines()
        return [ln for ln in lines if domain is None or ln.startswith("mta-sts.%s " % domain)]


def policy(mode, mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx), max_age)
