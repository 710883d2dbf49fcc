/* SPDX-License-Identifier: MIT */
/* shmx_get(): keys, creation, and every error of the contract. */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static void no_such_key_is_enoent(void **state)
{
	(void)state;
	assert_int_equal(shmx_get(tc_key(1), 4096, 0600), -ENOENT);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
}

static void creat_excl_on_existing_is_eexist(void **state)
{
	(void)state;
	tc_create(tc_key(1), 4096, 0600);
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | SHMX_EXCL | 0600), -EEXIST);
}

static void creat_without_excl_returns_existing(void **state)
{
	struct shmx_ds ds;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 8192, 0640);
	/* neither the size nor the mode of the existing segment changes */
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600), id);
	tc_stat(id, &ds);
	assert_int_equal(ds.segsz, 8192);
	assert_int_equal(ds.mode, 0640);
}

static void size_zero_on_create_is_einval(void **state)
{
	(void)state;
	assert_int_equal(shmx_get(tc_key(1), 0, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(SHMX_PRIVATE, 0, SHMX_CREAT | 0600), -EINVAL);
	/* and nothing was created */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
}

static void size_max_is_einval(void **state)
{
	(void)state;
	assert_int_equal(shmx_get(tc_key(1), SIZE_MAX, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(tc_key(2), SIZE_MAX / 2 + 1, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(SHMX_PRIVATE, SIZE_MAX - 4095, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
}

static void size_above_max_segsz_is_einval(void **state)
{
	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segsz", "1048576", NULL), 0);
	assert_int_equal(shmx_get(tc_key(1), 1048577, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 2 * 1048576, SHMX_CREAT | 0600), -EINVAL);
	/* the limit itself is allowed */
	tc_create(tc_key(1), 1048576, 0600);
}

static void existing_smaller_than_size_is_einval(void **state)
{
	int id;

	(void)state;
	id = tc_create(tc_key(1), 8192, 0600);
	assert_int_equal(shmx_get(tc_key(1), 8193, 0600), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 8193, SHMX_CREAT | 0600), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 8192, 0600), id);
	assert_int_equal(shmx_get(tc_key(1), 100, 0600), id);
	/* as shmget(2): size 0 finds an existing segment */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), id);
}

static void bad_flags_are_einval(void **state)
{
	(void)state;
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600 | 0x100000), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600 | SHMX_RND), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600 | INT32_MIN), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	/* also on the path answered from the registry (existing key) */
	tc_create(tc_key(2), 4096, 0600);
	assert_int_equal(shmx_get(tc_key(2), 4096, 0600 | 0x100000), -EINVAL);
}

static int nobody_asks_rights_mode_lacks(void *arg)
{
	const char *dir = arg;
	int id, r;

	setenv("SHMX_NAMESPACE", dir, 1);
	id = shmx_get(tc_key(1), 4096, SHMX_CREAT | SHMX_EXCL | 0400);
	TC_CHECK(id >= 0);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0600), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0200), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, SHMX_CREAT | 0600), -EACCES);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0400), id);
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, 0), id);
	/* the mode also rules attaching: read-only yes, read-write no */
	{
		void *p = NULL;

		r = shmx_at(id, NULL, 0, &p);
		TC_CHECK_EQ(r, -EACCES);
		r = shmx_at(id, NULL, SHMX_RDONLY, &p);
		TC_CHECK_EQ(r, 0);
		TC_CHECK_EQ(shmx_dt(p), 0);
	}
	return 0;
}

static void mode_lacking_rights_is_eacces(void **state)
{
	const char *dir;

	(void)state;
	TC_REQUIRE_NOBODY_KEEPER();
	/* a per-user namespace of its own: root would bypass the mode */
	dir = tc_make_dir(0700, TC_NOBODY, TC_NOGROUP);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_asks_rights_mode_lacks,
				   (void *)dir), 0);
}

static void registry_full_is_enospc(void **state)
{
	int a;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "2", NULL), 0);
	a = tc_create(SHMX_PRIVATE, 4096, 0600);
	tc_create(tc_key(1), 4096, 0600);
	assert_int_equal(shmx_get(tc_key(2), 4096, SHMX_CREAT | 0600), -ENOSPC);
	assert_int_equal(shmx_get(SHMX_PRIVATE, 4096, SHMX_CREAT | 0600), -ENOSPC);
	/* a free slot makes room again */
	assert_int_equal(shmx_ctl(a, SHMX_RMID, NULL), 0);
	tc_create(tc_key(2), 4096, 0600);
}

