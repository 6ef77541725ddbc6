"""What the tlspolicyd tests share: the daemon under test, a socketmap
client (netstrings, as Postfix's dict_sockmap speaks), a test CA and the
local HTTPS server for MTA-STS policies."""
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest import sandbox  # noqa: E402

BUILD = sandbox.top_builddir()
TLSPOLICYD = os.path.join(BUILD, "milter-pgp", "tlspolicyd")

_count = 0


def netstring(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"%d:%s," % (len(payload), payload)


class Client:
    """One socketmap connection, kept open as Postfix keeps it."""

    def __init__(self, spec, timeout=60):
        if spec.startswith("unix:"):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(spec[5:])  # blocking: waits while the backlog is full
            self.s.settimeout(timeout)
        else:
            port, host = spec[5:].split("@")
            self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.pending = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

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

    def closed(self, timeout=10):
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class Daemon:
    """tlspolicyd in the foreground with its own config in the sandbox."""

    def __init__(self, conf="", name=None, start=True):
        global _count
        _count += 1
        self.name = name or "tp%d" % _count
        self.dir = sandbox.mkdir(self.name, mode=0o755)
        self.socket = "unix:" + os.path.join(self.dir, "tlspolicyd.sock")
        self.conf = os.path.join(self.dir, "tlspolicyd.conf")
        self.logfile = os.path.join(self.dir, "tlspolicyd.log")
        self.cache = os.path.join(self.dir, "tlspolicyd.cache")
        self.proc = None
        self.write(conf)
        if start:
            self.start()

    def write(self, conf):
        given = {ln.split("=")[0].strip() for ln in conf.splitlines() if "=" in ln}
        base = [("socket", self.socket), ("pid_file", ""), ("user", ""), ("log_level", "info"),
                ("cache_file", self.cache), ("dns_trust_anchor", "none"), ("dns_resolver", "127.0.0.1@9")]
        for ln in conf.splitlines():
            if ln.split("=")[0].strip() == "socket":
                self.socket = ln.split("=", 1)[1].strip()
        text = "".join("%s = %s\n" % (k, v) for k, v in base if k not in given)
        with open(self.conf, "w") as f:
            f.write(text + conf)

    def log(self):
        return sandbox.read_text(self.logfile)

    def start(self):
        mark = len(self.log())
        self.proc = sandbox.spawn([TLSPOLICYD, "-f", "-c", self.conf], log=self.logfile)

        def up():
            return self.proc.poll() is not None or "ready:" in self.log()[mark:]
        sandbox.wait_for(up, 30, what="tlspolicyd to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("tlspolicyd exited %s:\n%s" % (self.proc.returncode, self.log()))

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc, timeout=30)
            rc = self.proc.returncode
            self.proc = None
            return rc
        return None

    def reload(self):
        mark = len(self.log())
        self.proc.send_signal(1)
        sandbox.wait_for(lambda: "reload" in self.log()[mark:], 20, what="tlspolicyd to reload")
        return self.log()[mark:]

    def client(self):
        return Client(self.socket)

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

    def wait_log(self, text, timeout=20, since=0):
        sandbox.wait_for(lambda: text in self.log()[since:], timeout, what="%r in the log" % text)


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
