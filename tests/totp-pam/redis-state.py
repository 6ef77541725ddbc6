#!/usr/bin/python3
"""pam_totp.so with state=redis: two "servers" (two PAM configurations,
each with its own copy of the enrollment file) share one real Redis. A code
or backup code used on one is refused on the other, the lockout counts
failures on both, parallel logins on both with one code let exactly one
in; Redis killed, or stalled in the middle of a login, does what
on_redis_error says, within redis_timeout."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tptest  # noqa: E402
from tptest import SECRET, T0, PamEnv, code  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

t = Tap() if __name__ == "__main__" else None
_n = [0]


def setup(redis, extra=""):
    _n[0] += 1
    a, b = PamEnv("redis-a%d" % _n[0]), PamEnv("redis-b%d" % _n[0])
    # redis-cluster.py passes a cluster: its seeds and redis_mode=cluster
    servers = getattr(redis, "servers", None) or "127.0.0.1:%d" % redis.port
    line = ("auth required {module} dir={state} state=redis redis_servers=%s "
            "redis_timeout=300ms max_failures=3 lockout=600 %s %s" % (servers, getattr(redis, "mode_arg", ""), extra))
    for env in (a, b):
        env.service("mail", line)
    return a, b


def share(a, b, user):
    """The enrollment is copied to the other server (as a config tool would)."""
    shutil.copy2(a.state_path(user), b.state_path(user))
    os.chmod(b.state_path(user), 0o600)


def replay_across_servers(t, redis):
    a, b = setup(redis)
    a.user("ann")
    share(a, b, "ann")
    c = code(SECRET, T0)
    r = a.login("mail", "ann", [c], at=T0)
    t.ok(r.ok, "server A accepts ann's code", r)
    r = b.login("mail", "ann", [c], at=T0 + 1)
    t.ok(not r.ok and "replay" in r.log, "server B refuses the same code (replay, shared in Redis)", r)
    r = b.login("mail", "ann", [code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(r.ok, "server B accepts the next step's code", r)
    r = a.login("mail", "ann", [c], at=T0 + 31)
    t.ok(not r.ok, "server A refuses the older code too", r)
    h = redis.cli("HGET", "totp:{ann}", "last_step").strip()
    t.eq(h, str((T0 + 30) // 30), "Redis holds the last step accepted, in one hash per user")


def backup_across_servers(t, redis):
    a, b = setup(redis)
    rc, out, err = a.admin("enroll", "bea", "--backup-codes", "2", "--no-qr", at=T0)
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    codes = [ln.strip() for ln in out.splitlines() if len(ln.strip()) == 11 and ln.strip()[5:6] == "-"]
    a.admin("confirm", "bea", code(key, T0), at=T0)
    share(a, b, "bea")
    r = a.login("mail", "bea", [codes[0]], at=T0 + 60)
    t.ok(r.ok, "server A accepts a backup code", r)
    r = b.login("mail", "bea", [codes[0]], at=T0 + 61)
    t.ok(not r.ok, "server B refuses the same backup code (used, in Redis)", r)
    r = b.login("mail", "bea", [codes[1]], at=T0 + 62)
    t.ok(r.ok, "server B accepts the other one", r)
    fields = redis.cli("HKEYS", "totp:{bea}").split()
    t.ok(sum(1 for f in fields if f.startswith("used:")) == 2 and not any(c.replace("-", "") in " ".join(fields)
                                                                          for c in codes),
         "Redis records used backup codes by a hash prefix, never the code", fields)


def lockout_across_servers(t, redis):
    a, b = setup(redis)
    a.user("cid")
    share(a, b, "cid")
    wrong = "%06d" % ((int(code(SECRET, T0)) + 1) % 1000000)
    a.login("mail", "cid", [wrong], at=T0)
    a.login("mail", "cid", [wrong], at=T0 + 1)
    r = b.login("mail", "cid", [wrong], at=T0 + 2)
    t.ok(not r.ok and "locked out" in r.log, "third failure (on the other server) locks cid out", r)
    r = a.login("mail", "cid", [code(SECRET, T0 + 3)], at=T0 + 3)
    t.ok(not r.ok and "locked" in r.log, "server A refuses even the right code while locked", r)
    r = a.login("mail", "cid", [code(SECRET, T0 + 700)], at=T0 + 700)
    t.ok(r.ok, "after the lockout the right code works", r)
    for i in range(3):
        r = (a, b)[i % 2].login("mail", "cid", [wrong], at=T0 + 710 + i)
    t.contains(r.log, "locked out for 600s after 3 failures (lockout 1 in a row)", "a success starts the back-off anew")
    for i in range(3):
        r = (a, b)[i % 2].login("mail", "cid", [wrong], at=T0 + 1400 + i)
    t.contains(r.log, "locked out for 1200s after 3 failures (lockout 2 in a row)",
               "the next lockout in a row, on either server, twice as long")
    t.eq(redis.cli("HGET", "totp:{cid}", "lockouts").strip(), "2", "Redis counts the lockouts in a row")


def per_address(t, redis):
    """Failures from one address are counted across servers: the address is
    blocked after rhost_max_failures (3), long before the user's lockout
    (max_failures=10); the owner logs in from another address."""
    a, b = setup(redis, "max_failures=10")
    a.user("jon")
    share(a, b, "jon")
    bad = "198.51.100.7"
    res = [(a, b)[i % 2].login("mail", "jon", ["%06d" % (111111 + i)], at=T0 + i, rhost=bad) for i in range(5)]
    t.ok(not any(r.ok for r in res), "five guesses from one address on two servers: refused")
    t.contains(res[2].log, "address blocked for 900s after 3 failures from it", "the third blocks the address")
    t.ok(all("refused: address blocked for" in r.log and "wrong code" not in r.log for r in res[3:]),
         "the next ones are refused unchecked, on either server", res[3:])
    t.eq(redis.cli("HGET", "totp:{jon}", "failures").strip(), "3", "the user has 3 of 10 failures, not locked")
    r = b.login("mail", "jon", [code(SECRET, T0 + 30)], at=T0 + 30, rhost="192.0.2.1")
    t.ok(r.ok, "the owner, from another address, logs in with the right code", r)
    r = a.login("mail", "jon", [code(SECRET, T0 + 60)], at=T0 + 60, rhost=bad)
    t.ok(not r.ok and "address blocked" in r.log, "from the blocked address even the right code is refused", r)
    r = a.login("mail", "jon", [code(SECRET, T0 + 910)], at=T0 + 910, rhost=bad)
    t.ok(r.ok, "after rhost_lockout the address logs in again", r)
    t.eq(redis.cli("HGET", "totp:{jon}:rhost", bad).strip(), "", "and its success clears its count")


def parallel_one_code(t, redis):
    a, b = setup(redis)
    a.user("dov")
    share(a, b, "dov")
    c = code(SECRET, T0 + 90)
    procs = []
    for i in range(10):
        env = a if i % 2 else b
        p = subprocess.Popen(env.pamtester_argv("mail", "dov"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env.env(T0 + 90))
        procs.append(p)
    for p in procs:
        p.stdin.write(c + "\n")
        p.stdin.flush()
    ok = sum(1 for p in procs if p.communicate(timeout=60) is not None and p.returncode == 0)
    t.eq(ok, 1, "10 parallel logins with one code on two servers: exactly one gets in")


def parallel_guesses(t, redis):
    """50 wrong guesses at once, half on each server, max_failures=3: at
    most 3 are checked at all (the budget is taken in Redis before each
    check), the user ends locked out, and the right code is refused."""
    # a generous redis_timeout: 50 logins at once on a loaded machine must
    # not turn into Redis timeouts
    a, b = setup(redis, "redis_timeout=10s")
    a.user("hal")
    share(a, b, "hal")
    right = code(SECRET, T0 + 120)
    guesses = ["%06d" % ((int(right) + 1 + i) % 1000000) for i in range(50)]
    started = [(a if i % 2 else b).spawn_login("mail", "hal", at=T0 + 120) for i in range(50)]
    t.ok(all(b"code:" in seen for _, seen in started), "50 logins wait at their prompts, on two servers")
    res = a.answer_all(started, guesses)
    checked = sum(1 for _, out in res if "refused: wrong code" in out)
    unchecked = sum(1 for _, out in res if "refused unchecked" in out or "refused: locked out for" in out)
    t.ok(not any(rc == 0 for rc, _ in res), "none of the 50 wrong guesses gets in")
    t.ok(1 <= checked <= 3, "at most max_failures=3 of them are checked (%d were)" % checked,
         "\n".join(out[-400:] for _, out in res[:3]))
    t.eq(checked + unchecked, 50, "the others are refused unchecked (checks in progress, or locked out)")
    lu = int(redis.cli("HGET", "totp:{hal}", "locked_until").strip() or 0)
    t.ok(lu > T0 + 120, "hal is locked out in Redis", lu)
    t.eq(redis.cli("ZCARD", "totp:{hal}:checks").strip(), "0", "no check is left in progress")
    r = a.login("mail", "hal", [right], at=T0 + 121)
    t.ok(not r.ok and "locked out" in r.log, "then even the right code is refused", r)


class HoldingProxy:
    """A loopback TCP proxy in front of Redis that holds the first command
    containing `marker` until release(): a deterministic moment between a
    module's check and its record."""

    def __init__(self, redis_port, marker):
        import socket
        import threading
        self.marker, self.redis_port = marker, redis_port
        self.held, self.go = threading.Event(), threading.Event()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.redis_port))
            threading.Thread(target=self._pump, args=(c, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, c, False), daemon=True).start()

    def _pump(self, src, dst, upward):
        tail = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(1)
                except OSError:
                    pass
                return
            if upward and not self.held.is_set() and self.marker in tail + data:
                self.held.set()
                self.go.wait(60)
            tail = data[-64:]
            try:
                dst.sendall(data)
            except OSError:
                return

    def release(self):
        self.go.set()

    def close(self):
        self.go.set()
        self.srv.close()


