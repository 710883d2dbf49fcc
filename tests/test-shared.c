/* SPDX-License-Identifier: MIT */
/*
 * A shared namespace: a keeper started by root with --shared, used by
 * another user (nobody).  Every request is checked as ipcperms() does, with
 * credentials from the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "proto.h"

#define SIZE 8192

static int root_segment(int mode, unsigned seed)
{
	int id = tc_create(tc_key(1), SIZE, mode);
	void *p = tc_attach(id, 0);

	tc_fill(p, SIZE, seed);
	assert_int_equal(shmx_dt(p), 0);
	return id;
}

static int nobody_opens_registry(void *arg)
{
	(void)arg;
	errno = 0;
	TC_CHECK_EQ(open(tc_path("registry"), O_RDWR), -1);
	TC_CHECK_EQ(errno, EACCES);
	TC_CHECK(open(tc_path("registry"), O_RDONLY) >= 0);
	return 0;
}

static void files_have_safe_modes(void **state)
{
	struct stat st;

	(void)state;
	tc_start_shared_keeper();
	assert_int_equal(lstat(tc_dir(), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 022, 0);
	assert_int_equal(lstat(tc_path("keeper.sock"), &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0666, 0666);
	assert_int_equal(lstat(tc_path("registry"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 022, 0);         /* nobody but the keeper writes it */
	assert_int_equal(st.st_mode & 04, 04);         /* every client maps it */
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_opens_registry, NULL), 0);
}

static void registry_is_mapped_read_only(void **state)
{
	char line[1024];
	bool found = false;
	FILE *f;

	(void)state;
	tc_start_shared_keeper();
	root_segment(0600, 9);
	f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char perms[8], path[512] = "";

		if (sscanf(line, "%*s %7s %*s %*s %*s %511s", perms, path) < 1)
			continue;
		if (strcmp(path, tc_path("registry")) != 0)
			continue;
		found = true;
		/* "r--s": shared, never writable by a client */
		if (perms[1] != '-')
			fail_msg("registry mapped %s", perms);
	}
	fclose(f);
	assert_true(found);
}

static int nobody_creates(void *arg)
{
	struct shmx_ds ds;
	void *p = NULL;
	int id;

	id = shmx_get(tc_key(2), SIZE, SHMX_CREAT | SHMX_EXCL | 0600);
	TC_CHECK(id >= 0);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.uid, TC_NOBODY);
	TC_CHECK_EQ(ds.cuid, TC_NOBODY);
	TC_CHECK_EQ(ds.gid, TC_NOGROUP);
	TC_CHECK_EQ(ds.cgid, TC_NOGROUP);
	TC_CHECK_EQ(ds.cpid, getpid());
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
	tc_fill(p, SIZE, 70);
	TC_CHECK_EQ(shmx_dt(p), 0);
	(void)arg;
	return 0;
}

static void other_user_creates_with_its_own_credentials(void **state)
{
	struct shmx_ds ds;
	void *p;
	int id;

	(void)state;
	tc_start_shared_keeper();
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_creates, NULL), 0);
	id = shmx_get(tc_key(2), 0, 0);
	assert_true(id >= 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.uid, TC_NOBODY);
	assert_int_equal(ds.cuid, TC_NOBODY);
	/* root is privileged: it may attach nobody's 0600 segment */
	p = tc_attach(id, 0);
	assert_int_equal(tc_verify(p, SIZE, 70), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static int nobody_denied_0600(void *arg)
{
	int id = *(int *)arg;
	struct shmx_ds ds;
	void *p = NULL;

	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0600), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0400), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), SIZE, SHMX_CREAT | 0600), -EACCES);
	TC_CHECK_EQ(shmx_at(id, NULL, SHMX_RDONLY, &p), -EACCES);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), -EACCES);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), -EACCES);
	TC_CHECK_EQ(shmx_fd(id, SHMX_RDONLY), -EACCES);
	return 0;
}

