"""policyd-rate in the demo: bob may send 3 messages an hour; the 4th is
deferred at end of data. Counters live in the demo's Redis."""
import os
import pwd
import subprocess

NAME = "policyd-rate"
BINARY = "policyd-rate/policyd-rate"
CTL = "policyd-rate/policyd-rate-ctl"
LIMIT = 3


def missing(demo):
    if demo.binary(BINARY) is None:
        return "not built (configured with --disable-policyd-rate?)"


def attach(demo):
    sockdir = os.path.join(demo.postfix.queue_dir, "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(sockdir, 0o750)
    demo.policyd_rate_ctl = os.path.join(demo.dir, "policyd-rate.ctl")
    conf = os.path.join(demo.dir, "policyd-rate.conf")
    with open(conf, "w") as f:
        f.write("socket = unix:%s/policyd-rate.sock\nsocket_group = postfix\nuser = nobody\n"
                "control_socket = unix:%s\n"
                "rule = per-user: key=sasl_username|sender limit=%d/1h match=authenticated\n"
                "store = redis\nredis_servers = 127.0.0.1:%d\n"
                % (sockdir, demo.policyd_rate_ctl, LIMIT, demo.redis.port))
    demo.policyd_rate_log = os.path.join(demo.dir, "policyd-rate.log")
    from mwtest import sandbox
    proc = sandbox.spawn([demo.binary(BINARY), "-f", "-c", conf], log=demo.policyd_rate_log)
    sandbox.wait_for(lambda: "listening on" in _log(demo) or proc.poll() is not None, 15, what="policyd-rate")
    # The snippet an admin pastes, unchanged.
    demo.postfix.apply_snippet("contrib/postfix/policyd-rate.cf")


def _log(demo):
    from mwtest import sandbox
    return sandbox.read_text(demo.policyd_rate_log)


def _ctl(demo, *args):
    p = subprocess.run([demo.binary(CTL), "-s", "unix:" + demo.policyd_rate_ctl] + list(args),
                       capture_output=True, text=True, timeout=10)
    return (p.stdout + p.stderr).strip()


def messages(demo):
    m = __import__("__main__").Message
    return [m("bob's message %d of the hour" % i,
              "Bob may send %d messages an hour (policyd-rate, counted in Redis)." % LIMIT if i == 1 else
              ("One over the limit: a stolen password would stop here." if i == LIMIT + 1 else "Bob again."),
              kind="submission", mail_from="bob@example.org", rcpt="friend@friend.example",
              client_ip="127.0.0.1", helo="laptop.example.org", user="bob", password=demo.users["bob"],
              plugin=NAME)
            for i in range(1, LIMIT + 2)]


def describe(demo, msg):
    if msg.kind != "submission":
        return []
    if msg.exit_code == 0:
        return ["policyd-rate: counted for %s, allowed" % msg.user]
    if "rate limit" in msg.smtp_reply.lower():
        return ["policyd-rate: deferred: " + msg.smtp_reply]
    return []


def finish(demo, messages):
    demo.notes.append("policyd-rate-ctl usage per-user:bob  ->  " +
                      " | ".join(_ctl(demo, "usage", "per-user:bob").splitlines()))
    stats = [ln for ln in _ctl(demo, "stats").splitlines() if ln.startswith("policyd_rate_actions_total")]
    demo.notes.append("policyd-rate counters: " + ", ".join(s.replace("policyd_rate_actions_total", "")
                                                             for s in stats))
