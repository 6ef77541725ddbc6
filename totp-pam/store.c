#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

int tp_user_name_ok(const char *user)
{
	size_t n = strlen(user);
	if (n == 0 || n > TP_USER_MAX || user[0] == '.' || user[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = user[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '@' || c == '+' || c == '-'))
			return 0;
	}
	return 1;
}

static void set_errno_msg(struct mw_buf *err, const char *what, const char *name, int e)
{
	mw_buf_setf(err, "%s %s: %s", what, name, strerror(e));
}

int tp_store_open(struct tp_store *s, const char *dir, const char *user, struct mw_buf *err)
{
	struct stat sb;
	s->dir_fd = s->lock_fd = -1;
	if (!tp_user_name_ok(user)) {
		mw_buf_setf(err, "user name not usable as a file name");
		return -1;
	}
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dir_fd < 0) {
		set_errno_msg(err, "state directory", dir, errno);
		return -1;
	}
	if (fstat(s->dir_fd, &sb) < 0) {
		set_errno_msg(err, "state directory", dir, errno);
		goto fail;
	}
	if (sb.st_uid != 0 || (sb.st_mode & 022) != 0) {
		mw_buf_setf(err, "state directory %s refused: owner uid %lu mode %04o (want root's, "
			    "not writable by group or other)", dir, (unsigned long)sb.st_uid,
			    (unsigned)(sb.st_mode & 07777));
		goto fail;
	}
	return 0;
fail:
	close(s->dir_fd);
	s->dir_fd = -1;
	return -1;
}

static int aux_name(const struct tp_store *s, const char *suffix, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, ".%s.%s", s->user, suffix);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int tp_store_lock(struct tp_store *s, unsigned timeout_ms, struct mw_buf *err)
{
	char name[TP_USER_MAX + 16];
	struct stat sb;
	if (s->lock_fd >= 0)
		return 0;
	if (aux_name(s, "lock", name, sizeof(name)) < 0)
		return -1;
	/* flock needs no write access: a lock file that exists can be locked
	   on a read-only or full disk too */
	int fd = openat(s->dir_fd, name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e = errno;
	if (fd < 0 && (e == EROFS || e == ENOSPC || e == EDQUOT)) {
		fd = openat(s->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			e = errno;
	}
	if (fd < 0) {
		set_errno_msg(err, "lock file", name, e);
		/* no lock file and no way to make one: nobody can write this
		   directory, so nobody can change the state under us either */
		return e == EROFS || e == ENOSPC || e == EDQUOT ? 1 : -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != 0) {
		mw_buf_setf(err, "lock file %s refused: not a regular file of root's", name);
		close(fd);
		return -1;
	}
	/* counted tries, not a deadline: a test's frozen fake clock must not
	   make this spin for ever */
	unsigned tries = timeout_ms / 5 + 1;
	for (unsigned i = 0;; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			set_errno_msg(err, "lock", name, errno);
			close(fd);
			return -1;
		}
		if (i + 1 >= tries) {
			mw_buf_setf(err, "lock %s: still held by another process after %u ms", name, timeout_ms);
			close(fd);
			errno = EWOULDBLOCK;
			return -1;
		}
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	s->lock_fd = fd;
	return 0;
}

int tp_store_load(struct tp_store *s, struct tp_state *st, struct mw_buf *err)
{
	struct stat sb;
	char buf[TP_FILE_MAX + 1];
	int fd = openat(s->dir_fd, s->user, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	tp_state_init(st);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			mw_buf_setf(err, "state file refused: a symbolic link");
		else
			set_errno_msg(err, "state file", s->user, errno);
		return -1;
	}
	int r = -1;
	if (fstat(fd, &sb) < 0) {
		set_errno_msg(err, "state file", s->user, errno);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		mw_buf_setf(err, "state file refused: not a regular file");
		goto out;
	}
	if (sb.st_uid != 0 || (sb.st_mode & 077) != 0 || sb.st_nlink != 1) {
		mw_buf_setf(err, "state file refused: owner uid %lu mode %04o links %lu (want root's, "
			    "no group or other access, one link)", (unsigned long)sb.st_uid,
			    (unsigned)(sb.st_mode & 07777), (unsigned long)sb.st_nlink);
		goto out;
	}
	if (sb.st_size > TP_FILE_MAX) {
		mw_buf_setf(err, "state file refused: larger than %d bytes", TP_FILE_MAX);
		goto out;
	}
	size_t len = 0;
	for (;;) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			set_errno_msg(err, "reading state file", s->user, errno);
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len == sizeof(buf)) {
			mw_buf_setf(err, "state file refused: larger than %d bytes", TP_FILE_MAX);
			goto out;
		}
	}
	struct mw_buf perr = MW_BUF_INIT;
	if (tp_state_parse(buf, len, st, &perr) < 0) {
		mw_buf_setf(err, "state file corrupt: %s", mw_buf_str(&perr));
		mw_buf_free(&perr);
		goto out;
	}
	mw_buf_free(&perr);
	r = 1;
out:
	tp_wipe(buf, sizeof(buf));
	close(fd);
	return r;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int tp_store_save(struct tp_store *s, const struct tp_state *st, struct mw_buf *err)
{
	char tmp[TP_USER_MAX + 16];
	struct mw_buf text;
	int fd = -1, r = -1;
	mw_buf_init(&text, TP_FILE_MAX);
	if (aux_name(s, "tmp", tmp, sizeof(tmp)) < 0)
		return -1;
	if (tp_state_format(st, &text) < 0) {
		mw_buf_setf(err, "state too large to write");
		goto out;
	}
	/* a leftover from a crash: we hold the lock, so it is nobody's */
	unlinkat(s->dir_fd, tmp, 0);
	fd = openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_errno_msg(err, "creating", tmp, errno);
		goto out;
	}
	if (write_all(fd, text.data, text.len) < 0) {
		set_errno_msg(err, "writing", tmp, errno);
		goto unlink;
	}
	if (fsync(fd) < 0) {
		set_errno_msg(err, "fsync", tmp, errno);
		goto unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		set_errno_msg(err, "closing", tmp, errno);
		goto unlink;
	}
	fd = -1;
	if (renameat(s->dir_fd, tmp, s->dir_fd, s->user) < 0) {
		set_errno_msg(err, "renaming into place", tmp, errno);
		goto unlink;
	}
	/* the rename itself must reach the disk before we say it did */
	if (fsync(s->dir_fd) < 0) {
		set_errno_msg(err, "fsync of the state directory for", s->user, errno);
		goto out;
	}
	r = 0;
	goto out;
unlink:
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlinkat(s->dir_fd, tmp, 0);
out:
	if (fd >= 0)
		close(fd);
	mw_buf_wipe(&text);
	return r;
}

int tp_store_remove(struct tp_store *s, struct mw_buf *err)
{
	if (unlinkat(s->dir_fd, s->user, 0) < 0 && errno != ENOENT) {
		set_errno_msg(err, "removing state file", s->user, errno);
		return -1;
	}
	if (fsync(s->dir_fd) < 0) {
		set_errno_msg(err, "fsync of the state directory for", s->user, errno);
		return -1;
	}
	return 0;
}

void tp_store_close(struct tp_store *s)
{
	if (s->lock_fd >= 0) {
		close(s->lock_fd); /* releases the flock */
		s->lock_fd = -1;
	}
	if (s->dir_fd >= 0) {
		close(s->dir_fd);
		s->dir_fd = -1;
	}
}
