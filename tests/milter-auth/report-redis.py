#!/usr/bin/python3
"""report_store = redis and the Prometheus metrics (issue 12).

Part 1, test mode: three milter-auth "MX hosts" record their DMARC
evaluations into one private Redis; one `milter-auth-report send` (its
configuration on any host) makes one report per Policy Domain whose counts
add up; the day's list expires report_retention after the day; no local
parts. Redis down: the same verdicts, the failure logged.

Part 2, a daemon behind a private Postfix with metrics_listen on loopback
and its Redis down: real traffic (a DMARC pass, a spoof refused, a
quarantined one, a DNS timeout, a signed submission), then the scraped
counters equal what was sent, the store errors are counted, and a Redis
that comes back records again. A daemon without metrics_listen listens on
no TCP port.

Part 3, redis_mode = cluster: three hosts record into a Redis Cluster
named by one seed that does not serve the day's key (every command must
follow the slot map), one report adds them up, the sent mark is set."""
import os
import pwd
import re
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, run, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.rcluster import RedisCluster  # noqa: E402
from mwtest.redis import Redis  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
IP = "198.51.100.7"
BAD = "203.0.113.66"
REPORT = os.path.join(sandbox.top_builddir(), "milter-auth/milter-auth-report")
NOBODY = pwd.getpwnam("nobody")
GOOD_IP, SPOOF_IP = "127.0.0.2", "127.0.0.3"

ZONE = """
_dmarc.rep.example              TXT "v=DMARC1; p=reject; rua=mailto:dmarc@rep.example"
rep.example                     TXT "v=spf1 ip4:%(ip)s ip4:%(gip)s -all"
sel._domainkey.rep.example      TXT "v=DKIM1; p=%(rsa)s"
_dmarc.q.example                TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@q.example"
q.example                       TXT "v=spf1 -all"
_dmarc.slow.example             TIMEOUT
slow.example                    TIMEOUT
""" % {"ip": IP, "gip": GOOD_IP, "rsa": RSA_PUB}


def today():
    return time.strftime("%Y%m%d", time.gmtime())


def redis_conf(dns, redis_port, host, extra=""):
    return matest.base_conf(dns, "report_store = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 2s\n"
                                 "report_host_id = %s\nreport_email = dmarc-reports@mx.example.org\n%s"
                            % (redis_port, host, extra))


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        return r.read().decode()


