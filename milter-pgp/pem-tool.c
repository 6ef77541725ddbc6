/*
 * milter-pgp-pem: open and make password-encrypted messages (pem.h).
 *
 *   milter-pgp-pem open [PASSWORD OPTION] [-o OUT] FILE
 *   milter-pgp-pem seal --html|--asc [PASSWORD OPTION] [PAGE OPTIONS] [-o OUT] MESSAGE
 *   milter-pgp-pem generate
 *
 * The password comes from the terminal (no echo), --password-file FILE (its
 * first line) or --password-stdin (the first line of standard input). It is
 * never taken from the command line, where ps would show it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "pem.h"
#include "strnum.h"

#define MAX_FILE ((size_t)192 * 1024 * 1024)

static const char usage_text[] =
	"usage: milter-pgp-pem open [--password-file FILE|--password-stdin] [-o OUT] FILE\n"
	"       milter-pgp-pem seal --html|--asc [--password-file FILE|--password-stdin]\n"
	"                      [--iterations N] [--lang en|fr] [--sender ADDR] [--date TEXT]\n"
	"                      [--hint TEXT] [-o OUT] MESSAGE\n"
	"       milter-pgp-pem generate\n";

static _Noreturn void usage(void)
{
	fputs(usage_text, stderr);
	exit(2);
}

static _Noreturn void die(const char *what, const char *why)
{
	fprintf(stderr, "milter-pgp-pem: %s: %s\n", what, why);
	exit(1);
}

/* The whole of a file ("-": standard input), at most MAX_FILE bytes. */
static void slurp(const char *path, struct mw_buf *b)
{
	int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(path, strerror(errno));
	mw_buf_init(b, MAX_FILE);
	char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(path, strerror(errno));
		if (mw_buf_append(b, chunk, (size_t)n) < 0)
			die(path, "larger than 192 MB");
	}
	if (fd != 0)
		close(fd);
}

/* One line from fd, without its line end, into pw. */
static void read_line(int fd, const char *what, struct mw_buf *pw)
{
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(what, strerror(errno));
		if (c == '\n')
			break;
		if (mw_buf_putc(pw, c) < 0)
			die(what, "password too long");
	}
	if (pw->len > 0 && pw->data[pw->len - 1] == '\r')
		mw_buf_truncate(pw, pw->len - 1);
	c = 0;
}

static void password_from_tty(struct mw_buf *pw)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("password", "no terminal: use --password-file or --password-stdin");
	struct termios old, quiet;
	int restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	static const char prompt[] = "Password: ";
	if (write(fd, prompt, sizeof(prompt) - 1) < 0)
		die("password", strerror(errno));
	read_line(fd, "/dev/tty", pw);
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
}

static void get_password(const char *file, int from_stdin, struct mw_buf *pw)
{
	mw_buf_init(pw, MP_PEM_MAX_PASSWORD * 4);
	if (file != NULL) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die(file, strerror(errno));
		read_line(fd, file, pw);
		close(fd);
	} else if (from_stdin) {
		read_line(0, "standard input", pw);
	} else {
		password_from_tty(pw);
	}
	if (pw->len == 0)
		die("password", "empty");
	if (memchr(pw->data, '\0', pw->len) != NULL)
		die("password", "holds a NUL byte");
}

/* The output: -o OUT (mode 0600: it may be plaintext) or standard output. */
static FILE *output(const char *path)
{
	if (path == NULL)
		return stdout;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (f == NULL)
		die(path, strerror(errno));
	return f;
}

static void finish(FILE *f, const char *path)
{
	if ((fflush(f) != 0 || ferror(f)) || (f != stdout && fclose(f) != 0))
		die(path ? path : "standard output", strerror(errno));
}

