"""Sendmail: a private Sendmail on loopback, for tests (milters: milter-auth,
later milter-pgp).

    sm = Sendmail()
    sm.apply_snippet("contrib/sendmail/milter-auth.mc",
                     replace={"unix:/run/mailward/milter-auth.sock": "unix:" + sock})
    sm.start()
    ... send to 127.0.0.1:sm.port ...
    sm.wait_delivered(1)[0]      # bytes, as the next hop received them
    sm.envelopes()               # [{"mail_from", "rcpts", ...}] of each
    sm.quarantined()             # [(queue id, reason)]
    sm.submit_cf("nobody")       # a submission program's .cf (after start)

Debian's sendmail-bin conflicts with postfix (both are the
mail-transport-agent), so it is not installed: `apt-get download` fetches
the .deb once and `dpkg-deb -x` unpacks it into a cache directory
(MW_CACHE_DIR, default ~/.cache/mailward), reused by later runs. MW_SENDMAIL
names a sendmail binary to use instead. The .cf is built here with m4 from
sendmail-cf's macros (installed: it conflicts with nothing), from a .mc
that puts every path into the sandbox, plus the contrib snippets pasted as
they are.

Sendmail runs as root in the foreground (-bD), in its own process group.
It insists on a qualified name for its host and sleeps 60 s when it has
none ("My unqualified host name ... sleeping for retry"), before it reads
its .cf: it runs in its own UTS namespace (unshare --uts) named
mx.example.org. Mail goes to an smtp-sink next hop (as for Postfix) that
keeps each message as a file. Sendmail logs only to syslog, which a sandbox
lacks: failures show in the SMTP replies, the queue and the milter's log.
"""
import fcntl
import glob
import os
import pwd
import re
import shutil
import subprocess

from . import sandbox
from .postfix import Postfix

CF_DIR = "/usr/share/sendmail/cf"
_names = set()


