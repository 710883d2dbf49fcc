/* SPDX-License-Identifier: MIT */
/* shmx_fd(): read-only descriptors stay read-only, whoever holds them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define SIZE 16384

static int filled_segment(int mode)
{
	int id = tc_create(tc_key(1), SIZE, mode);
	void *p = tc_attach(id, 0);

	tc_fill(p, SIZE, 12);
	assert_int_equal(shmx_dt(p), 0);
	return id;
}

static void rdonly_fd_is_o_rdonly(void **state)
{
	char buf[SIZE];
	int fd;

	(void)state;
	fd = shmx_fd(filled_segment(0600), SHMX_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	assert_int_equal(pread(fd, buf, SIZE, 0), SIZE);
	assert_int_equal(tc_verify(buf, SIZE, 12), -1);
	errno = 0;
	assert_int_equal(pwrite(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EBADF);
	close(fd);
}

static void rdonly_fd_cannot_be_mapped_writable(void **state)
{
	void *p;
	int fd;

	(void)state;
	fd = shmx_fd(filled_segment(0600), SHMX_RDONLY);
	assert_true(fd >= 0);
	errno = 0;
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p == MAP_FAILED);
	assert_int_equal(errno, EACCES);
	close(fd);
}

static void rdonly_mapping_cannot_be_mprotected_writable(void **state)
{
	void *p;
	int fd;

	(void)state;
	fd = shmx_fd(filled_segment(0600), SHMX_RDONLY);
	assert_true(fd >= 0);
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(tc_verify(p, SIZE, 12), -1);
	errno = 0;
	assert_int_equal(mprotect(p, SIZE, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	munmap(p, SIZE);
	close(fd);
}

static void rw_fd_shares_the_memory(void **state)
{
	char *p, *q;
	int id, fd, fd2;

	(void)state;
	id = filled_segment(0600);
	fd = shmx_fd(id, 0);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	/* a new descriptor every time: the caller owns it */
	fd2 = shmx_fd(id, 0);
	assert_true(fd2 >= 0);
	assert_int_not_equal(fd, fd2);
	close(fd2);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	close(fd);
	q = tc_attach(id, 0);
	tc_fill(p, SIZE, 40);
	assert_int_equal(tc_verify(q, SIZE, 40), -1);
	munmap(p, SIZE);
	/* the attachment outlives the closed descriptor */
	assert_int_equal(tc_verify(q, SIZE, 40), -1);
	assert_int_equal(shmx_dt(q), 0);
}

static void fd_bad_flags_are_einval(void **state)
{
	int id;

	(void)state;
	id = filled_segment(0600);
	assert_int_equal(shmx_fd(id, 01), -EINVAL);
	assert_int_equal(shmx_fd(id, SHMX_RND), -EINVAL);
	assert_int_equal(shmx_fd(id, O_RDWR), -EINVAL);
	assert_int_equal(shmx_fd(-1, 0), -EINVAL);
}

struct other_args {
	int id;
};

static int nobody_reads_0644(void *arg)
{
	struct other_args *a = arg;
	char path[64];
	void *p = NULL;
	int fd, fd2;

	fd = shmx_fd(a->id, SHMX_RDONLY);
	TC_CHECK(fd >= 0);
	TC_CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	/* no way to write through /proc either */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	errno = 0;
	fd2 = open(path, O_RDWR);
	TC_CHECK_EQ(fd2, -1);
	TC_CHECK_EQ(errno, EACCES);
	fd2 = open(path, O_WRONLY);
	TC_CHECK_EQ(fd2, -1);
	/* nor through the API */
	TC_CHECK_EQ(shmx_fd(a->id, 0), -EACCES);
	TC_CHECK_EQ(shmx_at(a->id, NULL, 0, &p), -EACCES);
	TC_CHECK_EQ(shmx_at(a->id, NULL, SHMX_RDONLY, &p), 0);
	TC_CHECK_EQ(tc_verify(p, SIZE, 12), -1);
	TC_CHECK_EQ(shmx_dt(p), 0);
	close(fd);
	return 0;
}

static void other_user_cannot_reopen_rdonly_fd_for_writing(void **state)
{
	struct other_args a;

	(void)state;
	tc_start_shared_keeper();
	a.id = filled_segment(0644);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_reads_0644, &a), 0);
}

static int nobody_gets_nothing(void *arg)
{
	struct other_args *a = arg;

	TC_CHECK_EQ(shmx_fd(a->id, SHMX_RDONLY), -EACCES);
	TC_CHECK_EQ(shmx_fd(a->id, 0), -EACCES);
	return 0;
}

static void other_user_gets_no_fd_of_0600(void **state)
{
	struct other_args a;

	(void)state;
	tc_start_shared_keeper();
	a.id = filled_segment(0600);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_gets_nothing, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(rdonly_fd_is_o_rdonly),
		tc_test(rdonly_fd_cannot_be_mapped_writable),
		tc_test(rdonly_mapping_cannot_be_mprotected_writable),
		tc_test(rw_fd_shares_the_memory),
		tc_test(fd_bad_flags_are_einval),
		tc_test(other_user_cannot_reopen_rdonly_fd_for_writing),
		tc_test(other_user_gets_no_fd_of_0600),
	};

	return tc_run_tests("rdonly", tests);
}