static void total_limit_is_enomem(void **state)
{
	int a;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segsz", "1048576",
					 "--max-total", "1048576", NULL), 0);
	a = tc_create(tc_key(1), 655360, 0600);
	assert_int_equal(shmx_get(tc_key(2), 655360, SHMX_CREAT | 0600), -ENOMEM);
	/* exactly up to the limit is allowed */
	tc_create(tc_key(2), 393216, 0600);
	assert_int_equal(shmx_get(tc_key(3), 4096, SHMX_CREAT | 0600), -ENOMEM);
	/* removing gives the bytes back */
	assert_int_equal(shmx_ctl(a, SHMX_RMID, NULL), 0);
	tc_create(tc_key(3), 655360, 0600);
}

static void private_key_gives_distinct_segments(void **state)
{
	struct shmx_ds ds;
	int a, b, c;

	(void)state;
	a = tc_create(SHMX_PRIVATE, 4096, 0600);
	b = tc_create(SHMX_PRIVATE, 4096, 0600);
	assert_int_not_equal(a, b);
	c = shmx_get(SHMX_PRIVATE, 4096, SHMX_CREAT | 0600);
	assert_true(c >= 0);
	assert_int_not_equal(c, a);
	assert_int_not_equal(c, b);
	tc_stat(a, &ds);
	assert_int_equal(ds.key, SHMX_PRIVATE);
	/* as shmget(2): the private key always creates, CREAT or not */
	c = shmx_get(SHMX_PRIVATE, 4096, 0600);
	assert_true(c >= 0);
	assert_int_not_equal(c, a);
	assert_int_not_equal(c, b);
	assert_int_equal(shmx_list(NULL, 0), 4);
}

static void same_key_gives_same_id(void **state)
{
	struct tc_child *c;
	char key[32];
	int id;

	(void)state;
	id = tc_create(tc_key(7), 4096, 0600);
	assert_int_equal(shmx_get(tc_key(7), 4096, 0600), id);
	assert_int_equal(shmx_get(tc_key(7), 4096, SHMX_CREAT | 0600), id);
	/* and in another process */
	snprintf(key, sizeof(key), "%d", (int)tc_key(7));
	c = tc_spawn("get", key, "4096", "0600", NULL);
	assert_int_equal(tc_expect_num(c, "id "), id);
	tc_child_wait_ok(c);
	/* a different key is a different segment */
	assert_int_not_equal(tc_create(tc_key(8), 4096, 0600), id);
}

static void negative_key_is_a_key(void **state)
{
	int id;

	(void)state;
	id = tc_create((key_t)-42, 4096, 0600);
	assert_int_equal(shmx_get((key_t)-42, 0, 0), id);
	assert_int_equal(shmx_get((key_t)42, 0, 0), -ENOENT);
}

static void noreserve_is_accepted(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	id = shmx_get(tc_key(1), 1 << 20, SHMX_CREAT | SHMX_NORESERVE | 0600);
	assert_true(id >= 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.segsz, 1 << 20);
	p = tc_attach(id, 0);
	p[(1 << 20) - 1] = 1;
	assert_int_equal(shmx_dt(p), 0);
}

static long free_hugepages(void)
{
	long n = 0;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

static void hugetlb_segment(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	if (free_hugepages() == 0) {
		print_message("# skip: no huge pages (/proc/sys/vm/nr_hugepages is 0)\n");
		skip();
	}
	/* the size is as asked, the backing rounded to the huge page */
	id = shmx_get(tc_key(1), 1 << 20, SHMX_CREAT | SHMX_HUGETLB | 0600);
	if (id < 0)
		fail_msg("shmx_get(HUGETLB): %s", strerror(-id));
	tc_stat(id, &ds);
	assert_int_equal(ds.segsz, 1 << 20);
	p = tc_attach(id, 0);
	tc_fill(p, 1 << 20, 3);
	assert_int_equal(tc_verify(p, 1 << 20, 3), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void errno_is_left_alone(void **state)
{
	struct shmx_info info;
	struct shmx_ds ds;
	void *p = NULL, *q = NULL;
	int id, fd;

	(void)state;
	errno = 1234;
	assert_int_equal(shmx_get(tc_key(1), 4096, 0600), -ENOENT);
	assert_int_equal(errno, 1234);
	id = shmx_get(tc_key(1), 4096, SHMX_CREAT | 0600);
	assert_true(id >= 0);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_get(tc_key(1), 4096, SHMX_CREAT | SHMX_EXCL | 0600), -EEXIST);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_at(id, NULL, 0, &p), 0);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_at(id, (char *)p + 1, 0, &q), -EINVAL);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), 0);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_ctl(-1, SHMX_STAT, &ds), -EINVAL);
	assert_int_equal(errno, 1234);
	assert_true(shmx_list(&ds, 1) >= 1);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(errno, 1234);
	fd = shmx_fd(id, 0);
	assert_true(fd >= 0);
	assert_int_equal(errno, 1234);
	close(fd);
	errno = 1234;
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_dt(p), -EINVAL);
	assert_int_equal(errno, 1234);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	assert_int_equal(errno, 1234);
}

