#!/usr/bin/python3
"""milter-pgp's cache of discovered keys, in the daemon behind a private
Postfix (key_trust = any): a key found by WKD is fetched once for several
messages (and once for two messages sent at the same time), a "no key"
answer is remembered too; what leaves is encrypted to the found key."""
import os
import pwd
import smtplib
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kstest import ALICE, NOBODY, WANDA, conf_for, fetches, mptest, new_ring, sandbox, web  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

MSG = "From: alice@example.org\r\nTo: x\r\nSubject: cache %d\r\nContent-Type: text/plain\r\n\r\nhello %d\r\n"


def start_milter(socket, ring, extra):
    """milter-pgp as a daemon (as nobody), its log in a file."""
    conf = mptest.write_conf("socket = %s\nkeyring = %s\ntmpdir = %s\nuser = nobody\nsocket_group = postfix\n"
                             "socket_mode = 0660\ntrusted_networks = 127.0.0.1/32\n%s"
                             % (socket, ring, sandbox.mkdir("cache-spool", mode=0o1777), extra), "cache.conf")
    log = sandbox.path("milter-pgp-cache.log")
    proc = sandbox.spawn([mptest.MILTER_PGP, "-f", "-c", conf], log=log)
    sandbox.at_cleanup(lambda: sandbox.stop(proc))
    sandbox.wait_for(lambda: "listening on" in sandbox.read_text(log) or proc.poll() is not None, 30,
                     what="milter-pgp to listen")
    if proc.poll() is not None:
        raise RuntimeError("milter-pgp exited: " + sandbox.read_text(log))
    return log


def send(pf, rcpts, n):
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.example", timeout=120) as s:
        return s.sendmail(ALICE, rcpts, (MSG % (n, n)).encode())


def main(t):
    ring = new_ring("ring-cache")
    nobody = pwd.getpwnam("nobody")
    for d, _, files in os.walk(ring):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in files:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    # the key discovery settings of the other tests, in the daemon's file
    extra = "".join(ln + "\n" for ln in open(conf_for(ring)).read().splitlines()
                    if ln.split(" ")[0] not in ("keyring", "tmpdir"))
    pf = Postfix(mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.get("queue_directory"), "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chmod(sockdir, 0o750)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    log = start_milter("unix:%s/milter-pgp.sock" % sockdir, ring, extra)
    pf.apply_snippet("contrib/postfix/milter-pgp.cf")
    pf.start()

    # two messages at once: one fetch between them
    results = []
    threads = [threading.Thread(target=lambda n=n: results.append(send(pf, [WANDA], n))) for n in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = pf.wait_delivered(2, timeout=90)
    t.ok(results == [{}, {}] and fetches("?l=wanda") == 1,
         "two messages at the same time to an address found by WKD: one fetch",
         "%d fetches %r" % (fetches("?l=wanda"), results))
    send(pf, [WANDA], 3)
    got = pf.wait_delivered(3, timeout=90)
    t.eq(fetches("?l=wanda"), 1, "a third message later: the cached key, no fetch")
    ok = 0
    for raw in got:
        rc, plain, status = mptest.gpg_decrypt(web, mptest.armored(raw))
        ok += "DECRYPTION_OKAY" in status and b"hello" in plain
    t.eq(ok, 3, "each copy is encrypted to the key found")

    for n in (4, 5):
        send(pf, [NOBODY], n)
    got = pf.wait_delivered(5, timeout=90)
    t.ok(fetches("?l=nobody") == 1 and sum(b"hello 4" in g or b"hello 5" in g for g in got) == 2,
         "no key (a 404): remembered, the second message does not fetch again, both go as they are",
         "%d fetches" % fetches("?l=nobody"))
    text = sandbox.read_text(log)
    t.ok("key of <%s>: " % WANDA in text, "the daemon logs what it found", text[-2000:])


t = Tap()
t.run(main)
t.done()
