"""Redis: a private redis-server on a loopback port, without persistence.

    r = Redis()              # started; r.port
    r.cli("SET", "k", "v")   # redis-cli's stdout, as text
    r.kill()                 # SIGKILL, as a crash would (fault tests)
    r.restart()              # same port again, empty, answers PING
    r.stop()

Its directory (working dir, log) is inside the sandbox; nothing is saved to
disk, so a restart always comes back empty.
"""
import os
import signal
import subprocess

from . import sandbox

_count = 0


class Redis:
    def __init__(self, port=None, password=None, extra=None, start=True):
        global _count
        _count += 1
        self.dir = sandbox.mkdir("redis%d" % _count)
        self.logfile = os.path.join(self.dir, "redis.log")
        self.fixed_port = port is not None
        self.port = port or sandbox.free_port()
        self.password = password
        self.extra = [str(a) for a in (extra or [])]  # more "--name value" arguments
        self.proc = None
        sandbox.at_cleanup(self.stop)
        if start:
            self.start()

    def argv(self):
        a = ["redis-server",
             "--port", str(self.port), "--bind", "127.0.0.1",
             # no RDB snapshots, no AOF: nothing survives a restart
             "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", self.logfile, "--daemonize", "no"]
        if self.password:
            a += ["--requirepass", self.password]
        return a + self.extra

    def start(self, same_port=False):
        if self.proc is not None:
            return
        for attempt in range(5):
            mark = len(self.log())
            self.proc = sandbox.spawn(self.argv())

            def up():
                if self.proc.poll() is not None:  # e.g. the port is taken: say why
                    raise RuntimeError("redis-server exited (%s):\n%s" % (self.proc.returncode, self.log()))
                return self.ping()
            try:
                sandbox.wait_for(up, 30, what="redis on port %d" % self.port)
                return
            except RuntimeError:
                # a port someone else took: a new one, unless the test chose it
                if self.fixed_port or same_port or attempt == 4 or not sandbox.address_in_use(self.log()[mark:]):
                    raise
                sandbox.stop(self.proc)
                self.proc = None
                self.port = sandbox.free_port()

    def ping(self):
        try:
            return self.cli("PING").strip() == "PONG"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def cli(self, *args):
        """Runs redis-cli against this server; its stdout. A refused
        connection raises RuntimeError (redis-cli exits 1); a Redis error
        reply (e.g. WRONGTYPE) comes back as text, as redis-cli prints it."""
        a = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            a += ["--no-auth-warning", "-a", self.password]
        p = subprocess.run(a + [str(x) for x in args], capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("redis-cli %s: %s" % (" ".join(map(str, args)), (p.stderr or p.stdout).strip()))
        return p.stdout

    def log(self):
        return sandbox.read_text(self.logfile)

    def kill(self):
        """SIGKILL, as a crash would: no goodbye to clients."""
        if self.proc is not None:
            sandbox.stop(self.proc, sig=signal.SIGKILL)
            self.proc = None

    def restart(self):
        """A fresh, empty server on the same port (redis sets SO_REUSEADDR,
        so the port is free again at once)."""
        self.kill()
        self.start(same_port=True)

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc)
            self.proc = None