def cache_dir():
    d = os.environ.get("MW_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "mailward")
    os.makedirs(d, exist_ok=True)
    return d


def unpacked(package, exe):
    """The file exe (a path inside the package) of a Debian package that is
    not installed: fetched with apt-get download and unpacked into the
    cache the first time, under a lock (parallel tests fetch it once)."""
    root = os.path.join(cache_dir(), package)
    path = os.path.join(root, exe)
    with open(os.path.join(cache_dir(), package + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.access(path, os.X_OK):
            return path
        dl = os.path.join(cache_dir(), package + ".download")
        shutil.rmtree(dl, ignore_errors=True)
        os.makedirs(dl)
        os.chmod(dl, 0o777)  # apt-get download runs as _apt where it can
        p = subprocess.run(["apt-get", "download", "-q", package], cwd=dl,
                           capture_output=True, text=True, timeout=600)
        debs = glob.glob(os.path.join(dl, package + "_*.deb"))
        if p.returncode != 0 or not debs:
            raise RuntimeError("apt-get download %s failed (%d): %s%s"
                               % (package, p.returncode, p.stdout, p.stderr))
        tmp = root + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", debs[0], tmp], check=True, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        os.rename(tmp, root)  # complete or absent
        shutil.rmtree(dl, ignore_errors=True)
        if not os.access(path, os.X_OK):
            raise RuntimeError("%s has no %s" % (debs[0], exe))
        return path


def binary():
    """The sendmail binary: MW_SENDMAIL, an installed Sendmail, or the one
    unpacked from Debian's sendmail-bin in the cache."""
    if os.environ.get("MW_SENDMAIL"):
        return os.environ["MW_SENDMAIL"]
    for p in ("/usr/libexec/sendmail/sendmail", "/usr/lib/sm.bin/sendmail"):
        if os.access(p, os.X_OK):
            return p
    return unpacked("sendmail-bin", "usr/libexec/sendmail/sendmail")


def unavailable():
    """Why a private Sendmail cannot run here, or None."""
    if os.geteuid() != 0:
        return "a private Sendmail needs root"
    for tool, pkg in (("m4", "m4"), ("smtp-sink", "postfix"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            return "%s is not installed (package %s; tools/install-deps --tests)" % (tool, pkg)
    if not os.path.exists(os.path.join(CF_DIR, "m4", "cf.m4")):
        return "sendmail-cf is not installed (tools/install-deps --tests)"
    return None


class Sendmail:
    """.port, .sink_port, .dir, .mc, .cf, .queue_dir, .sink_dir.
    name: the instance's directory in the sandbox. mc: lines added to the
    .mc before the snippets."""

    HOSTNAME = "mx.example.org"

    def __init__(self, name="sendmail", mc=""):
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.exe = binary()
        base, n = name, 1
        while name in _names or os.path.exists(sandbox.path(name)):
            n += 1
            name = "%s%d" % (base, n)
        _names.add(name)
        self.name = name
        self.dir = sandbox.mkdir(name)
        # Sendmail refuses a queue directory others may write to
        self.queue_dir = sandbox.mkdir(name, "mqueue", mode=0o700)
        self.sink_dir = os.path.join(self.dir, "sink")
        self._make_sink_dir()
        self.mc = os.path.join(self.dir, "sendmail.mc")
        self.cf = os.path.join(self.dir, "sendmail.cf")
        self.log = os.path.join(self.dir, "sendmail.out")
        self.port = sandbox.free_port()
        self.sink_port = sandbox.free_port()
        self._extra = [mc] if mc else []
        self.proc = None
        self.sink = None
        self.sasl_dir = None
        for f, text in (("service.switch", "hosts files\naliases files\n"), ("aliases", ""),
                        ("relay-domains", ""), ("helpfile", "")):
            with open(os.path.join(self.dir, f), "w") as fh:
                fh.write(text)
        sandbox.at_cleanup(self.stop)

    # ------------------------------------------------------------ config
    def _base_mc(self):
        d = self.dir
        # Every path inside the sandbox; no DNS (host names from files
        # only, the next hop an address); the sink's port on every mailer.
        return """divert(0)dnl
VERSIONID(`mailward private test instance (tests/lib/mwtest/sendmail.py)')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `%(host)s')dnl
define(`QUEUE_DIR', `%(d)s/mqueue')dnl
define(`STATUS_FILE', `%(d)s/statistics')dnl
define(`ALIAS_FILE', `%(d)s/aliases')dnl
define(`HELP_FILE', `%(d)s/helpfile')dnl
define(`confPID_FILE', `%(d)s/sendmail.pid')dnl
define(`confCR_FILE', `-o %(d)s/relay-domains')dnl
define(`confSERVICE_SWITCH_FILE', `%(d)s/service.switch')dnl
define(`confHOSTS_FILE', `/etc/hosts')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confTO_IDENT', `0s')dnl
define(`confMIN_FREE_BLOCKS', `0')dnl
define(`confMAX_DAEMON_CHILDREN', `0')dnl
define(`confCONNECTION_RATE_THROTTLE', `0')dnl
define(`confREFUSE_LA', `1000')dnl
define(`confQUEUE_LA', `1000')dnl
define(`confDELAY_LA', `0')dnl
define(`SMART_HOST', `esmtp:[127.0.0.1]')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h %(sink)d')dnl
define(`SMTP_MAILER_ARGS', `TCP $h %(sink)d')dnl
define(`RELAY_MAILER_ARGS', `TCP $h %(sink)d')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`no_default_msa')dnl
DAEMON_OPTIONS(`Port=%(port)d, Addr=127.0.0.1, Name=MTA')dnl
RELAY_DOMAIN(`example.org')dnl
MAILER(`smtp')dnl
""" % {"host": self.HOSTNAME, "d": d, "sink": self.sink_port, "port": self.port}

    def add_mc(self, text):
        """m4 text appended to the .mc (takes effect at the next start)."""
        self._extra.append(text)

    def apply_snippet(self, path, replace=None):
        """Pastes a contrib/sendmail/*.mc snippet into the .mc; replace maps
        old text to new (the milter's socket into the sandbox). Relative
        paths are from the top of the source tree. Returns its text."""
        if not os.path.isabs(path):
            path = os.path.join(sandbox.top_srcdir(), path)
        with open(path) as f:
            text = f.read()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        self._extra.append(text)
        return text

    def sasl_users(self, users):
        """SMTP AUTH (PLAIN, LOGIN, no TLS) for users {name: password}: a
        sasldb made with saslpasswd2 (sasl2-bin, unpacked like sendmail-bin
        when not installed) and a Sendmail.conf for Cyrus SASL. Cyrus reads
        that only from fixed directories (/etc/sasl2, ..., /usr/lib/sasl2):
        Sendmail gets the sandbox's directory bind-mounted on /usr/lib/sasl2
        in a mount namespace of its own. Takes effect at the next start.
        Returns None, or why it cannot be done here (no namespaces)."""
        probe = subprocess.run(["unshare", "--uts", "--mount", "--propagation", "private", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return "no mount namespace for Cyrus SASL's config: %s" % probe.stderr.strip()
        self.sasl_dir = sandbox.mkdir(self.name, "sasl2", mode=0o755)
        db = os.path.join(self.sasl_dir, "sasldb2")
        tool = shutil.which("saslpasswd2") or unpacked("sasl2-bin", "usr/sbin/saslpasswd2")
        for user, password in users.items():
            subprocess.run([tool, "-f", db, "-p", "-c", "-u", self.HOSTNAME, user],
                           input=password.encode(), check=True, capture_output=True)
        with open(os.path.join(self.sasl_dir, "Sendmail.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\n"
                    "mech_list: PLAIN LOGIN\n" % db)
        self._extra.append("define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl\n"
                           "TRUST_AUTH_MECH(`PLAIN LOGIN')dnl\n")
        return None

    def build_cf(self):
        text = self._base_mc() + "".join(t if t.endswith("\n") else t + "\n" for t in self._extra)
        with open(self.mc, "w") as f:
            f.write(text)
        p = subprocess.run(["m4", "-D_CF_DIR_=%s/" % CF_DIR, os.path.join(CF_DIR, "m4", "cf.m4"), self.mc],
                           capture_output=True, text=True)
        if p.returncode != 0 or p.stderr.strip():
            raise RuntimeError("m4 %s: %s" % (self.mc, p.stderr))
        with open(self.cf, "w") as f:
            f.write(p.stdout)
        return p.stdout

    def submit_cf(self, user="nobody"):
        """A mail submission program's .cf (FEATURE(`msp'), as Debian's
        /usr/sbin/sendmail uses submit.cf) that relays over SMTP to this
        instance's port, its queue (clientmqueue) owned by user, who runs
        `sendmail -C SUBMIT_CF` (milter-pgp's reinject = sendmail:), and
        who is trusted to set the sender with -f. Call
        it after start(), which may move the instance to another port. Like
        the daemon, it wants a qualified host name: run it where the node
        name has a dot (unshare --uts, as _argv does). Returns its path."""
        pw = pwd.getpwnam(user)
        qdir = sandbox.mkdir(self.name, "clientmqueue", mode=0o770)
        os.chown(qdir, pw.pw_uid, pw.pw_gid)
        mc = """divert(0)dnl
VERSIONID(`mailward private submission program (tests/lib/mwtest/sendmail.py)')dnl
define(`confCF_VERSION', `Submit')dnl
define(`__OSTYPE__',`')dnl
define(`confDOMAIN_NAME', `%(host)s')dnl
define(`confRUN_AS_USER', `%(user)s')dnl
define(`confTRUSTED_USER', `%(user)s')dnl
define(`confTRUSTED_USERS', `%(user)s')dnl
define(`MSP_QUEUE_DIR', `%(q)s')dnl
define(`STATUS_FILE', `%(q)s/sm-client.st')dnl
define(`confPID_FILE', `%(q)s/sm-client.pid')dnl
define(`confSERVICE_SWITCH_FILE', `%(d)s/service.switch')dnl
define(`confHOSTS_FILE', `/etc/hosts')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confTO_IDENT', `0s')dnl
define(`confMIN_FREE_BLOCKS', `0')dnl
define(`RELAY_MAILER_ARGS', `TCP $h %(port)d')dnl
FEATURE(`msp', `[127.0.0.1]')dnl
""" % {"host": self.HOSTNAME, "user": user, "q": qdir, "d": self.dir, "port": self.port}
        path = os.path.join(self.dir, "submit.mc")
        with open(path, "w") as f:
            f.write(mc)
        p = subprocess.run(["m4", "-D_CF_DIR_=%s/" % CF_DIR, os.path.join(CF_DIR, "m4", "cf.m4"), path],
                           capture_output=True, text=True)
        if p.returncode != 0 or p.stderr.strip():
            raise RuntimeError("m4 %s: %s" % (path, p.stderr))
        cf = os.path.join(self.dir, "submit.cf")
        with open(cf, "w") as f:
            f.write(p.stdout)
        os.chmod(cf, 0o644)
        return cf

    # ------------------------------------------------------------ life
    def _make_sink_dir(self):
        os.makedirs(self.sink_dir, exist_ok=True)
        os.chmod(self.sink_dir, 0o755)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.sink_dir, nobody.pw_uid, nobody.pw_gid)  # smtp-sink runs as nobody

    def _start_sink(self):
        log = os.path.join(self.dir, "smtp-sink.log")
        for attempt in range(5):
            mark = len(sandbox.read_text(log))
            self.sink = sandbox.spawn(["smtp-sink", "-u", "nobody", "-d", os.path.join(self.sink_dir, "%H%M%S."),
                                       "127.0.0.1:%d" % self.sink_port, "100"], log=log)
            sandbox.wait_for(lambda: self.sink.poll() is not None or sandbox.listens([self.sink.pid], self.sink_port),
                             30, what="smtp-sink on port %d" % self.sink_port)
            if self.sink.poll() is None:
                return
            out = sandbox.read_text(log)[mark:]
            self.sink = None
            if attempt == 4 or not sandbox.address_in_use(out):
                raise RuntimeError("smtp-sink exited: %s" % out)
            self.sink_port = sandbox.free_port()

    def _argv(self):
        argv = [self.exe, "-C", self.cf, "-bD", "-X", os.path.join(self.dir, "traffic.log")]
        if self.sasl_dir:
            # its own mount namespace (and host name) for Cyrus SASL's config
            return ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
                    'hostname "$0" && mount --bind "$1" /usr/lib/sasl2 && shift && exec "$@"',
                    self.HOSTNAME, self.sasl_dir] + argv
        if "." in os.uname().nodename:
            return argv
        # a host name of its own, so that it does not sleep 60 s first
        probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True)
        if probe.returncode != 0:
            return argv  # it sleeps then: start() waits long enough
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.HOSTNAME] + argv

    def start(self):
        if self.proc is not None:
            return
        self._start_sink()
        for attempt in range(5):
            self.build_cf()
            mark = len(sandbox.read_text(self.log))
            self.proc = sandbox.spawn(self._argv(), log=self.log)
            try:
                sandbox.wait_for(lambda: self.proc.poll() is not None or sandbox.listens([self.proc.pid], self.port),
                                 120, what="sendmail to listen on %d" % self.port)
            except TimeoutError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return
            out = sandbox.read_text(self.log)[mark:]
            self.proc = None
            if attempt == 4 or not sandbox.address_in_use(out):
                raise RuntimeError("sendmail exited: %s" % out)
            self.port = sandbox.free_port()

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc, timeout=10)
            self.proc = None
        if self.sink is not None:
            sandbox.stop(self.sink)
            self.sink = None

    def pids(self):
        """The daemon and the children it forked (one per connection, one
        per delivery): its process group."""
        if self.proc is None:
            return []
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                    out.append(int(d))
        return out

    def traffic(self):
        """What -X recorded: every SMTP line in and out."""
        return sandbox.read_text(os.path.join(self.dir, "traffic.log"))

    # ------------------------------------------------------------ the queue
    def _queue_files(self, prefix):
        try:
            return sorted(n for n in os.listdir(self.queue_dir) if n.startswith(prefix))
        except FileNotFoundError:
            return []

    def queue(self):
        """Queue ids of messages waiting in the queue (qf files)."""
        return [n[2:] for n in self._queue_files("qf")]

    def quarantined(self):
        """[(queue id, reason)]: messages a milter quarantined. Sendmail
        keeps them in the queue under hf instead of qf, the reason on
        the qf file's "q" line, and never delivers them on its own."""
        out = []
        for n in self._queue_files("hf"):
            try:
                with open(os.path.join(self.queue_dir, n), "rb") as f:
                    lines = f.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            reason = next((ln[1:] for ln in lines if ln.startswith("q")), None)
            out.append((n[2:], reason))
        return out

    def queue_file(self, qid, kind="hf"):
        """A queue file's text: kind "qf"/"hf" (envelope, headers), "df" (body)."""
        with open(os.path.join(self.queue_dir, kind + qid), "rb") as f:
            return f.read()

    # ------------------------------------------------------------ the sink
    def _sink_files(self):
        """Sink files in arrival order. smtp-sink answers the final "."
        only when the file is written, and Sendmail removes its qf file
        only after that answer: while a qf file (or a transient tf/xf)
        remains, a delivery may be under way, and nothing is trusted."""
        if self._queue_files("qf") or self._queue_files("tf"):
            return None
        try:
            names = os.listdir(self.sink_dir)
        except FileNotFoundError:
            return []
        files = []
        for n in names:
            p = os.path.join(self.sink_dir, n)
            try:
                st = os.stat(p)
                with open(p, "rb") as f:
                    files.append(((st.st_mtime_ns, n), p, f.read()))
            except OSError:
                continue
        files.sort()
        return [(p, raw) for _, p, raw in files]

    def delivered(self):
        """Each delivered message as Sendmail sent it to the next hop
        (CRLF line ends, smtp-sink's own lines removed), in arrival order."""
        return [Postfix._split_sink(raw)[1] for _, raw in self._sink_files() or []]

    def envelopes(self):
        """The envelope of each delivered message as the next hop got it,
        as Postfix.envelopes(): {"client", "helo", "mail_from", "rcpts"}."""
        out = []
        for _, raw in self._sink_files() or []:
            env = {"client": None, "helo": None, "mail_from": None, "rcpts": []}
            for ln in Postfix._split_sink(raw)[0]:
                k, _, v = ln.decode(errors="replace").partition(": ")
                key = {"X-Client-Addr": "client", "X-Helo-Args": "helo", "X-Mail-Args": "mail_from"}.get(k)
                if key:
                    env[key] = v
                elif k == "X-Rcpt-Args":
                    env["rcpts"].append(v)
            out.append(env)
        return out

    def wait_delivered(self, n, timeout=30):
        sandbox.wait_for(lambda: len(self._sink_files() or []) >= n and self._sink_files() is not None,
                         timeout, what="%d message(s) delivered to the sink" % n)
        return self.delivered()

    def clear_delivered(self):
        shutil.rmtree(self.sink_dir)
        self._make_sink_dir()


def received_id(msg):
    """Sendmail's queue id from the top Received header of a message."""
    m = re.search(rb"by \S+ \(8\.[^)]*\) with \S+ id (\w+)", msg)
    return m.group(1).decode() if m else None
