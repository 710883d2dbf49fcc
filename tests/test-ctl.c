/* SPDX-License-Identifier: MIT */
/* shmx_ctl(): STAT fields, SET, RMID and deferred destroy, ids, LOCK. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "registry.h"

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static void stat_of_a_new_segment(void **state)
{
	time_t t0 = time(NULL);
	struct shmx_ds ds;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 10000, 0640);
	memset(&ds, 0xa5, sizeof(ds));
	tc_stat(id, &ds);
	assert_int_equal(ds.key, tc_key(1));
	assert_int_equal(ds.id, id);
	assert_int_equal(ds.uid, geteuid());
	assert_int_equal(ds.cuid, geteuid());
	assert_int_equal(ds.gid, getegid());
	assert_int_equal(ds.cgid, getegid());
	assert_int_equal(ds.mode, 0640);
	assert_int_equal(ds.status, 0);
	assert_int_equal(ds.segsz, 10000);
	assert_int_equal(ds.nattch, 0);
	assert_int_equal(ds.cpid, getpid());
	/* never attached: no attach or detach time yet */
	assert_int_equal(ds.atime, 0);
	assert_int_equal(ds.dtime, 0);
	assert_in_range(ds.ctime, t0, time(NULL));
	assert_int_equal(ds.rss, 0);
}

static void stat_after_attach_and_detach(void **state)
{
	time_t t0 = time(NULL);
	struct shmx_ds ds;
	void *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	p = tc_attach(id, 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.lpid, getpid());
	assert_in_range(ds.atime, t0, time(NULL));
	assert_int_equal(ds.dtime, 0);
	assert_int_equal(shmx_dt(p), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 0);
	assert_int_equal(ds.lpid, getpid());
	assert_in_range(ds.dtime, t0, time(NULL));
}

static void pids_of_another_process(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds;
	char key[32];
	pid_t helper;
	void *p;
	int id;

	(void)state;
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("create", key, "4096", "0600", "1", NULL);
	helper = c->pid;
	id = (int)tc_expect_num(c, "id ");
	tc_child_wait_ok(c);
	tc_stat(id, &ds);
	assert_int_equal(ds.cpid, helper);
	assert_int_equal(ds.lpid, helper);
	p = tc_attach(id, 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.cpid, helper);
	assert_int_equal(ds.lpid, getpid());
	assert_int_equal(shmx_dt(p), 0);
}

static void rss_grows_with_touched_pages(void **state)
{
	struct shmx_info info;
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 256 * PAGE, 0600);
	tc_stat(id, &ds);
	assert_int_equal(ds.rss, 0);
	p = tc_attach(id, 0);
	for (size_t i = 0; i < 16; i++)
		p[i * PAGE] = 1;
	tc_stat(id, &ds);
	assert_in_range(ds.rss, 16 * PAGE, 256 * PAGE);
	assert_int_equal(shmx_info(&info), 0);
	assert_true(info.rss >= 16 * PAGE);
	for (size_t i = 16; i < 256; i++)
		p[i * PAGE] = 1;
	tc_stat(id, &ds);
	assert_int_equal(ds.rss, 256 * PAGE);
	assert_int_equal(shmx_dt(p), 0);
}

static void set_changes_mode_uid_gid_and_ctime(void **state)
{
	struct shmx_ds ds, set;
	time_t before;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 8192, 0600);
	tc_stat(id, &ds);
	before = ds.ctime;
	tc_sleep_ms(1100);
	set = ds;
	set.mode = 0177644;             /* only the low 9 bits count */
	set.uid = TC_NOBODY;
	set.gid = TC_NOGROUP;
	set.segsz = 1;                  /* not settable: ignored */
	set.key = tc_key(2);
	set.cuid = 4242;
	set.nattch = 77;
	assert_int_equal(shmx_ctl(id, SHMX_SET, &set), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.mode, 0644);
	assert_int_equal(ds.uid, TC_NOBODY);
	assert_int_equal(ds.gid, TC_NOGROUP);
	assert_int_equal(ds.cuid, geteuid());
	assert_int_equal(ds.cgid, getegid());
	assert_int_equal(ds.segsz, 8192);
	assert_int_equal(ds.key, tc_key(1));
	assert_int_equal(ds.nattch, 0);
	assert_true(ds.ctime > before);
	/* the creator may still change it back, owner or not */
	set.uid = geteuid();
	assert_int_equal(shmx_ctl(id, SHMX_SET, &set), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.uid, geteuid());
	/* and the key still finds it */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), id);
}

static void rmid_of_attached_segment_defers_destroy(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id, id2;

	(void)state;
	id = tc_create(tc_key(1), 4 * PAGE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, 4 * PAGE, 6);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.key, SHMX_PRIVATE);
	/* the key is free at once */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	id2 = tc_create(tc_key(1), 4 * PAGE, 0600);
	assert_int_not_equal(id2, id);
	/* the memory lives on until the last detach */
	assert_int_equal(tc_verify(p, 4 * PAGE, 6), -1);
	tc_fill(p, 4 * PAGE, 7);
	assert_int_equal(tc_verify(p, 4 * PAGE, 7), -1);
	assert_true(tc_listed(id));
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
	assert_false(tc_listed(id));
	/* the new segment under the old key is untouched, and fresh */
	tc_stat(id2, &ds);
	assert_int_equal(ds.status, 0);
	p = tc_attach(id2, SHMX_RDONLY);
	for (size_t i = 0; i < 4 * PAGE; i++)
		if (p[i])
			fail_msg("byte %zu of the new segment is %d", i, p[i]);
	assert_int_equal(shmx_dt(p), 0);
}

