#!/usr/bin/python3
"""A local authoritative DNS server for tests, on dnslib, UDP and TCP.

    dnsserver.py --zone FILE [--zone FILE ...] --port N [--addr 127.0.0.1]
                 [--ttl 300] [--ready-file F] [--pidfile F] [--log F]

--port 0 picks a free port and writes it to the ready file once listening.
SIGHUP re-reads the zone files; SIGTERM exits.

Zone files, by extension:

.yml / .yaml: the `zonedata` mapping of the RFC 7208 test suite (or a file
    whose top level is that mapping, or a `zonedata:` key holding it):
        example.com:
          - TXT: "v=spf1 mx -all"        # or a list: several strings, one record
          - MX: [10, mail.example.com]
          - A: 192.0.2.1
          - TIMEOUT
    with the pyspf driver's rules: SPF records are served as TXT too when the
    name has no TXT entry; `TXT: NONE` means no TXT and no such copy;
    TIMEOUT means a query for a type the name has no records of gets no
    answer at all. Extensions: SERVFAIL and REFUSED (the same, answering that
    rcode), `TLSA: [usage, selector, mtype, hex]`, CNAME, PTR, AAAA.
.zone: one record per line, for hand-written zones:
        example.org   TXT   "v=spf1 " "-all"     # two strings, one record
        example.org   MX    10 mx.example.org
        slow.example  TIMEOUT
        bad.example   SERVFAIL
        _25._tcp.mx.example.org TLSA 3 1 1 0123abcd
        example.org   DNSKEY \# 68 0101030d...   # RFC 3597 generic data (dnssec-zone)

An RRSIG is served with the answer whose type it covers.

Names are case-insensitive; a name not listed is NXDOMAIN; a label longer
than 63 bytes is answered FORMERR. Every answer is authoritative. TXT
strings longer than 255 bytes are split into 255-byte character-strings.
UDP answers that do not fit 512 bytes (or the client's EDNS size) are
truncated (TC) so the client retries over TCP.
"""
import argparse
import os
import shlex
import signal
import socket
import struct
import sys
import threading

import yaml
from dnslib import (AAAA, CNAME, EDNS0, MX, PTR, QTYPE, RCODE, RD, RR, SOA, TLSA, TXT, A,
                    DNSRecord)

SPECIAL = ("TIMEOUT", "SERVFAIL", "REFUSED")


def to_bytes(s):
    """YAML writes raw bytes as \\xEF escapes: those are latin-1 code points."""
    if isinstance(s, bytes):
        return s
    s = str(s)
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def txt_strings(value):
    """One TXT record's character-strings, each at most 255 bytes."""
    parts = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for p in parts:
        b = to_bytes(p)
        if not b:
            out.append(b"")
        while b:
            out.append(b[:255])
            b = b[255:]
    # A TXT record with no strings cannot be written on the wire: the
    # suite's "null text" is one empty string.
    return out or [b""]


class Name:
    def __init__(self):
        self.records = []  # (qtype name, rdata)
        self.special = None  # TIMEOUT / SERVFAIL / REFUSED


def host(h):
    return str(h).rstrip(".") + "."


def make_rdata(rtype, value):
    if rtype in ("TXT", "SPF"):
        return TXT(txt_strings(value))
    if rtype == "A":
        return A(str(value))
    if rtype == "AAAA":
        return AAAA(str(value))
    if rtype == "MX":
        prio, exchange = value
        return MX(host(exchange), int(prio))
    if rtype == "PTR":
        return PTR(host(value))
    if rtype == "CNAME":
        return CNAME(host(value))
    if rtype == "TLSA":
        u, s, m, data = value
        return TLSA(int(u), int(s), int(m), bytes.fromhex(str(data)))
    raise ValueError("unsupported record type %s" % rtype)


