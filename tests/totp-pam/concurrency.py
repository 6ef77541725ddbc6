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
    procs = [env.spawn_login(service, user, [a], at=at) for a in answers]
    results = []
    for p, inp in procs:
        p.stdin.write(inp)
        p.stdin.flush()
    for p, inp in procs:
        out, err = p.communicate(timeout=120)
        results.append((p.returncode, out + err))
    return results


def backup_codes(t, env):
    rc, out, err = env.admin("enroll", "zoe", "--backup-codes", "20", "--no-qr", at=T0)
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    codes = [ln.strip() for ln in out.splitlines() if len(ln.strip()) == 11 and ln.strip()[5:6] == "-"]
    rc2, _, err2 = env.admin("confirm", "zoe", code(key, T0), at=T0)
    t.ok(rc == 0 and rc2 == 0 and len(codes) == 20, "enrolled with 20 backup codes", err + err2)
    env.service("conc", "auth required {module} dir={state} lock_timeout=30s")
    res = parallel(env, "conc", "zoe", codes, T0 + 30)
    good = sum(1 for rc, _ in res if rc == 0)
    t.eq(good, 20, "20 parallel logins, each with its own backup code: all succeed")
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
    t.eq(env.read_state("yann")["failures"], ["24"],
         "9 replays and 15 parallel wrong codes: 24 failures counted, none lost")


def main():
    t = Tap()
    gone = missing_tools()
    if gone:
        t.skip("concurrent logins", "missing: " + ", ".join(gone))
        t.done()
    env = PamEnv("conc")
    t.run(backup_codes, env)
    t.run(one_code, env)
    t.done()


main()
