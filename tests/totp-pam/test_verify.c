/*
 * Unit tests for totp-pam's decisions: window, replay, skew diagnosis,
 * backup codes once, lockout, app passwords, and the forward_pass splits.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "verify.h"

#define NOW 1700000000 /* step 56666666 at 30 s, 20 s into it */

static const struct tp_policy pol = { .window = 1, .skew_steps = 20, .max_failures = 3, .lockout_s = 300 };

static void new_state(struct tp_state *st)
{
	tp_state_init(st);
	memcpy(st->secret, "12345678901234567890", 20);
	st->secret_len = 20;
	st->confirmed = 1;
}

static void code_at(const struct tp_state *st, int64_t t, char out[9])
{
	uint32_t v;
	assert_int_equal(tp_hotp(st->alg, st->secret, st->secret_len, tp_time_step(t, st->step), st->digits, &v), 0);
	tp_code_format(v, st->digits, out);
}

static enum tp_outcome try(struct tp_state *st, int64_t now, const char *otp, struct tp_result *r)
{
	tp_match(st, &pol, now, otp, strlen(otp), r);
	return r->outcome;
}

static void test_window(void **state)
{
	(void)state;
	static const struct { int offset_steps; enum tp_outcome want; } rows[] = {
		{ 0, TP_ACCEPT_CODE }, { -1, TP_ACCEPT_CODE }, { 1, TP_ACCEPT_CODE },
		{ -2, TP_REJECT_SKEW }, { 2, TP_REJECT_SKEW }, { -20, TP_REJECT_SKEW }, { 21, TP_REJECT_SKEW },
		{ -22, TP_REJECT_BAD }, { 22, TP_REJECT_BAD }, { 100, TP_REJECT_BAD },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tp_state st;
		struct tp_result r;
		char code[9];
		new_state(&st);
		code_at(&st, NOW + 30 * rows[i].offset_steps, code);
		if (try(&st, NOW, code, &r) != rows[i].want)
			fail_msg("row %zu (%+d steps): %s", i, rows[i].offset_steps, tp_outcome_name(r.outcome));
		if (r.outcome == TP_REJECT_SKEW)
			assert_int_equal(r.skew_steps, rows[i].offset_steps);
		if (r.outcome == TP_ACCEPT_CODE)
			assert_int_equal(r.step, tp_time_step(NOW, 30) + (uint64_t)(int64_t)rows[i].offset_steps);
	}
	/* the state's own window wins over the policy's */
	struct tp_state st;
	struct tp_result r;
	char code[9];
	new_state(&st);
	st.window = 3;
	code_at(&st, NOW - 90, code);
	assert_int_equal(try(&st, NOW, code, &r), TP_ACCEPT_CODE);
	st.window = 0;
	code_at(&st, NOW - 30, code);
	assert_int_equal(try(&st, NOW, code, &r), TP_REJECT_SKEW);
	assert_int_equal(r.skew_steps, -1);
	/* no skew search: beyond the window is just wrong */
	struct tp_policy p0 = pol;
	p0.skew_steps = 0;
	tp_match(&st, &p0, NOW, code, 6, &r);
	assert_int_equal(r.outcome, TP_REJECT_BAD);
}

static void test_algorithms(void **state)
{
	(void)state;
	static const enum tp_alg algs[] = { TP_SHA1, TP_SHA256, TP_SHA512 };
	for (size_t a = 0; a < 3; a++)
		for (int digits = 6; digits <= 8; digits++) {
			struct tp_state st;
			struct tp_result r;
			char code[9];
			new_state(&st);
			st.alg = algs[a];
			st.digits = digits;
			st.step = 60;
			code_at(&st, NOW, code);
			assert_int_equal(try(&st, NOW, code, &r), TP_ACCEPT_CODE);
			assert_int_equal(r.step, NOW / 60);
			/* a code of the wrong length is not a code */
			code[digits - 1] = '\0';
			assert_int_equal(try(&st, NOW, code, &r), TP_REJECT_MALFORMED);
		}
}