def success_honours_lockout(t, redis):
    """A lockout that starts between a right code's check and its record
    (here set by hand while the proxy holds the record) is honoured: the
    code is refused, and the lockout stays."""
    proxy = HoldingProxy(redis.port, b"HSETNX")
    try:
        a = PamEnv("redis-hold")
        a.service("mail", "auth required {module} dir={state} state=redis redis_servers=127.0.0.1:%d "
                  "redis_timeout=30s max_failures=3 lockout=600" % proxy.port)
        a.user("ivy")
        login = a.spawn_login("mail", "ivy", at=T0 + 150)
        login[0].stdin.write((code(SECRET, T0 + 150) + "\n").encode())
        login[0].stdin.flush()
        t.ok(proxy.held.wait(60), "the module's record of the right code is held at the proxy")
        redis.cli("HSET", "totp:{ivy}", "locked_until", str(T0 + 900))
        proxy.release()
        o, e = login[0].communicate(timeout=60)
        out = (login[1] + o + e).decode(errors="replace")
        t.ok(login[0].returncode != 0 and "locked out meanwhile" in out,
             "locked out meanwhile: the right code is refused", out[-1500:])
        t.eq(redis.cli("HGET", "totp:{ivy}", "locked_until").strip(), str(T0 + 900), "and the lockout stays")
        t.eq(redis.cli("HGET", "totp:{ivy}", "last_step").strip(), "", "the code's step is not taken")
    finally:
        proxy.close()


