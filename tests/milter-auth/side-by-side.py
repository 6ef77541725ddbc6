#!/usr/bin/python3
"""milter-auth side by side with OpenDKIM + OpenDMARC (Debian's packages).

One private Postfix runs all three milters on the same messages; each
writes its own Authentication-Results header (authserv-ids mx.example.org,
opendkim.test, opendmarc.test), so every delivered message carries both
verdicts. Every difference must be one we expect, for a stated reason
(EXPECTED below, also in milter-auth/SIDE-BY-SIDE.md); an unexplained one
fails. The list of differences is printed as TAP diagnostics.

OpenDKIM and OpenDMARC have no port setting for DNS: the DNS server runs on
port 53 of a loopback address of its own (127.53.x.y, one free at the time,
so that two builds' test runs do not collide), OpenDKIM is told
"Nameservers" that address, and OpenDMARC reads a resolv.conf through
resolv_wrapper.
"""
import email
import os
import pwd
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import matest  # noqa: E402
from matest import message, sign  # noqa: E402
from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.postfix import Postfix  # noqa: E402
from mwtest.smtp import swaks  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

RSA, RSA_PUB = matest.rsa_key(2048)
SHORT, SHORT_PUB = matest.rsa_key(768)
ED, ED_PUB = matest.ed25519_key()
GOOD = "127.0.0.2"
BAD = "127.0.0.3"
DNS_ADDR = None  # chosen by start_dns()

ZONE = """
good.example                    TXT "v=spf1 ip4:%(good)s -all"
_dmarc.good.example             TXT "v=DMARC1; p=reject"
sel._domainkey.good.example     TXT "v=DKIM1; p=%(rsa)s"
ed._domainkey.good.example      TXT "v=DKIM1; k=ed25519; p=%(ed)s"
short._domainkey.good.example   TXT "v=DKIM1; p=%(short)s"
mail.good.example               TXT "v=spf1 ip4:%(good)s -all"
sel._domainkey.mail.good.example TXT "v=DKIM1; p=%(rsa)s"
strict.example                  TXT "v=spf1 ip4:%(good)s -all"
mail.strict.example             TXT "v=spf1 ip4:%(good)s -all"
_dmarc.strict.example           TXT "v=DMARC1; p=reject; aspf=s; adkim=s"
sub.orgpolicy.example           TXT "v=spf1 -all"
_dmarc.orgpolicy.example        TXT "v=DMARC1; p=none; sp=reject"
nodmarc.example                 TXT "v=spf1 ip4:%(good)s -all"
slow.example                    TXT "v=spf1 -all"
_dmarc.slow.example             TIMEOUT
""" % {"good": GOOD, "rsa": RSA_PUB, "ed": ED_PUB.decode() if isinstance(ED_PUB, bytes) else ED_PUB,
       "short": SHORT_PUB}


def corpus():
    base = message(frm="G <a@good.example>")
    signed = sign(base, "sel", "good.example", RSA)
    return [
        ("aligned SPF and DKIM", signed, GOOD, "a@good.example"),
        ("ed25519 signature", sign(base, "ed", "good.example", ED, alg=b"ed25519-sha256"), BAD, "x@elsewhere.example"),
        ("body altered", signed.replace(b"Hello Alice.", b"Hello Alicf."), BAD, "x@elsewhere.example"),
        ("rsa-sha1 signature", sign(base, "sel", "good.example", RSA, alg=b"rsa-sha1"), BAD, "x@elsewhere.example"),
        ("768-bit key", sign(base, "short", "good.example", SHORT), BAD, "x@elsewhere.example"),
        ("l= with appended text", sign(base, "sel", "good.example", RSA, length=True) + b"Click here.\r\n",
         BAD, "x@elsewhere.example"),
        ("spoofed, no signature", base, BAD, "a@good.example"),
        ("strict: SPF for a subdomain", message(frm="S <a@strict.example>"), GOOD, "b@mail.strict.example"),
        ("relaxed: DKIM d= subdomain", sign(base, "sel", "mail.good.example", RSA), BAD, "x@elsewhere.example"),
        ("subdomain under org sp=reject", message(frm="O <a@sub.orgpolicy.example>"), BAD, "x@sub.orgpolicy.example"),
        ("no DMARC record", message(frm="N <a@nodmarc.example>"), GOOD, "a@nodmarc.example"),
        ("DMARC lookup times out", message(frm="T <a@slow.example>"), BAD, "x@slow.example"),
        ("two From fields", b"From: a@good.example\r\n" + message(frm="N <b@nodmarc.example>").encode(),
         GOOD, "a@good.example"),
    ]


