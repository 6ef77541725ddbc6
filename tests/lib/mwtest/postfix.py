"""Postfix: a private Postfix instance on loopback, for tests and the demo.

    pf = Postfix(main={"relay_domains": "example.org"})
    pf.apply_snippet("contrib/postfix/milter-auth.cf", replace={"/run/mailward/": d + "/"})
    pf.start()
    ... send to 127.0.0.1:pf.port ...
    pf.wait_delivered(1)[0]      # bytes, as the next hop received them

Own config, queue and data directories and its own log file in the sandbox,
chroot off, local delivery off, and every message relayed to an smtp-sink
(started here too) that keeps each one as a file.

How it runs without touching /etc/postfix: `postfix -c DIR start` as root.
Postfix only insists that DIR be listed in alternate_config_directories of
/etc/postfix/main.cf when the caller is not root (mail_conf_suck() checks
geteuid()), so the default instance's main.cf need not even exist. master.cf
is written here in full rather than copied from /etc/postfix.
"""
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

from . import sandbox

_names = set()

# The stock Postfix 3.7 services (/usr/share/postfix/master.cf.dist), chroot
# off ("n" in the 5th column: the sandbox paths are not inside any chroot),
# minus the pipe(8) examples. The smtpd listener is added on our own port.
_MASTER_BASE = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
  -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

SNIPPET_MASTER_MARK = "# --- master.cf ---"


def _uid_gid(user):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def _conf_value(v):
    if v is True or v is False:
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


