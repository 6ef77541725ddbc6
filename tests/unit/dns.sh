#!/bin/sh
# Runs the DNS unit tests against a private DNS server serving dns.zone and
# a DNSSEC-signed zone made for this run (tests/lib/dnssec-zone).
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
if ! /usr/bin/python3 "$MW_TOP_SRCDIR/tests/lib/dnssec-zone" "$dir"; then
	echo "dns.sh: cannot sign the test zone (python3-dnspython, python3-cryptography)" >&2
	exit 1
fi
MW_TEST_DNSSEC_ANCHOR="$dir/anchor.key" /usr/bin/python3 "$MW_TOP_SRCDIR/tests/lib/with-dns" \
	"$MW_TOP_SRCDIR/tests/unit/dns.zone" "$dir/dnssec.zone" -- "$MW_TOP_BUILDDIR/tests/unit/test_dns"
