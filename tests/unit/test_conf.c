/* Unit tests for common/conf: the file format and its error messages. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

struct tconf {
	char *name;
	int flag;
	unsigned long long count;
	unsigned long long timeout;
	unsigned long long size;
	int mode;
	char **words;
	char *listen;
	char *password;
	char *rules[8];
	int nrules;
};

static int parse_rule(void *target, const char *value, struct mw_buf *err)
{
	struct tconf *t = target;
	if (strncmp(value, "limit ", 6) != 0) {
		mw_buf_puts(err, "a rule starts with \"limit\"");
		return -1;
	}
	if (t->nrules >= 8) {
		mw_buf_puts(err, "too many rules");
		return -1;
	}
	t->rules[t->nrules++] = strdup(value);
	return 0;
}

static void release_rules(void *target)
{
	struct tconf *t = target;
	for (int i = 0; i < t->nrules; i++)
		free(t->rules[i]);
	t->nrules = 0;
}

static const char *const modes[] = { "accept", "reject", "defer", NULL };

static const struct mw_conf_key schema[] = {
	{ .name = "name", .type = MW_CONF_STRING, .offset = offsetof(struct tconf, name),
	  .def = "mailward", .help = "a name" },
	{ .name = "flag", .type = MW_CONF_BOOL, .offset = offsetof(struct tconf, flag), .def = "no" },
	{ .name = "count", .type = MW_CONF_UINT, .offset = offsetof(struct tconf, count), .def = "10",
	  .min = 1, .max = 100 },
	{ .name = "timeout", .type = MW_CONF_DURATION, .offset = offsetof(struct tconf, timeout),
	  .def = "5s", .min = 100, .max = 60000 },
	{ .name = "size", .type = MW_CONF_SIZE, .offset = offsetof(struct tconf, size), .def = "1m" },
	{ .name = "mode", .type = MW_CONF_ENUM, .offset = offsetof(struct tconf, mode),
	  .def = "accept", .choices = modes },
	{ .name = "words", .type = MW_CONF_LIST, .offset = offsetof(struct tconf, words),
	  .def = "a, b c", .flags = MW_CONF_MULTI },
	{ .name = "listen", .type = MW_CONF_SOCKET, .offset = offsetof(struct tconf, listen),
	  .def = "unix:/run/test.sock" },
	{ .name = "password", .type = MW_CONF_STRING, .offset = offsetof(struct tconf, password),
	  .flags = MW_CONF_SECRET },
	{ .name = "rule", .type = MW_CONF_CUSTOM, .flags = MW_CONF_MULTI, .parse = parse_rule,
	  .release = release_rules },
	{ .name = NULL },
};

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mw-test-conf.XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Loads tmpdir/name; the error (or "") goes to err. */
static struct mw_conf *load(const char *name, struct tconf *t, int *ret, char *err, size_t errlen)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	memset(t, 0, sizeof(*t));
	struct mw_conf *cfg = mw_conf_new(schema, t);
	assert_non_null(cfg);
	*ret = mw_conf_load_file(cfg, path);
	/* strip the temp dir so messages compare as written */
	const char *e = mw_conf_error(cfg);
	size_t dl = strlen(tmpdir);
	if (strncmp(e, tmpdir, dl) == 0)
		e += dl + 1;
	snprintf(err, errlen, "%s", e);
	return cfg;
}