static void other_user_gets_eacces_on_0600(void **state)
{
	int id;

	(void)state;
	tc_start_shared_keeper();
	id = root_segment(0600, 1);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_denied_0600, &id), 0);
}

static int nobody_reads_0644(void *arg)
{
	int id = *(int *)arg;
	struct shmx_ds ds;
	void *p = NULL;

	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0400), id);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0600), -EACCES);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), -EACCES);
	TC_CHECK_EQ(shmx_at(id, NULL, SHMX_RDONLY, &p), 0);
	TC_CHECK_EQ(tc_verify(p, SIZE, 2), -1);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK_EQ(shmx_dt(p), 0);
	return 0;
}

static void other_user_attaches_0644_read_only(void **state)
{
	int id;

	(void)state;
	tc_start_shared_keeper();
	id = root_segment(0644, 2);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_reads_0644, &id), 0);
}

static int nobody_as_group(void *arg)
{
	int id = *(int *)arg;
	void *p = NULL;

	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
	TC_CHECK_EQ(tc_verify(p, SIZE, 3), -1);
	TC_CHECK_EQ(shmx_dt(p), 0);
	return 0;
}

static int nobody_not_in_group(void *arg)
{
	int id = *(int *)arg;
	void *p = NULL;

	TC_CHECK_EQ(shmx_at(id, NULL, SHMX_RDONLY, &p), -EACCES);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), -EACCES);
	return 0;
}

static void group_bits_apply_to_the_group(void **state)
{
	struct shmx_ds ds;
	int id;

	(void)state;
	tc_start_shared_keeper();
	id = root_segment(0600, 3);
	tc_stat(id, &ds);
	ds.gid = TC_NOGROUP;
	ds.mode = 0660;
	assert_int_equal(shmx_ctl(id, SHMX_SET, &ds), 0);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_as_group, &id), 0);
	/* not with the group's bits cleared */
	ds.mode = 0606;
	assert_int_equal(shmx_ctl(id, SHMX_SET, &ds), 0);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_not_in_group, &id), 0);
}

static int nobody_not_owner(void *arg)
{
	int id = *(int *)arg;
	struct shmx_ds ds;

	TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), 0);
	ds.mode = 0666;
	ds.uid = TC_NOBODY;
	TC_CHECK_EQ(shmx_ctl(id, SHMX_SET, &ds), -EPERM);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_RMID, NULL), -EPERM);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_LOCK, NULL), -EPERM);
	return 0;
}

static void other_user_cannot_set_or_remove(void **state)
{
	struct shmx_ds ds;
	int id;

	(void)state;
	tc_start_shared_keeper();
	/* even with every permission bit: SET and RMID are the owner's */
	id = root_segment(0666, 4);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_not_owner, &id), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.uid, 0);
	assert_int_equal(ds.mode, 0666);
	assert_int_equal(ds.status, 0);
}

static int nobody_owner_removes(void *arg)
{
	int id = *(int *)arg;

	TC_CHECK_EQ(shmx_ctl(id, SHMX_RMID, NULL), 0);
	return 0;
}

static void owner_may_remove(void **state)
{
	struct shmx_ds ds;
	int id;

	(void)state;
	tc_start_shared_keeper();
	id = root_segment(0600, 5);
	/* handed over to nobody: now the owner, though root created it */
	tc_stat(id, &ds);
	ds.uid = TC_NOBODY;
	assert_int_equal(shmx_ctl(id, SHMX_SET, &ds), 0);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_owner_removes, &id), 0);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
}

