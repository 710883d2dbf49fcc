/* SPDX-License-Identifier: MIT */
/* A process killed with -9 stops being counted, as its mappings die with it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include "common.h"

static void killed_holder_is_no_longer_counted(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds;
	char key[32];
	int id;

	(void)state;
	id = tc_create(tc_key(1), 8192, 0600);
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("hold", key, "0", "0", "-1", NULL);
	assert_int_equal(tc_expect_num(c, "attached "), id);
	/* counted as soon as it said so */
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.lpid, c->pid);
	tc_child_kill(c);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
	/* the segment itself stays: it was not removed */
	tc_stat(id, &ds);
	assert_int_equal(ds.status, 0);
}

static void all_attachments_of_a_killed_process_end(void **state)
{
	struct tc_child *a, *b;
	char ids[32];
	void *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 8192, 0600);
	p = tc_attach(id, 0);
	snprintf(ids, sizeof(ids), "%d", id);
	a = tc_spawn("hold-id", ids, "0", "3", NULL);
	b = tc_spawn("hold-id", ids, "010000", "2", NULL);
	assert_int_equal(tc_expect_num(a, "attached "), id);
	assert_int_equal(tc_expect_num(b, "attached "), id);
	assert_int_equal(tc_wait_nattch(id, 6, 0), 6);
	kill(a->pid, SIGKILL);
	assert_int_equal(tc_wait_nattch(id, 3, TC_1S), 3);
	tc_child_kill(a);
	tc_child_kill(b);
	assert_int_equal(tc_wait_nattch(id, 1, TC_1S), 1);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(tc_wait_nattch(id, 0, 0), 0);
}

static void killed_helper_detaching_nothing_twice(void **state)
{
	struct tc_child *c;
	char ids[32];
	int id;

	(void)state;
	/* a helper that detached cleanly and then dies must not be subtracted again */
	id = tc_create(tc_key(1), 8192, 0600);
	snprintf(ids, sizeof(ids), "%d", id);
	c = tc_spawn("hold-id", ids, "0", "2", NULL);
	assert_int_equal(tc_expect_num(c, "attached "), id);
	tc_send(c, "dt");
	tc_expect(c, "detached");
	assert_int_equal(tc_wait_nattch(id, 0, 0), 0);
	{
		void *p = tc_attach(id, 0);

		tc_child_kill(c);
		tc_sleep_ms(100);
		assert_int_equal(tc_wait_nattch(id, 1, 0), 1);
		assert_int_equal(shmx_dt(p), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(killed_holder_is_no_longer_counted),
		tc_test(all_attachments_of_a_killed_process_end),
		tc_test(killed_helper_detaching_nothing_twice),
	};

	return tc_run_tests("nattch-kill", tests);
}
