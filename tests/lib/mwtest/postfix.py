"""Postfix: a private Postfix instance on loopback, for tests and the demo.

    pf = Postfix(main={"relay_domains": "example.org"})
    pf.apply_snippet("contrib/postfix/milter-auth.cf", replace={"/run/mailward/": d + "/"})
    pf.start()
    ... send to 127.0.0.1:pf.port ...
    pf.wait_delivered(1); pf.delivered()[0]   # bytes as the next hop got them

Own config, queue and data directories and its own log file in the sandbox,
chroot off, local delivery off, and every message relayed to an smtp-sink
(also started here) that keeps each one as a file. Nothing under /etc is
read or written: `postfix -c DIR` runs as root with this directory alone.
"""
import json
import os
import re
import shutil
import subprocess
import time

from . import sandbox

POSTFIX_MASTER_CF = "/etc/postfix/master.cf"
_count = 0


def _postfix_ids():
    import pwd
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


class Postfix:
    def __init__(self, name=None, main=None, master_extra=None, mynetworks="127.0.0.0/8"):
        global _count
        _count += 1
        self.name = name or "postfix%d" % _count
        self.dir = sandbox.mkdir(self.name)
        self.conf = sandbox.mkdir(self.name, "conf")
        self.queue_dir = sandbox.mkdir(self.name, "queue")
        self.data = sandbox.mkdir(self.name, "data", mode=0o700)
        uid, gid = _postfix_ids()
        os.chown(self.data, uid, gid)
        self.sink_dir = sandbox.mkdir(self.name, "sink", mode=0o755)
        os.chown(self.sink_dir, 65534, 65534)  # smtp-sink runs as nobody
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = sandbox.free_port()
        self.sink_port = sandbox.free_port()
        self.submission_port = None
        self.sink = None
        self.running = False
        self._master_lines = list(master_extra or [])
        self._write_main(mynetworks)
        if main:
            self.set(**main)
        self._write_master()
        sandbox.at_cleanup(self.stop)

    # ------------------------------------------------------------ config
    def _write_main(self, mynetworks):
        params = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            # Postfix only writes its log where this allows.
            "maillog_file_prefixes": os.path.dirname(self.dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.example.org",
            "mydomain": "example.org",
            "myorigin": "$mydomain",
            "mydestination": "",
            "mynetworks": mynetworks,
            "local_transport": "error:5.1.1 no local delivery in this sandbox",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": "[127.0.0.1]:%d" % self.sink_port,
            "smtp_dns_support_level": "disabled",
            "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
            "relay_domains": "",
            "smtputf8_enable": "no",
            "biff": "no",
            # quick retries so a deferred message shows up soon in tests
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connection_cache_on_demand": "no",
            "smtpd_banner": "$myhostname ESMTP",
        }
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write("%s = %s\n" % (k, v))

    def _write_master(self):
        """Debian's master.cf with chroot off and smtpd on our port."""
        out = []
        with open(POSTFIX_MASTER_CF) as f:
            for line in f:
                if line.startswith("#") or not line.strip() or line[0].isspace():
                    if not line.startswith("#"):
                        out.append(line)
                    continue
                fields = line.split()
                if len(fields) >= 8:
                    if fields[0] in ("smtp",) and fields[1] == "inet":
                        fields[0] = "127.0.0.1:%d" % self.port
                    elif fields[1] == "inet":
                        continue  # no other network listeners
                    fields[4] = "n"  # chroot off: the sandbox paths are outside it
                    line = " ".join(fields[:7]) + " " + " ".join(fields[7:]) + "\n"
                out.append(line)
        out += [ln if ln.endswith("\n") else ln + "\n" for ln in self._master_lines]
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(out)

    def postconf(self, *args):
        p = subprocess.run(["postconf", "-c", self.conf] + list(args), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("postconf %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def get(self, name):
        return self.postconf("-h", name).strip()

    def set(self, **params):
        """Sets main.cf parameters (postconf -e); reloads a running instance."""
        for k, v in params.items():
            self.postconf("-e", "%s = %s" % (k, v))
        if self.running:
            self.reload()

    def add_master(self, lines):
        if isinstance(lines, str):
            lines = lines.splitlines()
        self._master_lines += list(lines)
        self._write_master()
        if self.running:
            self.reload()

    def apply_snippet(self, path, replace=None):
        """Pastes a contrib/postfix/*.cf snippet: main.cf settings, then an
        optional master.cf part after a line "# --- master.cf ---". replace
        maps text to text (sandbox paths) before pasting."""
        if not os.path.isabs(path):
            path = os.path.join(sandbox.top_srcdir(), path)
        with open(path) as f:
            text = f.read()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        main_part, _, master_part = text.partition("# --- master.cf ---")
        settings, current = [], None
        for line in main_part.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace():
                if current is None:
                    raise ValueError("%s: continuation line without a setting" % path)
                current[1] += " " + line.strip()
                continue
            name, eq, value = line.partition("=")
            if not eq:
                raise ValueError("%s: not a 'name = value' line: %r" % (path, line))
            current = [name.strip(), value.strip()]
            settings.append(current)
        for name, value in settings:
            self.postconf("-e", "%s = %s" % (name, value))
        lines = [ln for ln in master_part.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        if lines:
            self._master_lines += lines
            self._write_master()
        if self.running:
            self.reload()
        return settings

    def sasl_dovecot(self, auth_socket):
        """A submission service on its own port, authenticating through
        Dovecot's auth socket; only authenticated clients may send there."""
        if self.submission_port is None:
            self.submission_port = sandbox.free_port()
        self._master_lines += [
            "127.0.0.1:%d inet n - n - - smtpd" % self.submission_port,
            "  -o syslog_name=postfix/submission",
            "  -o smtpd_sasl_auth_enable=yes",
            "  -o smtpd_sasl_type=dovecot",
            "  -o smtpd_sasl_path=%s" % auth_socket,
            "  -o smtpd_sasl_security_options=noanonymous",
            "  -o smtpd_tls_security_level=none",
            "  -o smtpd_tls_auth_only=no",
            "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
            "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
        ]
        self._write_master()
        if self.running:
            self.reload()

    # ------------------------------------------------------------ life
    def _postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.conf] + list(args), capture_output=True, text=True)

    def start(self):
        if self.sink is None:
            self.sink = sandbox.spawn(["smtp-sink", "-u", "nobody", "-d", os.path.join(self.sink_dir, "%M."),
                                       "127.0.0.1:%d" % self.sink_port, "100"],
                                      log=os.path.join(self.dir, "smtp-sink.log"))
            sandbox.wait_port(self.sink_port)
        check = self._postfix("check")
        if check.returncode != 0:
            raise RuntimeError("postfix check: %s%s" % (check.stderr, self.log()))
        p = self._postfix("start")
        if p.returncode != 0:
            raise RuntimeError("postfix start failed: %s\n%s" % (p.stderr, self.log()))
        self.running = True
        sandbox.wait_port(self.port)
        if self.submission_port:
            sandbox.wait_port(self.submission_port)

    def reload(self):
        before = self.log().count("reload -- version")
        p = self._postfix("reload")
        if p.returncode != 0:
            raise RuntimeError("postfix reload: %s" % p.stderr)
        sandbox.wait_for(lambda: self.log().count("reload -- version") > before, 10, what="postfix reload")
        sandbox.wait_port(self.port)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.running:
            pid = self.master_pid()
            self._postfix("stop")
            if pid:
                try:
                    sandbox.wait_for(lambda: not os.path.exists("/proc/%d" % pid), 10, what="postfix to stop")
                except TimeoutError:
                    os.kill(pid, 9)
            self.running = False
        if self.sink is not None:
            sandbox.stop(self.sink)
            self.sink = None

    # ------------------------------------------------------------ results
    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10):
        rx = re.compile(regex)
        return sandbox.wait_for(lambda: rx.search(self.log()), timeout, what="maillog /%s/" % regex)

    def _sink_files(self):
        files = []
        for root, _, names in os.walk(self.sink_dir):
            files += [os.path.join(root, n) for n in names]
        return sorted(files, key=lambda p: (os.stat(p).st_mtime_ns, p))

    def delivered_raw(self):
        """Each delivered message as smtp-sink stored it: its X-Client-Addr,
        X-Helo-Args, X-Mail-Args, X-Rcpt-Args lines and its own Received
        header first."""
        out = []
        for p in self._sink_files():
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def delivered(self):
        """Each delivered message as Postfix sent it (smtp-sink's own lines
        removed), in arrival order."""
        out = []
        for raw in self.delivered_raw():
            lines = raw.split(b"\n")
            i = 0
            while i < len(lines) and lines[i].startswith(b"X-") and b":" in lines[i] and \
                    lines[i].split(b":")[0] in (b"X-Client-Addr", b"X-Client-Proto", b"X-Helo-Args",
                                                b"X-Mail-Args", b"X-Rcpt-Args"):
                i += 1
            if i < len(lines) and lines[i].startswith(b"Received: from") and b"by smtp-sink" in b"\n".join(lines[i:i + 3]):
                i += 1
                while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                    i += 1
            msg = b"\n".join(lines[i:])
            if msg.endswith(b"\n\n"):
                msg = msg[:-1]  # smtp-sink ends each file with an extra newline
            out.append(msg)
        return out

    def wait_delivered(self, n, timeout=10):
        sandbox.wait_for(lambda: len(self._sink_files()) >= n, timeout, what="%d delivered message(s)" % n)
        time.sleep(0.05)  # smtp-sink writes the file before the final reply
        return self.delivered()

    def clear_delivered(self):
        shutil.rmtree(self.sink_dir)
        sandbox.mkdir(self.name, "sink", mode=0o755)
        os.chown(self.sink_dir, 65534, 65534)

    def queue(self):
        """Messages in the queue: dicts from postqueue -j (queue_name,
        queue_id, sender, recipients...)."""
        p = subprocess.run(["postqueue", "-c", self.conf, "-j"], capture_output=True, text=True)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def postcat(self, qid):
        p = subprocess.run(["postcat", "-c", self.conf, "-q", qid], capture_output=True, text=True)
        return p.stdout