class Postfix:
    """.port (smtpd), .submission_port (after sasl_dovecot()), .sink_port;
    .config_dir (alias .conf), .queue_dir, .data_dir, .sink_dir, .maillog.
    name: the instance's directory in the sandbox (a second one with the
    same name gets a number). main: main.cf settings on top of the
    defaults below. master_extra: master.cf lines to append."""

    def __init__(self, name="postfix", main=None, master_extra=None, mynetworks="127.0.0.0/8"):
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix needs root (master starts as root, files go to user postfix)")
        # one directory per instance: a second Postfix() gets postfix2, ...
        base, n = name, 1
        while name in _names or os.path.exists(sandbox.path(name)):
            n += 1
            name = "%s%d" % (base, n)
        _names.add(name)
        self.name = name
        self.dir = sandbox.mkdir(name)
        self.config_dir = sandbox.mkdir(name, "conf")
        self.conf = self.config_dir  # short alias
        self.queue_dir = sandbox.mkdir(name, "queue")
        # master's lock file lives here: it must belong to mail_owner
        self.data_dir = sandbox.mkdir(name, "data", mode=0o700)
        os.chown(self.data_dir, *_uid_gid("postfix"))
        self.sink_dir = os.path.join(self.dir, "sink")
        self._make_sink_dir()
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = sandbox.free_port()
        self.sink_port = sandbox.free_port()
        self.submission_port = None
        self._submission = []
        self._master_extra = []
        self.sink = None
        self.running = False
        self._sid = None  # master's pid = its session id, while running
        self._write_main(mynetworks)
        if main:
            self.set(**main)
        if master_extra:
            self.add_master(master_extra)
        self._write_master()
        sandbox.at_cleanup(self.stop)

    # ------------------------------------------------------------ config
    def _write_main(self, mynetworks):
        params = [
            ("compatibility_level", "3.6"),
            ("queue_directory", self.queue_dir),
            ("data_directory", self.data_dir),
            # no syslog in a sandbox: postlogd writes this file, but only
            # under maillog_file_prefixes (default /var, /dev/stdout)
            ("maillog_file", self.maillog),
            ("maillog_file_prefixes", sandbox.tmpdir()),
            ("mail_owner", "postfix"),
            ("setgid_group", "postdrop"),
            ("inet_interfaces", "127.0.0.1"),
            ("inet_protocols", "ipv4"),
            ("myhostname", "mx.example.org"),
            ("mydomain", "example.org"),
            ("myorigin", "$mydomain"),
            # no local delivery: every recipient relays to the sink
            ("mydestination", ""),
            ("local_recipient_maps", ""),
            ("local_transport", "error:5.1.1 no local delivery in this sandbox"),
            ("alias_maps", ""),
            ("alias_database", ""),
            ("mynetworks", mynetworks),
            ("relay_domains", ""),
            ("smtpd_relay_restrictions",
             "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"),
            ("relayhost", "[127.0.0.1]:%d" % self.sink_port),
            # no DNS for the next hop (the current name of disable_dns_lookups)
            ("smtp_dns_support_level", "disabled"),
            ("smtpd_banner", "$myhostname ESMTP"),
            ("biff", "no"),
            # deferred mail is retried within seconds, not minutes
            ("queue_run_delay", "1s"),
            ("minimal_backoff_time", "1s"),
            ("maximal_backoff_time", "2s"),
            # each delivery its own connection; no smtpd throttling when
            # a test sends faster than the sink takes mail
            ("smtp_connection_cache_on_demand", "no"),
            ("in_flow_delay", "0s"),
        ]
        with open(self._main_cf(), "w") as f:
            f.write("# private test instance (tests/lib/mwtest/postfix.py)\n")
            for k, v in params:
                f.write("%s = %s\n" % (k, v))
        self._backdate(self._main_cf())

    def _main_cf(self):
        return os.path.join(self.config_dir, "main.cf")

    @staticmethod
    def _backdate(path):
        """Postfix rereads main.cf every 0.3 s until its mtime is at least
        2 s old (dict_load_file_xt: "let the file settle"), so a fresh file
        stalls every Postfix command and daemon. Ours is written in one go."""
        t = time.time() - 10
        os.utime(path, (t, t))

    def _write_master(self):
        lines = ["# private test instance (tests/lib/mwtest/postfix.py)\n",
                 "127.0.0.1:%d inet n - n - - smtpd\n" % self.port,
                 _MASTER_BASE]
        lines += [ln + "\n" for ln in self._submission + self._master_extra]
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.writelines(lines)

    def postconf(self, *args):
        """Runs postconf -c DIR ARGS; its stdout."""
        p = subprocess.run(["postconf", "-c", self.config_dir] + list(args), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("postconf %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def get(self, name):
        return self.postconf("-h", name).strip()

    def set(self, **params):
        """Sets main.cf parameters (postconf -e); reloads a running instance.
        True/False become yes/no, lists are joined with ", "."""
        if not params:
            return
        self.postconf("-e", *["%s = %s" % (k, _conf_value(v)) for k, v in params.items()])
        self._backdate(self._main_cf())
        if self.running:
            self.reload()

    def add_master(self, lines):
        """Appends master.cf lines (a string or a list of lines); a line
        starting with whitespace continues the previous one."""
        if isinstance(lines, str):
            lines = lines.splitlines()
        self._master_extra += [ln.rstrip("\n") for ln in lines if ln.strip()]
        self._write_master()
        if self.running:
            self.reload()

    def apply_snippet(self, path, replace=None):
        """Pastes a contrib/postfix/*.cf snippet. Before a line
        "# --- master.cf ---": "name = value" settings for main.cf (lines
        starting with whitespace continue the previous one, # comments are
        ignored), set with postconf -e. After it: lines appended to
        master.cf. replace maps old text to new text (paths into the
        sandbox) and is applied to the whole file first. Relative paths
        are taken from the top of the source tree. Returns the main.cf
        settings as [(name, value)]."""
        if not os.path.isabs(path):
            path = os.path.join(sandbox.top_srcdir(), path)
        with open(path) as f:
            text = f.read()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        main_lines, master_lines, in_master = [], [], False
        for line in text.splitlines():
            if line.strip() == SNIPPET_MASTER_MARK:
                in_master = True
            elif in_master:
                master_lines.append(line)
            else:
                main_lines.append(line)
        settings = []
        for n, line in enumerate(main_lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace():
                if not settings:
                    raise ValueError("%s:%d: continuation line without a setting" % (path, n))
                settings[-1][1] = (settings[-1][1] + " " + line.strip()).strip()
                continue
            name, eq, value = line.partition("=")
            if not eq or not name.strip():
                raise ValueError("%s:%d: not a 'name = value' line: %r" % (path, n, line))
            settings.append([name.strip(), value.strip()])
        settings = [tuple(s) for s in settings]
        if settings:
            self.postconf("-e", *["%s = %s" % s for s in settings])
            self._backdate(self._main_cf())
        master_lines = [ln for ln in master_lines if ln.strip() and not ln.lstrip().startswith("#")]
        if master_lines:
            self._master_extra += master_lines
            self._write_master()
        if self.running:
            self.reload()
        return settings

    def sasl_dovecot(self, auth_socket):
        """A submission service on its own port (.submission_port) that
        authenticates through Dovecot's auth socket; only authenticated
        clients may send there. Plain text AUTH: no TLS in tests."""
        self._auth_socket = auth_socket
        if self.submission_port is None:
            self.submission_port = sandbox.free_port()
        self._submission = [
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

    def _inet_ports(self):
        """The 127.0.0.1:PORT listeners in master.cf (ours and added ones)."""
        ports = []
        with open(os.path.join(self.config_dir, "master.cf")) as f:
            for line in f:
                m = re.match(r"127\.0\.0\.1:(\d+)\s+inet\s", line)
                if m:
                    ports.append(int(m.group(1)))
        return ports

    # ------------------------------------------------------------ life
    def _make_sink_dir(self):
        os.makedirs(self.sink_dir, exist_ok=True)
        os.chmod(self.sink_dir, 0o755)
        os.chown(self.sink_dir, *_uid_gid("nobody"))  # smtp-sink runs as nobody

    def start_sink(self):
        """Starts the next hop (start() does); with stop_sink(), for tests
        of a next hop that is down: mail is deferred, then flush()."""
        log = os.path.join(self.dir, "smtp-sink.log")
        for attempt in range(5):
            if self.sink is not None:
                return
            mark = len(sandbox.read_text(log))
            # -d: one file per transaction, named by strftime plus a random
            # hex part; -u: it must drop root
            self.sink = sandbox.spawn(["smtp-sink", "-u", "nobody", "-d", os.path.join(self.sink_dir, "%H%M%S."),
                                       "127.0.0.1:%d" % self.sink_port, "100"], log=log)

            def up():
                if self.sink.poll() is not None:
                    return True
                return sandbox.listens([self.sink.pid], self.sink_port)
            sandbox.wait_for(up, 30, what="smtp-sink on port %d" % self.sink_port)
            if self.sink.poll() is None:
                return
            out = sandbox.read_text(log)[mark:]
            self.sink = None
            # another program took the port: a new one, unless mail for
            # the old one may be queued already (a restarted sink)
            if self.running or attempt == 4 or not sandbox.address_in_use(out):
                raise RuntimeError("smtp-sink exited: %s" % out)
            self.sink_port = sandbox.free_port()
            self.postconf("-e", "relayhost = [127.0.0.1]:%d" % self.sink_port)
            self._backdate(self._main_cf())

    def stop_sink(self):
        if self.sink is not None:
            sandbox.stop(self.sink)
            self.sink = None

    def _postfix(self, *args):
        return subprocess.run(["postfix", "-c", self.config_dir] + list(args),
                              capture_output=True, text=True, timeout=60)

    def start(self):
        if self.running:
            return
        self.start_sink()
        for attempt in range(5):
            mark = len(self.log())
            # "start" runs postfix-script's own checks first (and creates the
            # queue directories), and master -w waits until master has bound
            # its listeners; the reason for a refusal goes to maillog_file.
            p = self._postfix("start")
            if p.returncode == 0:
                break
            # a listener's port taken by another program: new ports for
            # ours (a port a test added to master.cf itself stays)
            if attempt == 4 or not sandbox.address_in_use(self.log()[mark:] + p.stdout + p.stderr):
                raise RuntimeError("postfix -c %s start failed (%d): %s\n%s"
                                   % (self.config_dir, p.returncode, p.stderr, self.log()))
            self.port = sandbox.free_port()
            if self.submission_port is not None:
                self.submission_port = None
                self.sasl_dovecot(self._auth_socket)
            self._write_master()
        self.running = True
        self._sid = self.master_pid()
        for port in self._inet_ports():
            # master's own listener, not whatever else answers there
            sandbox.wait_for(lambda: sandbox.listens([self._sid], port), 30,
                             what="postfix master to listen on %d" % port)

    def reload(self):
        """postfix reload, then waits for master to log it and for new
        smtpd processes: idle ones of the old generation keep the old
        settings until they exit, which they do at once after a reload."""
        before = self.log().count(": reload -- version")
        old = set(self._children("smtpd"))
        p = self._postfix("reload")
        if p.returncode != 0:
            raise RuntimeError("postfix reload: %s\n%s" % (p.stderr, self.log()))
        sandbox.wait_for(lambda: self.log().count(": reload -- version") > before, 10, what="postfix reload")
        try:
            sandbox.wait_for(lambda: not old & set(self._children("smtpd")), 2, what="old smtpd to exit")
        except TimeoutError:
            pass  # one busy with a client: it finishes that session first
        for port in self._inet_ports():
            sandbox.wait_for(lambda: sandbox.listens([self._sid], port), 30,
                             what="postfix master to listen on %d" % port)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self, sid=None):
        """Pids of this instance's processes: master makes itself a session
        leader, and every daemon it starts stays in that session. After
        stop(), pass the master pid from before to check that all are gone."""
        sid = sid or self._sid
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
                # field 6 of stat is the session id; a zombie (Z) has exited
                # and only waits for its parent (or init) to reap it
                if int(fields[3]) == sid and fields[0] != "Z":
                    out.append(int(d))
        return out

    def _children(self, program):
        res = []
        for pid in self.pids(self.master_pid()):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == program:
                        res.append(pid)
            except OSError:
                pass
        return res

    def stop(self):
        """Stops master and every daemon, and the sink. Does what
        `postfix stop` does (SIGTERM to master, which terminates its
        process group) without its one-second polling."""
        if self.running:
            sid = self._sid
            if sid in self.pids(sid):  # master itself (not a stale pid file)
                os.kill(sid, signal.SIGTERM)
            try:
                sandbox.wait_for(lambda: not self.pids(sid), 10, what="postfix to stop")
            except TimeoutError:
                for pid in self.pids(sid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                sandbox.wait_for(lambda: not self.pids(sid), 5, what="postfix to die")
            self.running = False
            self._sid = None
        self.stop_sink()

    def flush(self):
        """postqueue -f: tries deferred mail again now."""
        subprocess.run(["postqueue", "-c", self.config_dir, "-f"], capture_output=True, check=True)

    # ------------------------------------------------------------ the log
    def log(self):
        return sandbox.read_text(self.maillog)

    def log_mark(self):
        """Where the log ends now: wait_log(..., since=mark) only looks
        at what comes after."""
        return len(self.log())

    def wait_log(self, regex, timeout=10, since=0):
        """Waits for a maillog line matching regex (multiline: ^ and $ are
        line ends); returns the match."""
        rx = re.compile(regex, re.M)
        return sandbox.wait_for(lambda: rx.search(self.log(), since), timeout, what="maillog /%s/" % regex)

    # ------------------------------------------------------------ the sink
    _QID = re.compile(rb"^Received: .*\n(?:[ \t].*\n)*?[ \t]+by \S+ \(Postfix[^)]*\) (?:with \S+ )?id (\w+)", re.M)

    def _sink_files(self):
        """Complete sink files, in arrival order.

        smtp-sink writes a file as the message comes in and answers the
        final "." only when it is written, so a file is complete once
        Postfix has logged status=sent for its queue id. The order is the
        file's mtime; the file system clock is coarse (ms), so ties go to
        the order of those log lines."""
        try:
            names = os.listdir(self.sink_dir)
        except FileNotFoundError:
            return []
        log = self.log()
        sent = {}  # queue id -> position of its first status=sent to the sink
        for m in re.finditer(r"\b(\w+): to=<[^>]*>, relay=[^,]*:%d, .*status=sent" % self.sink_port, log):
            sent.setdefault(m.group(1), m.start())
        files = []
        for n in names:
            p = os.path.join(self.sink_dir, n)
            try:
                st = os.stat(p)
                with open(p, "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            m = self._QID.search(raw)
            if m:
                qid = m.group(1).decode()
                if qid not in sent:
                    continue  # still being written
                pos = sent[qid]
            elif raw.endswith(b"\n\n"):
                pos = len(log)  # no Postfix Received header (removed?): trust the end
            else:
                continue
            files.append(((st.st_mtime_ns, pos, n), p, raw))
        files.sort()
        return [(p, raw) for _, p, raw in files]

    def delivered_raw(self):
        """Each delivered message exactly as smtp-sink stored it: its own
        X-Client-Addr, X-Helo-Args, X-Mail-Args, X-Rcpt-Args lines and its
        Received header first, LF line ends, one extra empty line at the end."""
        return [raw for _, raw in self._sink_files()]

    @staticmethod
    def _split_sink(raw):
        """(sink header lines, message with CRLF line ends)."""
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines) and re.match(rb"X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args): ", lines[i]):
            i += 1
        head = lines[:i]
        if i < len(lines) and lines[i].startswith(b"Received: ") and \
                any(b"(smtp-sink)" in ln for ln in lines[i:i + 3]):
            i += 1
            while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                i += 1
        msg = lines[i:]
        if msg[-2:] == [b"", b""]:
            msg = msg[:-1]  # the empty line smtp-sink adds after each message
        # smtp-sink stores lines without their CR (it drops every CR);
        # Postfix sends every line with CRLF, so this gives back the bytes
        # on the wire, dots unstuffed (only a bare CR inside a line is lost)
        return head, b"\r\n".join(msg)

    def delivered(self):
        """Each delivered message as Postfix sent it to the next hop (CRLF
        line ends, dots unstuffed, smtp-sink's own lines removed), in
        arrival order."""
        return [self._split_sink(raw)[1] for _, raw in self._sink_files()]

    def envelopes(self):
        """The envelope of each delivered message as the next hop got it:
        {"client", "helo", "mail_from", "rcpts"} (MAIL/RCPT arguments with
        their ESMTP parameters, e.g. "<a@b.example> ORCPT=rfc822;a@b.example")."""
        out = []
        for _, raw in self._sink_files():
            env = {"client": None, "helo": None, "mail_from": None, "rcpts": []}
            for ln in self._split_sink(raw)[0]:
                k, _, v = ln.decode(errors="replace").partition(": ")
                if k == "X-Client-Addr":
                    env["client"] = v
                elif k == "X-Helo-Args":
                    env["helo"] = v
                elif k == "X-Mail-Args":
                    env["mail_from"] = v
                elif k == "X-Rcpt-Args":
                    env["rcpts"].append(v)
            out.append(env)
        return out

    def wait_delivered(self, n, timeout=10):
        """Waits until at least n messages reached the sink; returns
        delivered()."""
        sandbox.wait_for(lambda: len(self._sink_files()) >= n, timeout,
                         what="%d message(s) delivered to the sink" % n)
        return self.delivered()

    def clear_delivered(self):
        """Forgets what the sink received so far."""
        shutil.rmtree(self.sink_dir)
        self._make_sink_dir()

    # ------------------------------------------------------------ the queue
    def queue(self):
        """Messages in the queue, as postqueue -j reports them: dicts with
        queue_name ("incoming", "active", "deferred", "hold"...), queue_id,
        sender, recipients ([{address, delay_reason}]), arrival_time.
        When the instance is not running, from the queue directories:
        {queue_name, queue_id} only."""
        if self.running:
            p = subprocess.run(["postqueue", "-c", self.config_dir, "-j"], capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError("postqueue -j: %s" % p.stderr)
            return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        out = []
        for qname in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt"):
            for root, _, names in os.walk(os.path.join(self.queue_dir, qname)):
                out += [{"queue_name": qname, "queue_id": n} for n in sorted(names)]
        return out

    queue_list = queue  # the older name

    def postcat(self, qid, *options):
        """postcat -q QID (options e.g. "-h" headers, "-b" body); its text."""
        p = subprocess.run(["postcat", "-c", self.config_dir] + list(options) + ["-q", qid],
                           capture_output=True, text=True, errors="replace")
        if p.returncode != 0:
            raise RuntimeError("postcat -q %s: %s" % (qid, p.stderr))
        return p.stdout

