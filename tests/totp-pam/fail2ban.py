#!/usr/bin/python3
"""contrib/fail2ban against the lines pam_totp.so really logs: logins through
pamtester (with PAM_RHOST) make every kind of refusal and success; each
line, in the form pam_syslog gives it in the system log, goes through
fail2ban-regex with contrib/fail2ban/filter.d/pam-totp.conf. Guesses and
tries after a lockout must match with the client's address; successes,
replays, used backup codes, clock skew and lines without an address must
not. The jail must load (fail2ban-client -t)."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tptest  # noqa: E402
from tptest import SECRET, T0, PamEnv, code  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

CONTRIB = os.path.join(tptest.TOP, "contrib", "fail2ban")
ADDR = "192.0.2.66"


def syslog_line(i, msg):
    """What pam_syslog writes for a message (Linux-PAM: MODULE(SERVICE:auth): ...)."""
    service = msg.split(" service ", 1)[1].split(" ", 1)[0]
    return "Dec  1 21:%02d:%02d mx dovecot: pam_totp(%s:auth): %s" % (i // 60 % 60, i % 60, service, msg)


def produce(t, env, redis):
    """[(line, should it match)] from real logins."""
    lines = []

    def login(user, answers, at, service="f2b", rhost=ADDR, match=()):
        r = env.login(service, user, answers, at=at, rhost=rhost)
        for m in r.logs:
            lines.append((m, any(p in m for p in match)))
        return r

    env.service("f2b", "auth required {module} dir={state} max_failures=3 lockout=600 skew_search=20")
    env.service("f2bapp", "auth required {module} dir={state} app_passwords=f2bapp")
    env.service("f2bredis", "auth required {module} dir={state} state=redis redis_servers=127.0.0.1:%d "
                "max_failures=3 lockout=600" % redis.port)
    rc, out, err = env.admin("enroll", "fin", "--backup-codes", "2", "--no-qr", at=T0)
    key = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("key:")][0]
    backups = [ln.strip() for ln in out.splitlines() if len(ln.strip()) == 11 and ln.strip()[5:6] == "-"]
    env.admin("confirm", "fin", code(key, T0), at=T0)
    r = login("fin", [code(key, T0 + 30)], T0 + 30)
    t.ok(r.ok, "a success", r)
    login("fin", [code(key, T0 + 30)], T0 + 31)                       # replay
    login("fin", [backups[0]], T0 + 32)                               # success
    login("fin", [backups[0]], T0 + 33)                               # backup code already used
    login("fin", [code(key, T0 - 600)], T0 + 34)                      # clock skew (a failure, not banned)
    login("fin", ["abc"], T0 + 35)                                    # not a code
    login("fin", ["000000"], T0 + 36, rhost=None)                     # no address: nothing to ban
    r = login("fin", ["000001"], T0 + 37, match=["refused: wrong code"])  # and the lockout starts
    t.ok("locked out for 600s after 3 failures" in r.log, "a wrong code that starts a lockout", r)
    login("fin", [code(key, T0 + 60)], T0 + 60, match=["refused: locked out for"])
    env.user("gil")
    rc, out, err = env.admin("app-password", "add", "gil", "phone", at=T0)
    pw = out.strip().splitlines()[-1].strip()
    r = login("gil", [pw], T0 + 1, service="f2bapp")
    t.ok(r.ok, "an app password", r)
    login("gil", ["not-the-app-password"], T0 + 2, service="f2bapp", match=["app password not recognised"])
    env.service("f2brh", "auth required {module} dir={state} rhost_max_failures=1")
    env.user("ivo")
    login("ivo", ["000000"], T0 + 4, service="f2brh", match=["refused: wrong code"])
    login("ivo", [code(SECRET, T0 + 5)], T0 + 5, service="f2brh", match=["refused: address blocked"])
    env.user("hub")
    # two failures and a check in progress elsewhere: the next guess is refused unchecked
    redis.cli("HSET", "totp:{hub}", "failures", "2")
    redis.cli("ZADD", "totp:{hub}:checks", str(T0 + 3600), "1")
    login("hub", ["123456"], T0 + 3, service="f2bredis", match=["refused unchecked"])
    return lines


def fail2ban_regex(cfg, logfile):
    p = subprocess.run(["fail2ban-regex", "--config", cfg, "-o", "ip", logfile, "pam-totp"],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout.split(), p.stderr


def main():
    t = Tap()
    gone = tptest.missing_tools()
    for tool in ("/usr/bin/fail2ban-regex", "/usr/bin/fail2ban-client"):
        if not os.path.exists(tool):
            gone.append(tool + " (Debian fail2ban)")
    if gone:
        t.skip("contrib/fail2ban", "missing: " + ", ".join(gone))
        t.done()
    env = PamEnv("f2b")
    redis = Redis()
    lines = produce(t, env, redis)
    # fail2ban's own configuration, with ours added, in the sandbox
    cfg = os.path.join(env.dir, "fail2ban")
    shutil.copytree("/etc/fail2ban", cfg)
    shutil.copy(os.path.join(CONTRIB, "filter.d", "pam-totp.conf"), os.path.join(cfg, "filter.d"))
    shutil.copy(os.path.join(CONTRIB, "jail.d", "pam-totp.conf"), os.path.join(cfg, "jail.d"))
    must = [syslog_line(i, m) for i, (m, want) in enumerate(lines) if want]
    mustnot = [syslog_line(i, m) for i, (m, want) in enumerate(lines) if not want]
    t.eq(len(must), 6, "the logins logged 6 refusals that are guesses (or tries while locked out)")
    t.eq(len(mustnot), 10, "and 10 other lines")
    for name, text, want in (("refusals", must, [ADDR] * len(must)), ("others", mustnot, [])):
        logfile = os.path.join(env.dir, name + ".log")
        with open(logfile, "w") as f:
            f.write("\n".join(text) + "\n")
        rc, ips, err = fail2ban_regex(cfg, logfile)
        t.ok(rc == 0, "fail2ban-regex runs on the %s" % name, err[-1000:])
        if want:
            t.eq(ips, want, "every refusal line matches, with the client's address")
        else:
            t.eq(ips, want, "no success, replay, used backup code, skew or address-less line matches")
        if ips != want:
            t.diag("\n".join(text))
    with open(os.path.join(cfg, "jail.d", "zz-test.local"), "w") as f:
        f.write("[DEFAULT]\nbackend = auto\n[pam-totp]\nlogpath = %s\n" % os.path.join(env.dir, "refusals.log"))
    for other in os.listdir(os.path.join(cfg, "jail.d")):
        if other not in ("pam-totp.conf", "zz-test.local"):
            os.unlink(os.path.join(cfg, "jail.d", other))  # Debian's defaults-debian.conf turns on sshd
    p = subprocess.run(["fail2ban-client", "-c", cfg, "-t"], capture_output=True, text=True, timeout=120)
    t.ok(p.returncode == 0 and "OK" in p.stdout + p.stderr, "the jail loads (fail2ban-client -t)",
         (p.stdout + p.stderr)[-1500:])
    sandbox.at_cleanup(redis.stop)
    t.done()


main()
