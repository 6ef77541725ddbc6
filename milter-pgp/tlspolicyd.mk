# tlspolicyd: the per-destination TLS policy service for Postfix's
# smtp_tls_policy_maps (socketmap), part of outbound protection.
if ENABLE_TLSPOLICYD
TLSPOL_CFLAGS = $(AM_CFLAGS) $(UNBOUND_CFLAGS) $(TLSPOL_CURL_CFLAGS) $(TLSPOL_EVENT_CFLAGS)
TLSPOL_LIBS = common/libmwdns.la common/libmwcommon.la $(UNBOUND_LIBS) $(TLSPOL_CURL_LIBS) \
	$(TLSPOL_EVENT_LIBS) $(PTHREAD_LIBS)

# The pure parts (framing, file formats, decisions): no I/O, unit-tested.
noinst_LTLIBRARIES += milter-pgp/libtlspol.la
milter_pgp_libtlspol_la_SOURCES = \
	milter-pgp/tlspol_netstring.c milter-pgp/tlspol_netstring.h \
	milter-pgp/tlspol_policy.c milter-pgp/tlspol_policy.h \
	milter-pgp/tlspol_sts.c milter-pgp/tlspol_sts.h \
	milter-pgp/tlspol_cache.c milter-pgp/tlspol_cache.h \
	milter-pgp/tlspol_decide.c milter-pgp/tlspol_decide.h
milter_pgp_libtlspol_la_CFLAGS = $(TLSPOL_CFLAGS)

dist_ex_postfix_DATA += contrib/postfix/tlspolicyd.cf
dist_ex_mailward_DATA += contrib/mailward/tlspolicyd.conf contrib/mailward/milter-tls.conf
sbin_PROGRAMS += milter-pgp/tlspolicyd
dist_man_MANS += man/tlspolicyd.8 man/milter-tls.8
milter_pgp_tlspolicyd_SOURCES = milter-pgp/tlspolicyd.c \
	milter-pgp/tlspol_conf.c milter-pgp/tlspol_conf.h \
	milter-pgp/tlspol_fetch.c milter-pgp/tlspol_fetch.h \
	milter-pgp/tlspol_lookup.c milter-pgp/tlspol_lookup.h \
	milter-pgp/tlspol_server.c milter-pgp/tlspol_server.h
milter_pgp_tlspolicyd_CFLAGS = $(TLSPOL_CFLAGS)
milter_pgp_tlspolicyd_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS)

# milter-tls: TLS required before MAIL FROM on the submission services.
sbin_PROGRAMS += milter-pgp/milter-tls
milter_pgp_milter_tls_SOURCES = milter-pgp/milter-tls.c
milter_pgp_milter_tls_CFLAGS = $(AM_CFLAGS) $(TLSPOL_MILTER_CFLAGS)
milter_pgp_milter_tls_LDADD = common/libmwcommon.la $(TLSPOL_MILTER_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/tlspolicyd/test_pure
tests_tlspolicyd_test_pure_SOURCES = tests/tlspolicyd/test_pure.c
tests_tlspolicyd_test_pure_CFLAGS = $(TLSPOL_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/milter-pgp
tests_tlspolicyd_test_pure_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS) $(CMOCKA_LIBS)
TESTS += tests/tlspolicyd/test_pure tests/tlspolicyd/protocol.py tests/tlspolicyd/decisions.py tests/tlspolicyd/e2e.py tests/tlspolicyd/refresh.py \
	tests/tlspolicyd/crosscheck.py tests/tlspolicyd/e2e_dane.py
EXTRA_DIST += tests/tlspolicyd/tptest.py tests/tlspolicyd/protocol.py tests/tlspolicyd/decisions.py \
	bench/tlspolicyd/run bench/tlspolicyd/tpload.c bench/tlspolicyd/tpecho.c bench/tlspolicyd/RESULTS.md tests/tlspolicyd/refresh.py \
	tests/tlspolicyd/signzone.py tests/tlspolicyd/stsserver.py tests/tlspolicyd/tlssink.py tests/tlspolicyd/e2e.py tests/tlspolicyd/crosscheck.py \
	tests/tlspolicyd/e2e_dane.py tests/tlspolicyd/adresolver.py

if ENABLE_FUZZERS
TLSPOL_FUZZERS = tests/fuzz/fuzz_tlspol_netstring tests/fuzz/fuzz_tlspol_policy \
	tests/fuzz/fuzz_tlspol_sts tests/fuzz/fuzz_tlspol_cache
FUZZERS += $(TLSPOL_FUZZERS)
noinst_PROGRAMS += $(TLSPOL_FUZZERS)
tests_fuzz_fuzz_tlspol_netstring_SOURCES = tests/fuzz/fuzz_tlspol_netstring.c
tests_fuzz_fuzz_tlspol_netstring_CFLAGS = $(TLSPOL_CFLAGS) -I$(top_srcdir)/milter-pgp
tests_fuzz_fuzz_tlspol_netstring_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tlspol_netstring_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS)
tests_fuzz_fuzz_tlspol_policy_SOURCES = tests/fuzz/fuzz_tlspol_policy.c
tests_fuzz_fuzz_tlspol_policy_CFLAGS = $(TLSPOL_CFLAGS) -I$(top_srcdir)/milter-pgp
tests_fuzz_fuzz_tlspol_policy_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tlspol_policy_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS)
tests_fuzz_fuzz_tlspol_sts_SOURCES = tests/fuzz/fuzz_tlspol_sts.c
tests_fuzz_fuzz_tlspol_sts_CFLAGS = $(TLSPOL_CFLAGS) -I$(top_srcdir)/milter-pgp
tests_fuzz_fuzz_tlspol_sts_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tlspol_sts_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS)
tests_fuzz_fuzz_tlspol_cache_SOURCES = tests/fuzz/fuzz_tlspol_cache.c
tests_fuzz_fuzz_tlspol_cache_CFLAGS = $(TLSPOL_CFLAGS) -I$(top_srcdir)/milter-pgp
tests_fuzz_fuzz_tlspol_cache_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tlspol_cache_LDADD = milter-pgp/libtlspol.la $(TLSPOL_LIBS)
endif
endif
