/* SPDX-License-Identifier: MIT */
/*
 * The namespace directory is checked before anything in it is trusted: a
 * symlink, a directory others may write, one owned by someone else, or one
 * others may enter without being a shared namespace are refused with
 * -EACCES, and nothing is started or created there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int entries(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Every call in namespace ns fails with -EACCES, and ns stays as it was. */
static void refused(const char *ns, const char *real)
{
	struct shmx_info info;
	struct shmx_ds ds;
	pid_t keepers[4];
	void *p = NULL;

	setenv("SHMX_NAMESPACE", ns, 1);
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600), -EACCES);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -EACCES);
	assert_int_equal(shmx_info(&info), -EACCES);
	assert_int_equal(shmx_list(&ds, 1), -EACCES);
	assert_int_equal(shmx_ctl(0x10000, SHMX_STAT, &ds), -EACCES);
	assert_int_equal(shmx_at(0x10000, NULL, 0, &p), -EACCES);
	assert_int_equal(shmx_fd(0x10000, 0), -EACCES);
	tc_sleep_ms(50);
	assert_int_equal(entries(real), 0);
	assert_int_equal(tc_find_keepers(ns, keepers, 4), 0);
	assert_int_equal(tc_find_keepers(real, keepers, 4), 0);
}

static void symlink_is_refused(void **state)
{
	const char *good;

	(void)state;
	good = tc_make_dir(0700, geteuid(), getegid());
	assert_int_equal(symlink(good, tc_path("link")), 0);
	refused(tc_path("link"), good);
}

static void world_writable_dir_is_refused(void **state)
{
	const char *d;

	(void)state;
	d = tc_make_dir(0777, geteuid(), getegid());
	refused(d, d);
}

static void group_writable_dir_is_refused(void **state)
{
	const char *d;

	(void)state;
	d = tc_make_dir(0770, geteuid(), getegid());
	refused(d, d);
}

static void sticky_tmp_like_dir_is_refused(void **state)
{
	const char *d;

	(void)state;
	d = tc_make_dir(01777, geteuid(), getegid());
	refused(d, d);
}

static void dir_of_another_user_is_refused(void **state)
{
	const char *d;

	(void)state;
	TC_REQUIRE_ROOT();
	d = tc_make_dir(0700, TC_NOBODY, TC_NOGROUP);
	refused(d, d);
}

static void enterable_dir_without_shared_registry_is_refused(void **state)
{
	const char *d;

	(void)state;
	d = tc_make_dir(0750, geteuid(), getegid());
	refused(d, d);
	d = tc_make_dir(0711, geteuid(), getegid());
	refused(d, d);
}

static void file_is_refused(void **state)
{
	struct shmx_info info;
	int fd, r;

	(void)state;
	fd = open(tc_path("file"), O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	setenv("SHMX_NAMESPACE", tc_path("file"), 1);
	r = shmx_info(&info);
	if (r != -EACCES && r != -ENOTDIR)
		fail_msg("a file as namespace: %d", r);
}

static void missing_dir_is_created_0700(void **state)
{
	struct shmx_info info;
	struct stat st;

	(void)state;
	setenv("SHMX_NAMESPACE", tc_path("new"), 1);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(lstat(tc_path("new"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	tc_create(tc_key(1), 4096, 0600);
	/* the keeper of the new directory dies with the test */
	tc_kill_keeper(info.keeper_pid);
}

static void each_call_reads_the_namespace(void **state)
{
	const char *a, *b;
	int ida, idb;
	pid_t ka;

	(void)state;
	a = tc_make_dir(0700, geteuid(), getegid());
	b = tc_make_dir(0700, geteuid(), getegid());
	setenv("SHMX_NAMESPACE", a, 1);
	ida = tc_create(tc_key(1), 4096, 0600);
	ka = tc_keeper_pid();
	setenv("SHMX_NAMESPACE", b, 1);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	idb = tc_create(tc_key(1), 8192, 0600);
	assert_int_not_equal(tc_keeper_pid(), ka);
	setenv("SHMX_NAMESPACE", a, 1);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), ida);
	assert_int_equal(tc_keeper_pid(), ka);
	{
		struct shmx_ds ds;

		tc_stat(ida, &ds);
		assert_int_equal(ds.segsz, 4096);
		setenv("SHMX_NAMESPACE", b, 1);
		tc_stat(idb, &ds);
		assert_int_equal(ds.segsz, 8192);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(symlink_is_refused),
		tc_test(world_writable_dir_is_refused),
		tc_test(group_writable_dir_is_refused),
		tc_test(sticky_tmp_like_dir_is_refused),
		tc_test(dir_of_another_user_is_refused),
		tc_test(enterable_dir_without_shared_registry_is_refused),
		tc_test(file_is_refused),
		tc_test(missing_dir_is_created_0700),
		tc_test(each_call_reads_the_namespace),
	};

	return tc_run_tests("namespace", tests);
}