static void test_replay(void **state)
{
	(void)state;
	struct tp_state st;
	struct tp_result r;
	char now_code[9], prev_code[9], next_code[9];
	new_state(&st);
	code_at(&st, NOW, now_code);
	code_at(&st, NOW - 30, prev_code);
	code_at(&st, NOW + 30, next_code);
	assert_int_equal(try(&st, NOW, now_code, &r), TP_ACCEPT_CODE);
	tp_commit_success(&st, &r, NOW);
	assert_int_equal(st.last_step, NOW / 30);
	assert_int_equal(st.last_login, NOW);
	/* the same code again, at once and 29 s later */
	assert_int_equal(try(&st, NOW, now_code, &r), TP_REJECT_REPLAY);
	assert_int_equal(try(&st, NOW + 29, now_code, &r), TP_REJECT_REPLAY);
	/* an older code in the window: never after a newer one */
	assert_int_equal(try(&st, NOW, prev_code, &r), TP_REJECT_REPLAY);
	/* the next step's code is fine, and then the current one is old */
	assert_int_equal(try(&st, NOW, next_code, &r), TP_ACCEPT_CODE);
	tp_commit_success(&st, &r, NOW + 1);
	assert_int_equal(st.last_step, NOW / 30 + 1);
	assert_int_equal(try(&st, NOW + 5, next_code, &r), TP_REJECT_REPLAY);
	/* committing an older step never moves last_step back */
	struct tp_result old = { .outcome = TP_ACCEPT_CODE, .step = 5 };
	tp_commit_success(&st, &old, NOW);
	assert_int_equal(st.last_step, NOW / 30 + 1);
}

static void add_backups(struct tp_state *st, const char *const *codes, int n)
{
	struct tp_hash first;
	for (int i = 0; i < n; i++) {
		char norm[16];
		int len = tp_backup_code_normalise(codes[i], strlen(codes[i]), norm, sizeof(norm));
		assert_true(len > 0);
		assert_int_equal(tp_hash_new(norm, (size_t)len, i ? &first : NULL, &st->backup[i]), 0);
		if (i == 0)
			first = st->backup[0];
	}
	st->nbackup = n;
}

static void test_backup_once(void **state)
{
	(void)state;
	static const char *const codes[] = { "abcde-fghjk", "23456-789ab", "12345678" };
	struct tp_state st;
	struct tp_result r;
	new_state(&st);
	add_backups(&st, codes, 3);
	assert_int_equal(try(&st, NOW, "23456-789AB", &r), TP_ACCEPT_BACKUP);
	assert_int_equal(r.backup_index, 1);
	tp_commit_success(&st, &r, NOW);
	assert_int_equal(st.nbackup, 2);
	assert_int_equal(st.nused, 1);
	/* told apart from a wrong code: a reuse is no guess */
	assert_int_equal(try(&st, NOW, "23456789ab", &r), TP_REJECT_BACKUP_USED);
	assert_int_equal(try(&st, NOW, "abcdefghjk", &r), TP_ACCEPT_BACKUP);
	assert_int_equal(r.backup_index, 0);
	tp_commit_success(&st, &r, NOW);
	/* the imported 8-digit scratch code: a 6-digit TOTP state reads it as
	   a backup code only */
	assert_int_equal(try(&st, NOW, "12345678", &r), TP_ACCEPT_BACKUP);
	tp_commit_success(&st, &r, NOW);
	assert_int_equal(st.nbackup, 0);
	assert_int_equal(try(&st, NOW, "12345678", &r), TP_REJECT_BACKUP_USED);
	assert_int_equal(st.nused, 3);
	assert_int_equal(try(&st, NOW, "abcde-fghjj", &r), TP_REJECT_BAD);
	assert_int_equal(try(&st, NOW, "not a code", &r), TP_REJECT_MALFORMED);
	assert_int_equal(try(&st, NOW, "", &r), TP_REJECT_MALFORMED);
}

