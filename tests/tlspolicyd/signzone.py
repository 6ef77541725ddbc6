"""A DNSSEC-signed zone for the tlspolicyd tests, in tests/lib/dnsserver.py's
.zone format (signatures as RFC 3597 generic data), made fresh each run as
tests/lib/dnssec-zone does, but for records the test chooses:

    zone_text, anchor_text = sign("dnssec.example", [("dane.dnssec.example", "MX", "10 mx.dane.dnssec.example"),
                                                   ...], bogus={"_25._tcp.mx.bad.dnssec.example"})

A name in bogus gets a signature over different data: validation fails.
Only positive answers are signed (dnsserver.py serves no NSEC records), so
a test must never make the resolver ask for a name the signed zone lacks."""
import time

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

TTL = 300


def _generic(name, rtype, rdata):
    wire = rdata.to_wire()
    return "%s %s \\# %d %s\n" % (name.to_text(omit_final_dot=True), rtype, len(wire), wire.hex())


def _absolute(rtype, data):
    """dnsserver.py's zone lines name hosts without the final dot; dnspython wants it."""
    if rtype == "MX":
        pref, host = data.split()
        return "%s %s." % (pref, host.rstrip("."))
    return data


def sign(origin_text, records, bogus=()):
    origin = dns.name.from_text(origin_text + ".")
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    now = int(time.time())

    def rrsig(rrset):
        return dns.dnssec.sign(rrset, key, origin, dnskey, inception=now - 3600, expiration=now + 30 * 86400)

    lines = [_generic(origin, "DNSKEY", dnskey),
             _generic(origin, "RRSIG", rrsig(dns.rrset.from_rdata(origin, TTL, dnskey)))]
    groups = {}
    for name, rtype, data in records:
        groups.setdefault((name, rtype), []).append(data)
    for (name, rtype), datas in groups.items():
        owner = dns.name.from_text(name + ".")
        rdatas = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), _absolute(rtype, d))
                  for d in datas]
        signed = rdatas
        if name in bogus:  # sign something else than what is served
            if rtype == "TLSA":
                signed = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, "3 1 1 " + "00" * 32)]
            else:
                signed = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, '"tampered"')]
        lines.append(_generic(owner, "RRSIG", rrsig(dns.rrset.from_rdata_list(owner, TTL, signed))))
        for d in datas:
            lines.append("%s %s %s\n" % (name, rtype, d))
    anchor = "%s %d IN DNSKEY %s\n" % (origin.to_text(), TTL, dnskey.to_text())
    return "".join(lines), anchor
