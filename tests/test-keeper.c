/* SPDX-License-Identifier: MIT */
/* The keeper's life: one per namespace, its limits' bounds, idle exit. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static bool gone_within(pid_t pid, int ms)
{
	int64_t end = tc_now_ms() + ms;

	while (tc_pid_alive(pid)) {
		if (tc_now_ms() > end)
			return false;
		tc_sleep_ms(20);
	}
	return true;
}

static void one_keeper_per_namespace(void **state)
{
	pid_t keepers[4], first;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), NULL), 0);
	first = tc_registry_keeper_pid(tc_dir());
	assert_true(tc_pid_alive(first));
	/* a second one refuses, and the first goes on */
	assert_int_not_equal(tc_start_keeper(tc_dir(), NULL), 0);
	tc_sleep_ms(100);
	assert_int_equal(tc_find_keepers(tc_dir(), keepers, 4), 1);
	assert_int_equal(keepers[0], first);
	assert_int_equal(tc_keeper_pid(), first);
}

static void limits_out_of_range_are_refused(void **state)
{
	pid_t keepers[4];

	(void)state;
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--max-segments", "0", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--max-segments", "65537", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--max-segments", "-1", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--max-segments", "12abc", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--max-segsz", "0", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--idle-exit", "soon", NULL), 0);
	assert_int_not_equal(tc_start_keeper(tc_dir(), "--no-such-option", NULL), 0);
	assert_int_equal(tc_find_keepers(tc_dir(), keepers, 4), 0);
	/* the largest table is fine */
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "65536", NULL), 0);
}

static void idle_keeper_exits_and_cleans_up(void **state)
{
	pid_t pid;

	(void)state;
	/* later options win: idle after one second */
	assert_int_equal(tc_start_keeper(tc_dir(), "--idle-exit", "1", NULL), 0);
	pid = tc_registry_keeper_pid(tc_dir());
	assert_true(pid > 0);
	if (!gone_within(pid, 3000 * TC_SLOW))
		fail_msg("idle keeper %d still there after 3 s", (int)pid);
	assert_false(exists(tc_path("keeper.sock")));
	assert_false(exists(tc_path("registry")));
	/* and the next call starts another */
	assert_int_not_equal(tc_keeper_pid(), pid);
}

static void keeper_with_segments_stays(void **state)
{
	pid_t pid;
	int id;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--idle-exit", "1", NULL), 0);
	pid = tc_registry_keeper_pid(tc_dir());
	id = tc_create(tc_key(1), 4096, 0600);
	tc_sleep_ms(2500);
	assert_true(tc_pid_alive(pid));
	assert_int_equal(tc_keeper_pid(), pid);
	/* once the last segment is gone, it may go */
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
}

static void keeper_leaves_when_its_socket_goes(void **state)
{
	pid_t pid;

	(void)state;
	pid = tc_keeper_pid();
	tc_create(tc_key(1), 4096, 0600);
	/* the namespace was removed under it */
	assert_int_equal(unlink(tc_path("keeper.sock")), 0);
	if (!gone_within(pid, 5000 * TC_SLOW))
		fail_msg("keeper %d still there 5 s after its socket was removed", (int)pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(one_keeper_per_namespace),
		tc_test(limits_out_of_range_are_refused),
		tc_test(idle_keeper_exits_and_cleans_up),
		tc_test(keeper_with_segments_stays),
		tc_test(keeper_leaves_when_its_socket_goes),
	};

	return tc_run_tests("keeper", tests);
}