def load_yaml_zone(text, zone):
    data = yaml.safe_load(text) or {}
    if "zonedata" in data and isinstance(data["zonedata"], dict):
        data = data["zonedata"]
    for dname, entries in data.items():
        n = zone.setdefault(str(dname).lower().rstrip("."), Name())
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries or [])
        spf_copies = []
        for e in entries or []:
            if isinstance(e, str):
                if e not in SPECIAL:
                    raise ValueError("%s: unknown entry %r" % (dname, e))
                n.special = e
                continue
            for rtype, value in e.items():
                if value == "NONE":
                    continue
                if rtype == "SPF":
                    # RFC 7208 dropped the SPF RR type: the record is only
                    # ever read as TXT.
                    if not has_txt:
                        spf_copies.append(value)
                    n.records.append(("SPF", make_rdata("SPF", value)))
                    continue
                n.records.append((rtype, make_rdata(rtype, value)))
        for v in spf_copies:
            n.records.append(("TXT", make_rdata("TXT", v)))


def load_text_zone(text, zone):
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if len(words) < 2:
            raise ValueError("line %d: expected NAME TYPE DATA" % lineno)
        dname, rtype, args = words[0].lower().rstrip("."), words[1].upper(), words[2:]
        n = zone.setdefault(dname, Name())
        if rtype in SPECIAL:
            n.special = rtype
        elif args and args[0] in ("\\#", "#"):  # RFC 3597: NAME TYPE \# LEN HEX (DNSKEY, RRSIG, ...)
            data = bytes.fromhex("".join(args[2:]))
            if getattr(QTYPE, rtype, None) is None or len(data) != int(args[1]):
                raise ValueError("line %d: bad generic record" % lineno)
            n.records.append((rtype, RD(data)))
        elif rtype in ("TXT", "SPF"):
            n.records.append(("TXT", make_rdata("TXT", args)))
        elif rtype == "MX":
            n.records.append(("MX", make_rdata("MX", (args[0], args[1]))))
        elif rtype == "TLSA":
            n.records.append(("TLSA", make_rdata("TLSA", args)))
        else:
            n.records.append((rtype, make_rdata(rtype, args[0])))


def load(files):
    zone = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        if f.endswith((".yml", ".yaml")):
            load_yaml_zone(text, zone)
        else:
            load_text_zone(text, zone)
    return zone


