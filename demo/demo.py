#!/usr/bin/python3
"""The mailward demo: a private mail system on loopback with every mailward
component that exists attached, a handful of sample messages, and a report
of what each component did to each message.

The sandbox: a DNS server for the demo domains, Redis, Dovecot (users alice
and bob, SASL for Postfix), and Postfix receiving on a loopback port (mail
from the internet) and on a submission port (authenticated users), relaying
everything to an smtp-sink so each delivered message can be shown.

Components join through plugins in demo/plugins/ (see demo/README.md).
"""
import argparse
import email
import email.policy
import importlib.util
import os
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
os.environ.setdefault("MW_TOP_SRCDIR", TOP)

from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.dovecot import Dovecot  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402

# The demo's own world: example.org is the provider running mailward;
# friend.example is an ordinary sender.
BASE_ZONE = """
example.org            MX    10 mx.example.org
mx.example.org         A     127.0.0.1
friend.example         MX    10 mail.friend.example
mail.friend.example    A     127.0.0.2
"""


class Message:
    """One sample message. kind is "inbound" (from the internet, to the
    MTA's port 25 stand-in) or "submission" (an authenticated user sending,
    through the submission port)."""

    def __init__(self, name, description, kind="inbound", mail_from="friend@friend.example",
                 rcpt="alice@example.org", client_ip="127.0.0.2", helo="mail.friend.example",
                 data=None, headers=None, body="Hello from the mailward demo.\n",
                 user=None, password=None, plugin=None):
        self.name, self.description, self.kind = name, description, kind
        self.mail_from, self.rcpt = mail_from, rcpt
        self.client_ip, self.helo = client_ip, helo
        self.data, self.headers, self.body = data, headers or {}, body
        self.user, self.password = user, password
        self.plugin = plugin
        # filled in by the run
        self.exit_code = None
        self.transcript = ""
        self.smtp_reply = ""
        self.delivered = None  # email.message.Message, when delivered

    def raw(self):
        if self.data is not None:
            return self.data if isinstance(self.data, bytes) else self.data.encode()
        hdrs = {"From": self.mail_from, "To": self.rcpt, "Subject": self.name,
                "Message-ID": "<%s@demo.mailward>" % self.name.replace(" ", "-")}
        hdrs.update(self.headers)
        text = "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n" + self.body.replace("\n", "\r\n")
        return text.encode()


class Demo:
    """What plugins see: the running servers and where things are."""

    def __init__(self, build):
        self.build = os.path.abspath(build)
        self.top = TOP
        self.dir = sandbox.tmpdir()
        self.dns = self.redis = self.dovecot = self.postfix = None
        self.users = {"alice": "alice-password", "bob": "bob-password"}
        self.notes = []  # plugin lines for the summary
        self.skipped = []  # "name: why" for each plugin that cannot run

    def binary(self, relpath):
        """A built program, or None when the component was not built."""
        p = os.path.join(self.build, relpath)
        return p if os.path.exists(p) else None


def load_plugins():
    plugins = []
    pdir = os.path.join(HERE, "plugins")
    for f in sorted(os.listdir(pdir)):
        if not f.endswith(".py") or f.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location("mw_demo_" + f[:-3], os.path.join(pdir, f))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        plugins.append(mod)
    return plugins


def send(demo, m):
    args = ["--from", m.mail_from, "--to", m.rcpt, "--helo", m.helo, "--data", "-",
            "--timeout", "30"]
    if m.kind == "submission":
        port = demo.postfix.submission_port
        args += ["--auth", "PLAIN", "--auth-user", m.user, "--auth-password", m.password]
        server = "127.0.0.1"
    else:
        port = demo.postfix.port
        server = "127.0.0.1"
        # swaks connects from the client address the message pretends to come from
        args += ["--local-interface", m.client_ip]
    code, transcript = swaks(*args, server=server, port=port, input=m.raw())
    m.exit_code, m.transcript = code, transcript
    replies = [line[4:] for line in transcript.splitlines() if line.startswith("<~* ") or line.startswith("<** ")]
    final = [line for line in transcript.splitlines() if line.startswith(("<-  250", "<** ", "<~* "))]
    m.smtp_reply = (replies or final or [""])[-1].strip()


