"""Dovecot: a private Dovecot on loopback (IMAP, POP3, and an auth socket
for Postfix SASL), mail in maildirs inside the sandbox.

    dc = Dovecot(users={"alice": "secret"})
    imaplib.IMAP4("127.0.0.1", dc.imap_port).login("alice", "secret")
    pf.sasl_dovecot(dc.auth_socket)

passdb may be a raw configuration block instead of the default passwd-file,
e.g. 'passdb {\\n driver = pam\\n args = mailward-test\\n}'.
"""
import os
import pwd
import subprocess

from . import sandbox

_count = 0


class Dovecot:
    def __init__(self, users=None, passdb=None, ssl=False, extra="", start=True):
        global _count
        _count += 1
        self.dir = sandbox.mkdir("dovecot%d" % _count)
        self.base = sandbox.mkdir("dovecot%d" % _count, "run")
        self.mail = sandbox.mkdir("dovecot%d" % _count, "mail", mode=0o777)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.users = dict(users or {"alice": "alice-password"})
        self.imap_port = sandbox.free_port()
        self.pop3_port = sandbox.free_port()
        self.auth_socket = os.path.join(self.base, "auth-postfix")
        self.passdb = passdb
        self.ssl = ssl
        self.extra = extra
        self.proc = None
        sandbox.at_cleanup(self.stop)
        self._write()
        if start:
            self.start()

    def _write(self):
        nobody = pwd.getpwnam("nobody")
        users_file = os.path.join(self.dir, "users")
        with open(users_file, "w") as f:
            for u, pw in self.users.items():
                f.write("%s:{PLAIN}%s\n" % (u, pw))
        os.chmod(users_file, 0o644)
        passdb = self.passdb or ("passdb {\n  driver = passwd-file\n"
                                 "  args = scheme=PLAIN username_format=%%u %s\n}\n" % users_file)
        ssl = "ssl = no\n"
        if self.ssl:
            cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            ssl = "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (cert, key)
        text = """# private test instance (tests/lib/mwtest/dovecot.py)
base_dir = {base}
state_dir = {dir}/state
log_path = {log}
instance_name = mw-{n}
protocols = imap pop3
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
mail_location = maildir:{mail}/%u
first_valid_uid = 1
mail_uid = {uid}
mail_gid = {gid}
{passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
{extra}
""".format(base=self.base, dir=self.dir, log=self.logfile, n=_count, ssl=ssl, mail=self.mail,
           uid=nobody.pw_uid, gid=nobody.pw_gid, passdb=passdb, imap=self.imap_port,
           pop3=self.pop3_port, extra=self.extra)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        self.proc = sandbox.spawn(["dovecot", "-F", "-c", self.conf],
                                  log=os.path.join(self.dir, "dovecot.out"))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: %s%s" % (
                    open(os.path.join(self.dir, "dovecot.out")).read(), self.log()))
            return os.path.exists(self.auth_socket)
        sandbox.wait_for(up, 15, what="dovecot")
        sandbox.wait_port(self.imap_port)
        sandbox.wait_port(self.pop3_port)

    def doveadm(self, *args):
        p = subprocess.run(["doveadm", "-c", self.conf] + list(args), capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc:
            sandbox.stop(self.proc)
            self.proc = None
