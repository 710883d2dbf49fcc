/* SPDX-License-Identifier: MIT */
/* A segment outlives the process that made it, found again by key. */
#include <errno.h>
#include <stdio.h>

#include "common.h"

static void segment_outlives_its_creator(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds;
	char key[32];
	int id;

	(void)state;
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("create", key, "1000000", "0644", "77", NULL);
	id = (int)tc_expect_num(c, "id ");
	tc_child_wait_ok(c);

	/* nobody holds it now, and it is still there */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), id);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 0);
	assert_int_equal(ds.segsz, 1000000);
	assert_int_equal(ds.mode, 0644);

	/* a third process finds it by key and reads the pattern */
	c = tc_spawn("check", key, "77", NULL);
	tc_expect(c, "ok");
	tc_child_wait_ok(c);
}

static void data_written_by_a_dead_process_stays(void **state)
{
	struct tc_child *c;
	char key[32], *p;
	int id;

	(void)state;
	id = tc_create(tc_key(2), 65536, 0600);
	snprintf(key, sizeof(key), "%d", (int)tc_key(2));
	/* a holder writes, then is killed without detaching */
	c = tc_spawn("hold", key, "0", "0", "31", NULL);
	assert_int_equal(tc_expect_num(c, "attached "), id);
	tc_child_kill(c);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
	p = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, 65536, 31), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void segments_of_several_processes_coexist(void **state)
{
	char key[32];

	(void)state;
	for (int i = 0; i < 4; i++) {
		struct tc_child *c;
		char seed[16];

		snprintf(key, sizeof(key), "%d", (int)tc_key(10 + i));
		snprintf(seed, sizeof(seed), "%d", 100 + i);
		c = tc_spawn("create", key, "12345", "0600", seed, NULL);
		tc_expect(c, "id ");
		tc_child_wait_ok(c);
	}
	for (int i = 3; i >= 0; i--) {
		struct tc_child *c;
		char seed[16];

		snprintf(key, sizeof(key), "%d", (int)tc_key(10 + i));
		snprintf(seed, sizeof(seed), "%d", 100 + i);
		c = tc_spawn("check", key, seed, NULL);
		tc_expect(c, "ok");
		tc_child_wait_ok(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(segment_outlives_its_creator),
		tc_test(data_written_by_a_dead_process_stays),
		tc_test(segments_of_several_processes_coexist),
	};

	return tc_run_tests("persist", tests);
}
