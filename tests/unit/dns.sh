#!/bin/sh
# Runs the DNS unit tests against a private DNS server serving dns.zone.
exec /usr/bin/python3 "$MW_TOP_SRCDIR/tests/lib/with-dns" \
	"$MW_TOP_SRCDIR/tests/unit/dns.zone" -- "$MW_TOP_BUILDDIR/tests/unit/test_dns"
