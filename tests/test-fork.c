/* SPDX-License-Identifier: MIT */
/* fork(): the child inherits attachments and is counted; exec and exit end them. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define SIZE 32768

struct seg {
	int id;
	char *p;
	int go[2];                      /* the parent closes go[1]: carry on */
};

static void wait_go(struct seg *s)
{
	char c;

	close(s->go[1]);
	while (read(s->go[0], &c, 1) < 0 && errno == EINTR)
		;
}

/* Lets the child carry on; it must then exit with 0. */
static void release_child(struct tc_fork *f, struct seg *s)
{
	close(s->go[1]);
	assert_int_equal(tc_fork_finish(f, TC_REPLY_MS), 0);
	close(s->go[0]);
}

static uint64_t nattch(int id)
{
	struct shmx_ds ds;

	tc_stat(id, &ds);
	return ds.nattch;
}

static void attached_segment(struct seg *s, unsigned seed)
{
	s->id = tc_create(tc_key(1), SIZE, 0600);
	s->p = tc_attach(s->id, 0);
	tc_fill(s->p, SIZE, seed);
	assert_int_equal(pipe(s->go), 0);
}

static int child_checks_and_waits(void *arg)
{
	struct seg *s = arg;
	struct shmx_ds ds;

	TC_CHECK_EQ(tc_verify(s->p, SIZE, 3), -1);
	TC_CHECK_EQ(shmx_ctl(s->id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 2);
	wait_go(s);
	return 0;
}

static void child_sees_data_and_is_counted(void **state)
{
	struct tc_fork f;
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	tc_fork_start(&f, (uid_t)-1, 0, child_checks_and_waits, &s);
	/* counted before either process runs on */
	assert_int_equal(nattch(s.id), 2);
	release_child(&f, &s);
	assert_int_equal(tc_wait_nattch(s.id, 1, TC_1S), 1);
	assert_int_equal(tc_verify(s.p, SIZE, 3), -1);
	assert_int_equal(shmx_dt(s.p), 0);
	assert_int_equal(nattch(s.id), 0);
}

static int child_writes(void *arg)
{
	struct seg *s = arg;

	tc_fill(s->p, SIZE, 44);
	return 0;
}

static void child_writes_reach_the_parent(void **state)
{
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	close(s.go[1]);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_writes, &s, TC_REPLY_MS), 0);
	/* MAP_SHARED, not a private copy */
	assert_int_equal(tc_verify(s.p, SIZE, 44), -1);
	assert_int_equal(shmx_dt(s.p), 0);
}

static int child_execs(void *arg)
{
	(void)arg;
	execl("/bin/sleep", "sleep", "30", (char *)NULL);
	return 127;
}

static void exec_ends_the_childs_attachments(void **state)
{
	struct tc_fork f;
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	close(s.go[1]);
	tc_fork_start(&f, (uid_t)-1, 0, child_execs, &s);
	/* the child lives on as sleep(1), without the mapping */
	assert_int_equal(tc_wait_nattch(s.id, 1, TC_1S), 1);
	assert_true(tc_pid_alive(f.pid));
	/* nor any descriptor of the library's: segments or connection */
	{
		char dir[64], path[400], target[256];
		struct dirent *e;
		DIR *d;

		snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)f.pid);
		d = opendir(dir);
		assert_non_null(d);
		while ((e = readdir(d))) {
			ssize_t n;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			if (strncmp(target, "/memfd:", 7) == 0 || strncmp(target, "socket:", 7) == 0)
				fail_msg("fd %s survived exec: %s", e->d_name, target);
		}
		closedir(d);
	}
	kill(f.pid, SIGKILL);
	assert_int_equal(tc_fork_finish(&f, TC_REPLY_MS), 128 + SIGKILL);
	assert_int_equal(nattch(s.id), 1);
	assert_int_equal(shmx_dt(s.p), 0);
}

