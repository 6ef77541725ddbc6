#!/usr/bin/python3
"""milter-auth soak and faults: sustained mail through a private Postfix for
MW_SOAK_SECONDS (default 60; set it higher for a long soak), while
- its resident memory is sampled every second (no growth after warm-up),
- SIGHUP arrives every second, alternately with a good and a bad config,
- clients hang up in the middle of a message,
- the DNS server goes away for a while and comes back.
Afterwards: every message accepted at SMTP was delivered exactly once and
carries our verdict; no spoof was ever accepted; every tempfail a client
saw was logged; file descriptors are back where they were; the daemon
still answers."""
import os
import pwd
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.procwatch import check_fds_back, check_rss_flat, fds, rss_kb  # noqa: E402
from mwtest.smtp import SMTPRejected, send  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

SECONDS = int(os.environ.get("MW_SOAK_SECONDS", "60"))
RSA, RSA_PUB = matest.rsa_key(1024)
FRIEND_IP = "127.0.0.2"
SPOOFER_IP = "127.0.0.3"
ZONE = """
friend.example                  TXT "v=spf1 ip4:%(ip)s -all"
_dmarc.friend.example           TXT "v=DMARC1; p=reject"
sel._domainkey.friend.example   TXT "v=DKIM1; p=%(rsa)s"
bank.example                    TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.bank.example             TXT "v=DMARC1; p=reject"
""" % {"ip": FRIEND_IP, "rsa": RSA_PUB}


