#!/usr/bin/python3
"""Self-test of tests/lib/dnsserver.py: every record type, negative answers,
SERVFAIL, TIMEOUT, long TXT, TCP fallback, reload, and the whole RFC 7208
suite's zone data."""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.environ.get("MW_TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/lib"))
import yaml  # noqa: E402
from dnslib import QTYPE, RCODE, DNSLabel, DNSQuestion, DNSRecord  # noqa: E402

from mwtest import sandbox  # noqa: E402
from mwtest.dns import DnsServer  # noqa: E402
from mwtest.tap import Tap  # noqa: E402

ZONE = """
# hand-written zone
mail.example.org  A     192.0.2.10
mail.example.org  AAAA  2001:db8::10
example.org       MX    10 mail.example.org
example.org       TXT   "v=spf1 " "mx -all"
example.org       TXT   "second"
alias.example.org CNAME mail.example.org
10.2.0.192.in-addr.arpa PTR mail.example.org
_25._tcp.mail.example.org TLSA 3 1 1 00ff
slow.example.org  TIMEOUT
half.example.org  A 192.0.2.11
half.example.org  TIMEOUT
broken.example.org SERVFAIL
refused.example.org REFUSED
long.example.org  TXT "%s"
""" % ("L" * 600)


def ask(port, name, qtype, tcp=False, timeout=2):
    # dnslib refuses to build a 64-byte label from text: give it the labels
    qname = DNSLabel([x.encode() for x in name.split(".")])
    q = DNSRecord(q=DNSQuestion(qname, qtype if isinstance(qtype, int) else getattr(QTYPE, qtype)))
    return DNSRecord.parse(q.send("127.0.0.1", port, tcp=tcp, timeout=timeout))


def no_answer(port, name, qtype):
    try:
        ask(port, name, qtype, timeout=1)
        return False
    except socket.timeout:
        return True


def records(t, dns):
    p = dns.port
    r = ask(p, "mail.example.org", "A")
    t.eq([str(x.rdata) for x in r.rr], ["192.0.2.10"], "A record")
    t.ok(r.header.aa == 1, "answers are authoritative")
    r = ask(p, "MAIL.Example.ORG", "AAAA")
    t.eq([str(x.rdata) for x in r.rr], ["2001:db8::10"], "AAAA record, names case-insensitive")
    r = ask(p, "example.org", "MX")
    t.eq([(x.rdata.preference, str(x.rdata.label)) for x in r.rr], [(10, "mail.example.org.")], "MX record")
    r = ask(p, "example.org", "TXT")
    txts = sorted(b"".join(x.rdata.data) for x in r.rr)
    t.eq(txts, [b"second", b"v=spf1 mx -all"], "two TXT records, strings kept apart")
    t.eq(len([x for x in r.rr if len(x.rdata.data) == 2]), 1, "first TXT record has two strings")
    r = ask(p, "alias.example.org", "A")
    t.eq([QTYPE[x.rtype] for x in r.rr], ["CNAME", "A"], "CNAME chased to its A record")
    r = ask(p, "10.2.0.192.in-addr.arpa", "PTR")
    t.eq([str(x.rdata) for x in r.rr], ["mail.example.org."], "PTR record")
    r = ask(p, "_25._tcp.mail.example.org", 52)
    d = r.rr[0].rdata
    t.eq((d.cert_usage, d.selector, d.matching_type, d.cert_data), (3, 1, 1, b"\x00\xff"), "TLSA record")


def negatives(t, dns):
    p = dns.port
    r = ask(p, "nothere.example.org", "A")
    t.eq(RCODE[r.header.rcode], "NXDOMAIN", "unknown name is NXDOMAIN")
    t.ok(len(r.auth) == 1 and QTYPE[r.auth[0].rtype] == "SOA", "NXDOMAIN carries an SOA")
    r = ask(p, "mail.example.org", "TXT")
    t.ok(RCODE[r.header.rcode] == "NOERROR" and not r.rr, "known name, no such type: NODATA")
    t.eq(RCODE[ask(p, "broken.example.org", "TXT").header.rcode], "SERVFAIL", "SERVFAIL entry")
    t.eq(RCODE[ask(p, "refused.example.org", "A").header.rcode], "REFUSED", "REFUSED entry")
    t.ok(no_answer(p, "slow.example.org", "TXT"), "TIMEOUT entry: no answer at all")
    t.ok(no_answer(p, "half.example.org", "TXT"), "TIMEOUT: a type without records times out")
    r = ask(p, "half.example.org", "A")
    t.eq([str(x.rdata) for x in r.rr], ["192.0.2.11"], "TIMEOUT: a type with records is answered")
    # dnslib will not encode a 64-byte label: write the query by hand
    raw = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x40" + b"a" * 64 +
           b"\x07example\x03org\x00\x00\x01\x00\x01")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(raw, ("127.0.0.1", p))
        reply = s.recv(512)
    t.eq(reply[3] & 0x0f, 1, "label over 63 bytes: FORMERR")