def report(demo, plugins, messages):
    width = 78
    print()
    print("=" * width)
    print(" mailward demo: what happened to each message")
    print("=" * width)
    for i, m in enumerate(messages, 1):
        print()
        print("%d. %s" % (i, m.name))
        for line in textwrap.wrap(m.description, width - 6):
            print("     " + line)
        who = "authenticated user %s" % m.user if m.kind == "submission" else \
            "client %s (HELO %s)" % (m.client_ip, m.helo)
        print("   from <%s> to <%s>, %s" % (m.mail_from, m.rcpt, who))
        if m.delivered is not None:
            print("   -> delivered")
        elif m.exit_code == 0:
            print("   -> accepted, not delivered to the next hop (held or quarantined)")
        else:
            print("   -> refused at SMTP: %s" % (m.smtp_reply or "exit %s" % m.exit_code))
        for p in plugins:
            for line in getattr(p, "describe", lambda d, m: [])(demo, m) or []:
                for j, piece in enumerate(textwrap.wrap(line, width - 8, break_on_hyphens=False)):
                    print(("   %-4s " % ("" if j else "*")) + piece)
    print()
    if demo.notes:
        print("-" * width)
        for n in demo.notes:
            print(n)
    if demo.skipped:
        print("-" * width)
        for s in demo.skipped:
            print("NOT attached: " + s)
    print("-" * width)
    print("Sandbox: %s (%s)" % (demo.dir, "kept" if os.environ.get("MW_KEEP") else "removed on exit; MW_KEEP=1 keeps it"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(TOP, "_build", "demo"))
    args = ap.parse_args()
    demo = Demo(args.build)
    os.environ["MW_TOP_BUILDDIR"] = os.path.abspath(args.build)  # for the test helpers plugins use
    plugins, skipped = [], []
    for p in load_plugins():
        why = getattr(p, "missing", lambda d: None)(demo)
        if why is None and not getattr(p, "available", lambda d: True)(demo):
            why = "not available"
        if why:
            skipped.append("%s: %s" % (getattr(p, "NAME", p.__name__), why))
        else:
            plugins.append(p)
    names = [getattr(p, "NAME", p.__name__) for p in plugins]
    # a component that cannot run says why, here and in the report's end
    demo.skipped = skipped
    print("mailward demo: components attached: %s%s" % (", ".join(names) or "none yet",
                                                        "; NOT attached: " + "; ".join(skipped) if skipped else ""))

    zone = BASE_ZONE + "".join(getattr(p, "zone", lambda d: "")(demo) for p in plugins)
    demo.dns = DnsServer(zone, ttl=300)
    demo.redis = Redis()
    demo.dovecot = Dovecot(users=demo.users)
    # 127.0.0.1 is the provider's own network; 127.0.0.2 plays the internet.
    demo.postfix = Postfix(mynetworks="127.0.0.1/32",
                           main={"relay_domains": "example.org", "myhostname": "mx.example.org"})
    demo.postfix.sasl_dovecot(demo.dovecot.auth_socket)
    for p in plugins:
        if hasattr(p, "attach"):
            p.attach(demo)
    demo.postfix.start()
    for p in plugins:
        if hasattr(p, "started"):
            p.started(demo)

    messages = [
        Message("a letter from a friend", "An ordinary message from another provider: every "
                "component should let it through untouched but for its own headers.",
                plugin=None),
        Message("a message from alice", "Alice sends from the provider's submission port, "
                "authenticated with her password.", kind="submission",
                mail_from="alice@example.org", rcpt="friend@friend.example",
                client_ip="127.0.0.1", helo="laptop.example.org",
                user="alice", password=demo.users["alice"]),
    ]
    for p in plugins:
        messages += list(getattr(p, "messages", lambda d: [])(demo) or [])

    delivered_before = 0
    for m in messages:
        send(demo, m)
        if m.exit_code == 0:
            try:
                demo.postfix.wait_delivered(delivered_before + 1, timeout=15)
                raw = demo.postfix.delivered()[delivered_before]
                delivered_before += 1
                m.delivered = email.message_from_bytes(raw, policy=email.policy.compat32)
            except TimeoutError:
                pass
    for p in plugins:
        if hasattr(p, "finish"):
            p.finish(demo, messages)
    report(demo, plugins, messages)


if __name__ == "__main__":
    main()
