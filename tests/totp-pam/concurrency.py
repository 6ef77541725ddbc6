#!/usr/bin/python3
"""Concurrent logins hammering one user's state file: no lost update.
20 parallel logins, each with its own backup code, must all succeed and
leave all 20 codes recorded as used; 10 parallel logins with one TOTP code
must let exactly one in; 15 parallel wrong codes must count 15 failures."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tptest import SECRET, T0, PamEnv, code, missing_tools  # noqa: E402
from mwtest.tap import Tap  # noqa: E402


def parallel(env, service, user, answers, at):
    """Starts every login first, then answers them all at once."""
    started = []
    for a in answers:
        started.append(env.spawn_login(service, user, at=at))
        if b"code:" not in started[-1][1]:
            # it never got to ask: something holds the user's lock
            env.answer_all(started, answers)
            return [(-1, "login %d never reached its prompt" % len(started))] * len(answers)
    return env.answer_all(started, answers)


def backup_codes(t, env):
    rc, out, err = env.admin("enroll", "zoe", "--backup-codes", "20", "--no-qr", at=T0)
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    codes = [ln.strip() for ln in out.splitlines() if len(ln.strip()) == 11 and ln.strip()[5:6] == "-"]
    rc2, _, err2 = env.admin("confirm", "zoe", code(key, T0), at=T0)
    t.ok(rc == 0 and rc2 == 0 and len(codes) == 20, "enrolled with 20 backup codes", err + err2)
    env.service("conc", "auth required {module} dir={state} lock_timeout=30s")
    res = parallel(env, "conc", "zoe", codes, T0 + 30)
    good = sum(1 for rc, _ in res if rc == 0)
    t.ok(good == 20, "20 parallel logins, each with its own backup code: all succeed",
         "\n".join(out[-1500:] for rc, out in res if rc != 0))
    st = env.read_state("zoe")
    t.eq(len(st.get("backup", [])), 0, "and all 20 codes are recorded as used (no lost update)")
    res = parallel(env, "conc", "zoe", codes[:5], T0 + 31)
    t.eq(sum(1 for rc, _ in res if rc == 0), 0, "none of them works a second time")


def one_code(t, env):
    env.user("yann")
    env.service("conc1", "auth required {module} dir={state} lock_timeout=30s max_failures=0")
    c = code(SECRET, T0)
    res = parallel(env, "conc1", "yann", [c] * 10, T0)
    good = [out for rc, out in res if rc == 0]
    replays = [out for rc, out in res if rc != 0 and "replay" in out]
    t.eq(len(good), 1, "10 parallel logins with the same code: exactly one gets in")
    t.eq(len(replays), 9, "the other nine are refused as replays")
    res = parallel(env, "conc1", "yann", ["000000"] * 15, T0 + 1)
    t.eq(env.read_state("yann")["failures"], ["15"],
         "9 replays and 15 parallel wrong codes: 15 failures counted (replays are no guesses), none lost")
    env.user("yves")
    env.service("conc3", "auth required {module} dir={state} lock_timeout=30s max_failures=3 lockout=300")
    c = code(SECRET, T0 + 60)
    res = parallel(env, "conc3", "yves", [c] * 10, T0 + 60)
    t.eq(sum(1 for rc, _ in res if rc == 0), 1, "max_failures=3, 10 parallel logins with one code: one gets in")
    t.eq(sum(1 for rc, out in res if rc != 0 and "replay" in out), 9, "the other nine see a replay refusal")
    r = env.login("conc3", "yves", [code(SECRET, T0 + 90)], at=T0 + 90)
    t.ok(r.ok and "locked out" not in r.log, "and nobody is locked out: the next code works", r)


def prompt_holds_no_lock(t, env):
    """A user sitting at the code prompt must not hold up the user's other
    logins (nor let them go on unlocked after lock_timeout)."""
    env.user("walt")
    env.service("slow", "auth required {module} dir={state} lock_timeout=2s")
    waiting = env.spawn_login("slow", "walt", at=T0)
    t.ok(b"code:" in waiting[1], "login A waits at its prompt")
    other = env.login("slow", "walt", [code(SECRET, T0)], at=T0)
    t.ok(other.ok and "WITHOUT replay" not in other.log,
         "login B, meanwhile, is checked and recorded at once", other)
    (rc, out), = env.answer_all([waiting], [code(SECRET, T0)])
    t.ok(rc != 0 and "replay" in out, "then A, answering with the code B used, is refused as a replay", out[-800:])


def busy_lock(t, env):
    """Another process holds the user's lock past lock_timeout: the login
    is refused, never checked without the lock (which would accept one code
    many times and leave guesses uncounted)."""
    import fcntl
    env.user("lena")
    env.service("busy", "auth required {module} dir={state} lock_timeout=1s max_failures=3 lockout=600")
    lock_path = os.path.join(env.state, ".lena.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        c = code(SECRET, T0)
        res = [env.login("busy", "lena", [c], at=T0 + i) for i in range(3)]
        t.ok(not any(r.ok for r in res), "lock held elsewhere: one code is not accepted three times",
             "\n".join(map(repr, res)))
        t.ok(all("refused: cannot lock the state" in r.log and "still held" in r.log for r in res),
             "each refusal says the lock is held", res[0])
        res = [env.login("busy", "lena", ["%06d" % i], at=T0 + 3 + i) for i in range(6)]
        res.append(env.login("busy", "lena", [code(SECRET, T0 + 30)], at=T0 + 30))
        t.ok(not any(r.ok for r in res) and not any("wrong code" in r.log for r in res),
             "six guesses then the right code: none is even checked", "\n".join(map(repr, res)))
    finally:
        os.close(fd)
    for i in range(3):
        r = env.login("busy", "lena", ["%06d" % (i + 1)], at=T0 + 31 + i)
    t.contains(r.log, "locked out for 600s after 3 failures", "lock free again: three wrong codes lock lena out")
    r = env.login("busy", "lena", [code(SECRET, T0 + 60)], at=T0 + 60)
    t.ok(not r.ok and "locked out for" in r.log, "and then the right code is refused", r)


def main():
    t = Tap()
    gone = missing_tools()
    if gone:
        t.skip("concurrent logins", "missing: " + ", ".join(gone))
        t.done()
    env = PamEnv("conc")
    t.run(backup_codes, env)
    t.run(one_code, env)
    t.run(prompt_holds_no_lock, env)
    t.run(busy_lock, env)
    t.done()


main()