class Load:
    """Senders in threads; each message has a token in its Subject; what
    the server answered is kept per token."""

    def __init__(self, pf):
        self.pf = pf
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = {}  # token -> ("accepted"|"rejected"|"tempfail"|"error", kind, text)
        self.n = 0

    def _one(self, kind, worker):
        with self.lock:
            self.n += 1
            token = "soak-%d-%d" % (worker, self.n)
        if kind == "friend":
            msg = sign(message(subject=token, body="body of %s\r\n" % token), "sel", "friend.example", RSA)
            src, frm = FRIEND_IP, "friend@friend.example"
        else:
            msg = message(frm="Security <security@bank.example>", subject=token).encode()
            src, frm = SPOOFER_IP, "security@bank.example"
        try:
            code, text = send(self.pf.port, frm, "alice@example.org", msg, source_address=src,
                              helo="mail.friend.example", timeout=120)
            res = "accepted"
        except SMTPRejected as e:
            res, text = ("tempfail" if 400 <= e.smtp_code < 500 else "rejected"), str(e)
        except (OSError, smtplib.SMTPException) as e:
            res, text = "error", repr(e)
        with self.lock:
            self.results[token] = (res, kind, text)

    def sender(self, worker):
        i = 0
        while not self.stop.is_set():
            self._one("spoof" if i % 3 == 2 else "friend", worker)
            i += 1

    def hangups(self):
        """Clients that send half a message and close the connection."""
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.pf.port), 30) as s:
                    s.sendall(b"EHLO mail.friend.example\r\nMAIL FROM:<friend@friend.example>\r\n"
                              b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
                    time.sleep(0.2)
                    s.sendall(b"From: friend@friend.example\r\nSubject: cut\r\n\r\nhalf a bo")
            except OSError:
                pass
            self.stop.wait(0.5)


def main(t):
    # TTL 1 s: records expire within the outage, so lookups really fail
    dns = DnsServer(ZONE, ttl=1)
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    ma = matest.Milter(dns, "unix:%s/milter-auth.sock" % sockdir, log_level="info")
    pf.apply_snippet("contrib/postfix/milter-auth.cf")
    pf.start()
    pid = ma.proc.pid

    load = Load(pf)
    # warm-up: caches, thread pools and allocator arenas fill first
    for _ in range(10):
        load._one("friend", 0)
    fd_before = fds(pid)
    rss = []
    hups = {"good": 0, "bad": 0}
    threads = [threading.Thread(target=load.sender, args=(w,)) for w in (1, 2)]
    threads.append(threading.Thread(target=load.hangups))
    for th in threads:
        th.start()
    start = time.monotonic()
    dns_down = (SECONDS * 0.3, SECONDS * 0.3 + max(5, SECONDS * 0.2))
    dns_state = "up"
    try:
        while time.monotonic() - start < SECONDS:
            el = time.monotonic() - start
            if dns_state == "up" and dns_down[0] <= el < dns_down[1]:
                dns.stop()
                dns_state = "down"
            elif dns_state == "down" and el >= dns_down[1]:
                dns.start()  # the same port again
                dns_state = "back"
            kind = "bad" if int(el) % 2 else "good"
            ma.write(ma.base + ("no_such_setting = 1\n" if kind == "bad" else ""))
            os.kill(pid, signal.SIGHUP)
            hups[kind] += 1
            rss.append(rss_kb(pid))
            time.sleep(1)
    finally:
        load.stop.set()
        for th in threads:
            th.join(180)
        if dns.proc is None:
            dns.start()
    ma.write(ma.base)
    os.kill(pid, signal.SIGHUP)

    t.ok(ma.proc.poll() is None, "milter-auth survived %d s of load and faults" % SECONDS)
    res = load.results
    counts = {}
    for r, kind, _ in res.values():
        counts[(r, kind)] = counts.get((r, kind), 0) + 1
    t.diag("results: %s; SIGHUPs %s; RSS samples (kB) %s" % (sorted(counts.items()), hups, rss))
    accepted = {tok for tok, (r, _, _) in res.items() if r == "accepted"}
    t.ok(len(accepted) >= 20, "mail flowed: %d messages accepted" % len(accepted))
    t.eq(counts.get(("accepted", "spoof"), 0), 0, "no spoof accepted, DNS down or not")
    t.ok(counts.get(("rejected", "spoof"), 0) > 0, "spoofs refused while DNS answered")
    t.ok(counts.get(("tempfail", "spoof"), 0) + counts.get(("tempfail", "friend"), 0) > 0,
         "mail deferred (4xx) while DNS was gone")
    t.eq(counts.get(("rejected", "friend"), 0), 0, "no friend's message refused (never a false reject)")

    # every accepted message delivered exactly once, each with our verdict
    def delivered_tokens():
        out = {}
        for m in pf.delivered():
            s = re.search(rb"^Subject: (soak-\d+-\d+)", m, re.M)
            if s:
                out.setdefault(s.group(1).decode(), []).append(m)
        return out
    try:
        sandbox.wait_for(lambda: accepted <= set(delivered_tokens()), 120, interval=1,
                         what="every accepted message at the sink")
    except TimeoutError:
        pass
    got = delivered_tokens()
    t.eq(sorted(accepted - set(got)), [], "no accepted message lost")
    t.eq(sorted(tok for tok, ms in got.items() if len(ms) > 1), [], "none delivered twice")
    t.eq(sorted(set(got) - accepted), [], "nothing delivered that was not accepted")
    unverified = [tok for tok, ms in got.items()
                  if not re.search(rb"^Authentication-Results: mx\.example\.org;(.|\n[ \t])*dmarc=pass", ms[0], re.M)]
    t.eq(unverified, [], "every delivered message carries our dmarc=pass verdict")

    log = ma.text()
    tempfails = sum(1 for r, _, text in res.values() if r == "tempfail" and "4.7.1" in text)
    t.ok(log.count("action=tempfail") >= tempfails,
         "each tempfail a client saw was logged (%d seen, %d logged)" % (tempfails, log.count("action=tempfail")))
    t.ok(log.count("reload failed") > 0 and log.count("configuration reloaded") > 0,
         "good and bad reloads logged (%d ok, %d failed)" % (log.count("configuration reloaded"),
                                                              log.count("reload failed")))
    t.ok("no_such_setting" in log, "a failed reload says what is wrong")

    check_rss_flat(t, matest.MILTER_AUTH, rss)

    check_fds_back(t, pid, fd_before)

    pf.clear_delivered()
    code, _ = send(pf.port, "friend@friend.example", "alice@example.org",
                   sign(message(subject="after"), "sel", "friend.example", RSA),
                   source_address=FRIEND_IP, helo="mail.friend.example", timeout=120)
    got = pf.wait_delivered(1, timeout=60)[0]
    t.ok(code == 250 and b"dmarc=pass" in got, "afterwards the daemon still answers and verifies")
    pf.stop()
    os.kill(pid, signal.SIGTERM)
    t.eq(ma.proc.wait(30), 0, "and exits cleanly on SIGTERM")
    dns.stop()


t = Tap()
t.run(main)
t.done()
