#!/usr/bin/python3
"""A validating stub resolver for tests: what Postfix trusts for DANE.

    adresolver.py --port 53 --upstream 127.0.0.1@PORT --anchor FILE --ready-file F

Postfix never validates DNSSEC itself: with smtp_dns_support_level = dnssec
it asks the system resolver with the DO bit and trusts the AD bit of the
answer (glibc passes AD on only with `options trust-ad` in resolv.conf).
This forwards each UDP query to the test DNS server (tests/lib/dnsserver.py),
checks the signatures of the answer's record sets under the trust anchor's
zone (dnspython) and answers: AD set when every answer set is signed and
valid, SERVFAIL when a signature does not verify (as a validating resolver
does for a bogus answer), the answer as it came otherwise (insecure)."""
import argparse
import os
import socket
import threading

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--anchor", required=True)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    up_addr, up_port = args.upstream.split("@")
    owner, ttl, _cls, _type, rdata = open(args.anchor).read().split(None, 4)
    origin = dns.name.from_text(owner)
    keys = {origin: dns.rrset.from_text(origin, int(ttl), "IN", "DNSKEY", rdata.strip())}

    def verdict(resp):
        """'secure', 'bogus' or 'insecure'."""
        sets = [rr for rr in resp.answer if rr.rdtype != dns.rdatatype.RRSIG]
        if not sets or not all(rr.name.is_subdomain(origin) for rr in sets):
            return "insecure"
        for rr in sets:
            try:
                sig = resp.find_rrset(resp.answer, rr.name, dns.rdataclass.IN, dns.rdatatype.RRSIG, rr.rdtype)
                dns.dnssec.validate(rr, sig, keys)
            except (KeyError, dns.dnssec.ValidationFailure):
                return "bogus"
        return "secure"

    def answer(wire):
        q = dns.message.from_wire(wire)
        resp = dns.query.udp(q, up_addr, port=int(up_port), timeout=5)
        if resp.flags & dns.flags.TC:
            resp = dns.query.tcp(q, up_addr, port=int(up_port), timeout=5)
        v = verdict(resp)
        if v == "bogus":
            resp = dns.message.make_response(q)
            resp.set_rcode(dns.rcode.SERVFAIL)
        resp.flags |= dns.flags.RA
        resp.flags &= ~dns.flags.AA
        if v == "secure":
            resp.flags |= dns.flags.AD
        else:
            resp.flags &= ~dns.flags.AD
        return resp.to_wire()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", args.port))

    def serve(data, peer):
        try:
            sock.sendto(answer(data), peer)
        except Exception as e:  # no answer: the client times out, as with a dead resolver
            print("error: %r" % e, flush=True)

    with open(args.ready_file + ".tmp", "w") as f:
        f.write(str(args.port))
    os.rename(args.ready_file + ".tmp", args.ready_file)
    while True:
        data, peer = sock.recvfrom(65535)
        threading.Thread(target=serve, args=(data, peer), daemon=True).start()


if __name__ == "__main__":
    main()
