"""One temporary directory per test run, free loopback ports, and processes
that are always stopped: on normal exit, on an exception and on SIGTERM or
SIGINT. MW_KEEP=1 keeps the directory for a post-mortem."""
import atexit
import fcntl
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


# Ports for servers a test starts. Binding port 0 and closing hands out a
# port the kernel may give again at once (twice to one Dovecot, or to another
# test under make -j), and clients' outgoing connections take ephemeral ports
# too. So ports come from below the ephemeral range (where the kernel never
# picks one by itself), in turn, from one counter shared by every test
# process on the machine (a file under flock): a port comes round again only
# after the whole range (thousands) has been handed out. Each port handed out
# also stays flock'ed by its process while it lives, and is checked free by
# binding it, so a port still in use after the counter wrapped is skipped.
PORT_DIR = os.environ.get("MW_PORT_DIR", "/tmp/mailward-ports")
_held = {}  # port -> open lock file, held until this process exits


def _port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low - 1 - 10000 >= 1024:
        return low - 10000, low - 1
    return 61000, 65535  # a machine whose ephemeral range starts low


def _bindable(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        try:
            with socket.socket(fam, kind) as s:
                if kind == socket.SOCK_STREAM:
                    # as servers bind: a port in TIME_WAIT is usable
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host="127.0.0.1"):
    """A loopback port no other test on the machine has been given lately
    nor is using (TCP and UDP), never the same one twice in a process."""
    os.makedirs(PORT_DIR, mode=0o1777, exist_ok=True)
    low, high = _port_range()
    with open(os.path.join(PORT_DIR, "next"), "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        try:
            port = int(counter.read().strip())
        except ValueError:
            port = low
        for _ in range(high - low + 1):
            if not low <= port <= high:
                port = low
            candidate, port = port, port + 1
            if candidate in _held:
                continue
            lock = open(os.path.join(PORT_DIR, str(candidate)), "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live test process holds it
                lock.close()
                continue
            if not _bindable(host, candidate):
                lock.close()
                continue
            _held[candidate] = lock
            counter.seek(0)
            counter.truncate()
            counter.write("%d\n" % port)
            return candidate
    raise RuntimeError("no free port in %d-%d" % (low, high))


def address_in_use(text):
    """Whether a server's output says it could not bind its port (another
    program on the machine took it): start it again on new ports."""
    return "Address already in use" in text or "EADDRINUSE" in text


def with_free_port(start, tries=5):
    """Calls start(port) with a port from free_port(), and again with a new
    one while it fails because another program took the port (its error
    says "Address already in use"). Returns (port, what start returned)."""
    for attempt in range(tries):
        port = free_port()
        try:
            return port, start(port)
        except Exception as e:
            if attempt == tries - 1 or not address_in_use(str(e)):
                raise


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


def listens(pids, port):
    """Whether one of the processes pids holds a listening TCP socket on
    port: the server we started, not whatever else answers there."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % fields[9])
        except OSError:
            pass
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                        return True
                except OSError:
                    pass
        except OSError:
            pass
    return False


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
