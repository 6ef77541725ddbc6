"""A mailward daemon under test and a client of its socket: what the
component test modules (tests/policyd-rate/prtest.py,
tests/tlspolicyd/tptest.py) share.

A component's module subclasses Daemon, naming its program, its socket's
file name, the settings it always writes, the log text that says it is
ready and its waits; and Client, adding its protocol's replies. The daemon
runs in the foreground (-f -c CONF) with its configuration and log in its
own sandbox directory, and is stopped when the test ends."""
import os
import socket

from . import sandbox

_count = {}  # Daemon.prefix: daemons made


class Client:
    """One stream connection to "unix:PATH" or "inet:PORT@HOST", kept open as
    the MTA keeps it. Bytes received and not yet read as a reply wait in
    self.pending."""

    timeout = 10  # seconds, for every socket operation
    closed_timeout = 5  # closed()'s default wait
    # True: connect to a unix socket blocking, so that it waits while the
    # listen backlog is full (a socket with a timeout fails at once then)
    connect_blocking = False

    def __init__(self, spec, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if spec.startswith("unix:"):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if self.connect_blocking:
                self.s.connect(spec[5:])
                self.s.settimeout(timeout)
            else:
                self.s.settimeout(timeout)
                self.s.connect(spec[5:])
        else:  # inet:port@host
            port, host = spec[5:].split("@")
            self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.pending = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def closed(self, timeout=None):
        """True when the daemon closed the connection (EOF), False when it
        kept it open for timeout seconds."""
        self.s.settimeout(self.closed_timeout if timeout is None else timeout)
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
    """A daemon in the foreground with its own configuration in the sandbox:
    DIR/NAME.conf and DIR/NAME.log (NAME: the program's file name)."""

    program = None  # path of the built daemon
    prefix = "d"  # sandbox directory names: prefix1, prefix2, ...
    socket_file = "daemon.sock"  # the default socket, in the directory
    ready = "listening on"  # the log says this once the socket accepts
    start_timeout = 15
    stop_timeout = 5
    log_timeout = 10  # reload() and wait_log()
    client_class = Client

    def __init__(self, conf="", name=None, start=True):
        _count[self.prefix] = _count.get(self.prefix, 0) + 1
        self.title = os.path.basename(self.program)
        self.name = name or "%s%d" % (self.prefix, _count[self.prefix])
        self.dir = sandbox.mkdir(self.name, mode=0o755)
        self.socket = "unix:" + os.path.join(self.dir, self.socket_file)
        self.conf = os.path.join(self.dir, self.title + ".conf")
        self.logfile = os.path.join(self.dir, self.title + ".log")
        self.proc = None
        self.wrap = []  # a command that runs the daemon, e.g. prlimit
        self.write(conf)
        if start:
            self.start()

    def settings(self):
        """(key, value) written before conf unless conf sets the key."""
        return [("socket", self.socket), ("pid_file", ""), ("user", ""), ("log_level", "info")]

    def write(self, conf):
        given = {ln.split("=")[0].strip() for ln in conf.splitlines() if "=" in ln}
        for ln in conf.splitlines():
            if ln.split("=")[0].strip() == "socket":
                self.socket = ln.split("=", 1)[1].strip()
        text = "".join("%s = %s\n" % (k, v) for k, v in self.settings() if k not in given)
        with open(self.conf, "w") as f:
            f.write(text + conf)

    def log(self):
        return sandbox.read_text(self.logfile)

    def start(self, expect_fail=False):
        mark = len(self.log())
        self.proc = sandbox.spawn(self.wrap + [self.program, "-f", "-c", self.conf], log=self.logfile)

        def up():
            return self.proc.poll() is not None or self.ready in self.log()[mark:]
        sandbox.wait_for(up, self.start_timeout, what="%s to listen" % self.title)
        if self.proc.poll() is not None and not expect_fail:
            raise RuntimeError("%s exited %s:\n%s" % (self.title, self.proc.returncode, self.log()))

    def stop(self):
        """The exit status; None when it was not running."""
        if self.proc is not None:
            sandbox.stop(self.proc, timeout=self.stop_timeout)
            rc = self.proc.returncode
            self.proc = None
            return rc
        return None

    def kill(self):
        if self.proc is not None:
            sandbox.stop(self.proc, sig=9)
            self.proc = None

    def reload(self):
        """SIGHUP; what the log said from then until it named the reload."""
        mark = len(self.log())
        self.proc.send_signal(1)
        sandbox.wait_for(lambda: "reload" in self.log()[mark:], self.log_timeout,
                         what="%s to reload" % self.title)
        return self.log()[mark:]

    def client(self):
        return self.client_class(self.socket)

    def wait_log(self, text, timeout=None, since=0):
        sandbox.wait_for(lambda: text in self.log()[since:], self.log_timeout if timeout is None else timeout,
                         what="%r in the log" % text)
