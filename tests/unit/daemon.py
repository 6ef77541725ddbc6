#!/usr/bin/python3
"""The life every mailward daemon shares, tested on mw-testd (built from
common/ only): strict configuration with file:line errors and exit 2, -n,
-C, socket permissions, pid file, privilege drop, SIGHUP reload, SIGTERM."""
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
from mwtest import sandbox  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

TESTD = os.path.join(sandbox.top_builddir(), "tests/unit/mw-testd")
NOBODY = pwd.getpwnam("nobody")


def write(name, text):
    p = sandbox.path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def run(*args):
    p = subprocess.run([TESTD] + list(args), capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


def bad_configs(t):
    cases = [
        ("unknown key", "listen = unix:/tmp/x.sock\nbogus = 1\n", "bad.conf:2: unknown key \"bogus\""),
        ("bad socket spec", "listen = inet:0@127.0.0.1\n",
         "bad.conf:1: listen = inet:0@127.0.0.1: port must be a number from 1 to 65535"),
        ("bad socket type", "listen = tcp:25\n",
         "bad.conf:1: listen = tcp:25: unknown socket type: expected unix:, local:, inet: or inet6:"),
        ("bad log level", "listen = inet:25\nlog_level = loud\n",
         "bad.conf:2: log_level = loud: expected one of: debug info warning error"),
        ("bad socket mode", "listen = inet:25\nsocket_mode = rw-rw----\n",
         "bad.conf:2: socket_mode = rw-rw----: expected an octal file mode such as 0660"),
        ("missing required key", "greeting = hi\n", "bad.conf:0: required key listen is not set"),
        ("bad include", "listen = inet:25\ninclude = nowhere.conf\n",
         "bad.conf:2: cannot read configuration file"),
    ]
    for name, text, want in cases:
        path = write("bad.conf", text)
        rc, out, err = run("-C", "-c", path)
        err = err.replace(sandbox.tmpdir() + "/", "")
        t.eq(rc, 2, "%s: exit status 2" % name)
        t.ok(err.startswith(want), "%s: says %r" % (name, want), "stderr: %r" % err)

    rc, out, err = run("-C", "-c", sandbox.path("missing.conf"))
    t.eq(rc, 2, "missing file: exit status 2")
    t.contains(err, "missing.conf:0: cannot read configuration file", "missing file: file:line message")
    rc, out, err = run("-C", "-c", sandbox.mkdir("adir"))
    t.ok(rc == 2 and "adir:0:" in err and "not a regular file" in err, "a directory is refused", err)
    # unreadable for the user the daemon runs as
    os.chmod(write("secret.conf", "listen = inet:25\n"), 0o600)
    p = subprocess.run([sandbox.for_user(TESTD), "-C", "-c", sandbox.path("secret.conf")],
                       capture_output=True, text=True,
                       preexec_fn=lambda: (os.setgid(NOBODY.pw_gid), os.setuid(NOBODY.pw_uid)))
    t.ok(p.returncode == 2 and "secret.conf:0: cannot read configuration file" in p.stderr
         and "Permission denied" in p.stderr, "unreadable file: file:0 and the reason", p.stderr)
    rc, out, err = run("-x")
    t.eq(rc, 2, "unknown option: exit status 2")


def check_and_print(t):
    path = write("good.conf", "# comment\nlisten = unix:/run/x.sock\ngreeting = hi\n  there\n")
    rc, out, err = run("-C", "-c", path)
    t.ok(rc == 0 and out.strip() == path + ": configuration OK", "-C on a good file: OK, exit 0", out + err)
    rc, out, err = run("-n", "-c", path)
    t.eq(rc, 0, "-n exits 0")
    t.contains(out, "greeting = hi there\n", "-n shows the value set, continuation joined")
    t.contains(out, "log_level = info\n", "-n shows defaults")
    t.contains(out, "socket_mode = 0660\n", "-n shows the daemon keys")


def connect(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        return s.recv(200).decode()


def running_daemon(t):
    run_dir = sandbox.mkdir("run")
    os.chown(run_dir, NOBODY.pw_uid, NOBODY.pw_gid)  # like /run/mailward owned by the daemon
    sock = os.path.join(run_dir, "testd.sock")
    pidf = os.path.join(run_dir, "testd.pid")
    conf = write("run.conf", "listen = unix:%s\nuser = nobody\nsocket_group = nogroup\n"
                 "socket_mode = 0660\npid_file = %s\ngreeting = first\n" % (sock, pidf))
    log = sandbox.path("testd.log")
    proc = sandbox.spawn([TESTD, "-f", "-c", conf], log=log)
    sandbox.wait_for(lambda: os.path.exists(sock) and os.path.exists(pidf) and open(pidf).read(), 10,
                     what="mw-testd to listen")
    sandbox.wait_for(lambda: "listening" in open(log).read(), 10, what="mw-testd to log")
    t.eq(connect(sock), "first uid=%d\n" % NOBODY.pw_uid, "serves connections as user nobody")
    st = os.stat(sock)
    t.ok(st.st_mode & 0o777 == 0o660 and st.st_uid == NOBODY.pw_uid and st.st_gid == 65534,
         "socket owner nobody, group nogroup, mode 0660", oct(st.st_mode))
    t.eq(open(pidf).read().strip(), str(proc.pid), "pid file holds the daemon's pid")
    status = open("/proc/%d/status" % proc.pid).read()
    uids = [line.split()[1:] for line in status.splitlines() if line.startswith(("Uid:", "Gid:"))]
    t.eq(uids, [[str(NOBODY.pw_uid)] * 4, [str(NOBODY.pw_gid)] * 4], "real, effective, saved uid and gid dropped")
    groups = [line for line in status.splitlines() if line.startswith("Groups:")][0].split()[1:]
    t.eq(groups, [str(NOBODY.pw_gid)], "supplementary groups dropped")

    # a second instance must refuse, whatever it is given
    rc, out, err = run("-f", "-c", conf)
    t.ok(rc != 0 and "another process is listening" in err, "second instance refused (socket in use)", err)

    # SIGHUP: new configuration; a broken one keeps the old
    write("run.conf", open(conf).read().replace("greeting = first", "greeting = second"))
    os.kill(proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "configuration reloaded" in open(log).read(), 10, what="the reload")
    t.eq(connect(sock), "second uid=%d\n" % NOBODY.pw_uid, "SIGHUP reloads the configuration")
    write("run.conf", open(conf).read() + "bogus = yes\n")
    os.kill(proc.pid, signal.SIGHUP)
    sandbox.wait_for(lambda: "reload failed" in open(log).read(), 10, what="the failed reload")
    t.contains(open(log).read(), "run.conf:7: unknown key \"bogus\"", "a bad reload is logged with file:line")
    t.eq(connect(sock), "second uid=%d\n" % NOBODY.pw_uid, "a bad reload keeps the running configuration")

    # SIGTERM: clean exit, socket and pid file gone
    os.kill(proc.pid, signal.SIGTERM)
    rc = proc.wait(10)
    t.eq(rc, 0, "SIGTERM: exit status 0")
    t.ok(not os.path.exists(sock) and not os.path.exists(pidf), "SIGTERM: socket and pid file removed")


def background(t):
    run_dir = sandbox.mkdir("bg")
    sock = os.path.join(run_dir, "bg.sock")
    pidf = os.path.join(run_dir, "bg.pid")
    conf = write("bg.conf", "listen = unix:%s\npid_file = %s\n" % (sock, pidf))
    rc, out, err = run("-c", conf)
    t.eq(rc, 0, "without -f the parent returns at once with status 0")
    # no waiting: the pid file must name the child by the time the parent exits
    text = open(pidf).read()
    pid = int(text) if text.strip().isdigit() else 0
    t.ok(pid > 0 and os.path.exists("/proc/%d" % pid), "when the parent returns, the pid file names the running daemon", text)
    sandbox.wait_for(lambda: os.path.exists(sock), 10, what="the socket")
    t.ok(connect(sock).startswith("hello uid=0"), "the detached daemon serves")
    t.eq(os.getsid(pid), pid, "the daemon leads its own session")
    rc, out, err = run("-f", "-c", write("bg2.conf", "listen = unix:%s/other.sock\npid_file = %s\n" % (run_dir, pidf)))
    t.ok(rc != 0 and "already running (pid %d)" % pid in err, "a locked pid file refuses a second instance", err)
    os.kill(pid, signal.SIGTERM)
    sandbox.wait_for(lambda: not os.path.exists("/proc/%d" % pid), 10, what="the daemon to exit")
    t.ok(True, "the detached daemon stops on SIGTERM")


t = Tap()
t.run(bad_configs)
t.run(check_and_print)
t.run(running_daemon)
t.run(background)
t.done()
