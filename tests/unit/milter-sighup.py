#!/usr/bin/python3
"""SIGHUP reloads a libmilter daemon, every time (common/startup_milter.c).

libmilter's smfi_main starts a thread of its own that sigwait()s for SIGHUP,
SIGTERM and SIGINT and stops the milter on any of them; a process signal goes
to whichever thread dequeues it first, so a SIGHUP could stop the milter
instead of reloading it. Each of milter-auth, milter-pgp and milter-tls takes
MW_SIGHUP_COUNT (default 100) SIGHUPs, each once the last one's reload is
logged, answers milter traffic between them, then five bursts of
MW_SIGHUP_BURST (300) as fast as they go (the ones that come while the main
thread handles the last are those libmilter's thread could take), answering
traffic after each; then SIGTERM (or SIGINT) stops it cleanly: exit 0, pid
file and socket removed. milter-tls: the reloaded file is the one in force, a
bad one is logged and not used. Without common/startup_milter.c's sigwait()
the bursts stopped one of the three milters in 4 runs out of 5 here."""
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

BUILD = sandbox.top_builddir()
COUNT = int(os.environ.get("MW_SIGHUP_COUNT", "100"))  # 200+: minutes on a loaded machine
WAIT = 30  # seconds: a loaded 2-core machine
BURST = int(os.environ.get("MW_SIGHUP_BURST", "300"))
BURSTS = int(os.environ.get("MW_SIGHUP_BURSTS", "5"))
RELOADED = "configuration reloaded"
# every SMFIP_ step flag but the "no reply" ones: each command gets an answer
PROTOCOL = 0x1fffff & ~0xff080


def write(name, text):
    p = sandbox.path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def read_packet(s):
    head = b""
    while len(head) < 4:
        more = s.recv(4 - len(head))
        if not more:
            raise ConnectionError("milter closed the connection")
        head += more
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        more = s.recv(n - len(body))
        if not more:
            raise ConnectionError("milter closed the connection")
        body += more
    return body[:1], body[1:]