static void test_lockout(void **state)
{
	(void)state;
	struct tp_state st;
	struct tp_result r;
	char code[9];
	new_state(&st);
	assert_int_equal(tp_commit_failure(&st, &pol, NOW), 0);
	assert_int_equal(tp_commit_failure(&st, &pol, NOW + 1), 0);
	assert_int_equal(st.failures, 2);
	assert_false(tp_locked(&st, NOW + 1));
	/* a success resets the count */
	code_at(&st, NOW, code);
	assert_int_equal(try(&st, NOW, code, &r), TP_ACCEPT_CODE);
	tp_commit_success(&st, &r, NOW);
	assert_int_equal(st.failures, 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(tp_commit_failure(&st, &pol, NOW + 2), 0);
	assert_int_equal(tp_commit_failure(&st, &pol, NOW + 2), 1);
	assert_true(tp_locked(&st, NOW + 2));
	assert_true(tp_locked(&st, NOW + 301));
	assert_false(tp_locked(&st, NOW + 302));
	assert_int_equal(st.locked_until, NOW + 302);
	/* after the lockout: a fresh count of three */
	assert_int_equal(tp_commit_failure(&st, &pol, NOW + 400), 0);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.locked_until, 0);
	/* progressive: each lockout in a row twice as long, up to the cap; a
	   success starts again from the first */
	struct tp_policy pb = pol;
	pb.lockout_max_s = 1000;
	struct tp_state s2;
	new_state(&s2);
	static const int64_t lengths[] = { 300, 600, 1000, 1000 };
	int64_t t = NOW;
	for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
		for (int i = 0; i < 2; i++)
			assert_int_equal(tp_commit_failure(&s2, &pb, t), 0);
		assert_int_equal(tp_commit_failure(&s2, &pb, t), 1);
		assert_int_equal(s2.locked_until - t, lengths[k]);
		assert_int_equal(s2.lockouts, k + 1);
		t = s2.locked_until;
	}
	code_at(&s2, t + 30, code);
	assert_int_equal(try(&s2, t + 30, code, &r), TP_ACCEPT_CODE);
	tp_commit_success(&s2, &r, t + 30);
	assert_int_equal(s2.lockouts, 0);
	for (int i = 0; i < 3; i++)
		tp_commit_failure(&s2, &pb, t + 31);
	assert_int_equal(s2.locked_until - (t + 31), 300);
	assert_int_equal(tp_lockout_length(&pb, 1000000), 1000);
	pb.lockout_max_s = 0; /* no back-off */
	assert_int_equal(tp_lockout_length(&pb, 7), 300);
	pb.lockout_s = 0; /* no lockout, and no endless doubling of nothing */
	pb.lockout_max_s = 1000;
	assert_int_equal(tp_lockout_length(&pb, 1000000), 0);
	/* max_failures = 0: never locked */
	struct tp_policy p0 = pol;
	p0.max_failures = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(tp_commit_failure(&st, &p0, NOW), 0);
	assert_false(tp_locked(&st, NOW));
}

static void test_rhost(void **state)
{
	(void)state;
	struct tp_policy p = pol;
	p.rhost_max_failures = 2;
	p.rhost_lockout_s = 100;
	struct tp_state st;
	new_state(&st);
	assert_int_equal(tp_commit_rhost_failure(&st, &p, "192.0.2.1", NOW), 0);
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.1", NOW), 0);
	assert_int_equal(tp_commit_rhost_failure(&st, &p, "192.0.2.1", NOW + 1), 1);
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.1", NOW + 1), NOW + 101);
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.2", NOW + 1), 0);
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.1", NOW + 101), 0);
	/* not an address: not kept */
	assert_int_equal(tp_commit_rhost_failure(&st, &p, "a b", NOW), 0);
	assert_int_equal(tp_commit_rhost_failure(&st, &p, "", NOW), 0);
	assert_int_equal(st.nrhost, 1);
	/* full: the address seen longest ago that is not blocked makes room */
	char addr[32];
	for (int i = 0; i < TP_MAX_RHOSTS + 5; i++) {
		snprintf(addr, sizeof(addr), "2001:db8::%d", i);
		tp_commit_rhost_failure(&st, &p, addr, NOW + 2 + i);
	}
	assert_int_equal(st.nrhost, TP_MAX_RHOSTS);
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.1", NOW + 50), NOW + 101);
	assert_int_equal(tp_state_find_rhost(&st, "2001:db8::0"), -1);
	assert_true(tp_state_find_rhost(&st, "2001:db8::20") >= 0);
	tp_commit_rhost_success(&st, "192.0.2.1");
	assert_int_equal(tp_rhost_blocked(&st, "192.0.2.1", NOW + 50), 0);
	assert_int_equal(st.nrhost, TP_MAX_RHOSTS - 1);
	/* rhost_max_failures = 0: off */
	p.rhost_max_failures = 0;
	assert_int_equal(tp_commit_rhost_failure(&st, &p, "192.0.2.9", NOW), 0);
	assert_int_equal(tp_state_find_rhost(&st, "192.0.2.9"), -1);
}

