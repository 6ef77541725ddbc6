"""What the policyd-rate tests share: the daemon under test, a policy
client speaking the Postfix protocol over a persistent connection, and the
admin command."""
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest import sandbox  # noqa: E402

BUILD = sandbox.top_builddir()
POLICYD = os.path.join(BUILD, "policyd-rate", "policyd-rate")
CTL = os.path.join(BUILD, "policyd-rate", "policyd-rate-ctl")

_count = 0


def request(stage="END-OF-MESSAGE", user="alice@example.org", sender=None, client="192.0.2.10",
            rcpt="bob@example.net", rcpt_count=1, size=1000, queue_id="4Q1ABC", **extra):
    """A request as Postfix 3.7 sends it, every attribute present."""
    attrs = [
        ("request", "smtpd_access_policy"), ("protocol_state", stage), ("protocol_name", "ESMTP"),
        ("helo_name", "client.example"), ("queue_id", queue_id if stage != "RCPT" else ""),
        ("sender", sender if sender is not None else (user or "anon@example.com")),
        ("recipient", rcpt if stage == "RCPT" else ""),
        ("recipient_count", str(rcpt_count if stage != "RCPT" else 0)),
        ("client_address", client), ("client_name", "client.example"),
        ("reverse_client_name", "client.example"), ("instance", "123.abc.%d" % time.time_ns()),
        ("sasl_method", "PLAIN" if user else ""), ("sasl_username", user or ""),
        ("sasl_sender", ""), ("size", str(size)), ("ccert_subject", ""), ("ccert_issuer", ""),
        ("ccert_fingerprint", ""), ("ccert_pubkey_fingerprint", ""), ("encryption_protocol", "TLSv1.3"),
        ("encryption_cipher", "TLS_AES_256_GCM_SHA384"), ("encryption_keysize", "256"),
        ("etrn_domain", ""), ("stress", ""), ("policy_context", "submission"),
        ("server_address", "127.0.0.1"), ("server_port", "587"), ("compatibility_level", "3.6"),
        ("mail_version", "3.7.11"),
    ]
    d = dict(attrs)
    d.update(extra)
    return "".join("%s=%s\n" % (k, v) for k, v in d.items() if v is not None) + "\n"


class Client:
    """One persistent policy connection, as one smtpd process keeps."""

    def __init__(self, spec, timeout=10):
        if spec.startswith("unix:"):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(spec[5:])
        else:  # inet:port@host
            port, host = spec[5:].split("@")
            self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.pending = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self):
        """The next reply's action (without "action="); None when closed."""
        while b"\n\n" not in self.pending:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.pending += chunk
        r, self.pending = self.pending.split(b"\n\n", 1)
        r = r.decode()
        assert r.startswith("action="), r
        return r[len("action="):]

    def ask(self, **kw):
        self.send(request(**kw))
        return self.reply()

    def closed(self, timeout=5):
        """True when the daemon closed the connection (EOF)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.pending += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class Daemon:
    """policyd-rate in the foreground with its own config in the sandbox."""

    def __init__(self, conf="", name=None, start=True):
        global _count
        _count += 1
        self.name = name or "pr%d" % _count
        self.dir = sandbox.mkdir(self.name, mode=0o755)
        self.socket = "unix:" + os.path.join(self.dir, "policy.sock")
        self.control = "unix:" + os.path.join(self.dir, "control.sock")
        self.conf = os.path.join(self.dir, "policyd-rate.conf")
        self.logfile = os.path.join(self.dir, "policyd-rate.log")
        self.proc = None
        self.wrap = []  # a command that runs the daemon, e.g. prlimit
        self.write(conf)
        if start:
            self.start()

    def write(self, conf):
        given = {ln.split("=")[0].strip() for ln in conf.splitlines() if "=" in ln}
        base = [("socket", self.socket), ("control_socket", self.control), ("pid_file", ""),
                ("user", ""), ("log_level", "info")]
        for k, v in base:
            if k == "socket" and k in given:
                self.socket = [ln.split("=", 1)[1].strip() for ln in conf.splitlines()
                               if ln.split("=")[0].strip() == "socket"][0]
        text = "".join("%s = %s\n" % (k, v) for k, v in base if k not in given)
        with open(self.conf, "w") as f:
            f.write(text + conf)

    def log(self):
        return sandbox.read_text(self.logfile)

    def start(self, expect_fail=False):
        mark = len(self.log())
        self.proc = sandbox.spawn(self.wrap + [POLICYD, "-f", "-c", self.conf], log=self.logfile)

        def up():
            if self.proc.poll() is not None:
                return True
            return "listening on" in self.log()[mark:]
        sandbox.wait_for(up, 15, what="policyd-rate to listen")
        if self.proc.poll() is not None and not expect_fail:
            raise RuntimeError("policyd-rate exited %s:\n%s" % (self.proc.returncode, self.log()))

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc)
            rc = self.proc.returncode
            self.proc = None
            return rc
        return None

    def kill(self):
        if self.proc is not None:
            sandbox.stop(self.proc, sig=9)
            self.proc = None

    def reload(self):
        mark = len(self.log())
        self.proc.send_signal(1)
        sandbox.wait_for(lambda: "reload" in self.log()[mark:], 10, what="policyd-rate to reload")
        return self.log()[mark:]

    def client(self):
        return Client(self.socket)

    def ctl(self, *args):
        p = subprocess.run([CTL, "-s", self.control] + list(args), capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout + p.stderr

    def wait_log(self, text, timeout=10, since=0):
        sandbox.wait_for(lambda: text in self.log()[since:], timeout, what="%r in the log" % text)