def milter_talks(path, daemon=b"smtpd", mail=False):
    """One milter conversation: option negotiation, then a connection from
    the Postfix service named daemon answered with a verdict, and with mail
    a MAIL FROM after a connection the milter continued. Returns the last
    answer's command byte (with its data for mail), or the error."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(WAIT)
            s.connect(path)
            s.sendall(packet(b"O", struct.pack(">III", 6, 0x1ff, PROTOCOL)))
            cmd, _ = read_packet(s)
            if cmd != b"O":
                return "negotiation answered %r" % cmd
            s.sendall(packet(b"D", b"C{daemon_name}\0" + daemon + b"\0{client_addr}\0" b"198.51.100.7\0"))
            s.sendall(packet(b"C", b"client.example\0" b"4" + struct.pack(">H", 25) + b"198.51.100.7\0"))
            cmd, data = read_packet(s)
            if mail and cmd == b"c":
                s.sendall(packet(b"M", b"<a@example.org>\0"))
                cmd, data = read_packet(s)
                cmd = cmd + data
            s.sendall(packet(b"Q"))
            return cmd
    except OSError as e:
        return "error: %s" % e


class Daemon:
    """One milter started from its own configuration (socket, pid file, log)."""
    def __init__(self, name, exe, tag, extra):
        self.name = "%s (%s)" % (name, tag)
        d = sandbox.mkdir("run-" + tag + "-" + name, mode=0o755)
        self.sock, self.pid = os.path.join(d, "milter.sock"), os.path.join(d, "milter.pid")
        self.conf = conf = write("%s-%s.conf" % (name, tag), "socket = unix:%s\npid_file = %s\nuser =\nlog_level = info\n%s"
                     % (self.sock, self.pid, extra))
        self.log = sandbox.path("%s-%s.log" % (name, tag))
        self.proc = sandbox.spawn([exe, "-f", "-c", conf], log=self.log)

    def text(self):
        return sandbox.read_text(self.log)

    def reloads(self):
        return self.text().count(RELOADED)

    def wait_listening(self):
        sandbox.wait_for(lambda: "listening on" in self.text() or self.proc.poll() is not None, WAIT,
                         what="%s to listen" % self.name)
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited: %s" % (self.name, self.text()))


def milters():
    """(name, executable, configuration lines) for each milter that is built."""
    out = []
    exe = os.path.join(BUILD, "milter-auth/milter-auth")
    if os.access(exe, os.X_OK):
        out.append(("milter-auth", exe, "authserv_id = mx.example.org\ndns_resolver = 127.0.0.1@9\n"))
    exe = os.path.join(BUILD, "milter-pgp/milter-pgp")
    if os.access(exe, os.X_OK):
        ring = sandbox.mkdir("pgp-ring", mode=0o700)
        spool = sandbox.mkdir("pgp-spool", mode=0o700)
        out.append(("milter-pgp", exe, "keyring = %s\ntmpdir = %s\n" % (ring, spool)))
    exe = os.path.join(BUILD, "milter-pgp/milter-tls")
    if os.access(exe, os.X_OK):
        out.append(("milter-tls", exe, ""))
    return out


def quiet(m):
    """Waits until the log stops growing (the burst's reloads are done)."""
    last, since = None, time.monotonic()
    deadline = since + WAIT * 4
    while time.monotonic() < deadline and m.proc.poll() is None:
        size = os.path.getsize(m.log)
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return True
        time.sleep(0.05)
    return m.proc.poll() is None


def talks(m):
    return milter_talks(m.sock) in (b"c", b"a")


def many_hups(t, m):
    """COUNT SIGHUPs, each sent once the last one's reload is logged, then a
    burst of BURST as fast as they go."""
    m.wait_listening()
    t.ok(talks(m), "%s: answers milter traffic before any SIGHUP" % m.name)
    done = 0
    for i in range(COUNT):
        os.kill(m.proc.pid, signal.SIGHUP)
        # the next one only once this one is handled: SIGHUPs sent while one
        # is pending merge into one (standard signals do not queue)
        try:
            sandbox.wait_for(lambda: m.reloads() > i or m.proc.poll() is not None, WAIT, interval=0.002,
                             what="reload %d" % (i + 1))
        except TimeoutError:
            break
        if m.proc.poll() is not None:
            break
        done = i + 1
        if i % 50 == 49 and not talks(m):
            break
    t.ok(m.proc.poll() is None, "%s: still running after %d SIGHUPs" % (m.name, COUNT), m.text()[-3000:])
    t.eq(done, COUNT, "%s: each of %d SIGHUPs was a reload" % (m.name, COUNT))
    t.eq(m.reloads(), COUNT, "%s: %d reload log lines" % (m.name, COUNT))

    # SIGHUPs that come while the main thread is in its handler for the last
    # one are those libmilter's thread could take; several merge into one.
    # libmilter closes its socket at once when it takes one (the process
    # itself takes seconds to end), so traffic after each burst tells.
    served, before = 0, m.reloads()
    for r in range(BURSTS):
        for i in range(BURST):
            if m.proc.poll() is not None:
                break
            os.kill(m.proc.pid, signal.SIGHUP)
        quiet(m)
        if not talks(m):
            break
        served += 1
    t.diag("%s: %d bursts made %d reloads" % (m.name, served, m.reloads() - before))
    t.eq(served, BURSTS, "%s: answers milter traffic after each of %d bursts of %d SIGHUPs" % (m.name, BURSTS, BURST))
    t.ok(m.reloads() > before, "%s: the bursts reloaded" % m.name)
    text = m.text()
    t.ok(m.proc.poll() is None and "stopping" not in text, "%s: still running, nothing stopped" % m.name, text[-3000:])


def one_hup(t, m):
    m.wait_listening()
    os.kill(m.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: m.reloads() > 0 or m.proc.poll() is not None, WAIT, what="the reload")
    t.ok(m.proc.poll() is None and talks(m), "%s: serves after a SIGHUP" % m.name)


def tls_reload_applies(t, m):
    """milter-tls: the reloaded file is the one in force; a bad one is not."""
    m.wait_listening()
    t.eq(milter_talks(m.sock, b"smtpd"), b"a", "%s: smtpd is not in require_tls_for" % m.name)
    with open(m.conf, "a") as f:
        f.write("require_tls_for = smtpd\nreply_text = TLS first, reloaded\n")
    os.kill(m.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: m.reloads() > 0 or m.proc.poll() is not None, WAIT, what="the reload")
    want = b"y530 5.7.0 TLS first, reloaded\0"
    t.eq(milter_talks(m.sock, b"smtpd", mail=True), want, "%s: after SIGHUP: 530 on smtpd, new text" % m.name)
    with open(m.conf, "a") as f:
        f.write("bogus = 1\n")
    os.kill(m.proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "reload failed" in m.text() or m.proc.poll() is not None, WAIT, what="the reload")
    t.contains(m.text(), 'unknown key "bogus"', "%s: a bad file on SIGHUP: says why" % m.name)
    t.eq(milter_talks(m.sock, b"smtpd", mail=True), want, "%s: a bad file on SIGHUP: the last one stays" % m.name)


def stop_all(t, stops):
    """Sends each its signal at once (libmilter takes seconds to notice a
    stop), then checks each stopped cleanly."""
    for m, sig in stops:
        t.ok(os.path.exists(m.pid) and int(open(m.pid).read()) == m.proc.pid, "%s: pid file written" % m.name)
        if m.proc.poll() is None:
            os.kill(m.proc.pid, sig)
    for m, sig in stops:
        what = signal.Signals(sig).name
        try:
            rc = m.proc.wait(WAIT)
        except Exception:
            rc = None
        t.eq(rc, 0, "%s: %s: exits 0" % (m.name, what))
        t.contains(m.text(), "stopping", "%s: %s: says it stops" % (m.name, what))
        t.ok(not os.path.exists(m.pid), "%s: %s: pid file removed" % (m.name, what))
        t.ok(not os.path.exists(m.sock), "%s: %s: socket removed" % (m.name, what))


t = Tap()
found = milters()
if not found:
    t.skip("milters", "none built")
stops = []
for name, exe, extra in found:
    hup, intr = Daemon(name, exe, "sigterm", extra), Daemon(name, exe, "sigint", extra)
    t.run(many_hups, hup)
    t.run(one_hup, intr)
    stops += [(hup, signal.SIGTERM), (intr, signal.SIGINT)]
    if name == "milter-tls":
        tls = Daemon(name, exe, "reload", extra)
        t.run(tls_reload_applies, tls)
        stops.append((tls, signal.SIGTERM))
t.run(stop_all, stops)
t.done()
