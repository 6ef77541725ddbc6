"""Dovecot: a private Dovecot on loopback (IMAP, POP3, and an auth socket
for Postfix SASL), mail in maildirs inside the sandbox.

    dc = Dovecot(users={"alice": "secret"})      # started
    imaplib.IMAP4("127.0.0.1", dc.imap_port).login("alice", "secret")
    pf.sasl_dovecot(dc.auth_socket)
    dc.doveadm("auth", "test", "alice", "secret")

passdb may replace the default passwd-file passdb: a configuration block,
verbatim ('passdb {\\n  driver = pam\\n  args = mailward-test\\n}'), the
same on one line ('passdb { driver = pam  args = mailward-test }'), or a
dict ({"driver": "pam", "args": "mailward-test"}). Users it lets in get a
maildir too (a static userdb).

All mail belongs to one system-independent user, nobody:nogroup (Dovecot's
"vmail" setup), so nothing depends on the machine's accounts.
"""
import grp
import os
import pwd
import re
import signal
import subprocess

from . import sandbox

_count = 0


def _passdb_block(passdb):
    if isinstance(passdb, dict):
        fields = list(passdb.items())
    else:
        text = passdb.strip()
        m = re.match(r"passdb\s*\{(.*)\}$", text, re.S)
        if not m or "\n" in m.group(1).strip():
            return text + "\n"  # a real block: as given
        # one line: Dovecot wants one setting per line
        fields = re.findall(r"(\w+)\s*=\s*(.*?)\s*(?=\s\w+\s*=|$)", m.group(1).strip())
    return "passdb {\n%s}\n" % "".join("  %s = %s\n" % (k, v) for k, v in fields)