static int nobody_lies_in_messages(void *arg)
{
	int id = *(int *)arg;
	struct shmx_req req;
	int sock;

	sock = tc_raw_connect(tc_dir());
	TC_CHECK(sock >= 0);
	/* claims to be root in the message's fields */
	shmx_req_init(&req, SHMX_MSG_CTL);
	req.id = id;
	req.cmd = SHMX_SET;
	req.uid = 0;
	req.gid = 0;
	req.mode = 0666;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EPERM);
	shmx_req_init(&req, SHMX_MSG_CTL);
	req.id = id;
	req.cmd = SHMX_RMID;
	req.uid = 0;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EPERM);
	shmx_req_init(&req, SHMX_MSG_FD);
	req.id = id;
	req.uid = 0;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EACCES);
	/* what it creates is its own, whatever it says */
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(3);
	req.size = 4096;
	req.flags = SHMX_CREAT | 0600;
	req.uid = 0;
	req.gid = 0;
	TC_CHECK(tc_raw_call(sock, &req, -1) >= 0);
	close(sock);
	return 0;
}

static void credentials_come_from_the_socket(void **state)
{
	struct shmx_ds ds;
	int id, mine;

	(void)state;
	tc_start_shared_keeper();
	id = root_segment(0600, 6);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_lies_in_messages, &id), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.mode, 0600);
	assert_int_equal(ds.uid, 0);
	assert_int_equal(ds.status, 0);
	mine = shmx_get(tc_key(3), 0, 0);
	assert_true(mine >= 0);
	tc_stat(mine, &ds);
	assert_int_equal(ds.uid, TC_NOBODY);
	assert_int_equal(ds.cuid, TC_NOBODY);
}

static int nobody_asks_for_more_than_there_is(void *arg)
{
	struct shmx_req req;
	int sock;

	(void)arg;
	/* as shmget: the size is checked before the permission */
	TC_CHECK_EQ(shmx_get(tc_key(1), 8192, 0600), -EINVAL);
	TC_CHECK_EQ(shmx_get(tc_key(1), 8192, SHMX_CREAT | 0600), -EINVAL);
	TC_CHECK_EQ(shmx_get(tc_key(1), 4096, 0600), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600), -EACCES);
	/* and so does the keeper, asked directly (the library answers from the registry) */
	sock = tc_raw_connect(tc_dir());
	TC_CHECK(sock >= 0);
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(1);
	req.size = 8192;
	req.flags = 0600;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EINVAL);
	req.flags = SHMX_CREAT | 0600;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EINVAL);
	req.size = 4096;
	req.flags = 0600;
	TC_CHECK_EQ(tc_raw_call(sock, &req, -1), -EACCES);
	close(sock);
	return 0;
}

static void existing_key_size_is_checked_before_permission(void **state)
{
	(void)state;
	tc_start_shared_keeper();
	tc_create(tc_key(1), 4096, 0600);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_asks_for_more_than_there_is, NULL), 0);
}

static int nobody_without_keeper(void *arg)
{
	int r;

	(void)arg;
	r = shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600);
	if (r != -EACCES && r != -ECONNREFUSED && r != -ENOTCONN)
		tc_child_fail(__FILE__, __LINE__, "shmx_get without a keeper: %d", r);
	return 0;
}

static void other_user_never_starts_the_keeper(void **state)
{
	pid_t keepers[4];

	(void)state;
	tc_kill_keeper(tc_start_shared_keeper());
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_without_keeper, NULL), 0);
	tc_sleep_ms(100);
	assert_int_equal(tc_find_keepers(tc_dir(), keepers, 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(files_have_safe_modes),
		tc_test(registry_is_mapped_read_only),
		tc_test(other_user_creates_with_its_own_credentials),
		tc_test(other_user_gets_eacces_on_0600),
		tc_test(other_user_attaches_0644_read_only),
		tc_test(group_bits_apply_to_the_group),
		tc_test(other_user_cannot_set_or_remove),
		tc_test(owner_may_remove),
		tc_test(credentials_come_from_the_socket),
		tc_test(other_user_never_starts_the_keeper),
		tc_test(existing_key_size_is_checked_before_permission),
	};

	return tc_run_tests("shared", tests);
}
