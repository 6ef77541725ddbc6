"""Redis: a private redis-server on a loopback port, without persistence.

    r = Redis(); r.cli("SET", "k", "v"); r.kill(); r.restart()
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
        self.port = port or sandbox.free_port()
        self.password = password
        self.extra = list(extra or [])
        self.proc = None
        sandbox.at_cleanup(self.stop)
        if start:
            self.start()

    def argv(self):
        a = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            a += ["--requirepass", self.password]
        return a + self.extra

    def start(self):
        self.proc = sandbox.spawn(self.argv())
        sandbox.wait_for(self.ping, 10, what="redis on port %d" % self.port)

    def ping(self):
        try:
            return self.cli("PING").strip() == "PONG"
        except Exception:
            return False

    def cli(self, *args):
        a = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            a += ["--no-auth-warning", "-a", self.password]
        p = subprocess.run(a + [str(x) for x in args], capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("redis-cli: %s" % p.stderr)
        return p.stdout

    def kill(self):
        """SIGKILL, as a crash would: for fault tests."""
        if self.proc:
            sandbox.stop(self.proc, sig=signal.SIGKILL)
            self.proc = None

    def restart(self):
        self.kill()
        self.start()

    def stop(self):
        if self.proc:
            sandbox.stop(self.proc)
            self.proc = None