# (message, method) -> why milter-auth and OpenDKIM/OpenDMARC disagree.
EXPECTED = {
    ("rsa-sha1 signature", "dkim"): "RFC 8301: rsa-sha1 never passes; OpenDKIM still passes it",
    ("rsa-sha1 signature", "dmarc"): "follows from the DKIM verdict (RFC 8301)",
    ("spoofed, no signature", "dmarc"):
        "OpenDMARC's own SPF check (libspf2) passes every loopback client (\"localhost always gets a free "
        "ride\"); milter-auth drives libspf2 without that shortcut",
    ("l= with appended text", "dkim"): "milter-auth does not pass a signature that leaves body text unsigned",
    ("l= with appended text", "dmarc"): "follows from the DKIM verdict (l= policy)",
    ("subdomain under org sp=reject", "dmarc"):
        "OpenDMARC 1.4.2 does not fall back to the organizational domain's record (upstream #54)",
    ("DMARC lookup times out", "dmarc"): "a DNS timeout is temperror (RFC 7489 6.6.3); OpenDMARC reports none",
    ("two From fields", "dmarc"): "RFC 7489 6.6.1 / RFC 5322: several From fields is permerror; OpenDMARC "
                                  "evaluates one of them and passes",
}


def verdicts(msg, authserv):
    out = {}
    for ar in msg.get_all("Authentication-Results") or []:
        text = " ".join(ar.split())
        if not text.lower().startswith(authserv + ";"):
            continue
        for part in text.split(";")[1:]:
            part = part.strip()
            if "=" in part:
                method, rest = part.split("=", 1)
                out.setdefault(method.strip(), []).append(rest.split()[0])
    return out


def start_dns():
    """The DNS server on port 53 of a loopback address no one else uses."""
    global DNS_ADDR
    rnd = random.Random()
    for _ in range(20):
        addr = "127.53.%d.%d" % (rnd.randrange(256), rnd.randrange(1, 255))
        try:
            dns = DnsServer(ZONE, addr=addr, port=53)
        except RuntimeError as e:
            if "Address already in use" in str(e):
                continue
            raise
        DNS_ADDR = addr
        return dns
    raise RuntimeError("no free loopback address for the DNS server on port 53")


