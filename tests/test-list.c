/* SPDX-License-Identifier: MIT */
/* shmx_list() and shmx_info(): what the namespace holds, and its limits. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static void list_counts_and_fills_at_most_n(void **state)
{
	struct shmx_ds ds[5];
	int ids[3];

	(void)state;
	assert_int_equal(shmx_list(NULL, 0), 0);
	ids[0] = tc_create(tc_key(1), 4096, 0600);
	ids[1] = tc_create(tc_key(2), 8192, 0640);
	ids[2] = tc_create(SHMX_PRIVATE, 12288, 0600);
	assert_int_equal(shmx_list(NULL, 0), 3);
	memset(ds, 0x5a, sizeof(ds));
	assert_int_equal(shmx_list(ds, 1), 3);
	/* one filled, the rest untouched */
	assert_true(ds[0].id == ids[0] || ds[0].id == ids[1] || ds[0].id == ids[2]);
	for (size_t i = 0; i < sizeof(ds[1]); i++)
		if (((unsigned char *)&ds[1])[i] != 0x5a)
			fail_msg("shmx_list(buf, 1) wrote past the first entry (byte %zu)", i);
	assert_int_equal(shmx_list(ds, 5), 3);
	for (int i = 0; i < 3; i++) {
		struct shmx_ds st;
		int j;

		for (j = 0; j < 3 && ds[j].id != ids[i]; j++)
			;
		if (j == 3)
			fail_msg("segment %d not listed", ids[i]);
		/* a list entry is what STAT says */
		tc_stat(ids[i], &st);
		assert_int_equal(ds[j].key, st.key);
		assert_int_equal(ds[j].segsz, st.segsz);
		assert_int_equal(ds[j].mode, st.mode);
		assert_int_equal(ds[j].cpid, st.cpid);
		assert_int_equal(ds[j].uid, st.uid);
		assert_int_equal(ds[j].nattch, st.nattch);
	}
}

static void list_counts_attachments_and_removed_segments(void **state)
{
	struct shmx_ds ds[4];
	void *p;
	int id, n;

	(void)state;
	id = tc_create(tc_key(1), 4096, 0600);
	p = tc_attach(id, 0);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	n = shmx_list(ds, 4);
	assert_int_equal(n, 1);
	assert_int_equal(ds[0].id, id);
	assert_int_equal(ds[0].nattch, 1);
	assert_true(ds[0].status & SHMX_DEST);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(shmx_list(ds, 4), 0);
}

static void list_shows_another_process_segments(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds[4];
	char key[32];
	int id, n;

	(void)state;
	snprintf(key, sizeof(key), "%d", (int)tc_key(9));
	c = tc_spawn("hold", key, "20000", "01644", "-1", NULL);
	id = (int)tc_expect_num(c, "attached ");
	n = shmx_list(ds, 4);
	assert_int_equal(n, 1);
	assert_int_equal(ds[0].id, id);
	assert_int_equal(ds[0].key, tc_key(9));
	assert_int_equal(ds[0].segsz, 20000);
	assert_int_equal(ds[0].mode, 0644);
	assert_int_equal(ds[0].cpid, c->pid);
	assert_int_equal(ds[0].nattch, 1);
	tc_close_stdin(c);
	tc_child_wait_ok(c);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
}

static void info_reports_usage(void **state)
{
	struct shmx_info info;
	char exe[PATH_MAX], *want;
	ssize_t n;
	char link[64];

	(void)state;
	tc_create(tc_key(1), 4096, 0600);
	tc_create(tc_key(2), 10000, 0600);
	memset(&info, 0, sizeof(info));
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 2);
	/* bytes of the segments, at most rounded up to pages */
	assert_in_range(info.total, 14096, 4096 + 3 * PAGE);
	assert_true(info.max_segments >= 2);
	assert_true(info.max_segsz >= 10000);
	assert_true(info.max_total >= info.total);
	/* the keeper is alive, and it is the keeper */
	assert_true(info.keeper_pid > 0);
	assert_true(tc_pid_alive(info.keeper_pid));
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)info.keeper_pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	want = realpath(getenv("SHMX_KEEPER"), NULL);
	assert_non_null(want);
	assert_string_equal(exe, want);
	free(want);
}

static void info_reports_the_keepers_limits(void **state)
{
	struct shmx_info info;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "7", "--max-segsz", "1048576",
					 "--max-total", "4194304", NULL), 0);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.max_segments, 7);
	assert_int_equal(info.max_segsz, 1048576);
	assert_int_equal(info.max_total, 4194304);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.total, 0);
	assert_int_equal(info.keeper_pid, tc_registry_keeper_pid(tc_dir()));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(list_counts_and_fills_at_most_n),
		tc_test(list_counts_attachments_and_removed_segments),
		tc_test(list_shows_another_process_segments),
		tc_test(info_reports_usage),
		tc_test(info_reports_the_keepers_limits),
	};

	return tc_run_tests("list", tests);
}
