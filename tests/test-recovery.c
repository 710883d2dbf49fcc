/* SPDX-License-Identifier: MIT */
/*
 * The keeper is killed: the next call starts a new one, which finds the
 * segments that living processes hold (even idle ones that never call the
 * library again), counts them, and drops the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "registry.h"

#define SIZE 65536

static pid_t kill_the_keeper(void)
{
	pid_t pid = tc_keeper_pid();

	tc_kill_keeper(pid);
	return pid;
}

/* The first call after the keeper's death; asserts it is quick. */
static void stat_soon(int id, struct shmx_ds *ds)
{
	int64_t t0 = tc_now_ms();
	int r = shmx_ctl(id, SHMX_STAT, ds);
	int64_t took = tc_now_ms() - t0;

	if (r < 0)
		fail_msg("STAT after the keeper's death: %s", strerror(-r));
	if (took > TC_1S)
		fail_msg("STAT after the keeper's death took %lld ms", (long long)took);
}

static void check_by_helper(int n, unsigned seed)
{
	struct tc_child *c;
	char key[32], s[16];

	snprintf(key, sizeof(key), "%d", (int)tc_key(n));
	snprintf(s, sizeof(s), "%u", seed);
	c = tc_spawn("check", key, s, NULL);
	tc_expect(c, "ok");
	tc_child_wait_ok(c);
}

static void idle_holder_is_found_and_counted(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	pid_t old;
	void *p;
	int id;

	(void)state;
	h = tc_holder(1, SIZE, 17, &id);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	old = kill_the_keeper();

	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.key, tc_key(1));
	assert_int_equal(ds.segsz, SIZE);
	assert_int_equal(ds.cpid, h->pid);
	assert_int_not_equal(tc_keeper_pid(), old);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), id);

	/* the memory is the helper's, data intact */
	p = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, SIZE, 17), -1);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 2);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(tc_wait_nattch(id, 1, 0), 1);

	/* the new keeper watches the idle helper */
	tc_child_kill(h);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
}

/*
 * A holder whose descriptor number the keeper never learned (it came from
 * shmx_fd, or its attach was not consumed yet): the new keeper finds the
 * segment among the holder's descriptors by its inode.
 */
static void holder_of_an_unnamed_descriptor_is_found(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	char key[32];
	void *p;
	int id;

	(void)state;
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	h = tc_spawn("hold-fd", key, "65536", "01600", "29", NULL);
	id = (int)tc_expect_num(h, "holding ");
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.key, tc_key(1));
	p = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, SIZE, 29), -1);
	assert_int_equal(shmx_dt(p), 0);
	tc_child_kill(h);
}

static void unheld_segments_are_gone(void **state)
{
	struct tc_child *h;
	struct shmx_info info;
	struct shmx_ds ds[4];
	int held, loose;

	(void)state;
	h = tc_holder(1, SIZE, 3, &held);
	loose = tc_create_unheld(tc_key(2), 4096, 0600);
	kill_the_keeper();
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 1);
	assert_int_equal(shmx_list(ds, 4), 1);
	assert_int_equal(ds[0].id, held);
	assert_int_equal(shmx_get(tc_key(2), 0, 0), -ENOENT);
	assert_true(shmx_ctl(loose, SHMX_STAT, ds) < 0);
	(void)h;
}

/* A segment its living creator never attached: the creator holds its
 * descriptor (the descriptor cache), so it survives too. */
static void created_segment_of_a_living_creator_survives(void **state)
{
	struct shmx_ds ds;
	int id;

	(void)state;
	id = tc_create(tc_key(3), 4096, 0600);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.key, tc_key(3));
	assert_int_equal(shmx_get(tc_key(3), 0, 0), id);
}

static void get_after_keeper_death_finds_no_lost_segment(void **state)
{
	struct shmx_ds ds;

	(void)state;
	tc_create_unheld(tc_key(2), 4096, 0600);
	kill_the_keeper();
	/* the first call: must not answer from the dead keeper's registry */
	assert_int_equal(shmx_get(tc_key(2), 0, 0), -ENOENT);
	assert_int_equal(shmx_list(&ds, 1), 0);
}