static void test_defaults(void **state)
{
	(void)state;
	struct tconf t;
	char err[512];
	int r;
	write_file("empty.conf", "# nothing but a comment\n\n");
	struct mw_conf *cfg = load("empty.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_string_equal(t.name, "mailward");
	assert_int_equal(t.flag, 0);
	assert_int_equal(t.count, 10);
	assert_int_equal(t.timeout, 5000);
	assert_int_equal(t.size, 1048576);
	assert_int_equal(t.mode, 0);
	assert_string_equal(t.words[0], "a");
	assert_string_equal(t.words[1], "b");
	assert_string_equal(t.words[2], "c");
	assert_null(t.words[3]);
	assert_null(t.password);
	assert_int_equal(t.nrules, 0);
	/* a key left at its default is "in" the file loaded, for cross-key errors */
	assert_non_null(strstr(mw_conf_where(cfg, "count"), "empty.conf"));
	mw_conf_free(cfg);
}

static void test_values_continuation_and_crlf(void **state)
{
	(void)state;
	struct tconf t;
	char err[512];
	int r;
	write_file("full.conf",
		   "name = my server  \n"
		   "flag=yes\r\n"
		   "count = 42\n"
		   "timeout = 750ms\n"
		   "size = 64k\n"
		   "mode = defer\n"
		   "words = x\n"
		   "# comments do not break a continuation\n"
		   "   y,z\n"
		   "listen = inet:8891@127.0.0.1\n"
		   "password = p#ss = word\n"
		   "rule = limit 1\n"
		   "rule = limit 2\n"
		   "\tand more\n");
	struct mw_conf *cfg = load("full.conf", &t, &r, err, sizeof(err));
	assert_string_equal(err, "");
	assert_int_equal(r, 0);
	assert_string_equal(t.name, "my server");
	assert_int_equal(t.flag, 1);
	assert_int_equal(t.count, 42);
	assert_int_equal(t.timeout, 750);
	assert_int_equal(t.size, 65536);
	assert_int_equal(t.mode, 2);
	assert_string_equal(t.words[0], "x");
	assert_string_equal(t.words[1], "y");
	assert_string_equal(t.words[2], "z");
	assert_null(t.words[3]);
	assert_string_equal(t.listen, "inet:8891@127.0.0.1");
	assert_string_equal(t.password, "p#ss = word");
	assert_int_equal(t.nrules, 2);
	assert_string_equal(t.rules[1], "limit 2 and more");
	const char *where = mw_conf_where(cfg, "rule");
	assert_non_null(strstr(where, "full.conf:13"));
	mw_conf_free(cfg);
}

/* Each bad file and the exact message the admin sees. */
static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *error;
	} rows[] = {
		{ "name = a\nbogus = 1\n", "bad.conf:2: unknown key \"bogus\"" },
		{ "count = 0\n", "bad.conf:1: count = 0: must be between 1 and 100" },
		{ "count = 12x\n", "bad.conf:1: count = 12x: expected a whole number" },
		{ "count = -3\n", "bad.conf:1: count = -3: expected a whole number" },
		{ "timeout = 1h\n", "bad.conf:1: timeout = 1h: must be between 100ms and 1m" },
		{ "timeout = soon\n",
		  "bad.conf:1: timeout = soon: expected a duration such as 500ms, 5s, 10m, 1h or 1d" },
		{ "flag = maybe\n", "bad.conf:1: flag = maybe: expected yes or no" },
		{ "mode = drop\n", "bad.conf:1: mode = drop: expected one of: accept reject defer" },
		{ "\n\nlisten = inet:99999@localhost\n",
		  "bad.conf:3: listen = inet:99999@localhost: port must be a number from 1 to 65535" },
		{ "listen = tcp:25\n",
		  "bad.conf:1: listen = tcp:25: unknown socket type: expected unix:, local:, inet: or inet6:" },
		{ "listen = unix:relative\n",
		  "bad.conf:1: listen = unix:relative: a unix socket path must be absolute" },
		{ "name = a\nname = b\n", "bad.conf:2: name is already set at " },
		{ "just words\n", "bad.conf:1: expected \"key = value\"" },
		{ "  indented = 1\n", "bad.conf:1: continuation line without a line to continue" },
		{ "Name = x\n", "bad.conf:1: bad key name \"Name\"" },
		{ "= x\n", "bad.conf:1: bad key name \"\"" },
		{ "rule = limit 1\nrule = nolimit\n", "bad.conf:2: rule = nolimit: a rule starts with \"limit\"" },
		{ "password = hunter2\x01\n", "bad.conf:1: password: control character in value" },
		{ "password = x\npassword = hunter2\n", "bad.conf:2: password is already set at " },
		{ "include = missing.conf\n", "bad.conf:1: cannot read configuration file " },
		{ "include =\n", "bad.conf:1: include: missing file name" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tconf t;
		char err[512];
		int r;
		write_file("bad.conf", rows[i].text);
		struct mw_conf *cfg = load("bad.conf", &t, &r, err, sizeof(err));
		assert_int_equal(r, -1);
		if (strncmp(err, rows[i].error, strlen(rows[i].error)) != 0)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, err, rows[i].error);
		/* a secret never appears in an error */
		assert_null(strstr(err, "hunter2"));
		mw_conf_free(cfg);
	}
}