def app_password(t, redis):
    a, b = setup(redis, "app_passwords=mail")
    a.user("eve")
    rc, out, err = a.admin("app-password", "add", "eve", "phone", at=T0)
    pw = out.strip().splitlines()[-1].strip()
    share(a, b, "eve")
    r = b.login("mail", "eve", [pw], at=T0 + 5)
    t.ok(r.ok, "an app password on server B", r)
    t.eq(redis.cli("HGET", "totp:{eve}", "app:phone").strip(), str(T0 + 5), "its last use is recorded in Redis")


def redis_down(t):
    redis = Redis()
    a, _ = setup(redis, "on_redis_error=refuse")
    a.user("fay")
    a2, _ = setup(redis, "on_redis_error=accept_without_replay")
    a2.user("fay")
    redis.kill()
    start = time.monotonic()
    r = a.login("mail", "fay", [code(SECRET, T0)], at=T0)
    t.ok(not r.ok and "redis" in r.log and "on_redis_error=refuse" in r.log,
         "Redis down, on_redis_error=refuse: a valid code is refused, logged", r)
    t.ok(time.monotonic() - start < 10, "... at once (connection refused)")
    r = a2.login("mail", "fay", [code(SECRET, T0)], at=T0)
    t.ok(r.ok and "WITHOUT replay protection" in r.log,
         "Redis down, accept_without_replay: a valid code is accepted, loudly logged", r)
    redis.start()


def redis_stalls_mid_login(t):
    """Redis stops answering while the module talks to it (SIGSTOP: the
    connection is accepted by the kernel, no reply comes)."""
    redis = Redis()
    a, _ = setup(redis, "on_redis_error=refuse")
    a.user("gus")
    a2, _ = setup(redis, "on_redis_error=accept_without_replay")
    a2.user("gus")
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        r = a.login("mail", "gus", [code(SECRET, T0)], at=T0)
        took = time.monotonic() - start
        t.ok(not r.ok and "redis" in r.log, "Redis stalled, refuse: refused", r)
        t.ok(took < 10, "... bounded by redis_timeout, not hanging (%.1fs)" % took)
        r = a2.login("mail", "gus", [code(SECRET, T0 + 30)], at=T0 + 30)
        t.ok(r.ok and "WITHOUT replay protection" in r.log, "Redis stalled, accept_without_replay: accepted", r)
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    r = a.login("mail", "gus", [code(SECRET, T0 + 60)], at=T0 + 60)
    t.ok(r.ok, "Redis answers again: logins are recorded in Redis again", r)
    t.eq(redis.cli("HGET", "totp:{gus}", "last_step").strip(), str((T0 + 60) // 30), "... the step is in Redis")


if __name__ != "__main__":
    pass  # imported by redis-cluster.py for its cases
elif tptest.missing_tools():
    gone = tptest.missing_tools()
    t.skip("totp-pam with Redis", "missing: " + ", ".join(gone))
else:
    shared = Redis()
    for f in (replay_across_servers, backup_across_servers, lockout_across_servers, per_address, parallel_one_code,
              parallel_guesses, success_honours_lockout, app_password):
        t.run(f, shared)
    t.run(redis_down)
    t.run(redis_stalls_mid_login)
if t is not None:
    t.done()
