"""mwtest: helpers every mailward end-to-end test and the demo use.

Each helper starts a real server (DNS, Redis, Postfix, Dovecot) privately on
loopback inside one temporary directory and stops it when the test ends,
even when the test fails. See tests/lib/README.md.
"""
