"""One temporary directory per test run, free loopback ports, and processes
that are always stopped: on normal exit, on an exception and on SIGTERM or
SIGINT. MW_KEEP=1 keeps the directory for a post-mortem."""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_dir = None
_procs = []     # Popen objects we started
_cleanups = []  # callables, run last-in first-out


def top_srcdir():
    return os.environ.get("MW_TOP_SRCDIR") or os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def top_builddir():
    return os.environ.get("MW_TOP_BUILDDIR") or top_srcdir()


def tmpdir():
    """The run's directory: traversable by the unprivileged postfix and
    dovecot users (mkdtemp makes it 0700 root)."""
    global _dir
    if _dir is None:
        _dir = tempfile.mkdtemp(prefix="mw-test-")
        os.chmod(_dir, 0o755)
    return _dir


def path(*parts):
    p = os.path.join(tmpdir(), *parts)
    return p


def mkdir(*parts, mode=0o755):
    p = path(*parts)
    os.makedirs(p, exist_ok=True)
    os.chmod(p, mode)
    return p


def for_user(program):
    """A copy of the executable program inside the run's directory, for
    running it as another user: the tree itself may sit below a directory
    that user cannot enter (a clone in /root, mode 0700), the run's
    directory is traversable by everyone."""
    d = mkdir("bin")
    copy = os.path.join(d, os.path.basename(program))
    if not os.path.exists(copy):
        shutil.copy(program, copy)
        os.chmod(copy, 0o755)
    return copy


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def read_text(path):
    """A file's text ("" while it does not exist yet): a log a test is
    watching, written by a process that may not have created it."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def spawn(argv, log=None, env=None, **kw):
    """Starts argv in its own process group; stopped at exit."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                         env=env, start_new_session=True, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=5):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    if p in _procs:
        _procs.remove(p)


def at_cleanup(func):
    _cleanups.append(func)


def wait_for(cond, timeout=10, interval=0.02, what="condition"):
    """Polls cond() until it is true; raises TimeoutError naming what."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_port(port, host="127.0.0.1", timeout=10):
    def up():
        try:
            with socket.create_connection((host, port), 0.2):
                return True
        except OSError:
            return False
    return wait_for(up, timeout, what="%s:%s to listen" % (host, port))


def _cleanup():
    while _cleanups:
        f = _cleanups.pop()
        try:
            f()
        except Exception as e:  # cleanup must go on
            print("# cleanup: %s" % e, file=sys.stderr)
    for p in list(_procs):
        stop(p)
    if _dir and not os.environ.get("MW_KEEP"):
        shutil.rmtree(_dir, ignore_errors=True)
    elif _dir:
        print("# MW_KEEP: sandbox kept in %s" % _dir, file=sys.stderr)


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)
