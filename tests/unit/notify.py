#!/usr/bin/python3
"""systemd readiness (Type=notify, common/notify.c): with $NOTIFY_SOCKET set,
a daemon sends READY=1 only once its socket accepts connections and root is
dropped, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on
SIGTERM; without it, nothing. On mw-testd (common/ only), policyd-rate (its
own libevent loop) and milter-tls (libmilter, common/startup.c's signal
wait), through a path socket and an abstract one."""
import os
import pwd
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

TESTD = os.path.join(sandbox.top_builddir(), "tests/unit/mw-testd")
POLICYD = os.path.join(sandbox.top_builddir(), "policyd-rate/policyd-rate")
MILTER_TLS = os.path.join(sandbox.top_builddir(), "milter-pgp/milter-tls")
NOBODY = pwd.getpwnam("nobody")
WAIT = 30  # seconds: a loaded 2-core machine


def write(name, text):
    p = sandbox.path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def listener(abstract):
    """The manager's end: a unix datagram socket and the NOTIFY_SOCKET naming it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "mailward-notify-test-%d-%d" % (os.getpid(), id(s))
        s.bind("\0" + name)
        addr = "@" + name
    else:
        addr = sandbox.path("notify-%d.sock" % id(s))
        s.bind(addr)
        os.chmod(addr, 0o666)  # the daemon sends after dropping to nobody
    sandbox.at_cleanup(s.close)
    return s, addr


def recv(s, timeout=WAIT):
    s.settimeout(timeout)
    try:
        return s.recv(4096).decode()
    except socket.timeout:
        return None


def accepts(path):
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        try:
            c.connect(path)
            return True
        except OSError:
            return False


def uid_of(pid):
    for line in open("/proc/%d/status" % pid).read().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    return None


def lifecycle(t, name, argv, sock, reloaded, abstract, want_uid):
    s, addr = listener(abstract)
    env = dict(os.environ, NOTIFY_SOCKET=addr)
    log = sandbox.path("%s.log" % name)
    proc = sandbox.spawn(argv, log=log, env=env)
    msg = recv(s)
    ready_serves = msg == "READY=1" and accepts(sock)
    t.eq(msg, "READY=1", "%s: the first message is READY=1" % name)
    t.ok(ready_serves, "%s: at READY=1 the socket accepts connections" % name, sandbox.read_text(log))
    t.ok(msg == "READY=1" and uid_of(proc.pid) == want_uid, "%s: at READY=1 root is dropped" % name)

    mark = len(sandbox.read_text(log))
    os.kill(proc.pid, signal.SIGHUP)
    first, second = recv(s), recv(s)
    t.eq([first, second], ["RELOADING=1", "READY=1"], "%s: SIGHUP: RELOADING=1, then READY=1" % name)
    t.ok(second == "READY=1" and reloaded in sandbox.read_text(log)[mark:],
         "%s: READY=1 comes after the reload is done" % name)
    t.ok(accepts(sock), "%s: serves after the reload" % name)

    os.kill(proc.pid, signal.SIGTERM)
    t.eq(recv(s), "STOPPING=1", "%s: SIGTERM: STOPPING=1" % name)
    t.eq(proc.wait(WAIT), 0, "%s: exits 0" % name)
    t.eq(recv(s, 0.5), None, "%s: nothing more" % name)


def testd_conf(tag):
    run_dir = sandbox.mkdir("run-" + tag)
    os.chown(run_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    sock = os.path.join(run_dir, "testd.sock")
    conf = write("%s.conf" % tag, "listen = unix:%s\nuser = nobody\n" % sock)
    return sock, conf


def testd(t):
    sock, conf = testd_conf("testd")
    lifecycle(t, "mw-testd", [TESTD, "-f", "-c", conf], sock, "configuration reloaded", False, NOBODY.pw_uid)


def testd_abstract(t):
    sock, conf = testd_conf("abstract")
    lifecycle(t, "mw-testd (abstract NOTIFY_SOCKET)", [TESTD, "-f", "-c", conf], sock, "configuration reloaded",
              True, NOBODY.pw_uid)


def policyd(t):
    if not os.access(POLICYD, os.X_OK):
        t.skip("policyd-rate", "not built")
        return
    d = sandbox.mkdir("pr", mode=0o755)
    sock = os.path.join(d, "policy.sock")
    conf = write("pr.conf", "socket = unix:%s\ncontrol_socket = unix:%s/control.sock\npid_file =\nuser =\n"
                 "store = memory\nrule = u: key=sasl_username limit=10/1m\n" % (sock, d))
    lifecycle(t, "policyd-rate", [POLICYD, "-f", "-c", conf], sock, "configuration reloaded", False, os.getuid())


def milter(t):
    """A libmilter daemon: readiness from common/startup.c's signal wait."""
    if not os.access(MILTER_TLS, os.X_OK):
        t.skip("milter-tls", "not built")
        return
    d = sandbox.mkdir("mt", mode=0o755)
    sock = os.path.join(d, "milter-tls.sock")
    conf = write("mt.conf", "socket = unix:%s\nuser =\n" % sock)
    lifecycle(t, "milter-tls", [MILTER_TLS, "-f", "-c", conf], sock, "configuration reloaded", False, os.getuid())


def without_socket(t):
    """No NOTIFY_SOCKET (not under systemd): nothing sent, the daemon lives as before."""
    s, addr = listener(False)
    sock, conf = testd_conf("plain")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    log = sandbox.path("plain.log")
    proc = sandbox.spawn([TESTD, "-f", "-c", conf], log=log, env=env)
    sandbox.wait_for(lambda: "listening" in sandbox.read_text(log), WAIT, what="mw-testd to listen")
    mark = len(sandbox.read_text(log))
    os.kill(proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "configuration reloaded" in sandbox.read_text(log)[mark:], WAIT, what="the reload")
    t.ok(accepts(sock), "without NOTIFY_SOCKET: serves and reloads")
    os.kill(proc.pid, signal.SIGTERM)
    t.eq(proc.wait(WAIT), 0, "without NOTIFY_SOCKET: exits 0")
    t.eq(recv(s, 0.5), None, "without NOTIFY_SOCKET: nothing sent")


t = Tap()
t.run(testd)
t.run(testd_abstract)
t.run(policyd)
t.run(milter)
t.run(without_socket)
t.done()