static int child_detaches(void *arg)
{
	struct seg *s = arg;
	struct shmx_ds ds;

	TC_CHECK_EQ(shmx_dt(s->p), 0);
	TC_CHECK_EQ(shmx_ctl(s->id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK_EQ(shmx_dt(s->p), -EINVAL);
	wait_go(s);
	return 0;
}

static void child_detaches_its_inherited_attachment(void **state)
{
	struct tc_fork f;
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	tc_fork_start(&f, (uid_t)-1, 0, child_detaches, &s);
	/* once it has, the count is the parent's alone, while the child lives */
	assert_int_equal(tc_wait_nattch(s.id, 1, TC_1S), 1);
	release_child(&f, &s);
	assert_int_equal(nattch(s.id), 1);
	assert_int_equal(tc_verify(s.p, SIZE, 3), -1);
	assert_int_equal(shmx_dt(s.p), 0);
	assert_int_equal(nattch(s.id), 0);
}

static int grandchild(void *arg)
{
	struct seg *s = arg;
	struct shmx_ds ds;

	TC_CHECK_EQ(shmx_ctl(s->id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 3);
	TC_CHECK_EQ(tc_verify(s->p, SIZE, 3), -1);
	return 0;
}

static int child_forks_again(void *arg)
{
	struct tc_fork f;

	tc_fork_start(&f, (uid_t)-1, 0, grandchild, arg);
	TC_CHECK_EQ(tc_fork_finish(&f, TC_REPLY_MS), 0);
	return 0;
}

static void grandchild_is_counted_too(void **state)
{
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	close(s.go[1]);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_forks_again, &s, 2 * TC_REPLY_MS), 0);
	assert_int_equal(tc_wait_nattch(s.id, 1, TC_1S), 1);
	assert_int_equal(shmx_dt(s.p), 0);
}

static int child_uses_the_library(void *arg)
{
	struct seg *s = arg;
	struct shmx_ds ds;
	void *p = NULL;
	int id;

	id = shmx_get(tc_key(2), 4096, SHMX_CREAT | SHMX_EXCL | 0600);
	TC_CHECK(id >= 0);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), 0);
	/* the child's own pid: it speaks on its own connection */
	TC_CHECK_EQ(ds.cpid, getpid());
	TC_CHECK_EQ(ds.lpid, getpid());
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK_EQ(shmx_dt(p), 0);
	TC_CHECK_EQ(shmx_ctl(id, SHMX_RMID, NULL), 0);
	if (s) {
		TC_CHECK_EQ(shmx_ctl(s->id, SHMX_STAT, &ds), 0);
		TC_CHECK_EQ(ds.nattch, 2);
	}
	return 0;
}

static void library_works_in_the_child(void **state)
{
	struct seg s;

	(void)state;
	attached_segment(&s, 3);
	close(s.go[1]);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_uses_the_library, &s, TC_REPLY_MS), 0);
	assert_int_equal(shmx_get(tc_key(2), 0, 0), -ENOENT);
	assert_int_equal(tc_wait_nattch(s.id, 1, TC_1S), 1);
	assert_int_equal(shmx_dt(s.p), 0);
}

static void library_works_in_the_child_of_a_process_holding_nothing(void **state)
{
	struct shmx_info info;

	(void)state;
	/* connected, but no segment held: the child must still open its own connection */
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_uses_the_library, NULL, TC_REPLY_MS), 0);
}

static void parent_removes_and_dies_child_keeps_memory(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds;
	char key[32];
	int id;
	long long child;

	(void)state;
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("fork-orphan", key, "100000", "61", NULL);
	child = tc_expect_num(c, "child ");
	assert_true(child > 0);
	tc_track_pid((pid_t)child);
	assert_int_equal(tc_child_wait(c, TC_REPLY_MS), 0);     /* the parent */
	/* the orphan verified the memory after its parent's death */
	assert_int_equal(tc_expect_num(c, "child ok nattch "), 1);
	id = shmx_get(tc_key(1), 0, 0);
	assert_int_equal(id, -ENOENT);
	assert_int_equal(shmx_list(&ds, 1), 1);
	id = ds.id;
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.segsz, 100000);
	/* the child is the last user: when it goes, the segment goes */
	tc_send(c, "check 61");
	tc_expect(c, "ok");
	tc_close_stdin(c);
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

struct restart {
	char *a;                        /* the parent's attachment of A */
	int b;                          /* created after the keeper's restart */
};

