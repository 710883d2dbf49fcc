/* SPDX-License-Identifier: MIT */
/* A segment's size is fixed: no holder can shrink it (SIGBUS for the others) or grow it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define SIZE 65536

static int rw_fd(void)
{
	int id = tc_create(tc_key(1), SIZE, 0600);
	int fd = shmx_fd(id, 0);

	if (fd < 0)
		fail_msg("shmx_fd: %s", strerror(-fd));
	return fd;
}

static void size_seals_are_set(void **state)
{
	int fd, seals;

	(void)state;
	fd = rw_fd();
	seals = fcntl(fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
	/* nothing that would stop the holders from writing */
	assert_int_equal(seals & F_SEAL_WRITE, 0);
	close(fd);
}

static void ftruncate_fails(void **state)
{
	struct stat st;
	int fd;

	(void)state;
	fd = rw_fd();
	errno = 0;
	assert_int_equal(ftruncate(fd, SIZE / 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, SIZE * 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	close(fd);
}

static void growing_by_write_or_fallocate_fails(void **state)
{
	struct stat st;
	int fd;

	(void)state;
	fd = rw_fd();
	errno = 0;
	assert_int_equal(pwrite(fd, "x", 1, SIZE), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(fallocate(fd, 0, 0, SIZE * 2), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	/* writing inside is fine */
	assert_int_equal(pwrite(fd, "x", 1, SIZE - 1), 1);
	close(fd);
}

static void seals_cannot_be_added(void **state)
{
	int fd;

	(void)state;
	fd = rw_fd();
	errno = 0;
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);
#ifdef F_SEAL_FUTURE_WRITE
	errno = 0;
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
	assert_int_equal(errno, EPERM);
#endif
	assert_int_equal(fcntl(fd, F_GET_SEALS) & F_SEAL_SEAL, F_SEAL_SEAL);
	close(fd);
}

static void rdonly_fd_is_the_same_sealed_file(void **state)
{
	struct stat a, b;
	int fd, ro, id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	fd = shmx_fd(id, 0);
	ro = shmx_fd(id, SHMX_RDONLY);
	assert_true(fd >= 0 && ro >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(ro, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_dev, b.st_dev);
	assert_int_equal(fcntl(ro, F_GET_SEALS), fcntl(fd, F_GET_SEALS));
	/* 0600, so no one can reopen it through /proc with more rights */
	assert_int_equal(a.st_mode & 07777, 0600);
	close(fd);
	close(ro);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(size_seals_are_set),
		tc_test(ftruncate_fails),
		tc_test(growing_by_write_or_fallocate_fails),
		tc_test(seals_cannot_be_added),
		tc_test(rdonly_fd_is_the_same_sealed_file),
	};

	return tc_run_tests("seals", tests);
}
