#!/usr/bin/python3
"""pam_totp.so through real libpam (pamtester under pam_wrapper), with
codes from oathtool and the module's clock set by libfaketime: every mode,
the window, replay, backup codes, lockout, app passwords, file checks, a
corrupt file, a full and a read-only disk, and the account phase."""
import base64
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tptest import SECRET, T0, PamEnv, code, missing_tools  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

env = None


def prompt_mode(t):
    env.service("prompt", "auth required {module} dir={state}")
    env.user("alice")
    c = code(SECRET, T0)
    r = env.login("prompt", "alice", [c], at=T0)
    t.ok(r.ok, "prompt: the current code is accepted", r)
    t.contains(r.log, "user alice service prompt rhost -: code accepted", "prompt: and logged")
    st = env.read_state("alice")
    t.eq(st["last_step"], [str(T0 // 30)], "prompt: the accepted step is recorded")
    t.eq(st["last_login"], [str(T0)], "prompt: last login recorded")
    r = env.login("prompt", "alice", [c], at=T0 + 5)
    t.ok(not r.ok, "replay: the same code is refused a second time", r)
    t.eq(env.read_state("alice")["failures"], ["0"], "replay: not counted as a failure (no guess)")
    t.contains(r.log, "code already used (replay)", "replay: logged as a replay")
    r = env.login("prompt", "alice", [code(SECRET, T0 - 30)], at=T0 + 6)
    t.ok(not r.ok, "replay: an older code of the window is refused after a newer one")
    r = env.login("prompt", "alice", [code(SECRET, T0 + 60)], at=T0 + 37)
    t.ok(r.ok, "window: the next step's code is accepted (clock one step ahead)", r)
    r = env.login("prompt", "alice", ["%s %s" % (code(SECRET, T0 + 90)[:3], code(SECRET, T0 + 90)[3:])], at=T0 + 90)
    t.ok(r.ok, "prompt: a code typed as '123 456' is accepted", r)
    for secret in (SECRET, "JBSWY3DPEHPK3PXP"):
        t.ok(secret not in r.err + r.out, "no secret in the output or logs")
    r = env.login("prompt", "alice", [""], at=T0 + 120)
    t.ok(not r.ok, "prompt: an empty answer is refused")
    r = env.login("prompt", "alice", ["abc"], at=T0 + 120)
    t.ok(not r.ok and "not a code" in r.log, "prompt: 'abc' is not a code", r)
    r = env.login("prompt", "alice", [code(SECRET, T0 + 150)], at=T0 + 150, rhost="192.0.2.7")
    t.contains(r.log, "user alice service prompt rhost 192.0.2.7: code accepted", "the client's address is logged")
    r = env.login("prompt", "alice", ["000000"], at=T0 + 151, rhost="192.0.2.7\x01")
    t.contains(r.log, "rhost 192.0.2.7\\x01: refused: wrong code", "a control character in rhost is escaped")


def many_times(t):
    """oathtool's codes at many times, for every algorithm and length."""
    env.service("many", "auth required {module} dir={state} window=0")
    times = sorted({T0 + 30 * k * 7919 % (86400 * 365 * 60) + 3 for k in range(1, 13)} |
                   {1, 86400 * 365 * 30 + 1, 2 ** 31 + 5, 4102444800 + 1})
    failures = []
    for alg, digits, step in (("sha1", 6, 30), ("sha256", 8, 30), ("sha512", 6, 60), ("sha1", 8, 45)):
        user = "many-%s-%d-%d" % (alg, digits, step)
        key = base64.b32encode((b"1234567890" * 7)[:{"sha1": 20, "sha256": 32, "sha512": 64}[alg]]).decode()
        env.user(user, key, extra="algorithm %s\ndigits %d\nstep %d\n" % (alg, digits, step))
        for tm in times:
            tm = tm - tm % step + 1
            c = code(key, tm, alg, digits, step)
            r = env.login("many", user, [c], at=tm)
            if not r.ok:
                failures.append((alg, digits, step, tm, r))
    t.ok(not failures, "oathtool: codes at %d times x 4 algorithm/length/step settings accepted" % len(times),
         "\n".join(map(str, failures[:5])))


def window_and_skew(t):
    env.service("window", "auth required {module} dir={state} window=1 skew_search=20")
    rows = [(-1, True), (1, True), (-2, False), (2, False), (-20, False), (19, False), (-40, False), (45, False)]
    for i, (off, want) in enumerate(rows):
        user = "skew%d" % i
        env.user(user)
        r = env.login("window", user, [code(SECRET, T0 + 30 * off)], at=T0)
        t.eq(r.ok, want, "window=1: a code %+d steps away is %s" % (off, "accepted" if want else "refused"))
        if not want and abs(off) <= 21:
            t.contains(r.log, "the code is for a time %+ds (%+d steps)" % (30 * off, off),
                       "skew: the offset %+d steps is logged" % off)
        elif not want:
            t.contains(r.log, "wrong code", "skew: %+d steps is beyond the search: just wrong" % off)
    env.user("skew-state", extra="window 3\n")
    r = env.login("window", "skew-state", [code(SECRET, T0 - 90)], at=T0)
    t.ok(r.ok, "a window in the state file overrides window=", r)


def forward_pass(t):
    env.service("fwd", "auth requisite {module} dir={state} forward_pass\n{password}")
    env.user("bob")
    env.set_password("bob", "bob-pw 1")
    r = env.login("fwd", "bob", ["bob-pw 1" + code(SECRET, T0)], at=T0)
    t.ok(r.ok, "forward_pass: password+code accepted; the next module got the password alone", r)
    r = env.login("fwd", "bob", ["bob-pw 1" + code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(r.ok, "forward_pass: again with the next step's code", r)
    r = env.login("fwd", "bob", ["bob-pw 1" + code(SECRET, T0 + 30)], at=T0 + 35)
    t.ok(not r.ok and "replay" in r.log, "forward_pass: a replayed code fails", r)
    t.eq(env.read_state("bob")["failures"], ["0"], "forward_pass: the replay is not counted as a failure")
    r = env.login("fwd", "bob", ["wrong-pw" + code(SECRET, T0 + 60)], at=T0 + 60)
    t.ok(not r.ok and "code accepted (forward_pass)" in r.log,
         "forward_pass: right code, wrong password: our module passes, the password module refuses", r)
    r = env.login("fwd", "bob", ["bob-pw 1"], at=T0 + 90)
    t.ok(not r.ok and "no code at the end of the password" in r.log, "forward_pass: no code: refused", r)
    t.eq(env.read_state("bob")["failures"], ["0"],
         "forward_pass: the accepted code reset the count; the missing code was not counted")


def defer_commit(t):
    """forward_pass defer, the password module (requisite), commit: a wrong
    password never spends a valid code, nor counts as a failure."""
    env.service("dc", "auth requisite {module} dir={state} forward_pass defer nullok max_failures=3\n"
                "auth requisite " + env.password_stack().split(" ", 2)[2] + "\n"
                "auth required {module} dir={state} commit")
    rc, out, err = env.admin("enroll", "dina", "--backup-codes", "2", "--no-qr", at=T0)
    key, backups = enroll_out(out)
    env.admin("confirm", "dina", code(key, T0), at=T0)
    env.set_password("dina", "dina-pw")
    env.set_password("dan", "dan-pw")
    c = code(key, T0 + 30)
    for i in range(4):
        r = env.login("dc", "dina", ["wrong-pw%d" % i + c], at=T0 + 30 + i)
        t.ok(not r.ok, "wrong password %d with a valid code: refused" % (i + 1), r)
    st = env.read_state("dina")
    t.eq((st["last_step"], st["failures"]), ([str(T0 // 30)], ["0"]),
         "the code is not spent, and four wrong passwords are no failures of the second factor")
    t.contains(r.log, "not recorded as used", "the log says the code was not recorded")
    r = env.login("dc", "dina", ["dina-pw" + c], at=T0 + 40)
    t.ok(r.ok and "recorded at commit" in r.log, "then the right password with the same code gets in", r)
    t.eq(env.read_state("dina")["last_step"], [str((T0 + 30) // 30)], "recorded at commit")
    r = env.login("dc", "dina", ["dina-pw" + c], at=T0 + 41)
    t.ok(not r.ok and "replay" in r.log, "and that code once only", r)
    r = env.login("dc", "dina", ["wrong-pw" + backups[0]], at=T0 + 42)
    t.ok(not r.ok, "a backup code with a wrong password: refused", r)
    r = env.login("dc", "dina", ["dina-pw" + backups[0]], at=T0 + 43)
    t.ok(r.ok, "and not spent: with the right password it works", r)
    r = env.login("dc", "dina", ["dina-pw" + backups[0]], at=T0 + 44)
    t.ok(not r.ok and "backup code already used" in r.log, "once", r)
    r = env.login("dc", "dan", ["dan-pw"], at=T0 + 45)
    t.ok(r.ok, "a user not enrolled (nullok) passes defer and commit", r)
    r = env.login("dc", "dan", ["dan-wrong"], at=T0 + 46)
    t.ok(not r.ok, "and still needs the right password", r)
    env.service("dcbad", "auth required {module} dir={state} defer commit")
    r = env.login("dcbad", "dina", ["x"], at=T0 + 47)
    t.ok(not r.ok and "defer and commit belong on two lines" in r.log, "defer and commit on one line: refused", r)


def nullok(t):
    env.service("nullok", "auth requisite {module} dir={state} nullok forward_pass\n{password}")
    env.service("strict", "auth required {module} dir={state}")
    env.set_password("carol", "carol-pw")
    r = env.login("nullok", "carol", ["carol-pw"], at=T0)
    t.ok(r.ok, "nullok: a user without a state file logs in with the password alone", r)
    r = env.login("nullok", "carol", ["carol-wrong"], at=T0)
    t.ok(not r.ok, "nullok: ...and still needs the right password")
    r = env.login("strict", "carol", ["123456"], at=T0)
    t.ok(not r.ok and "not enrolled" in r.log, "without nullok: not enrolled is refused", r)
    env.user("carol2", confirmed=0)
    env.set_password("carol2", "pw")
    r = env.login("nullok", "carol2", ["pw"], at=T0)
    t.ok(r.ok, "nullok: an enrollment not confirmed yet counts as not enrolled", r)
    r = env.login("strict", "../etc/passwd", ["123456"], at=T0)
    t.ok(not r.ok and r.rc != 0, "a user name that is not a file name is refused", r)


def backup_codes(t):
    rc, out, err = env.admin("enroll", "dave", "--backup-codes", "3", "--issuer", "Test", at=T0)
    t.ok(rc == 0, "totp-admin enroll", err)
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    codes = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and len(ln.strip()) == 11
             and ln.strip()[5] == "-"]
    t.eq(len(codes), 3, "enroll shows 3 backup codes")
    rc, out, err = env.admin("confirm", "dave", code(key, T0), at=T0)
    t.ok(rc == 0, "totp-admin confirm with oathtool's code", err)
    env.service("backup", "auth required {module} dir={state}")
    env.service("backup-fwd", "auth requisite {module} dir={state} forward_pass\n{password}")
    env.set_password("dave", "dave-pw")
    r = env.login("backup", "dave", [codes[0]], at=T0 + 30)
    t.ok(r.ok and "backup code accepted" in r.log, "a backup code works", r)
    r = env.login("backup", "dave", [codes[0]], at=T0 + 31)
    t.ok(not r.ok and "refused: backup code already used" in r.log, "...once; its reuse is logged as such", r)
    t.eq(env.read_state("dave")["failures"], ["0"], "a used backup code is not counted as a failure")
    r = env.login("backup", "dave", [codes[1].upper().replace("-", " ")], at=T0 + 32)
    t.ok(r.ok, "another, typed in capitals with a space", r)
    r = env.login("backup-fwd", "dave", ["dave-pw" + codes[2]], at=T0 + 33)
    t.ok(r.ok, "forward_pass: password+backup code", r)
    t.eq(env.read_state("dave").get("backup"), None, "all three used: none left in the state")
    rc, out, err = env.admin("status", "dave", at=T0 + 34)
    t.contains(out, "backup codes left: 0", "status shows none left")


def enroll_out(out):
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    codes = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and len(ln.strip()) == 11
             and ln.strip()[5] == "-"]
    return key, codes


def reenroll(t):
    """enroll --force of a confirmed user: the old secret and backup codes
    stay in force until the new secret is confirmed; never a window in
    which nullok lets a login in without a code."""
    env.service("reen", "auth requisite {module} dir={state} nullok forward_pass\n{password}")
    env.set_password("rita", "rita-pw")
    rc, out, err = env.admin("enroll", "rita", "--backup-codes", "2", "--no-qr", at=T0)
    old_key, old_codes = enroll_out(out)
    rc2, _, err2 = env.admin("confirm", "rita", code(old_key, T0), at=T0)
    t.ok(rc == 0 and rc2 == 0, "rita enrolled and confirmed", err + err2)
    rc, out, err = env.admin("enroll", "rita", "--force", "--backup-codes", "2", "--no-qr", at=T0 + 30)
    new_key, new_codes = enroll_out(out)
    t.ok(rc == 0 and new_key != old_key and "stay in force" in out, "enroll --force: a new secret, pending", out + err)
    r = env.login("reen", "rita", ["rita-pw"], at=T0 + 60)
    t.ok(not r.ok, "pending re-enrollment: the password alone is refused (nullok does not apply)", r)
    r = env.login("reen", "rita", ["rita-pw" + code(new_key, T0 + 60)], at=T0 + 60)
    t.ok(not r.ok, "the new secret's code does not work before confirmation", r)
    r = env.login("reen", "rita", ["rita-pw" + code(old_key, T0 + 90)], at=T0 + 90)
    t.ok(r.ok, "the old secret's code still works", r)
    r = env.login("reen", "rita", ["rita-pw" + old_codes[0]], at=T0 + 91)
    t.ok(r.ok, "so does an old backup code", r)
    rc, out, err = env.admin("status", "rita", at=T0 + 92)
    t.ok("enrolled: yes" in out and "re-enrollment pending" in out, "status shows the pending re-enrollment", out)
    rc, out, err = env.admin("confirm", "rita", code(old_key, T0 + 120), at=T0 + 120)
    t.ok(rc != 0, "confirm with the old secret's code is refused", out + err)
    rc, out, err = env.admin("confirm", "rita", code(new_key, T0 + 120), at=T0 + 120)
    t.ok(rc == 0 and "new secret" in out, "confirm with the new secret's code", out + err)
    r = env.login("reen", "rita", ["rita-pw" + code(new_key, T0 + 150)], at=T0 + 150)
    t.ok(r.ok, "then the new secret works", r)
    r = env.login("reen", "rita", ["rita-pw" + code(old_key, T0 + 180)], at=T0 + 180)
    t.ok(not r.ok, "and the old one no longer", r)
    r = env.login("reen", "rita", ["rita-pw" + old_codes[1]], at=T0 + 181)
    t.ok(not r.ok, "nor the old backup codes", r)
    r = env.login("reen", "rita", ["rita-pw" + new_codes[0]], at=T0 + 182)
    t.ok(r.ok, "the new backup codes work", r)
    t.ok("pending_secret" not in open(env.state_path("rita")).read(), "nothing pending in the state any more")


def lockout(t):
    env.service("lock", "auth required {module} dir={state} max_failures=3 lockout=60\n"
                "account required {module} dir={state}")
    env.user("erin")
    for i in range(3):
        r = env.login("lock", "erin", ["000000"], at=T0 + i)
    t.contains(r.log, "locked out for 60s after 3 failures", "three wrong codes: locked out")
    r = env.login("lock", "erin", [code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(not r.ok and "locked out for" in r.log, "while locked out, even the right code is refused", r)
    r = env.login("lock", "erin", [], at=T0 + 30, ops=("acct_mgmt",))
    t.ok(not r.ok and "account refused: locked out" in r.log, "account: refused while locked out", r)
    r = env.login("lock", "erin", [code(SECRET, T0 + 63)], at=T0 + 63)
    t.ok(r.ok, "after the lockout the right code works", r)
    r = env.login("lock", "erin", [], at=T0 + 64, ops=("acct_mgmt",))
    t.ok(r.ok, "account: fine again", r)
    for i in range(3):
        env.login("lock", "erin", ["111111"], at=T0 + 70 + i)
    rc, out, err = env.admin("unlock", "erin", at=T0 + 80)
    r = env.login("lock", "erin", [code(SECRET, T0 + 90)], at=T0 + 90)
    t.ok(rc == 0 and r.ok, "totp-admin unlock ends a lockout", r)
    env.service("nolock", "auth required {module} dir={state} max_failures=0")
    env.user("erin2")
    for i in range(8):
        env.login("nolock", "erin2", ["000000"], at=T0 + i)
    r = env.login("nolock", "erin2", [code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(r.ok, "max_failures=0: never locked out", r)


def backoff(t):
    """Each lockout in a row lasts twice as long as the last, up to
    lockout_max; a success starts again from the first (libfaketime)."""
    env.service("backoff", "auth required {module} dir={state} max_failures=2 lockout=60 lockout_max=200")
    env.user("olga")
    t0 = T0 + 1000
    for n, length in enumerate((60, 120, 200, 200), 1):
        for i in range(2):
            r = env.login("backoff", "olga", ["%06d" % (n * 10 + i)], at=t0 + i)
        t.contains(r.log, "locked out for %ds after 2 failures (lockout %d in a row)" % (length, n),
                   "lockout %d in a row: %d s" % (n, length))
        end = t0 + 1 + length  # locked at the second failure, t0 + 1
        r = env.login("backoff", "olga", [code(SECRET, end - 1)], at=end - 1)
        t.ok(not r.ok and "locked out for 1s more" in r.log, "the right code is refused 1 s before its end", r)
        t0 = end
    r = env.login("backoff", "olga", [code(SECRET, t0)], at=t0)
    t.ok(r.ok, "after the fourth lockout the right code works", r)
    t.eq(env.read_state("olga")["lockouts"], ["0"], "and the success starts the back-off again")
    for i in range(2):
        r = env.login("backoff", "olga", ["%06d" % (90 + i)], at=t0 + 30 + i)
    t.contains(r.log, "locked out for 60s after 2 failures (lockout 1 in a row)", "from the first length")


def per_address(t):
    """Failures are counted per client address too: the address that
    guesses is blocked long before the user is, and the owner logs in from
    another address (the contrib forward_pass stack: defer, password,
    commit)."""
    env.service("addr", "auth requisite {module} dir={state} forward_pass defer max_failures=10 lockout=15m "
                "rhost_max_failures=3 rhost_lockout=15m\n"
                "auth requisite " + env.password_stack().split(" ", 2)[2] + "\n"
                "auth required {module} dir={state} commit")
    env.user("pia")
    env.set_password("pia", "pia-pw")
    bad = "198.51.100.9"
    res = [env.login("addr", "pia", ["guess%d" % i + "%06d" % (123456 + i)], at=T0 + i, rhost=bad) for i in range(5)]
    t.ok(not any(r.ok for r in res), "five wrong passwords with random digits from one address: refused")
    t.contains(res[2].log, "address blocked for 900s after 3 failures from it", "the third blocks that address")
    t.ok(all("refused: address blocked for" in r.log and "wrong code" not in r.log for r in res[3:]),
         "the fourth and fifth are refused unchecked", res[3:])
    st = env.read_state("pia")
    t.eq((st["failures"], st["locked_until"]), (["3"], ["0"]), "the user is not locked out (3 of 10)")
    r = env.login("addr", "pia", ["pia-pw" + code(SECRET, T0 + 30)], at=T0 + 30, rhost="192.0.2.1")
    t.ok(r.ok, "the owner, from another address, logs in with the right code", r)
    r = env.login("addr", "pia", ["pia-pw" + code(SECRET, T0 + 60)], at=T0 + 60, rhost=bad)
    t.ok(not r.ok and "address blocked" in r.log, "from the blocked address even the right code is refused", r)
    r = env.login("addr", "pia", ["pia-pw" + code(SECRET, T0 + 2 + 900)], at=T0 + 2 + 900, rhost=bad)
    t.ok(r.ok, "after rhost_lockout the address may log in again", r)
    t.ok("rhost" not in env.read_state("pia"), "and its success clears its count")
    for i in range(3):
        env.login("addr", "pia", ["guess%d" % i + "%06d" % (654321 + i)], at=T0 + 1000 + i, rhost=bad)
    rc, out, err = env.admin("status", "pia", at=T0 + 1003)
    t.contains(out, "address %s blocked until" % bad, "totp-admin status shows the blocked address")
    rc, out, err = env.admin("unlock", "pia", at=T0 + 1004)
    r = env.login("addr", "pia", ["pia-pw" + code(SECRET, T0 + 1020)], at=T0 + 1020, rhost=bad)
    t.ok(rc == 0 and r.ok, "totp-admin unlock ends the address's block too", r)
    env.service("addr0", "auth required {module} dir={state} max_failures=0 rhost_max_failures=0")
    env.user("pia2")
    for i in range(5):
        env.login("addr0", "pia2", ["%06d" % i], at=T0 + i, rhost=bad)
    r = env.login("addr0", "pia2", [code(SECRET, T0 + 30)], at=T0 + 30, rhost=bad)
    t.ok(r.ok, "rhost_max_failures=0: no per-address count", r)


def app_passwords(t):
    env.user("frank")
    rc, out, err = env.admin("app-password", "add", "frank", "phone", at=T0)
    pw = out.strip().splitlines()[-1].strip()
    t.ok(rc == 0 and len(pw) == 19, "totp-admin app-password add", out + err)
    env.service("dovecot", "auth [success=done ignore=ignore default=die] {module} dir={state} "
                "app_passwords=dovecot,smtp nullok\n{password}")
    env.service("sshd", "auth requisite {module} dir={state} app_passwords=dovecot,smtp forward_pass\n{password}")
    env.set_password("frank", "frank-pw")
    env.set_password("gina", "gina-pw")
    r = env.login("dovecot", "frank", [pw], at=T0 + 10)
    t.ok(r.ok and 'app password "phone" accepted' in r.log, "app password on an app_passwords service", r)
    t.eq(env.read_state("frank")["app"][0].split()[2], str(T0 + 10), "its last use is recorded")
    r = env.login("dovecot", "frank", [pw.replace("-", "").upper()], at=T0 + 11)
    t.ok(r.ok, "app password without dashes, in capitals", r)
    r = env.login("dovecot", "frank", ["frank-pw"], at=T0 + 12)
    t.ok(not r.ok and "app password not recognised (user has 1 app password)" in r.log,
         "the account password alone is refused there, logged with the number of app passwords", r)
    r = env.login("dovecot", "frank", ["frank-pw" + code(SECRET, T0 + 30)], at=T0 + 30)
    t.ok(not r.ok, "password+code is refused on an app_passwords service", r)
    r = env.login("dovecot", "gina", ["gina-pw"], at=T0)
    t.ok(r.ok, "a user without two-factor uses the password there (nullok)", r)
    r = env.login("sshd", "frank", [pw + code(SECRET, T0 + 60)], at=T0 + 60)
    t.ok(not r.ok, "an app password is no account password elsewhere", r)
    r = env.login("sshd", "frank", ["frank-pw" + code(SECRET, T0 + 90)], at=T0 + 90)
    t.ok(r.ok, "while password+code works on other services", r)
    failures_before = env.read_state("frank")["failures"]
    for i in range(8):
        env.login("dovecot", "frank", ["aaaa-bbbb-cccc-dddd"], at=T0 + 62)
    t.eq(env.read_state("frank")["failures"], failures_before, "wrong app passwords do not count towards a lockout")
    rc, out, err = env.admin("app-password", "list", "frank")
    t.contains(out, "phone", "app-password list")
    rc, out, err = env.admin("app-password", "revoke", "frank", "phone")
    r = env.login("dovecot", "frank", [pw], at=T0 + 70)
    t.ok(rc == 0 and not r.ok, "a revoked app password stops working", r)


def file_checks(t):
    env.service("files", "auth required {module} dir={state}")
    cases = []
    p = env.user("own")
    os.chown(p, 65534, 65534)
    cases.append(("own", "owner uid 65534", "a state file not owned by root"))
    p = env.user("mode")
    os.chmod(p, 0o640)
    cases.append(("mode", "mode 0640", "a state file readable by its group"))
    p = env.user("mode2")
    os.chmod(p, 0o602)
    cases.append(("mode2", "mode 0602", "a state file writable by others"))
    target = env.user("target")
    os.symlink(target, env.state_path("link"))
    cases.append(("link", "a symbolic link", "a symbolic link"))
    os.mkfifo(env.state_path("fifo"), 0o600)
    cases.append(("fifo", "not a regular file", "a FIFO"))
    os.mkdir(env.state_path("dir"), 0o700)
    cases.append(("dir", "not a regular file", "a directory"))
    p = env.user("hardlink")
    os.link(p, os.path.join(env.dir, "hardlink-elsewhere"))
    cases.append(("hardlink", "links 2", "a state file with a second hard link"))
    for user, msg, what in cases:
        r = env.login("files", user, [code(SECRET, T0)], at=T0)
        t.ok(not r.ok and msg in r.log, "refused: %s" % what, r)
    for text, why in (("version 1\nsecret JBSWY3DPEHPK3PXP\nconfirmed 1\nfailures x\n", "bad value for failures"),
                      ("version 1\nsecret JBSWY3DPEHPK3PXP\nconfirmed 1", "no newline at the end"),
                      ("", "no version line"),
                      ("\x00\x01garbage\n", "control or non-ASCII"),
                      ("version 1\nsecret JBSWY3DPEHPK3PXP\nconfirmed 1\nbackup zz\n", "bad value for backup")):
        with open(env.state_path("corrupt"), "w") as f:
            f.write(text)
        os.chmod(env.state_path("corrupt"), 0o600)
        r = env.login("files", "corrupt", [code("JBSWY3DPEHPK3PXP", T0)], at=T0)
        t.ok(not r.ok and "state file corrupt" in r.log and why in r.log, "corrupt file refused: %s" % why, r)
    t.ok("JBSWY3DPEHPK3PXP" not in r.err, "the corrupt file's secret is not logged")
    # the directory itself
    baddir = os.path.join(env.dir, "baddir")
    os.mkdir(baddir)
    os.chmod(baddir, 0o777)
    env.service("baddir", "auth required {module} dir=%s" % baddir)
    r = env.login("baddir", "alice", [code(SECRET, T0)], at=T0)
    t.ok(not r.ok and "state directory" in r.log and "mode 0777" in r.log, "refused: a world-writable directory", r)
    env.service("badarg", "auth required {module} dir={state} windwo=3")
    r = env.login("badarg", "alice", [code(SECRET, T0)], at=T0)
    t.ok(not r.ok and 'unknown argument "windwo=3"' in r.log, "an unknown argument: refused, named in the log", r)
    env.service("badarg2", "auth required {module} dir={state} window=99")
    r = env.login("badarg2", "alice", [code(SECRET, T0)], at=T0)
    t.ok(not r.ok and 'bad value in "window=99"' in r.log, "an argument out of range: refused", r)


def in_namespace(script):
    """Runs a shell script in a private mount namespace (for a full or
    read-only file system that only this test sees); None if unshare is
    not allowed here."""
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    return p


def disk_errors(t):
    probe = in_namespace("mount -t tmpfs -o size=64k tmpfs %s" % env.dir + "/..")
    if probe.returncode != 0:
        for n in range(6):
            t.skip("full/read-only disk %d" % n, "cannot mount in a private namespace here: %s" % probe.stderr.strip())
        return
    import shlex
    for policy, expect_ok in (("allow_without_replay", True), ("fail", False)):
        for kind in ("full", "readonly"):
            sub = os.path.join(env.dir, "disk-%s-%s" % (kind, policy))
            os.makedirs(sub)
            os.chmod(sub, 0o700)
            svc = "disk-%s-%s" % (kind, policy)
            env.service(svc, "auth required {module} dir=%s on_state_error=%s" % (sub, policy))
            state = "version 1\nsecret %s\nconfirmed 1\n" % SECRET
            argv = env.pamtester_argv(svc, "alice")
            e = env.env(T0)
            envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in e.items()
                            if k in ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR", "PAM_WRAPPER_DEBUGLEVEL",
                                     "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC", "TZ", "ASAN_OPTIONS"))
            if kind == "full":
                prep = ("mount -t tmpfs -o size=32k,mode=0700 tmpfs {d} && printf %s > {d}/alice && chmod 600 {d}/alice"
                        " && (dd if=/dev/zero of={d}/fill bs=4096 2>/dev/null; true)").format(d=sub) % shlex.quote(state)
            else:
                prep = ("printf %s > {d}/alice && chmod 600 {d}/alice && mount --bind {d} {d} && "
                        "mount -o remount,bind,ro {d}").format(d=sub) % shlex.quote(state)
            c = code(SECRET, T0)
            script = "%s && (printf '%%s\\n' %s | env %s %s 2>&1; echo rc=$?; cat %s/alice)" % (
                prep, c, envs, " ".join(map(shlex.quote, argv)), sub)
            p = in_namespace(script)
            ok = "successfully authenticated" in p.stdout
            t.eq(ok, expect_ok, "%s disk, on_state_error=%s: a valid code is %s" % (
                kind, policy, "accepted" if expect_ok else "refused"))
            if expect_ok:
                t.ok("WITHOUT replay protection" in p.stdout, "%s disk: logged loudly" % kind, p.stdout[-2000:])
            else:
                t.ok("says fail" in p.stdout, "%s disk: the refusal says why" % kind, p.stdout[-2000:])
            t.ok(p.stdout.endswith(state), "%s disk: the state file is intact" % kind, p.stdout[-600:])


def account(t):
    env.service("acct", "account required {module} dir={state}")
    env.user("hank")
    r = env.login("acct", "hank", [], ops=("acct_mgmt",), at=T0)
    t.ok(r.ok, "account: an enrolled user who is not locked out passes", r)
    r = env.login("acct", "nobody-here", [], ops=("acct_mgmt",), at=T0)
    t.ok(not r.ok, "account: a not-enrolled user gets PAM_IGNORE (and a stack of only ignores fails)", r)
    env.service("acct2", "account required {module} dir={state}\naccount required pam_permit.so")
    r = env.login("acct2", "nobody-here", [], ops=("acct_mgmt",), at=T0)
    t.ok(r.ok, "account: ...which the next module decides", r)


def main():
    global env
    t = Tap()
    gone = missing_tools()
    if gone:
        t.skip("pam_totp through libpam", "missing: " + ", ".join(gone))
        t.done()
    env = PamEnv()
    for f in (prompt_mode, many_times, window_and_skew, forward_pass, nullok, backup_codes, reenroll, defer_commit, lockout, backoff, per_address,
              app_passwords, file_checks, disk_errors, account):
        t.run(f)
    t.done()


main()