enum { OPT_PWFILE = 256, OPT_PWSTDIN, OPT_HTML, OPT_ASC, OPT_ITER, OPT_LANG, OPT_SENDER, OPT_DATE, OPT_HINT };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "password-file", required_argument, NULL, OPT_PWFILE },
		{ "password-stdin", no_argument, NULL, OPT_PWSTDIN },
		{ "html", no_argument, NULL, OPT_HTML },
		{ "asc", no_argument, NULL, OPT_ASC },
		{ "iterations", required_argument, NULL, OPT_ITER },
		{ "lang", required_argument, NULL, OPT_LANG },
		{ "sender", required_argument, NULL, OPT_SENDER },
		{ "date", required_argument, NULL, OPT_DATE },
		{ "hint", required_argument, NULL, OPT_HINT },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	const char *pwfile = NULL, *out_path = NULL;
	int pwstdin = 0, format = 0;
	struct mp_pem_opts o = { 0 };
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PWFILE: pwfile = optarg; break;
		case OPT_PWSTDIN: pwstdin = 1; break;
		case OPT_HTML: format = 'h'; break;
		case OPT_ASC: format = 'a'; break;
		case OPT_ITER: {
			unsigned long long v;
			if (mw_parse_uint(optarg, MP_PEM_MAX_ITERATIONS, &v) < 0 || v < MP_PEM_MIN_ITERATIONS)
				die("--iterations", "not a number from 1000 to 20000000");
			o.iterations = (unsigned)v;
			break;
		}
		case OPT_LANG:
			if (strcmp(optarg, "en") != 0 && strcmp(optarg, "fr") != 0)
				die("--lang", "en or fr");
			o.lang = optarg;
			break;
		case OPT_SENDER: o.sender = optarg; break;
		case OPT_DATE: o.date = optarg; break;
		case OPT_HINT: o.hint = optarg; break;
		case 'o': out_path = optarg; break;
		default: usage();
		}
	}
	if (pwfile != NULL && pwstdin)
		usage();
	struct mw_buf err = MW_BUF_INIT, in, pw;

	if (strcmp(cmd, "generate") == 0) {
		char gen[MP_PEM_GENERATED_SIZE];
		if (optind != argc)
			usage();
		if (mp_pem_password_generate(gen, sizeof(gen)) < 0)
			die("generate", "no random bytes");
		printf("%s\n", gen);
		OPENSSL_cleanse(gen, sizeof(gen));
		finish(stdout, NULL);
		return 0;
	}
	if (optind != argc - 1)
		usage();
	const char *file = argv[optind];
	if (strcmp(cmd, "open") == 0) {
		if (format != 0 || (pwstdin && strcmp(file, "-") == 0))
			usage();
		slurp(file, &in);
		get_password(pwfile, pwstdin, &pw);
		struct mw_buf mime;
		mw_buf_init(&mime, MAX_FILE);
		if (mp_pem_open(mw_buf_str(&pw), (const unsigned char *)in.data, in.len, &mime, &err) < 0)
			die(file, mw_buf_str(&err));
		mw_buf_wipe(&pw);
		FILE *f = output(out_path);
		if (mime.len > 0 && fwrite(mime.data, 1, mime.len, f) != mime.len)
			die(out_path ? out_path : "standard output", strerror(errno));
		finish(f, out_path);
		mw_buf_wipe(&mime);
	} else if (strcmp(cmd, "seal") == 0) {
		if (format == 0 || (pwstdin && strcmp(file, "-") == 0))
			usage();
		slurp(file, &in);
		get_password(pwfile, pwstdin, &pw);
		struct mw_buf nfc = MW_BUF_INIT;
		if (mp_pem_password_normalize(pw.data, pw.len, &nfc, &err) < 0)
			die("password", mw_buf_str(&err));
		mw_buf_wipe(&nfc);
		if (format == 'a' && mp_pem_global_init(&err) < 0)
			die("GPGME", mw_buf_str(&err));
		FILE *f = output(out_path);
		int r = format == 'h' ? mp_pem_seal_html(&o, mw_buf_str(&pw), (const unsigned char *)in.data, in.len, f, &err)
				      : mp_pem_seal_asc(&o, mw_buf_str(&pw), (const unsigned char *)in.data, in.len, f, &err);
		mw_buf_wipe(&pw);
		if (r < 0)
			die(file, mw_buf_str(&err));
		finish(f, out_path);
	} else {
		usage();
	}
	mw_buf_wipe(&in);
	mw_buf_free(&err);
	return 0;
}