def long_txt_and_tcp(t, dns):
    p = dns.port
    q = DNSRecord.question("long.example.org", "TXT")
    udp = DNSRecord.parse(q.send("127.0.0.1", p, timeout=2))
    t.ok(udp.header.tc == 1 and not udp.rr, "600-byte TXT over plain UDP is truncated (TC)")
    r = ask(p, "long.example.org", "TXT", tcp=True)
    parts = r.rr[0].rdata.data
    t.eq([len(x) for x in parts], [255, 255, 90], "long TXT split into 255-byte strings")
    t.eq(b"".join(parts), b"L" * 600, "TCP answer carries the whole record")


def reload_zone(t, dns):
    dns.set_zone(ZONE + "\nnew.example.org A 192.0.2.99\n")
    dns.reload()
    r = ask(dns.port, "new.example.org", "A")
    t.eq([str(x.rdata) for x in r.rr], ["192.0.2.99"], "SIGHUP reload serves the new zone")
    t.contains(dns.queries(), "new.example.org A 1 answers", "query log names each query")


def rfc7208_suite(t):
    # the copy in the tree (the one tests/milter-auth/rfc7208.py runs),
    # or another version named by the environment
    suite = os.environ.get("MW_SPF_SUITE") or os.path.join(sandbox.top_srcdir(),
                                                           "tests/milter-auth/rfc7208-tests.yml")
    docs = list(yaml.safe_load_all(open(suite, encoding="utf-8")))
    loaded = 0
    for i, doc in enumerate(docs):
        f = sandbox.path("suite-%d.yml" % i)
        with open(f, "w", encoding="utf-8") as out:
            yaml.safe_dump({"zonedata": doc["zonedata"]}, out, allow_unicode=True)
        s = DnsServer(files=[f])
        # one name from each block answers as the suite says
        name = sorted(doc["zonedata"])[0]
        entries = doc["zonedata"][name]
        if "TIMEOUT" in entries:
            loaded += 1
        else:
            r = ask(s.port, name, "A")
            loaded += RCODE[r.header.rcode] in ("NOERROR", "NXDOMAIN")
        s.stop()
    t.eq(loaded, len(docs), "all %d zonedata blocks of the RFC 7208 suite load and answer" % len(docs))
    # the pyspf rule: SPF-only names answer TXT too, TXT: NONE does not
    z = {"zonedata": {"spfonly.example": [{"SPF": "v=spf1 -all"}],
                      "none.example": [{"SPF": "v=spf1 +all"}, {"TXT": "NONE"}],
                      "raw.example": [{"TXT": "v=spf1 exp=\xEF.example -all"}]}}
    f = sandbox.path("pyspf.yml")
    with open(f, "w", encoding="utf-8") as out:
        yaml.safe_dump(z, out, allow_unicode=True)
    s = DnsServer(files=[f])
    r = ask(s.port, "spfonly.example", "TXT")
    t.eq([b"".join(x.rdata.data) for x in r.rr], [b"v=spf1 -all"], "SPF record also served as TXT")
    r = ask(s.port, "none.example", "TXT")
    t.ok(not r.rr and RCODE[r.header.rcode] == "NOERROR", "TXT: NONE suppresses the TXT copy")
    r = ask(s.port, "raw.example", "TXT")
    t.eq(b"".join(r.rr[0].rdata.data), b"v=spf1 exp=\xef.example -all", "\\xEF escapes become raw bytes")
    s.stop()


def main():
    t = Tap()
    dns = DnsServer(ZONE)
    t.run(records, dns)
    t.run(negatives, dns)
    t.run(long_txt_and_tcp, dns)
    t.run(reload_zone, dns)
    dns.stop()
    t.run(rfc7208_suite)
    t.done()


main()