static void own_attachment_survives(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, SIZE, 21);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(tc_verify(p, SIZE, 21), -1);
	/* another process gets the very same memory */
	check_by_helper(1, 21);
	tc_fill(p, SIZE, 22);
	check_by_helper(1, 22);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(tc_wait_nattch(id, 0, 0), 0);
	/* not removed, so kept by the keeper now */
	check_by_helper(1, 22);
}

static void recovers_twice(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	int id;

	(void)state;
	h = tc_holder(1, SIZE, 5, &id);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	check_by_helper(1, 5);
	tc_send(h, "check 5");
	tc_expect(h, "ok");
	tc_child_kill(h);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
}

static void ids_stay_and_new_segments_work(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	int id, ids[4];
	void *p;

	(void)state;
	h = tc_holder(1, SIZE, 5, &id);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_int_equal(ds.id, id);
	for (int i = 0; i < 4; i++) {
		ids[i] = tc_create(tc_key(10 + i), 4096, 0600);
		assert_int_not_equal(ids[i], id);
		p = tc_attach(ids[i], 0);
		tc_fill(p, 4096, (unsigned)i);
		assert_int_equal(shmx_dt(p), 0);
	}
	for (int i = 0; i < 4; i++)
		check_by_helper(10 + i, (unsigned)i);
	check_by_helper(1, 5);
	(void)h;
}

static void removed_segment_stays_removed(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	int id;

	(void)state;
	h = tc_holder(1, SIZE, 8, &id);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	kill_the_keeper();
	stat_soon(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	tc_send(h, "check 8");
	tc_expect(h, "ok");
	tc_child_kill(h);
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

/* The first call after the keeper's death is a detach: it must not be lost. */
static void detach_while_the_keeper_is_dead_is_counted(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, SIZE, 12);
	kill_the_keeper();
	assert_int_equal(shmx_dt(p), 0);
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 0);
	assert_int_equal(shmx_dt(p), -EINVAL);
	/* not removed: kept, with its data */
	check_by_helper(1, 12);
}

static void detach_of_removed_segment_while_the_keeper_is_dead_destroys_it(void **state)
{
	struct shmx_info info;
	struct shmx_ds ds;
	int64_t end;
	char *p;
	int id, r, n;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, SIZE, 13);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	kill_the_keeper();
	assert_int_equal(shmx_dt(p), 0);
	/* the last attachment is gone, so is the segment, within 1 s */
	r = tc_wait_gone(id, TC_1S);
	if (r != -EIDRM && r != -EINVAL)
		fail_msg("STAT 1 s after the last detach of a removed segment: %d", r);
	end = tc_now_ms() + TC_1S;
	while ((n = shmx_list(NULL, 0)) > 0 && tc_now_ms() < end)
		tc_sleep_ms(10);
	assert_int_equal(n, 0);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.total, 0);
}

/*
 * A client that still maps the registry a dead keeper wrote must be able to
 * tell that it was replaced: the new keeper clears the old file's magic.
 */