def start_peers(pf, run):
    """OpenDKIM and OpenDMARC as milters on unix sockets."""
    dkim_conf = os.path.join(run, "opendkim.conf")
    with open(dkim_conf, "w") as f:
        f.write("Mode v\nSocket local:%s/opendkim.sock\nUMask 000\nAuthservID opendkim.test\n"
                "Nameservers %s\nSyslog no\nPidFile %s/opendkim.pid\nBaseDirectory %s\n"
                "AlwaysAddARHeader yes\nDNSTimeout 2\n" % (run, DNS_ADDR, run, run))
    ignore = os.path.join(run, "opendmarc-ignore")
    with open(ignore, "w") as f:
        f.write("192.0.2.254\n")  # not the default 127.0.0.1: our test clients are on loopback
    dmarc_conf = os.path.join(run, "opendmarc.conf")
    with open(dmarc_conf, "w") as f:
        f.write("Socket local:%s/opendmarc.sock\nUMask 000\nAuthservID opendmarc.test\n"
                "TrustedAuthservIDs opendkim.test\nIgnoreHosts %s\nSPFSelfValidate true\n"
                "RejectFailures false\nSyslog no\nPidFile %s/opendmarc.pid\nBaseDirectory %s\n"
                "PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat\n" % (run, ignore, run, run))
    resolv = os.path.join(run, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver %s\n" % DNS_ADDR)
    env = dict(os.environ, LD_PRELOAD="libresolv_wrapper.so", RESOLV_WRAPPER_CONF=resolv)
    sandbox.spawn(["opendkim", "-f", "-x", dkim_conf], log=os.path.join(run, "opendkim.log"))
    sandbox.spawn(["opendmarc", "-f", "-c", dmarc_conf], log=os.path.join(run, "opendmarc.log"), env=env)
    sandbox.wait_for(lambda: os.path.exists(run + "/opendkim.sock") and os.path.exists(run + "/opendmarc.sock"),
                     15, what="OpenDKIM and OpenDMARC sockets")


def main(t):
    for tool in ("opendkim", "opendmarc"):
        if shutil.which(tool) is None:
            t.skip("side by side", "%s is not installed (tools/install-deps --tests)" % tool)
            return
    dns = start_dns()
    run = sandbox.mkdir("peers", mode=0o777)
    pf = Postfix(main={"relay_domains": "example.org"}, mynetworks="127.0.0.1/32")
    sockdir = os.path.join(pf.queue_dir, "mailward")
    os.makedirs(sockdir, exist_ok=True)
    os.chown(sockdir, 0, pwd.getpwnam("postfix").pw_gid)
    os.chmod(sockdir, 0o750)
    conf = sandbox.path("milter-auth-sbs.conf")
    with open(conf, "w") as f:
        f.write("socket = unix:%s/milter-auth.sock\nsocket_group = postfix\nuser = nobody\n"
                "authserv_id = mx.example.org\ntrusted_networks = 127.0.0.1/32\n"
                "dns_resolver = %s@53\ndns_timeout = 2s\ndmarc_enforce = no\nmalformed_from = accept\n"
                "tempfail_on_dns_error = no\n" % (sockdir, DNS_ADDR))
    log = sandbox.path("milter-auth-sbs.log")
    ma = sandbox.spawn([matest.MILTER_AUTH, "-f", "-c", conf], log=log)
    sandbox.wait_for(lambda: "listening on" in open(log).read() or ma.poll() is not None, 15, what="milter-auth")
    start_peers(pf, run)
    pf.apply_snippet("contrib/postfix/milter-auth.cf")
    pf.set(smtpd_milters="unix:mailward/milter-auth.sock unix:%s/opendkim.sock unix:%s/opendmarc.sock" % (run, run))
    pf.start()

    cases = corpus()
    for i, (name, msg, client, mail_from) in enumerate(cases):
        code, tr = swaks("--from", mail_from, "--to", "alice@example.org", "--helo", "client.example",
                         "--local-interface", client, "--data", "-", port=pf.port,
                         input=msg if isinstance(msg, bytes) else msg.encode())
        if code != 0:
            t.ok(False, "%s: accepted" % name, tr)
    delivered = pf.wait_delivered(len(cases), timeout=60)
    differences = 0
    for (name, msg, client, mail_from), raw in zip(cases, delivered):
        m = email.message_from_bytes(raw)
        ours = verdicts(m, "mx.example.org")
        dkim_peer = verdicts(m, "opendkim.test")
        dmarc_peer = verdicts(m, "opendmarc.test")
        peer = {"dkim": dkim_peer.get("dkim", ["none"]), "dmarc": dmarc_peer.get("dmarc", ["none"])}
        mine = {"dkim": ours.get("dkim", ["none"]), "dmarc": ours.get("dmarc", ["none"])}
        for method in ("dkim", "dmarc"):
            same = sorted(mine[method]) == sorted(peer[method])
            why = EXPECTED.get((name, method))
            if not same:
                differences += 1
                t.diag("DIFFERENCE %s, %s: milter-auth %s, OpenDKIM/OpenDMARC %s: %s" % (
                    name, method, "/".join(mine[method]), "/".join(peer[method]), why or "UNEXPLAINED"))
            t.ok(same or why is not None, "%s: %s verdicts %s" % (
                name, method, "agree" if same else "differ, as expected"),
                "milter-auth %s vs %s" % (mine[method], peer[method]))
            if same and why is not None:
                t.diag("note: %s, %s: expected a difference (%s) but both say %s" % (name, method, why, mine[method]))
    t.diag("%d verdicts differ, each for a stated reason" % differences)
    pf.stop()
    dns.stop()


t = Tap()
t.run(main)
t.done()