/* Descriptors this process holds of the memfd of key's segment (the
 * keeper names each "shmx:<key>"). */
static int memfds_of(key_t key)
{
	char path[64], link[256], want[64];
	int n = 0;

	snprintf(want, sizeof(want), "/memfd:shmx:0x%08x", (unsigned)key);
	for (int fd = 0; fd < 4096; fd++) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (!strncmp(link, want, strlen(want)))
			n++;
	}
	return n;
}

/*
 * A creator gets the new segment's descriptor with the reply (its first
 * attach then needs no round trip), while it caches fewer than 64.
 */
static int creator_in_child(void *arg)
{
	int id, kept = 0;
	void *p;

	(void)arg;
	id = shmx_get(tc_key(1), 4096, SHMX_CREAT | SHMX_EXCL | 0600);
	TC_CHECK(id >= 0);
	TC_CHECK_EQ(memfds_of(tc_key(1)), 1);
	/* existing keys and attaches add nothing more */
	TC_CHECK_EQ(shmx_get(tc_key(1), 0, SHMX_CREAT | 0600), id);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
	TC_CHECK_EQ(memfds_of(tc_key(1)), 1);
	TC_CHECK_EQ(shmx_dt(p), 0);
	/* not more than 64 in the cache (some may be left from other tests) */
	for (int i = 0; i < 100; i++) {
		TC_CHECK(shmx_get(tc_key(100 + i), 4096, SHMX_CREAT | SHMX_EXCL | 0600) >= 0);
		kept += memfds_of(tc_key(100 + i));
	}
	TC_CHECK(kept >= 40 && kept <= 63);
	return 0;
}

static int creator_kept_out_in_child(void *arg)
{
	(void)arg;
	/* a mode that keeps the creator out gives it no descriptor */
	TC_CHECK(shmx_get(tc_key(2), 4096, SHMX_CREAT | SHMX_EXCL | 0400) >= 0);
	TC_CHECK_EQ(memfds_of(tc_key(2)), 0);
	return 0;
}

static void creator_keeps_the_new_descriptor(void **state)
{
	(void)state;
	assert_int_equal(tc_fork_call((uid_t)-1, (gid_t)-1, creator_in_child, NULL, TC_REPLY_MS), 0);
	/* root is never kept out: as nobody, in a namespace nobody owns */
	if (geteuid() == 0) {
		const char *dir = tc_make_dir(0700, TC_NOBODY, TC_NOGROUP);

		setenv("SHMX_NAMESPACE", dir, 1);
		assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, creator_kept_out_in_child, NULL), 0);
		setenv("SHMX_NAMESPACE", tc_dir(), 1);
	} else {
		assert_int_equal(tc_fork_call((uid_t)-1, (gid_t)-1, creator_kept_out_in_child, NULL,
					      TC_REPLY_MS), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(no_such_key_is_enoent),
		tc_test(creat_excl_on_existing_is_eexist),
		tc_test(creat_without_excl_returns_existing),
		tc_test(size_zero_on_create_is_einval),
		tc_test(size_max_is_einval),
		tc_test(size_above_max_segsz_is_einval),
		tc_test(existing_smaller_than_size_is_einval),
		tc_test(bad_flags_are_einval),
		tc_test(mode_lacking_rights_is_eacces),
		tc_test(registry_full_is_enospc),
		tc_test(total_limit_is_enomem),
		tc_test(private_key_gives_distinct_segments),
		tc_test(same_key_gives_same_id),
		tc_test(negative_key_is_a_key),
		tc_test(noreserve_is_accepted),
		tc_test(hugetlb_segment),
		tc_test(errno_is_left_alone),
		tc_test(creator_keeps_the_new_descriptor),
	};

	return tc_run_tests("get", tests);
}