static void replaced_registry_loses_its_magic(void **state)
{
	const size_t magic_at = offsetof(struct shmx_reg_header, magic);
	struct stat old_st, new_st;
	struct shmx_reg_header h;
	struct shmx_ds ds;
	struct tc_child *holder;
	pid_t old;
	void *map;
	int fd, nfd, id;

	(void)state;
	holder = tc_holder(1, SIZE, 4, &id);
	old = tc_keeper_pid();
	/* as a client maps it */
	fd = open(tc_path("registry"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &old_st), 0);
	map = mmap(NULL, SHMX_REG_HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	close(fd);
	assert_true(*(volatile const uint64_t *)((const char *)map + magic_at) == SHMX_REG_MAGIC);

	tc_kill_keeper(old);
	/* any call: it starts a keeper, which recovers the holder's segment */
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_not_equal(tc_keeper_pid(), old);

	/* a new file in place, with the magic */
	nfd = open(tc_path("registry"), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	assert_true(nfd >= 0);
	assert_int_equal(fstat(nfd, &new_st), 0);
	assert_false(new_st.st_ino == old_st.st_ino && new_st.st_dev == old_st.st_dev);
	assert_int_equal(pread(nfd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(nfd);
	assert_true(h.magic == SHMX_REG_MAGIC);
	/* and the old one, still mapped, says it is no longer a registry */
	if (*(volatile const uint64_t *)((const char *)map + magic_at) != 0)
		fail_msg("the replaced registry's magic is %#llx, not 0",
			 (unsigned long long)*(volatile const uint64_t *)((const char *)map + magic_at));
	munmap(map, SHMX_REG_HEADER_SIZE);
	(void)holder;
}

/*
 * The first call after the keeper's death reconnects, and the new
 * connection's REATTACH carries the process's counts, this change included.
 * Before the fix the change was then written as a record too, and counted
 * twice: a detach took two attachments away, an attach added two.
 */
static void detach_after_keeper_death_is_counted_once(void **state)
{
	struct shmx_ds ds;
	char *a, *b;
	int id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	a = tc_attach(id, 0);
	b = tc_attach(id, 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 2);
	kill_the_keeper();
	assert_int_equal(shmx_dt(a), 0);
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(shmx_dt(b), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 0);
}

static void attach_after_keeper_death_is_counted_once(void **state)
{
	struct shmx_ds ds;
	char *a, *b;
	int id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	a = tc_attach(id, 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	kill_the_keeper();
	b = tc_attach(id, 0);
	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 2);
	assert_int_equal(shmx_dt(a), 0);
	assert_int_equal(shmx_dt(b), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 0);
}

/* The harm of a doubled detach: a removed segment destroyed under a mapping. */
static void removed_segment_survives_a_detach_after_keeper_death(void **state)
{
	struct shmx_ds ds;
	char *a, *b;
	int id;

	(void)state;
	id = tc_create(tc_key(1), SIZE, 0600);
	a = tc_attach(id, 0);
	b = tc_attach(id, 0);
	tc_fill(b, SIZE, 15);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 2);
	kill_the_keeper();
	assert_int_equal(shmx_dt(a), 0);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(tc_verify(b, SIZE, 15), -1);
	assert_int_equal(shmx_dt(b), 0);
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

/*
 * The keeper dies before it consumed a holder's attach from its report ring
 * (it reads rings on its 1 s tick when nobody syncs).  The new keeper must
 * count the attachment anyway (from the holder's mappings): before the fix
 * it took the count of the dead keeper's holder table, 0, and a removal then
 * destroyed the memory under the holder.
 */
static void unconsumed_attach_of_an_idle_holder_is_counted(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	pid_t keeper;
	int id;

	(void)state;
	/* the helper starts the keeper; nothing of ours syncs before the kill */
	h = tc_holder(1, SIZE, 37, &id);
	keeper = tc_registry_keeper_pid(tc_dir());
	assert_true(keeper > 0);
	tc_kill_keeper(keeper);

	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	tc_send(h, "check 37");
	tc_expect(h, "ok");
	tc_send(h, "dt");
	tc_expect(h, "detached");
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

/*
 * The same, made certain: the keeper is stopped while the holder attaches a
 * second time (its descriptor is cached, so the attach waits for nothing and
 * its record just sits in the ring), then killed.
 */
static void attach_recorded_while_the_keeper_is_stopped_is_counted(void **state)
{
	struct tc_child *h;
	struct shmx_ds ds;
	pid_t keeper;
	int id;

	(void)state;
	h = tc_holder(1, SIZE, 41, &id);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	keeper = tc_keeper_pid();
	assert_int_equal(kill(keeper, SIGSTOP), 0);
	tc_send(h, "at");
	assert_int_equal(tc_expect_num(h, "attached "), 2);
	tc_kill_keeper(keeper);

	stat_soon(id, &ds);
	assert_int_equal(ds.nattch, 2);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 2);
	/* one attachment less: still there, memory intact */
	tc_send(h, "dt1");
	tc_expect(h, "detached");
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	tc_send(h, "check 41");
	tc_expect(h, "ok");
	tc_send(h, "dt");
	tc_expect(h, "detached");
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

#define MANY 2000

/*
 * A holder of many segments, each only through a descriptor from shmx_fd:
 * recovery reads its descriptors once, not once per segment.  Before the fix
 * it looked through all of them for each segment, and the new keeper was not
 * serving within the library's 10 s (-ECONNREFUSED).
 */
static void recovery_is_fast_with_many_descriptors(void **state)
{
	struct shmx_info info;
	struct shmx_ds *ds;
	struct tc_child *h;
	struct rlimit rl;
	char many[16];
	int64_t t0, took;
	int r, n;

	(void)state;
	/* the helper holds up to two descriptors a segment, the keeper one */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max < 3 * MANY) {
		print_message("# skip: RLIMIT_NOFILE hard limit below %d\n", 3 * MANY);
		skip();
	}
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "4096", NULL), 0);
	snprintf(many, sizeof(many), "%d", MANY);
	h = tc_spawn("hold-fds", many, "4096", NULL);
	assert_int_equal(tc_expect_num(h, "holding "), MANY);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, MANY);
	tc_kill_keeper(info.keeper_pid);

	t0 = tc_now_ms();
	r = shmx_info(&info);
	took = tc_now_ms() - t0;
	if (r < 0)
		fail_msg("info after the keeper's death (%lld ms): %s", (long long)took, strerror(-r));
	if (took > 3000 * TC_SLOW)
		fail_msg("info after the keeper's death took %lld ms", (long long)took);
	assert_int_equal(info.segments, MANY);

	ds = calloc(MANY + 1, sizeof(*ds));
	assert_non_null(ds);
	n = shmx_list(ds, MANY + 1);
	assert_int_equal(n, MANY);
	for (int i = 0; i < n; i++) {
		assert_int_equal(ds[i].key, SHMX_PRIVATE);
		assert_int_equal(ds[i].segsz, 4096);
		assert_int_equal(ds[i].cpid, h->pid);
		assert_int_equal(ds[i].nattch, 0);
		assert_false(ds[i].status & SHMX_DEST);
	}
	free(ds);
	/* the holder goes: nobody holds them, but they were not removed */
	tc_close_stdin(h);
	tc_child_wait_ok(h);
	assert_int_equal(shmx_list(NULL, 0), MANY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(idle_holder_is_found_and_counted),
		tc_test(holder_of_an_unnamed_descriptor_is_found),
		tc_test(unheld_segments_are_gone),
		tc_test(get_after_keeper_death_finds_no_lost_segment),
		tc_test(created_segment_of_a_living_creator_survives),
		tc_test(own_attachment_survives),
		tc_test(recovers_twice),
		tc_test(ids_stay_and_new_segments_work),
		tc_test(removed_segment_stays_removed),
		tc_test(detach_while_the_keeper_is_dead_is_counted),
		tc_test(detach_of_removed_segment_while_the_keeper_is_dead_destroys_it),
		tc_test(replaced_registry_loses_its_magic),
		tc_test(detach_after_keeper_death_is_counted_once),
		tc_test(attach_after_keeper_death_is_counted_once),
		tc_test(removed_segment_survives_a_detach_after_keeper_death),
		tc_test(unconsumed_attach_of_an_idle_holder_is_counted),
		tc_test(attach_recorded_while_the_keeper_is_stopped_is_counted),
		tc_test(recovery_is_fast_with_many_descriptors),
	};

	return tc_run_tests("recovery", tests);
}