/* In the child: B and a new segment C, both found through the registry. */
static int child_uses_segments_made_after_the_restart(void *arg)
{
	struct restart *r = arg;
	struct shmx_ds ds;
	void *p = NULL, *q = NULL;
	int c;

	TC_CHECK_EQ(tc_verify(r->a, SIZE, 11), -1);
	TC_CHECK_EQ(shmx_at(r->b, NULL, SHMX_RDONLY, &p), 0);
	TC_CHECK_EQ(tc_verify(p, SIZE, 12), -1);
	c = shmx_get(tc_key(3), 4096, SHMX_CREAT | SHMX_EXCL | 0600);
	TC_CHECK(c >= 0);
	TC_CHECK_EQ(shmx_at(c, NULL, 0, &q), 0);
	tc_fill(q, 4096, 13);
	TC_CHECK_EQ(shmx_ctl(c, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK_EQ(shmx_ctl(r->b, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK_EQ(shmx_dt(q), 0);
	TC_CHECK_EQ(shmx_dt(p), 0);
	return 0;
}

/* After the child: what it made is there, and the counts are the parent's. */
static void after_the_child(struct restart *r, int ida)
{
	struct tc_child *c;
	char key[32];

	assert_int_equal(tc_wait_nattch(ida, 1, TC_1S), 1);
	assert_int_equal(tc_wait_nattch(r->b, 0, TC_1S), 0);
	assert_true(shmx_get(tc_key(3), 0, 0) >= 0);
	snprintf(key, sizeof(key), "%d", (int)tc_key(3));
	c = tc_spawn("check", key, "13", NULL);
	tc_expect(c, "ok");
	tc_child_wait_ok(c);
	assert_int_equal(tc_verify(r->a, SIZE, 11), -1);
	assert_int_equal(shmx_dt(r->a), 0);
}

static void child_after_a_keeper_restart_uses_the_new_registry(void **state)
{
	struct shmx_info info;
	struct restart r;
	pid_t old;
	char *pb;
	int ida;

	(void)state;
	ida = tc_create(tc_key(1), SIZE, 0600);
	r.a = tc_attach(ida, 0);
	tc_fill(r.a, SIZE, 11);
	old = tc_keeper_pid();
	tc_kill_keeper(old);
	/* a new keeper, which recovers A */
	assert_int_equal(shmx_info(&info), 0);
	assert_int_not_equal(info.keeper_pid, old);
	assert_int_equal(tc_wait_nattch(ida, 1, 0), 1);
	r.b = tc_create(tc_key(2), SIZE, 0600);
	pb = tc_attach(r.b, 0);
	tc_fill(pb, SIZE, 12);
	assert_int_equal(shmx_dt(pb), 0);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_uses_segments_made_after_the_restart,
				      &r, TC_REPLY_MS), 0);
	after_the_child(&r, ida);
}

/*
 * The parent has not called the library since the keeper's death; another
 * process started the new keeper and made B.  The child inherits the mapping
 * of the dead keeper's registry and must not go on reading it.
 */
static void child_of_a_process_that_missed_a_keeper_restart(void **state)
{
	struct tc_child *c;
	struct restart r;
	char key[32];
	pid_t old;
	int ida;

	(void)state;
	ida = tc_create(tc_key(1), SIZE, 0600);
	r.a = tc_attach(ida, 0);
	tc_fill(r.a, SIZE, 11);
	old = tc_keeper_pid();
	tc_kill_keeper(old);
	snprintf(key, sizeof(key), "%d", (int)tc_key(2));
	c = tc_spawn("create", key, "32768", "0600", "12", NULL);
	r.b = (int)tc_expect_num(c, "id ");
	tc_child_wait_ok(c);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_uses_segments_made_after_the_restart,
				      &r, TC_REPLY_MS), 0);
	assert_int_not_equal(tc_keeper_pid(), old);
	after_the_child(&r, ida);
}

#define ROUNDS 50

/* In the child, once the parent has detached: the segment lives on for it. */
static int child_outlives_the_parents_detach(void *arg)
{
	struct seg *s = arg;
	struct shmx_ds ds;

	wait_go(s);
	/* let a keeper that miscounted us destroy the memory, if it is going to */
	tc_sleep_ms(20);
	TC_CHECK_EQ(shmx_ctl(s->id, SHMX_STAT, &ds), 0);
	TC_CHECK_EQ(ds.nattch, 1);
	TC_CHECK(ds.status & SHMX_DEST);
	TC_CHECK_EQ(tc_verify(s->p, SIZE, 23), -1);
	return 0;
}

/*
 * The parent detaches the moment fork returns, the last attachment it has of
 * a removed segment.  The child must have been counted by then: before the
 * fix the prepare handler only sent the child's REATTACH, and a keeper that
 * judged it after the parent's detach counted nothing for the child and
 * destroyed the memory under it (about every other time).
 */
static void detach_right_after_fork_leaves_the_child_counted(void **state)
{
	int failed = 0, first = -1;

	(void)state;
	for (int i = 0; i < ROUNDS; i++) {
		struct tc_fork f;
		struct seg s;
		int r, status;

		s.id = tc_create(SHMX_PRIVATE, SIZE, 0600);
		s.p = tc_attach(s.id, 0);
		tc_fill(s.p, SIZE, 23);
		assert_int_equal(shmx_ctl(s.id, SHMX_RMID, NULL), 0);
		assert_int_equal(pipe(s.go), 0);
		tc_fork_start(&f, (uid_t)-1, 0, child_outlives_the_parents_detach, &s);
		r = shmx_dt(s.p);
		close(s.go[1]);
		assert_int_equal(r, 0);
		status = tc_fork_finish(&f, TC_REPLY_MS);
		close(s.go[0]);
		if (status != 0) {
			failed++;
			if (first < 0)
				first = i;
		}
		/* the child was the last user */
		r = tc_wait_gone(s.id, TC_1S);
		if (r != -EIDRM)
			fail_msg("round %d: STAT after the child's exit: %d", i, r);
	}
	if (failed)
		fail_msg("%d of %d children lost their segment (first in round %d)",
			 failed, ROUNDS, first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(child_sees_data_and_is_counted),
		tc_test(child_writes_reach_the_parent),
		tc_test(exec_ends_the_childs_attachments),
		tc_test(child_detaches_its_inherited_attachment),
		tc_test(grandchild_is_counted_too),
		tc_test(library_works_in_the_child),
		tc_test(library_works_in_the_child_of_a_process_holding_nothing),
		tc_test(parent_removes_and_dies_child_keeps_memory),
		tc_test(child_after_a_keeper_restart_uses_the_new_registry),
		tc_test(child_of_a_process_that_missed_a_keeper_restart),
		tc_test(detach_right_after_fork_leaves_the_child_counted),
	};

	return tc_run_tests("fork", tests);
}