static void test_nul_byte(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
	FILE *f = fopen(path, "w");
	fwrite("name = a\nname2\0 = b\n", 1, 20, f);
	fclose(f);
	struct tconf t;
	char err[512];
	int r;
	struct mw_conf *cfg = load("nul.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_string_equal(err, "nul.conf:2: NUL byte in line");
	mw_conf_free(cfg);
}

static void test_unreadable_file(void **state)
{
	(void)state;
	struct tconf t;
	char err[512];
	int r;
	struct mw_conf *cfg = load("does-not-exist.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "does-not-exist.conf:0: cannot read configuration file"));
	assert_non_null(strstr(err, "No such file or directory"));
	mw_conf_free(cfg);

	/* a directory is not a configuration file */
	char sub[256];
	snprintf(sub, sizeof(sub), "%s/adir", tmpdir);
	mkdir(sub, 0700);
	cfg = load("adir", &t, &r, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "adir:0: "));
	assert_non_null(strstr(err, "is not a regular file"));
	mw_conf_free(cfg);
}

static void test_include(void **state)
{
	(void)state;
	struct tconf t;
	char err[512];
	int r;
	char sub[256];
	snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
	mkdir(sub, 0700);
	write_file("conf.d/local.conf", "count = 7\n\nbroken line\n");
	write_file("main.conf", "name = x\ninclude = conf.d/local.conf\n");
	struct mw_conf *cfg = load("main.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, -1);
	/* the error names the included file and its line */
	assert_string_equal(err, "conf.d/local.conf:3: expected \"key = value\"");
	mw_conf_free(cfg);

	write_file("conf.d/local.conf", "count = 7\n");
	cfg = load("main.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_int_equal(t.count, 7);
	assert_non_null(strstr(mw_conf_where(cfg, "count"), "conf.d/local.conf:1"));
	mw_conf_free(cfg);

	/* a file including itself stops at the depth limit */
	write_file("loop.conf", "include = loop.conf\n");
	cfg = load("loop.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "loop.conf:1: include: nested more than 8 deep"));
	mw_conf_free(cfg);
}

static void test_print_effective(void **state)
{
	(void)state;
	struct tconf t;
	char err[512];
	int r;
	write_file("print.conf", "count = 3\npassword = hunter2\nrule = limit 1\nrule = limit 2\n");
	struct mw_conf *cfg = load("print.conf", &t, &r, err, sizeof(err));
	assert_int_equal(r, 0);
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	mw_conf_print(cfg, f);
	fclose(f);
	assert_non_null(strstr(out, "# a name\nname = mailward\n"));
	assert_non_null(strstr(out, "\ncount = 3\n"));
	assert_non_null(strstr(out, "\ntimeout = 5s\n"));
	assert_non_null(strstr(out, "\npassword = <hidden>\n"));
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "\nrule = limit 1\nrule = limit 2\n"));
	free(out);
	mw_conf_free(cfg);
}

static void test_load_string_for_fuzzing(void **state)
{
	(void)state;
	struct tconf t;
	memset(&t, 0, sizeof(t));
	struct mw_conf *cfg = mw_conf_new(schema, &t);
	const char text[] = "count = 5\nwords = p q"; /* no final newline */
	assert_int_equal(mw_conf_load_string(cfg, "mem", text, sizeof(text) - 1), 0);
	assert_int_equal(t.count, 5);
	assert_string_equal(t.words[1], "q");
	mw_conf_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_continuation_and_crlf),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_print_effective),
		cmocka_unit_test(test_load_string_for_fuzzing),
	};
	return cmocka_run_group_tests_name("conf", tests, setup, teardown);
}
