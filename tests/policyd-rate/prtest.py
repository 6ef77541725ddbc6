"""What the policyd-rate tests share: the daemon under test, a policy
client speaking the Postfix protocol over a persistent connection, and the
admin command."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mwtest import daemon, sandbox  # noqa: E402

BUILD = sandbox.top_builddir()
POLICYD = os.path.join(BUILD, "policyd-rate", "policyd-rate")
CTL = os.path.join(BUILD, "policyd-rate", "policyd-rate-ctl")



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


class Client(daemon.Client):
    """One persistent policy connection, as one smtpd process keeps."""

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


class Daemon(daemon.Daemon):
    """policyd-rate in the foreground with its own config in the sandbox."""

    program = POLICYD
    prefix = "pr"
    socket_file = "policy.sock"
    ready = "listening on"
    client_class = Client

    @property
    def control(self):
        return "unix:" + os.path.join(self.dir, "control.sock")

    def settings(self):
        return [("socket", self.socket), ("control_socket", self.control), ("pid_file", ""),
                ("user", ""), ("log_level", "info")]

    def ctl(self, *args):
        p = subprocess.run([CTL, "-s", self.control] + list(args), capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout + p.stderr
