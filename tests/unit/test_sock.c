/* Unit tests for common/sock: spec parsing, listening, stale sockets. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sock.h"

static void test_parse_good(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		enum mw_sock_kind kind;
		const char *path_or_host;
		unsigned port;
		const char *canonical;
	} rows[] = {
		{ "unix:/run/x.sock", MW_SOCK_UNIX, "/run/x.sock", 0, "unix:/run/x.sock" },
		{ "local:/run/x.sock", MW_SOCK_UNIX, "/run/x.sock", 0, "unix:/run/x.sock" },
		{ "inet:8891@127.0.0.1", MW_SOCK_INET, "127.0.0.1", 8891, "inet:8891@127.0.0.1" },
		{ "inet:8891@localhost", MW_SOCK_INET, "localhost", 8891, "inet:8891@localhost" },
		{ "inet:8891", MW_SOCK_INET, "", 8891, "inet:8891" },
		{ "inet:127.0.0.1:8891", MW_SOCK_INET, "127.0.0.1", 8891, "inet:8891@127.0.0.1" },
		{ "inet:[127.0.0.1]:25", MW_SOCK_INET, "127.0.0.1", 25, "inet:25@127.0.0.1" },
		{ "inet:*:10040", MW_SOCK_INET, "", 10040, "inet:10040" },
		{ "inet6:8891@::1", MW_SOCK_INET6, "::1", 8891, "inet6:8891@::1" },
		{ "inet6:[::1]:8891", MW_SOCK_INET6, "::1", 8891, "inet6:8891@::1" },
		{ "inet6:65535", MW_SOCK_INET6, "", 65535, "inet6:65535" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_sockspec s;
		struct mw_buf err = MW_BUF_INIT, canon = MW_BUF_INIT;
		if (mw_sock_parse(rows[i].spec, &s, &err) != 0)
			fail_msg("%s: %s", rows[i].spec, mw_buf_str(&err));
		assert_int_equal(s.kind, rows[i].kind);
		if (s.kind == MW_SOCK_UNIX) {
			assert_string_equal(s.path, rows[i].path_or_host);
		} else {
			assert_string_equal(s.host, rows[i].path_or_host);
			assert_int_equal(s.port, rows[i].port);
		}
		mw_sock_format(&s, &canon);
		assert_string_equal(mw_buf_str(&canon), rows[i].canonical);
		mw_buf_free(&err);
		mw_buf_free(&canon);
	}
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		const char *error;
	} rows[] = {
		{ "", "expected unix:/path, local:/path, inet:port@host or inet6:port@host" },
		{ "/run/x.sock", "expected unix:/path, local:/path, inet:port@host or inet6:port@host" },
		{ "tcp:25", "unknown socket type: expected unix:, local:, inet: or inet6:" },
		{ "unix:", "a unix socket path must be absolute" },
		{ "unix:x.sock", "a unix socket path must be absolute" },
		{ "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  "unix socket path longer than 107 bytes" },
		{ "unix:/run/a\nb", "control character in socket path" },
		{ "inet:", "missing port" },
		{ "inet:0", "port must be a number from 1 to 65535" },
		{ "inet:65536@127.0.0.1", "port must be a number from 1 to 65535" },
		{ "inet:smtp@127.0.0.1", "port must be a number from 1 to 65535" },
		{ "inet:-1", "port must be a number from 1 to 65535" },
		{ "inet:25@", "bad IPv4 address or host name" },
		{ "inet:25@host name", "bad IPv4 address or host name" },
		{ "inet:25@::1", "bad IPv4 address or host name" },
		{ "inet:[127.0.0.1]25", "expected [host]:port" },
		{ "inet6:::1:25", "write an IPv6 address as port@address or [address]:port" },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct mw_sockspec s;
		struct mw_buf err = MW_BUF_INIT;
		assert_int_equal(mw_sock_parse(rows[i].spec, &s, &err), -1);
		if (strcmp(mw_buf_str(&err), rows[i].error) != 0)
			fail_msg("%s: got \"%s\"", rows[i].spec, mw_buf_str(&err));
		mw_buf_free(&err);
	}
}

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mw-test-sock.XXXXXX");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_unix_listen_connect_and_stale(void **state)
{
	(void)state;
	char spec_text[160];
	struct mw_sockspec spec;
	struct mw_buf err = MW_BUF_INIT;
	snprintf(spec_text, sizeof(spec_text), "unix:%s/milter.sock", tmpdir);
	assert_int_equal(mw_sock_parse(spec_text, &spec, &err), 0);

	struct mw_sock_perms perms = { NULL, NULL, 0660 };
	int lfd = mw_sock_listen(&spec, &perms, 16, &err);
	if (lfd < 0)
		fail_msg("%s", mw_buf_str(&err));
	struct stat st;
	assert_int_equal(stat(spec.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	int cfd = mw_sock_connect(&spec, 1000, &err);
	assert_true(cfd >= 0);
	close(cfd);

	/* a live socket is not stale: a second instance must not steal it */
	mw_buf_reset(&err);
	assert_int_equal(mw_sock_listen(&spec, NULL, 16, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "another process is listening"));

	/* once the listener is gone, the leftover file is removed and reused */
	close(lfd);
	assert_int_equal(stat(spec.path, &st), 0);
	mw_buf_reset(&err);
	lfd = mw_sock_listen(&spec, NULL, 16, &err);
	assert_true(lfd >= 0);
	close(lfd);

	/* a regular file in the way is never deleted */
	char file_spec[160];
	snprintf(file_spec, sizeof(file_spec), "unix:%s/regular", tmpdir);
	FILE *f = fopen(file_spec + 5, "w");
	fputs("keep me", f);
	fclose(f);
	assert_int_equal(mw_sock_parse(file_spec, &spec, &err), 0);
	mw_buf_reset(&err);
	assert_int_equal(mw_sock_listen(&spec, NULL, 16, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "is not a socket"));
	assert_int_equal(stat(spec.path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	mw_buf_free(&err);
}

static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Listens on a free port of type:PORT@host: the port is free when
 * free_port() returns, but another process may take it before we bind,
 * so a port in use means another try on a new one. */
static int listen_free(const char *type, const char *host, struct mw_sockspec *spec, struct mw_buf *err)
{
	char text[64];
	int fd = -1;
	for (int i = 0; i < 10; i++) {
		snprintf(text, sizeof(text), "%s:%u@%s", type, free_port(), host);
		mw_buf_reset(err);
		assert_int_equal(mw_sock_parse(text, spec, err), 0);
		fd = mw_sock_listen(spec, NULL, 16, err);
		if (fd >= 0 || strstr(mw_buf_str(err), "Address already in use") == NULL)
			break;
	}
	return fd;
}

static void test_inet_listen_connect(void **state)
{
	(void)state;
	struct mw_sockspec spec;
	struct mw_buf err = MW_BUF_INIT;
	int lfd = listen_free("inet", "127.0.0.1", &spec, &err);
	if (lfd < 0)
		fail_msg("%s", mw_buf_str(&err));
	int cfd = mw_sock_connect(&spec, 1000, &err);
	assert_true(cfd >= 0);
	close(cfd);
	close(lfd);
	/* nobody listens now: a clear error, quickly */
	mw_buf_reset(&err);
	assert_int_equal(mw_sock_connect(&spec, 1000, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "Connection refused"));

	lfd = listen_free("inet6", "::1", &spec, &err);
	if (lfd >= 0) { /* ::1 may be absent in some containers */
		cfd = mw_sock_connect(&spec, 1000, &err);
		assert_true(cfd >= 0);
		close(cfd);
		close(lfd);
	}
	mw_buf_free(&err);
}

/* mw_sock_read_file and mw_sock_write_file: what the state files (opt-ins,
   pins, Autocrypt peers) rely on. */
static void test_state_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/mw-test-readfile-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], link[128];
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(link, sizeof(link), "%s/l", dir);
	struct mw_buf out = MW_BUF_INIT, err = MW_BUF_INIT;

	/* missing: empty, no error */
	assert_int_equal(mw_sock_read_file(path, &out, 100, &err), 0);
	assert_int_equal(mw_buf_len(&out), 0);
	assert_int_equal(mw_buf_len(&err), 0);

	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 3000; i++)
		fputs("0123456789", f);
	fclose(f);
	/* whole, appended */
	mw_buf_puts(&out, "x");
	assert_int_equal(mw_sock_read_file(path, &out, 30001, &err), 0);
	assert_int_equal(mw_buf_len(&out), 30001);
	/* past the cap: refused, the reason says so */
	mw_buf_reset(&out);
	assert_int_equal(mw_sock_read_file(path, &out, 29999, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "larger than 29999 bytes"));
	/* never through a symbolic link */
	mw_buf_reset(&out);
	mw_buf_reset(&err);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(mw_sock_read_file(link, &out, 100000, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), link));

	/* written whole, replacing; nothing left beside it */
	mw_buf_reset(&err);
	assert_int_equal(mw_sock_write_file(path, "new\n", 4, &err), 0);
	mw_buf_reset(&out);
	assert_int_equal(mw_sock_read_file(path, &out, 100, &err), 0);
	assert_string_equal(mw_buf_str(&out), "new\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a directory that does not exist: refused, path untouched elsewhere */
	char bad[160];
	snprintf(bad, sizeof(bad), "%s/nodir/f", dir);
	assert_int_equal(mw_sock_write_file(bad, "x", 1, &err), -1);
	assert_non_null(strstr(mw_buf_str(&err), "nodir"));

	unlink(link);
	unlink(path);
	rmdir(dir);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

/* mw_sock_create_file: whole or absent, never replaced. Processes started
   together (as two milter-pgp making their re-injection secret did) each
   read back a whole file, and exactly one of them made it. */
#define CREATE_PROCS 6
#define CREATE_ROUNDS 40
#define CREATE_LEN 65536
static void test_create_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/mw-test-createfile-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/key", dir);
	struct mw_buf err = MW_BUF_INIT, out = MW_BUF_INIT;

	assert_int_equal(mw_sock_create_file(path, "first\n", 6, &err), 0);
	assert_int_equal(mw_sock_create_file(path, "second\n", 7, &err), 1);
	assert_int_equal(mw_sock_read_file(path, &out, 100, &err), 0);
	assert_string_equal(mw_buf_str(&out), "first\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	static char data[CREATE_LEN];
	for (int round = 0; round < CREATE_ROUNDS; round++) {
		unlink(path);
		int go[2];
		assert_int_equal(pipe(go), 0);
		pid_t kids[CREATE_PROCS];
		for (int k = 0; k < CREATE_PROCS; k++) {
			kids[k] = fork();
			assert_true(kids[k] >= 0);
			if (kids[k] == 0) {
				char c;
				close(go[1]);
				if (read(go[0], &c, 1) != 0)
					_exit(9);
				memset(data, 'a' + k, sizeof(data));
				struct mw_buf e = MW_BUF_INIT, o = MW_BUF_INIT;
				int rc = mw_sock_create_file(path, data, sizeof(data), &e);
				if (rc < 0)
					_exit(8);
				/* what this process reads is someone's whole file */
				if (mw_sock_read_file(path, &o, 2 * CREATE_LEN, &e) < 0 || mw_buf_len(&o) != CREATE_LEN)
					_exit(7);
				const char *b = mw_buf_str(&o);
				for (size_t i = 0; i < CREATE_LEN; i++)
					if (b[i] != b[0])
						_exit(6);
				if (rc == 0 && b[0] != 'a' + k)
					_exit(5);
				_exit(rc == 0 ? 0 : 1);
			}
		}
		close(go[0]);
		close(go[1]); /* all start at once */
		int made = 0;
		for (int k = 0; k < CREATE_PROCS; k++) {
			int ws;
			assert_int_equal(waitpid(kids[k], &ws, 0), kids[k]);
			assert_true(WIFEXITED(ws));
			if (WEXITSTATUS(ws) == 0)
				made++;
			else
				assert_int_equal(WEXITSTATUS(ws), 1);
		}
		assert_int_equal(made, 1);
	}
	/* no temporary file left beside it */
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	mw_buf_free(&out);
	mw_buf_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_unix_listen_connect_and_stale),
		cmocka_unit_test(test_inet_listen_connect),
		cmocka_unit_test(test_state_file),
		cmocka_unit_test(test_create_file),
	};
	return cmocka_run_group_tests_name("sock", tests, setup, teardown);
}
