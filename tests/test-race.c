/* SPDX-License-Identifier: MIT */
/* Processes racing to create one key, or to start a namespace's keeper. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define RACERS 8

static void start_racers(struct tc_child **c, const char *cmd, const char *key, const char *flags)
{
	for (int i = 0; i < RACERS; i++) {
		if (key)
			c[i] = tc_spawn(cmd, key, "4096", flags, NULL);
		else
			c[i] = tc_spawn(cmd, NULL);
	}
	for (int i = 0; i < RACERS; i++)
		tc_expect(c[i], "ready");
	for (int i = 0; i < RACERS; i++)
		tc_send(c[i], "go");
}

static void racing_creators_get_one_segment(void **state)
{
	struct tc_child *c[RACERS];
	struct shmx_ds ds[RACERS];

	(void)state;
	tc_keeper_pid();
	for (int round = 0; round < 5; round++) {
		char key[32];
		int id = -1;

		snprintf(key, sizeof(key), "%d", (int)tc_key(round));
		start_racers(c, "wait-get", key, "01600");
		for (int i = 0; i < RACERS; i++) {
			int got = (int)tc_expect_num(c[i], "id ");

			if (id < 0)
				id = got;
			else if (got != id)
				fail_msg("round %d: racer %d got id %d, another %d", round, i, got, id);
		}
		for (int i = 0; i < RACERS; i++) {
			tc_close_stdin(c[i]);
			tc_child_wait_ok(c[i]);
		}
		assert_int_equal(shmx_list(ds, RACERS), round + 1);
	}
}

static void racing_exclusive_creators_one_wins(void **state)
{
	struct tc_child *c[RACERS];
	char key[32];
	int won = 0;

	(void)state;
	tc_keeper_pid();
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	start_racers(c, "wait-get", key, "03600");
	for (int i = 0; i < RACERS; i++) {
		char line[256];

		assert_int_equal(tc_readline(c[i], line, sizeof(line), TC_REPLY_MS), 0);
		if (strncmp(line, "id ", 3) == 0)
			won++;
		else if (strcmp(line, "err -17") != 0)
			fail_msg("racer %d: %s", i, line);
	}
	assert_int_equal(won, 1);
	assert_int_equal(shmx_list(NULL, 0), 1);
}

static void racing_first_use_starts_one_keeper(void **state)
{
	struct tc_child *c[RACERS];
	pid_t keepers[8];
	pid_t keeper = 0;
	int n;

	(void)state;
	start_racers(c, "wait-info", NULL, NULL);
	for (int i = 0; i < RACERS; i++) {
		pid_t got = (pid_t)tc_expect_num(c[i], "keeper ");

		if (!keeper)
			keeper = got;
		else if (got != keeper)
			fail_msg("racer %d talks to keeper %d, another to %d", i, (int)got, (int)keeper);
		tc_child_wait_ok(c[i]);
	}
	/* a loser that started anyway would still be running, or be gone by now */
	tc_sleep_ms(200);
	n = tc_find_keepers(tc_dir(), keepers, 8);
	assert_int_equal(n, 1);
	assert_int_equal(keepers[0], keeper);
	assert_int_equal(tc_keeper_pid(), keeper);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(racing_creators_get_one_segment),
		tc_test(racing_exclusive_creators_one_wins),
		tc_test(racing_first_use_starts_one_keeper),
	};

	return tc_run_tests("race", tests);
}