static void rmid_of_unattached_segment_destroys_now(void **state)
{
	struct shmx_info info;
	struct shmx_ds ds;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), -EIDRM);
	assert_false(tc_listed(id));
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.total, 0);
}

static void removed_id_is_eidrm_everywhere(void **state)
{
	struct shmx_ds ds;
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	/* other segments come and go; the removed id still says so */
	tc_create(tc_key(2), PAGE, 0600);
	tc_create(SHMX_PRIVATE, PAGE, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
	memset(&ds, 0, sizeof(ds));
	ds.mode = 0600;
	assert_int_equal(shmx_ctl(id, SHMX_SET, &ds), -EIDRM);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), -EIDRM);
	assert_int_equal(shmx_at(id, NULL, 0, &p), -EIDRM);
	assert_int_equal(shmx_fd(id, 0), -EIDRM);
}

static void reused_slot_makes_old_id_einval(void **state)
{
	struct shmx_ds ds;
	int a, b;

	(void)state;
	/* one slot: the next segment must reuse it */
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "1", NULL), 0);
	a = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_ctl(a, SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_ctl(a, SHMX_STAT, &ds), -EIDRM);
	b = tc_create(tc_key(1), PAGE, 0600);
	assert_int_not_equal(a, b);
	assert_int_equal(shmx_ctl(a, SHMX_STAT, &ds), -EINVAL);
	assert_int_equal(shmx_ctl(a, SHMX_RMID, NULL), -EINVAL);
	/* the stale id never reaches the new segment */
	tc_stat(b, &ds);
	assert_int_equal(ds.id, b);
	assert_int_equal(ds.status, 0);
}

static void bad_ids_are_einval(void **state)
{
	struct shmx_ds ds;
	int id;
	int bad[8];

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	bad[0] = -1;
	bad[1] = INT_MIN;
	bad[2] = INT_MAX;
	bad[3] = 0;
	bad[4] = shmx_make_id(100, 1);                  /* a slot never used */
	bad[5] = shmx_make_id(SHMX_ID_IDX_MASK, 1);     /* beyond the table */
	bad[6] = shmx_make_id(shmx_id_idx(id), shmx_id_seq(id) + 1); /* a later one */
	bad[7] = id + 1;
	for (int i = 0; i < 8; i++) {
		void *p = NULL;

		memset(&ds, 0, sizeof(ds));
		ds.mode = 0600;
		if (bad[i] == id)
			continue;
		if (shmx_ctl(bad[i], SHMX_STAT, &ds) != -EINVAL ||
		    shmx_ctl(bad[i], SHMX_SET, &ds) != -EINVAL ||
		    shmx_ctl(bad[i], SHMX_RMID, NULL) != -EINVAL ||
		    shmx_at(bad[i], NULL, 0, &p) != -EINVAL ||
		    shmx_fd(bad[i], 0) != -EINVAL)
			fail_msg("id 0x%x: STAT %d SET %d RMID %d at %d fd %d", (unsigned)bad[i],
				 shmx_ctl(bad[i], SHMX_STAT, &ds), shmx_ctl(bad[i], SHMX_SET, &ds),
				 shmx_ctl(bad[i], SHMX_RMID, NULL),
				 shmx_at(bad[i], NULL, 0, &p), shmx_fd(bad[i], 0));
	}
	/* the real one is unharmed */
	tc_stat(id, &ds);
	assert_int_equal(ds.status, 0);
}

static void bad_cmd_is_einval(void **state)
{
	const int cmds[] = { -1, 3, 4, 13, 14, 15, 99, INT_MAX };
	struct shmx_ds ds;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int r = shmx_ctl(id, cmds[i], &ds);

		if (r != -EINVAL)
			fail_msg("cmd %d: %d, not -EINVAL", cmds[i], r);
	}
	tc_stat(id, &ds);
	assert_int_equal(ds.status, 0);
}

static void lock_and_unlock(void **state)
{
	struct shmx_ds ds;
	int id, r;

	(void)state;
	id = tc_create(tc_key(1), 64 * PAGE, 0600);
	r = shmx_ctl(id, SHMX_LOCK, NULL);
	if ((r == -EPERM || r == -ENOMEM) && geteuid() != 0) {
		print_message("# skip: mlock not permitted here (%s)\n", strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_LOCKED);
	/* locked pages are resident (ASan makes mlock() a no-op: not there) */
	if (TC_SLOW == 1)
		assert_int_equal(ds.rss, 64 * PAGE);
	assert_int_equal(shmx_ctl(id, SHMX_UNLOCK, NULL), 0);
	tc_stat(id, &ds);
	assert_false(ds.status & SHMX_LOCKED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(stat_of_a_new_segment),
		tc_test(stat_after_attach_and_detach),
		tc_test(pids_of_another_process),
		tc_test(rss_grows_with_touched_pages),
		tc_test(set_changes_mode_uid_gid_and_ctime),
		tc_test(rmid_of_attached_segment_defers_destroy),
		tc_test(rmid_of_unattached_segment_destroys_now),
		tc_test(removed_id_is_eidrm_everywhere),
		tc_test(reused_slot_makes_old_id_einval),
		tc_test(bad_ids_are_einval),
		tc_test(bad_cmd_is_einval),
		tc_test(lock_and_unlock),
	};

	return tc_run_tests("ctl", tests);
}
