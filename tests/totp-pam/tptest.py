"""Helpers for totp-pam's tests: PAM service files for pam_wrapper, users'
state files, logins through real libpam with pamtester, codes from oathtool
at any time (libfaketime freezes the module's clock there), and the
module's pam_syslog lines (pam_wrapper prints them on stderr).

    env = PamEnv()
    env.service("totp", "auth required {module} dir={state}")
    env.user("alice", SECRET)
    r = env.login("totp", "alice", [env.code(SECRET, T)], at=T)
    r.ok, r.rc, r.logs
"""
import base64
import datetime
import os
import re
import select
import subprocess
import sys
import time

TOP = os.environ.get("MW_TOP_SRCDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from mwtest import sandbox  # noqa: E402

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PAM_WRAPPER = LIBDIR + "/libpam_wrapper.so"
FAKETIME = LIBDIR + "/faketime/libfaketime.so.1"
PAM_EXEC = LIBDIR + "/security/pam_exec.so"

# a 20-byte secret, RFC 6238's: "12345678901234567890"
SECRET = base64.b32encode(b"12345678901234567890").decode()
T0 = 1700000012  # 2 s into a 30-second step, 2023-11-14 22:13:32 UTC


def builddir():
    return sandbox.top_builddir()


def module_path():
    return os.path.join(builddir(), "totp-pam", ".libs", "pam_totp.so")


def admin_path():
    return os.path.join(builddir(), "totp-pam", "totp-admin")


def sanitized():
    """Whether the module was built with ASan (it then needs the runtime
    preloaded into pamtester, which is not)."""
    out = subprocess.run(["readelf", "-d", module_path()], capture_output=True, text=True).stdout
    return "libasan" in out


def asan_runtime():
    p = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return os.path.realpath(p) if p and os.path.exists(p) else None


def missing_tools():
    """What the tests need and this machine lacks (a reason to skip)."""
    need = [PAM_WRAPPER, FAKETIME, PAM_EXEC, "/usr/bin/pamtester", "/usr/bin/oathtool"]
    gone = [p for p in need if not os.path.exists(p)]
    if os.geteuid() != 0:
        gone.append("root (state files must be root's)")
    if not os.path.exists(module_path()):
        gone.append(module_path())
    return gone


def utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def code(secret, t, alg="sha1", digits=6, step=30):
    """The TOTP code at unix time t, from oathtool (an independent
    implementation)."""
    out = subprocess.run(["oathtool", "--totp=" + alg.upper(), "-d", str(digits), "-s", "%ds" % step,
                          "-b", secret, "--now", utc(t) + " UTC"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


class Result:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout
        self.err = p.stderr
        self.ok = p.returncode == 0
        # pam_wrapper prints pam_syslog as "... SYSLOG(prio): text"
        self.logs = [m.group(2) for m in re.finditer(r"SYSLOG\((\d)\): (.*)", p.stderr)
                     if "_pam_init_handlers" not in m.group(2)]
        self.log = "\n".join(self.logs)

    def __repr__(self):
        return "rc=%d out=%r logs=%r" % (self.rc, self.out.strip(), self.logs)


_machine_lock = None


def _one_pam_wrapper_user():
    """pam_wrapper copies the PAM configuration to /tmp/pam.<one letter>
    and removes it at exit: test scripts running at once (make -j check)
    would take each other's. One script at a time on this machine holds
    this lock, until it exits."""
    global _machine_lock
    if _machine_lock is None:
        import fcntl
        _machine_lock = open("/tmp/mailward-pam-wrapper.lock", "a")
        fcntl.flock(_machine_lock, fcntl.LOCK_EX)


class PamEnv:
    def __init__(self, name="pam"):
        _one_pam_wrapper_user()
        self.dir = sandbox.mkdir(name)
        self.svc = sandbox.mkdir(name, "svc")
        self.state = sandbox.mkdir(name, "state", mode=0o700)
        self.passwords = os.path.join(self.dir, "passwords")
        self.checker = os.path.join(self.dir, "check-password")
        with open(self.checker, "w") as f:
            # the "password module" after ours: pam_exec with expose_authtok
            # gets PAM_AUTHTOK on stdin (NUL-terminated); it must see the
            # password without the code
            f.write("#!/bin/bash\nIFS= read -r -d '' pw\n"
                    "grep -qxF -- \"$PAM_USER:$pw\" %s\n" % self.passwords)
        os.chmod(self.checker, 0o755)
        open(self.passwords, "w").close()
        self.preload = []
        if sanitized():
            rt = asan_runtime()
            if rt:
                self.preload.append(rt)

    def password_stack(self):
        """A pam.d line that checks the password left in PAM_AUTHTOK."""
        return "auth required %s expose_authtok quiet %s" % (PAM_EXEC, self.checker)

    def set_password(self, user, pw):
        with open(self.passwords, "a") as f:
            f.write("%s:%s\n" % (user, pw))

    def service(self, name, text):
        text = text.format(module=module_path(), state=self.state, password=self.password_stack())
        with open(os.path.join(self.svc, name), "w") as f:
            f.write(text.strip() + "\n")

    def state_path(self, user):
        return os.path.join(self.state, user)

    def user(self, name, secret=SECRET, confirmed=1, extra=""):
        text = "version 1\nsecret %s\nconfirmed %d\n%s" % (secret, confirmed, extra)
        p = self.state_path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o600)
        return p

    def read_state(self, user):
        out = {}
        with open(self.state_path(user)) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                k, v = line.rstrip("\n").split(" ", 1)
                out.setdefault(k, []).append(v)
        return out

    def env(self, at=None, extra=None):
        e = dict(os.environ)
        pre = list(self.preload)
        if at is not None:
            pre.append(FAKETIME)
            e["FAKETIME"] = utc(at)  # no '@': the clock stands still there
            e["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
            e["TZ"] = "UTC"
        pre.append(PAM_WRAPPER)
        e["LD_PRELOAD"] = " ".join(pre)
        e["PAM_WRAPPER"] = "1"
        e["PAM_WRAPPER_SERVICE_DIR"] = self.svc
        e["PAM_WRAPPER_DEBUGLEVEL"] = "2"
        # pamtester is no sanitized program (its leaks are not ours); and
        # ASan's allocator reads CLOCK_MONOTONIC while holding its lock,
        # which deadlocks in libfaketime's first (lazy, allocating) call
        # unless the allocator never times releases to the OS
        e["ASAN_OPTIONS"] = "detect_leaks=0:allocator_release_to_os_interval_ms=-1"
        if extra:
            e.update(extra)
        return e

    def pamtester_argv(self, service, user, ops=("authenticate",), rhost=None):
        return ["pamtester", "-v"] + (["-I", "rhost=" + rhost] if rhost else []) + [service, user] + list(ops)

    def login(self, service, user, answers=(), at=None, ops=("authenticate",), env=None, wrap=None, rhost=None):
        """Runs pamtester; answers are the lines typed at its prompts;
        rhost sets PAM_RHOST."""
        argv = self.pamtester_argv(service, user, ops, rhost)
        if wrap:
            argv = wrap + argv
        p = subprocess.run(argv, input="".join(a + "\n" for a in answers), capture_output=True, text=True,
                           env=self.env(at, env), timeout=60)
        return Result(p)

    def spawn_login(self, service, user, at=None):
        """pamtester started and waiting at its prompt, not answered yet:
        pam_start is done by then. (pam_wrapper 1.1.4 picks its private
        copy of the configuration as /tmp/pam.<one letter> and removes it
        at exit, so two processes starting at once can share, and lose,
        one; once at the prompt, the configuration is read.)"""
        p = subprocess.Popen(self.pamtester_argv(service, user), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env(at), bufsize=0)
        seen = b""
        deadline = time.monotonic() + 10
        while b"code:" not in seen and b"Password:" not in seen:
            # misc_conv prompts on stderr; a login that never gets to its
            # prompt (blocked on a lock) is the test's failure, not a hang
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([p.stderr], [], [], left)[0]:
                break
            chunk = os.read(p.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        return p, seen

    def answer_all(self, started, answers):
        """Answers started logins all at once; [(exit status, output)]."""
        for (p, _), a in zip(started, answers):
            p.stdin.write((a + "\n").encode())
            p.stdin.flush()
        out = []
        for p, seen in started:
            o, e = p.communicate(timeout=120)
            out.append((p.returncode, (seen + o + e).decode(errors="replace")))
        return out

    def admin(self, *args, at=None):
        e = dict(os.environ)
        e["ASAN_OPTIONS"] = "allocator_release_to_os_interval_ms=-1"  # see env()
        if at is not None:
            e.update(LD_PRELOAD=" ".join(self.preload + [FAKETIME]), FAKETIME=utc(at), FAKETIME_DONT_FAKE_MONOTONIC="1", TZ="UTC")
        p = subprocess.run([admin_path(), "-d", self.state] + [str(a) for a in args], capture_output=True,
                           text=True, env=e, timeout=60)
        return p.returncode, p.stdout, p.stderr