class Server:
    def __init__(self, args):
        self.args = args
        self.zone = load(args.zone)
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.lock = threading.Lock()

    def reload(self, *_):
        try:
            z = load(self.args.zone)
            with self.lock:
                self.zone = z
            self.note("reloaded %d names" % len(z))
        except Exception as e:  # keep serving the old zone
            self.note("reload failed: %s" % e)

    def note(self, text):
        if self.log:
            self.log.write(text + "\n")

    def soa(self, qname):
        labels = str(qname).rstrip(".").split(".")
        apex = ".".join(labels[-2:]) + "." if len(labels) >= 2 else str(qname)
        return RR(apex, QTYPE.SOA, ttl=self.args.ttl,
                  rdata=SOA("ns." + apex, "hostmaster." + apex,
                            (1, 3600, 600, 86400, self.args.ttl)))

    @staticmethod
    def formerr(data):
        """A bare FORMERR reply: header only, the query's id and RD bit."""
        if len(data) < 12:
            return None
        return data[:2] + bytes([0x80 | (data[2] & 0x79), 0x01]) + b"\x00" * 8

    def answer(self, data):
        """The reply (a DNSRecord, or bytes for FORMERR), or None for no
        answer at all (TIMEOUT)."""
        try:
            q = DNSRecord.parse(data)
            if any(len(label) > 63 for label in q.q.qname.label):
                return self.formerr(data)
        except Exception:
            return self.formerr(data)
        r = q.reply()
        r.header.aa = 1
        r.header.ra = 0
        # the raw label bytes: str() would escape a space as \032
        qname = b".".join(q.q.qname.label).decode("latin-1").lower()
        qtype = QTYPE.get(q.q.qtype)
        with self.lock:
            zone = self.zone
        name, target, seen = zone.get(qname), qname, set()
        if name is None:
            r.header.rcode = RCODE.NXDOMAIN
            r.add_auth(self.soa(q.q.qname))
            self.note("%s %s NXDOMAIN" % (qname, qtype))
            return r
        # Follow CNAMEs inside our own data.
        while True:
            cnames = [rd for t, rd in name.records if t == "CNAME"]
            if not cnames or qtype == "CNAME" or target in seen:
                break
            seen.add(target)
            r.add_answer(RR(target + ".", QTYPE.CNAME, ttl=self.args.ttl, rdata=cnames[0]))
            target = str(cnames[0].label).lower().rstrip(".")
            name = zone.get(target)
            if name is None:
                return r
        matches = [rd for t, rd in name.records if t == qtype]
        if not matches and name.special:
            self.note("%s %s %s" % (qname, qtype, name.special))
            if name.special == "TIMEOUT":
                return None
            r.header.rcode = RCODE.SERVFAIL if name.special == "SERVFAIL" else RCODE.REFUSED
            return r
        for rd in matches:
            r.add_answer(RR(target + ".", getattr(QTYPE, qtype), ttl=self.args.ttl, rdata=rd))
        # DNSSEC: the signatures covering the answer (RRSIG's first field)
        covered = struct.pack("!H", q.q.qtype)
        for t, rd in name.records:
            if matches and t == "RRSIG" and qtype != "RRSIG" and rd.data[:2] == covered:
                r.add_answer(RR(target + ".", QTYPE.RRSIG, ttl=self.args.ttl, rdata=rd))
        if not matches:
            r.add_auth(self.soa(q.q.qname))
        self.note("%s %s %d answers" % (qname, qtype, len(matches)))
        return r

    def udp_reply(self, data):
        r = self.answer(data)
        if r is None or isinstance(r, bytes):
            return r
        limit = 512
        try:
            q = DNSRecord.parse(data)
            for ar in q.ar:
                if ar.rtype == QTYPE.OPT:
                    limit = max(512, ar.rclass)
                    # echo the DO bit: a validating resolver wants to see it
                    r.add_ar(EDNS0(udp_len=1232, flags="do" if ar.ttl & 0x8000 else ""))
        except Exception:
            pass
        out = r.pack()
        if len(out) > limit:
            r.rr, r.auth = [], []
            r.header.tc = 1
            out = r.pack()
        return out

    def serve_udp(self, sock):
        while True:
            data, peer = sock.recvfrom(65535)
            try:
                out = self.udp_reply(data)
            except Exception as e:  # a test server must survive odd queries
                self.note("error answering: %r" % e)
                out = self.formerr(data)
            if out is not None:
                sock.sendto(out, peer)

    def serve_tcp_conn(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    head = self.recv_exact(conn, 2)
                    if head is None:
                        return
                    data = self.recv_exact(conn, struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    try:
                        r = self.answer(data)
                        out = r.pack() if r is not None and not isinstance(r, bytes) else r
                    except Exception as e:
                        self.note("error answering: %r" % e)
                        out = self.formerr(data)
                    if out is None:
                        continue  # TIMEOUT: hold the connection, say nothing
                    conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                return

    @staticmethod
    def recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def serve_tcp(self, sock):
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=self.serve_tcp_conn, args=(conn,), daemon=True).start()


def bind(addr, port):
    """UDP and TCP sockets on the same port (a free one when port is 0)."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    for _ in range(50):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((addr, port))
        p = u.getsockname()[1]
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((addr, p))
        except OSError:
            u.close()
            t.close()
            if port:
                raise
            continue
        t.listen(64)
        return u, t, p
    raise OSError("no free port for UDP and TCP")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zone", action="append", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--ready-file")
    ap.add_argument("--pidfile")
    ap.add_argument("--log")
    args = ap.parse_args()

    try:
        server = Server(args)
    except Exception as e:
        print("dnsserver: %s" % e, file=sys.stderr)
        return 2
    udp, tcp, port = bind(args.addr, args.port)
    signal.signal(signal.SIGHUP, server.reload)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=server.serve_tcp, args=(tcp,), daemon=True).start()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.ready_file)
    server.serve_udp(udp)


if __name__ == "__main__":
    sys.exit(main())
