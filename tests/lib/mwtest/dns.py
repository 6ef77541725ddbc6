"""DnsServer: tests/lib/dnsserver.py started privately on loopback.

    dns = DnsServer(zone_text, fmt="zone")      # or DnsServer(files=[...])
    dns.spec       # "127.0.0.1@PORT": the value of our dns_resolver key
    dns.set_zone(text); dns.reload()
"""
import os
import signal

from . import sandbox

_count = 0


class DnsServer:
    def __init__(self, text=None, fmt="zone", files=None, ttl=300, start=True, addr="127.0.0.1", port=None):
        global _count
        _count += 1
        self.dir = sandbox.mkdir("dns%d" % _count)
        self.files = list(files or [])
        self.own = None
        if text is not None:
            self.own = os.path.join(self.dir, "zone." + ("yml" if fmt in ("yml", "yaml") else "zone"))
            self.files.insert(0, self.own)
            self.set_zone(text)
        self.ttl = ttl
        self.addr = addr
        self.port = port  # None: one from sandbox.free_port()
        self.proc = None
        if start:
            self.start()

    @property
    def spec(self):
        return "%s@%d" % (self.addr, self.port)

    def set_zone(self, text):
        with open(self.own, "w", encoding="utf-8") as f:
            f.write(text)

    def start(self):
        """Starts the server: on its port again after a stop, else on a
        port from the sandbox's registry (below the kernel's ephemeral
        range, so that no client socket of another test can take it while
        the server is stopped), a new one if another program holds it."""
        if self.port:
            self._start(self.port)
        else:
            self.port, _ = sandbox.with_free_port(self._start)

    def _start(self, port):
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        argv = ["/usr/bin/python3", os.path.join(sandbox.top_srcdir(), "tests/lib/dnsserver.py"),
                "--addr", self.addr, "--port", str(port), "--ttl", str(self.ttl),
                "--ready-file", ready, "--log", os.path.join(self.dir, "queries.log")]
        for f in self.files:
            argv += ["--zone", f]
        self.proc = sandbox.spawn(argv, log=os.path.join(self.dir, "server.log"))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dnsserver exited: %s" % self.server_log())
            return os.path.exists(ready)
        sandbox.wait_for(up, 10, what="the DNS server")
        with open(ready) as f:
            self.port = int(f.read())

    def reload(self):
        """Re-reads the zone files; waits until the server says so."""
        log = os.path.join(self.dir, "queries.log")
        before = open(log).read().count("reloaded") if os.path.exists(log) else 0
        os.kill(self.proc.pid, signal.SIGHUP)
        sandbox.wait_for(lambda: open(log).read().count("reloaded") > before, 5,
                         what="the DNS server to reload")

    def queries(self):
        """The query log: one line per query the server saw."""
        return sandbox.read_text(os.path.join(self.dir, "queries.log"))

    def server_log(self):
        return sandbox.read_text(os.path.join(self.dir, "server.log"))

    def stop(self):
        if self.proc:
            sandbox.stop(self.proc)
            self.proc = None