class Dovecot:
    """.imap_port, .pop3_port (and .imaps_port, .pop3s_port with ssl=True:
    a self-signed certificate for CN=localhost, STARTTLS on the plain
    ports too), .auth_socket, .conf, .log(), .doveadm(), .stop().
    users: {name: password}, kept as {PLAIN} in a passwd-file that is both
    passdb and userdb. extra: more configuration, appended verbatim.
    env: environment variables for all of Dovecot's processes."""

    def __init__(self, users=None, passdb=None, ssl=False, extra="", start=True, env=None):
        if os.geteuid() != 0:
            raise RuntimeError("a private Dovecot needs root (it switches to nobody, dovenull, dovecot)")
        global _count
        _count += 1
        self.n = _count
        self.dir = sandbox.mkdir("dovecot%d" % _count)
        self.base_dir = sandbox.mkdir("dovecot%d" % _count, "run")
        self.state_dir = sandbox.mkdir("dovecot%d" % _count, "state")
        self.uid = pwd.getpwnam("nobody").pw_uid
        self.gid = grp.getgrnam("nogroup").gr_gid
        self.mail_dir = sandbox.mkdir("dovecot%d" % _count, "mail", mode=0o700)
        os.chown(self.mail_dir, self.uid, self.gid)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.users = dict({"alice": "password"} if users is None else users)
        self.users_file = os.path.join(self.dir, "users")
        self.imap_port = sandbox.free_port()
        self.pop3_port = sandbox.free_port()
        self.imaps_port = sandbox.free_port() if ssl else None
        self.pop3s_port = sandbox.free_port() if ssl else None
        # "auth-postfix" under base_dir; Postfix's smtpd (user postfix)
        # connects to it, hence mode 0666 and a traversable sandbox
        self.auth_socket = os.path.join(self.base_dir, "auth-postfix")
        self.passdb = passdb
        self.ssl = ssl
        self.extra = extra
        # more environment for Dovecot's processes (e.g. pam_wrapper's);
        # Dovecot passes on only what import_environment names
        self.env = dict(env or {})
        self.proc = None
        sandbox.at_cleanup(self.stop)
        self._write()
        if start:
            self.start()

    def _write(self):
        # passwd-file: user:password:uid:gid:gecos:home:shell:extra
        with open(self.users_file, "w") as f:
            for u, pw in self.users.items():
                if ":" in u + pw or "\n" in u + pw:
                    raise ValueError("Dovecot passwd-file users cannot contain ':' or newlines: %r" % u)
                f.write("%s:{PLAIN}%s:%d:%d::%s/%s::\n" % (u, pw, self.uid, self.gid, self.mail_dir, u))
        os.chmod(self.users_file, 0o644)
        if self.passdb is None:
            passdb = ("passdb {\n  driver = passwd-file\n"
                      "  args = scheme=PLAIN username_format=%%u %s\n}\n" % self.users_file)
            userdb = "userdb {\n  driver = passwd-file\n  args = username_format=%%u %s\n}\n" % self.users_file
        else:
            passdb = _passdb_block(self.passdb)
            userdb = ("userdb {\n  driver = static\n"
                      "  args = uid=%d gid=%d home=%s/%%u\n}\n" % (self.uid, self.gid, self.mail_dir))
        if self.ssl:
            cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
            # an EC key: generated in milliseconds, unlike RSA
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-days", "2",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            ssl = "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (cert, key)
        else:
            ssl = "ssl = no\n"
        text = """# private test instance (tests/lib/mwtest/dovecot.py)
base_dir = {base}
state_dir = {state}
instance_name = mwtest-dovecot{n}
log_path = {log}
protocols = imap pop3
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# a wrong password is answered at once (default: 2 s later)
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
{passdb}{userdb}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
{import_env}# no growing per-IP penalty after failed logins (2, 4, 8, 15 s): every
# test client comes from 127.0.0.1
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{extra}
""".format(base=self.base_dir, state=self.state_dir, n=self.n, log=self.logfile, ssl=ssl,
           uid=self.uid, gid=self.gid, passdb=passdb, userdb=userdb,
           imap=self.imap_port, imaps=self.imaps_port or 0,
           pop3=self.pop3_port, pop3s=self.pop3s_port or 0, extra=self.extra,
           import_env=("import_environment = TZ %s\n" % " ".join(sorted(self.env))) if self.env else "")
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        if self.proc is not None:
            return
        out = os.path.join(self.dir, "dovecot.out")
        # -F: master stays in the foreground, in its own session, so
        # stopping it (and every child) is one killpg
        env = dict(os.environ, **self.env) if self.env else None
        for attempt in range(5):
            mark = len(sandbox.read_text(out)), len(self.log())
            self.proc = sandbox.spawn(["dovecot", "-F", "-c", self.conf], log=out, env=env)

            def up():
                if self.proc.poll() is not None:
                    raise RuntimeError("dovecot exited (%s): %s%s" % (self.proc.returncode, sandbox.read_text(out),
                                                                       self.log()))
                # master's own listeners, not whatever else answers there
                return os.path.exists(self.auth_socket) and all(
                    sandbox.listens([self.proc.pid], port)
                    for port in (self.imap_port, self.pop3_port, self.imaps_port, self.pop3s_port) if port)
            try:
                sandbox.wait_for(up, 30, what="dovecot's auth socket and listeners")
                break
            except RuntimeError:
                said = sandbox.read_text(out)[mark[0]:] + self.log()[mark[1]:]
                sandbox.stop(self.proc)
                self.proc = None
                # "bind(127.0.0.1, PORT) failed: Address already in use":
                # another program took a port; all four anew
                if attempt == 4 or not sandbox.address_in_use(said):
                    raise
                self._new_ports()

    def _new_ports(self):
        self.imap_port = sandbox.free_port()
        self.pop3_port = sandbox.free_port()
        self.imaps_port = sandbox.free_port() if self.ssl else None
        self.pop3s_port = sandbox.free_port() if self.ssl else None
        self._write()

    def doveadm(self, *args):
        """Runs doveadm -c CONF ARGS; returns (exit status, output)."""
        p = subprocess.run(["doveadm", "-c", self.conf] + list(args), capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    def log(self):
        return sandbox.read_text(self.logfile)

    def pids(self, sid=None):
        """Pids of this instance's processes: master's session (spawn()
        starts it in its own), zombies aside. After stop(), pass the
        master pid from before to check that all are gone."""
        sid = sid or (self.proc.pid if self.proc else None)
        if not sid:
            return []
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == sid and fields[0] != "Z":
                    out.append(int(d))
        return out

    def stop(self):
        if self.proc is not None:
            sid = self.proc.pid
            # SIGTERM to master alone: it stops its children itself (in
            # about a second) and logs no "Killed with signal 15" for them.
            # A login process still proxying a client's TLS session can
            # outlive it: what is left after 3 s gets SIGTERM, then SIGKILL.
            self.proc.terminate()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    sandbox.wait_for(lambda: not self.pids(sid), 3, what="dovecot to stop")
                    break
                except TimeoutError:
                    for pid in self.pids(sid):
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            pass
            sandbox.wait_for(lambda: not self.pids(sid), 5, what="dovecot's processes to exit")
            sandbox.stop(self.proc)  # reaps master
            self.proc = None