static void test_app_passwords(void **state)
{
	(void)state;
	struct tp_state st;
	new_state(&st);
	static const char *const pw[] = { "abcd-efgh-ijkl-mnop", "qrst-uvwx-yzab-cdef" };
	for (int i = 0; i < 2; i++) {
		char norm[32];
		int len = tp_app_password_normalise(pw[i], strlen(pw[i]), norm, sizeof(norm));
		assert_int_equal(len, 16);
		assert_int_equal(tp_hash_new(norm, 16, i ? &st.app[0].hash : NULL, &st.app[i].hash), 0);
		snprintf(st.app[i].name, sizeof(st.app[i].name), "dev%d", i);
	}
	st.napp = 2;
	int idx = -1;
	assert_int_equal(tp_match_app(&st, "QRSTUVWXYZABCDEF", 16, &idx), 1);
	assert_int_equal(idx, 1);
	tp_commit_app(&st, idx, NOW);
	assert_int_equal(st.app[1].last_used, NOW);
	assert_int_equal(st.app[0].last_used, 0);
	assert_int_equal(tp_match_app(&st, "abcd efgh ijkl mnop", 19, &idx), 1);
	assert_int_equal(idx, 0);
	/* app passwords can be used again and again */
	assert_int_equal(tp_match_app(&st, "abcdefghijklmnop", 16, &idx), 1);
	assert_int_equal(tp_match_app(&st, "abcdefghijklmnoq", 16, &idx), 0);
	assert_int_equal(tp_match_app(&st, "the unix password", 17, &idx), 0);
	tp_state_remove_app(&st, 0);
	assert_int_equal(tp_match_app(&st, "abcdefghijklmnop", 16, &idx), 0);
}

static void test_split_forward(void **state)
{
	(void)state;
	static const struct {
		const char *typed;
		int digits, n;
		size_t pass0, otp0;
	} rows[] = {
		{ "secret123456", 6, 1, 6, 6 },
		{ "123456", 6, 1, 0, 6 },
		{ "12345", 6, 0, 0, 0 },
		{ "secret12345678", 8, 1, 6, 8 },
		{ "pw12345678", 6, 2, 4, 6 },             /* TOTP, then scratch code */
		{ "pwabcde-fghjk", 6, 1, 2, 11 },        /* backup code with dash */
		{ "pwabcdefghjk", 6, 1, 2, 10 },         /* and without */
		{ "pw", 6, 0, 0, 0 },
		{ "", 6, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tp_split s[4];
		int n = tp_split_forward(rows[i].typed, strlen(rows[i].typed), rows[i].digits, s);
		if (n != rows[i].n)
			fail_msg("row %zu \"%s\": %d splits", i, rows[i].typed, n);
		if (n > 0) {
			assert_int_equal(s[0].pass_len, rows[i].pass0);
			assert_int_equal(s[0].otp_len, rows[i].otp0);
			assert_int_equal(s[0].otp_off + s[0].otp_len, strlen(rows[i].typed));
		}
	}
	/* "pw12345678" with 6 digits: password "pw12", code 345678; or
	   password "pw", scratch code 12345678 */
	struct tp_split s[4];
	assert_int_equal(tp_split_forward("pw12345678", 10, 6, s), 2);
	assert_int_equal(s[1].pass_len, 2);
	assert_int_equal(s[1].otp_len, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),      cmocka_unit_test(test_algorithms),
		cmocka_unit_test(test_replay),      cmocka_unit_test(test_backup_once),
		cmocka_unit_test(test_lockout),     cmocka_unit_test(test_rhost),     cmocka_unit_test(test_app_passwords),
		cmocka_unit_test(test_split_forward),
	};
	return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