def value(text, name):
    m = re.search(r"^%s (\d+(?:\.\d+)?)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


SANITIZER = re.compile(r"Sanitizer|runtime error")
sanitizer_reports = []


def watch(what, text):
    """Keeps what a sanitizer build reported (none expected)."""
    if SANITIZER.search(text):
        sanitizer_reports.append("%s:\n%s" % (what, text[-3000:]))


def tcp_listeners(pid):
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pid=%d," % pid in line]


def part1(t, dns):
    redis = Redis()
    confs = [redis_conf(dns, redis.port, "mx%d" % i) for i in (1, 2, 3)]
    good = sign(message(frm="News <news@rep.example>"), "sel", "rep.example", RSA)
    spoof = message(frm="CEO <ceo@rep.example>", subject="wire")
    plan = [(0, good, IP, 3), (0, spoof, BAD, 2), (1, good, IP, 1), (1, spoof, BAD, 1), (2, spoof, BAD, 2)]
    verdicts = {}
    for host, m, ip, times in plan:
        for _ in range(times):
            o = run(confs[host], m, client_ip=ip, mail_from="bounce-4711@rep.example")
            watch("test mode", o.log)
            t.ok(o.rc == 0, "mx%d evaluates a message from %s" % (host + 1, ip), repr(o))
            verdicts[(m, ip)] = o.action_line
    key = "mailward:dmarc:eval:" + today()
    t.eq(redis.cli("LLEN", key).strip(), "9", "all nine evaluations of the three hosts in one Redis list")
    lines = redis.cli("LRANGE", key, "0", "-1")
    t.ok("bounce-4711" not in lines and "rep.example" in lines, "privacy: no local part in Redis", lines[:500])
    t.eq(sorted(set(re.findall(r"\tmx(\d)\t", lines))), ["1", "2", "3"], "each line names its host")
    ttl = int(redis.cli("TTL", key).strip())
    day_end = (int(time.time()) // 86400 + 1) * 86400
    want = day_end + 30 * 86400 - int(time.time())
    t.ok(abs(ttl - want) < 120, "retention in Redis: the list expires 30 days after its day", "%d vs %d" % (ttl, want))

    out = sandbox.mkdir("redis-dry-run")
    p = subprocess.run([REPORT, "-c", confs[1], "send", "--dry-run", out, "--day", "today"],
                       capture_output=True, text=True, timeout=120)
    watch("send", p.stderr)
    t.eq(p.returncode, 0, "send --dry-run from Redis") or t.diag(p.stdout + p.stderr)
    files = os.listdir(out)
    t.eq(len(files), 1, "one report for rep.example, not one per host") or t.diag(repr(files))
    if files:
        t.eq(matest.report_counts(os.path.join(out, files[0])), {IP: 4, BAD: 5}, "its counts add up over the three hosts (4 pass, 5 spoofed)")
        x = subprocess.run(["xmllint", "--noout", "--schema",
                            os.path.join(sandbox.top_srcdir(), "tests/milter-auth/reports/rfc9990.xsd"),
                            os.path.join(out, files[0])], capture_output=True, text=True)
        t.eq(x.returncode, 0, "the report validates against the RFC 9990 schema") or t.diag(x.stderr)

    # the timer's run (no --day) sends complete days only, once: yesterday's list
    yday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    redis.cli("RPUSH", "mailward:dmarc:eval:" + yday, lines.splitlines()[0].replace(today(), yday))
    spool = sandbox.mkdir("redis-sent")
    fake = sandbox.path("redis-sendmail")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\ncat > %s/$$.eml\n" % spool)
    os.chmod(fake, 0o755)
    sconf = redis_conf(dns, redis.port, "mx1", "report_sendmail = %s\n" % fake)
    for attempt in (1, 2):
        p = subprocess.run([REPORT, "-c", sconf, "send"], capture_output=True, text=True, timeout=120)
        t.eq(p.returncode, 0, "send without --day, run %d" % attempt) or t.diag(p.stdout + p.stderr)
    t.eq(len(os.listdir(spool)), 1, "yesterday reported once (marked sent in Redis), today not yet")
    t.ok(int(redis.cli("TTL", "mailward:dmarc:sent:" + yday).strip()) > 29 * 86400,
         "the sent mark expires too")

    # Redis down: the same verdicts, the failure said
    redis.stop()
    for (m, ip), line in verdicts.items():
        t0 = time.monotonic()
        o = run(confs[0], m, client_ip=ip, mail_from="bounce-4711@rep.example")
        watch("test mode, Redis down", o.log)
        t.eq(o.action_line, line, "Redis down: the verdict is unchanged (%s)" % ip)
        t.contains(o.log, "DMARC report store (redis)", "the store failure is logged")
        t.diag("with Redis down: %.2f s" % (time.monotonic() - t0))
    p = subprocess.run([REPORT, "-c", confs[0], "send", "--day", "today", "--dry-run", out],
                       capture_output=True, text=True, timeout=120)
    t.eq(p.returncode, 1, "send with Redis down: exit 1, tried again next run") or t.diag(p.stderr)


def part2(t, dns):
    redis = Redis()
    redis_port = redis.port
    redis.stop()  # down from the start
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    keydir = sandbox.mkdir("keys", mode=0o755)
    key = os.path.join(keydir, "sel.private")
    with open(key, "wb") as f:
        f.write(RSA)
    os.chmod(key, 0o600)
    os.chown(key, NOBODY.pw_uid, NOBODY.pw_gid)
    with open(os.path.join(keydir, "keytable"), "w") as f:
        f.write("sel rep.example:sel:%s\n" % key)
    with open(os.path.join(keydir, "signingtable"), "w") as f:
        f.write("*@rep.example sel\n")
    def start_milter(port):
        extra = ("report_store = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 1s\nreport_host_id = mx1\n"
                 "metrics_listen = inet:%d@127.0.0.1\ndkim_key_table = %s/keytable\n"
                 "dkim_signing_table = refile:%s/signingtable\n" % (redis_port, port, keydir, keydir))
        return matest.Milter(dns, "unix:%s/ma.sock" % sockdir, conf_extra=extra, log_level="info")
    mport, ma = sandbox.with_free_port(start_milter)
    pf.apply_snippet("contrib/postfix/milter-auth.cf", replace={"unix:mailward/milter-auth.sock": "unix:mailward/ma.sock"})
    pf.start()
    sandbox.wait_port(mport)
    t.ok(all("127.0.0.1:%d" % mport in line for line in tcp_listeners(ma.proc.pid)) and tcp_listeners(ma.proc.pid),
         "metrics_listen: bound to loopback only", repr(tcp_listeners(ma.proc.pid)))
    before = scrape(mport)
    t.eq(value(before, "milter_auth_messages_total"), 0, "no message counted yet")

    good = sign(message(frm="News <news@rep.example>"), "sel", "rep.example", RSA)

    def send(m, ip, frm="x@rep.example"):
        return swaks("--from", frm, "--to", "alice@example.org", "--helo", "mail.rep.example",
                     "--local-interface", ip, "--data", "-", port=pf.port, input=m if isinstance(m, bytes) else m.encode())
    code, tr = send(good, GOOD_IP)
    t.eq(code, 0, "a DMARC pass is accepted (Redis down)") or t.diag(tr)
    code, tr = send(message(frm="CEO <ceo@rep.example>", subject="wire"), SPOOF_IP)
    t.ok(code != 0 and "5.7.1" in tr, "a spoof of p=reject is refused (Redis down)", tr[-600:])
    code, tr = send(message(frm="Q <a@q.example>", subject="q"), SPOOF_IP, frm="a@q.example")
    t.eq(code, 0, "p=quarantine: accepted into the hold queue") or t.diag(tr)
    code, tr = send(message(frm="S <a@slow.example>", subject="slow"), SPOOF_IP, frm="a@slow.example")
    t.ok(code != 0 and "4.7.1" in tr, "a DNS timeout: 451 4.7.1", tr[-600:])
    code, tr = send(message(frm="Alice <alice@rep.example>", subject="out"), "127.0.0.1", frm="alice@rep.example")
    t.eq(code, 0, "a submission from the trusted network is signed and accepted") or t.diag(tr)

    want = [("milter_auth_messages_total", 5),
            ('milter_auth_dmarc_total{result="pass"}', 1),
            ('milter_auth_dmarc_total{result="fail"}', 2),
            ('milter_auth_dmarc_total{result="temperror"}', 1),
            ('milter_auth_actions_total{action="accept"}', 2),
            ('milter_auth_actions_total{action="reject"}', 1),
            ('milter_auth_actions_total{action="quarantine"}', 1),
            ('milter_auth_actions_total{action="tempfail"}', 1),
            ('milter_auth_dkim_total{result="pass"}', 1),
            ('milter_auth_unverified_total{reason="outbound"}', 1),
            ("milter_auth_signatures_total", 1),
            ("milter_auth_dns_errors_total", 1),
            ("milter_auth_latency_seconds_count", 5),
            ('milter_auth_latency_seconds_bucket{le="+Inf"}', 5)]
    # the report store's writer works apart from the mail: wait for its count
    sandbox.wait_for(lambda: value(scrape(mport), "milter_auth_report_store_errors_total") == 3, 60,
                     what="three store errors counted")
    text = scrape(mport)
    for name, n in want:
        t.eq(value(text, name), n, "scraped %s" % name)
    t.eq(value(text, "milter_auth_report_store_errors_total"), 3,
         "Redis down: the three evaluations under rua= (pass, reject, quarantine) counted as store errors")
    t.contains(ma.text(), "DMARC report store (redis)", "and logged")
    t.ok(value(text, "milter_auth_latency_seconds_sum") > 0.5, "the DNS timeout shows in the latency sum")

    # Redis back: recorded again, without a restart
    redis.start(same_port=True)
    code, tr = send(good, GOOD_IP)
    t.eq(code, 0, "accepted once Redis is back") or t.diag(tr)
    sandbox.wait_for(lambda: redis.cli("LLEN", "mailward:dmarc:eval:" + today()).strip() == "1", 30,
                     what="the evaluation in Redis")
    t.eq(redis.cli("LLEN", "mailward:dmarc:eval:" + today()).strip(), "1", "Redis back: the evaluation recorded")
    ma.stop()
    watch("daemon", ma.text())

    # a Redis that accepts and never answers (hung, or a black-holed
    # network): each write waits redis_timeout (10 s here) in the store's
    # thread, never in the message's
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)

    def start_hung(port):
        extra = ("report_store = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 10s\n"
                 "metrics_listen = inet:%d@127.0.0.1\n" % (hole.getsockname()[1], port))
        return matest.Milter(dns, "unix:%s/ma.sock" % sockdir, conf_extra=extra, log_level="info")
    mport, ma = sandbox.with_free_port(start_hung)
    for i in range(3):
        t0 = time.monotonic()
        code, tr = send(good, GOOD_IP)
        took = time.monotonic() - t0
        t.eq(code, 0, "Redis hung: message %d accepted" % (i + 1)) or t.diag(tr)
        t.diag("message %d with Redis hung: %.2f s" % (i + 1, took))
    text = scrape(mport)
    t.eq(value(text, 'milter_auth_dmarc_total{result="pass"}'), 3, "Redis hung: three DMARC passes")
    t.ok(value(text, "milter_auth_latency_seconds_sum") < 8,
         "Redis hung: no verdict waited for its 10 s timeout (pipeline time in all: %s s)"
         % value(text, "milter_auth_latency_seconds_sum"))
    ma.stop()
    hole.close()

    # off by default: no TCP listener at all (unix milter socket)
    plain = matest.Milter(dns, "unix:%s/plain.sock" % sockdir, log_level="info")
    t.eq(tcp_listeners(plain.proc.pid), [], "without metrics_listen: no TCP port open")
    plain.stop()
    pf.stop()


def part3(t, dns):
    cl = RedisCluster(masters=3, replicas=0)
    key = "mailward:dmarc:eval:" + today()
    owner = cl.master_of_slot(cl.keyslot(key))
    seed = [n for n in cl.nodes if n is not owner][0]
    extra = "redis_mode = cluster\n"
    confs = [matest.base_conf(dns, "report_store = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 2s\n"
                                   "report_host_id = mx%d\nreport_email = dmarc-reports@mx.example.org\n%s"
                              % (seed.port, i, extra)) for i in (1, 2, 3)]
    good = sign(message(frm="News <news@rep.example>"), "sel", "rep.example", RSA)
    spoof = message(frm="CEO <ceo@rep.example>", subject="wire")
    for host, m, ip, times in [(0, good, IP, 2), (1, spoof, BAD, 3), (2, good, IP, 1)]:
        for _ in range(times):
            o = run(confs[host], m, client_ip=ip, mail_from="bounce-4711@rep.example")
            watch("test mode, cluster", o.log)
            t.ok(o.rc == 0 and "DMARC report store" not in o.log,
                 "cluster: mx%d records its evaluation without a store error" % (host + 1), o.log[-1500:])
    t.eq(owner.cli("LLEN", key).strip(), "6",
         "cluster: all six evaluations in one list on the master of its slot (the seed named serves other slots)")
    t.eq(seed.cli("DBSIZE").strip(), "0", "cluster: nothing written on the seed itself")
    ttl = int(owner.cli("TTL", key).strip())
    t.ok(ttl > 29 * 86400, "cluster: the list expires after the retention", ttl)
    out = sandbox.mkdir("cluster-dry-run")
    p = subprocess.run([REPORT, "-c", confs[2], "send", "--dry-run", out, "--day", "today"],
                       capture_output=True, text=True, timeout=120)
    watch("send, cluster", p.stderr)
    t.eq(p.returncode, 0, "cluster: send --dry-run") or t.diag(p.stdout + p.stderr)
    files = os.listdir(out)
    t.eq(len(files), 1, "cluster: one report for rep.example") or t.diag(repr(files))
    if files:
        t.eq(matest.report_counts(os.path.join(out, files[0])), {IP: 3, BAD: 3}, "cluster: its counts add up over the three hosts")
    # yesterday's list, sent once by the timer's run: the sent mark lands on its own slot's master
    yday = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400))
    line = owner.cli("LRANGE", key, "0", "0").splitlines()[0].replace(today(), yday)
    cl.cli("RPUSH", "mailward:dmarc:eval:" + yday, line)
    spool = sandbox.mkdir("cluster-sent")
    fake = sandbox.path("cluster-sendmail")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\ncat > %s/$$.eml\n" % spool)
    os.chmod(fake, 0o755)
    sconf = matest.base_conf(dns, "report_store = redis\nredis_servers = 127.0.0.1:%d\nredis_timeout = 2s\n"
                                  "report_host_id = mx1\nreport_email = dmarc-reports@mx.example.org\n%s"
                                  "report_sendmail = %s\n" % (seed.port, extra, fake))
    for attempt in (1, 2):
        p = subprocess.run([REPORT, "-c", sconf, "send"], capture_output=True, text=True, timeout=120)
        t.eq(p.returncode, 0, "cluster: send without --day, run %d" % attempt) or t.diag(p.stdout + p.stderr)
    t.eq(len(os.listdir(spool)), 1, "cluster: yesterday reported once (the sent mark found in the cluster)")
    t.eq(cl.cli("EXISTS", "mailward:dmarc:sent:" + yday).strip(), "1", "cluster: the sent mark is set")


def main(t):
    dns = DnsServer(ZONE)
    part1(t, dns)
    part2(t, dns)
    part3(t, dns)
    dns.stop()
    t.eq(sanitizer_reports, [], "no sanitizer report from any run (sanitizer build)")


t = Tap()
t.run(main)
t.done()
