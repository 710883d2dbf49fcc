/* SPDX-License-Identifier: MIT */
/*
 * Rings: a process is told from a later one that reuses its pid by its start
 * time.  The dead peer's pid is given to a live process, for real (clone3
 * with a chosen pid, as root) or by writing the ring's entry; the live
 * process may even be the waiting consumer itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <unistd.h>

#include "ring-util.h"
#include "util/sys.h"

#define KEY tc_key(1)

/* A process that sleeps until killed (teardown kills it at the latest). */
static pid_t sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 600; i++)
			tc_sleep_ms(100);
		_exit(0);
	}
	tc_track_pid(pid);
	return pid;
}

/*
 * A child process with pid want (clone3 with set_tid: root, Linux 5.5):
 * 0 in the child, its pid in the parent, -errno if it cannot be had.
 * fork()'s handlers do not run: the child may sleep or exec, no more.
 */
static pid_t clone_with_pid(pid_t want)
{
	struct clone_args args;
	pid_t tid = want;
	long r;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&tid;
	args.set_tid_size = 1;
	r = syscall(SYS_clone3, &args, sizeof(args));
	if (r < 0)
		return -errno;
	if (r > 0)
		tc_track_pid((pid_t)r);
	return (pid_t)r;
}

/* Skips the test unless the kernel hands out chosen pids to us. */
static void require_pid_choice(void)
{
	pid_t pid;

	TC_REQUIRE_ROOT();
	pid = clone_with_pid(1);        /* pid 1 is taken: EEXIST if supported */
	if (pid == 0)
		_exit(0);
	if (pid != -EEXIST) {
		print_message("# skip: no clone3 with a chosen pid here (%d)\n", (int)pid);
		skip();
	}
}

/* A sleeper with pid want. */
static pid_t sleeper_with_pid(pid_t want)
{
	pid_t pid = clone_with_pid(want);

	if (pid == 0) {
		for (int i = 0; i < 600; i++)
			tc_sleep_ms(100);
		_exit(0);
	}
	if (pid < 0)
		fail_msg("clone3 with pid %d: %s", (int)want, strerror(-pid));
	return pid;
}

static void reused_pid_of_a_dead_producer_is_not_alive(void **state)
{
	struct shmx_ring *p, *c;
	struct tr_call *call;
	struct tr_peer a;
	pid_t dead, other;
	int64_t t0, woke;

	(void)state;
	require_pid_choice();
	p = tr_create(KEY, 4096, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_SEND, 1);
	shmx_ring_close(p);
	dead = a.f.pid;
	/* start times count in clock ticks: let some pass */
	tc_sleep_ms(50);
	tr_peer_kill(&a);
	tr_peer_reap(&a);
	other = sleeper_with_pid(dead);
	assert_int_equal(other, dead);
	assert_true(tc_pid_alive(dead));
	assert_true(tr_recv_is(c, 1, 0));
	t0 = tc_now_ms();
	call = tr_call_start(c, TR_RECV, NULL, TR_MAX, 0);
	assert_int_equal(tr_call_finish(call, 5 * TC_1S, NULL, &woke), -EPIPE);
	if (woke - t0 > TC_1S)
		fail_msg("-EPIPE after %lld ms", (long long)(woke - t0));
	shmx_ring_close(c);
}

static struct shmx_ring_peer *entry_of(struct shmx_ring_hdr *h, pid_t pid, uint32_t role)
{
	struct shmx_ring_peer *e = tr_entry(h, pid, role);

	if (!e)
		fail_msg("no entry of role %u for pid %d", role, (int)pid);
	return e;
}

static void entry_naming_a_live_pid_but_not_its_start_is_dead(void **state)
{
	struct shmx_ring *p, *c;
	struct shmx_ring_hdr *h;
	struct shmx_ring_peer *e;
	struct tr_call *call;
	struct tr_peer a;
	uint64_t dead_start;
	pid_t other;
	int64_t t0, woke;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	h = tr_hdr(c);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_NONE, 0);
	shmx_ring_close(p);
	tc_sleep_ms(50);
	other = sleeper();
	e = entry_of(h, a.f.pid, SHMX_PEER_PRODUCER);
	dead_start = e->starttime;
	assert_true(dead_start != 0);
	assert_true(dead_start != shmx_proc_starttime(other));
	tr_peer_kill(&a);
	tr_peer_reap(&a);
	/* the control: the entry names the live process, with its start time */
	e->pid = other;
	e->starttime = shmx_proc_starttime(other);
	call = tr_call_start(c, TR_RECV, NULL, TR_MAX, 0);
	tc_sleep_ms(800);
	if (tr_call_done(call))
		fail_msg("recv returned %zd while the entry names a live process",
			 tr_call_finish(call, 0, NULL, NULL));
	/* the live pid, with the dead producer's start time: someone else */
	e->starttime = dead_start;
	t0 = tc_now_ms();
	assert_int_equal(tr_call_finish(call, 5 * TC_1S, NULL, &woke), -EPIPE);
	if (woke - t0 > TC_1S)
		fail_msg("-EPIPE after %lld ms", (long long)(woke - t0));
	assert_true(tc_pid_alive(other));
	shmx_dt(h);
	shmx_ring_close(c);
}

struct own_pid {
	pid_t dead;                     /* the dead producer */
};

/* In a consumer process: the dead producer's entry names our own pid. */
static int consumer_whose_pid_the_dead_producer_had(void *arg)
{
	struct own_pid *o = arg;
	struct shmx_ring *c;
	struct shmx_ring_hdr *h;
	struct shmx_ring_peer *e;
	int64_t t0;
	ssize_t got;

	c = tr_child_open(KEY, SHMX_RING_CONSUMER);
	h = tr_hdr(c);

	e = tr_entry(h, o->dead, SHMX_PEER_PRODUCER);
	TC_CHECK(e != NULL);
	TC_CHECK(e->starttime != shmx_proc_starttime(getpid()));
	/* as if the kernel had given us its pid: only the start time tells */
	if (o->dead != getpid())
		e->pid = getpid();
	t0 = tc_now_ms();
	got = shmx_ring_recv(c, NULL, 0, 0);
	TC_CHECK_EQ(got, -EPIPE);
	if (tc_now_ms() - t0 > TC_1S)
		tc_child_fail(__FILE__, __LINE__, "-EPIPE after %lld ms",
			      (long long)(tc_now_ms() - t0));
	shmx_dt(h);
	shmx_ring_close(c);
	return 0;
}

/*
 * The waiting consumer is itself the process that reuses the dead
 * producer's pid (first written into the entry, then for real).
 */
static void consumer_reusing_the_dead_producers_pid_is_not_it(void **state)
{
	struct shmx_ring *p;
	struct own_pid o;
	struct tr_peer a;

	(void)state;
	for (int how = 0; how < 2; how++) {
		p = tr_create(KEY, 4096, 0600 | SHMX_EXCL);
		tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_NONE, 0);
		shmx_ring_close(p);
		o.dead = a.f.pid;
		tc_sleep_ms(50);
		tr_peer_kill(&a);
		tr_peer_reap(&a);
		if (how == 0) {
			assert_int_equal(tc_fork_call((uid_t)-1, 0,
						      consumer_whose_pid_the_dead_producer_had, &o,
						      5 * TC_1S), 0);
			assert_int_equal(shmx_ctl(shmx_get(KEY, 0, 0), SHMX_RMID, NULL), 0);
			continue;
		}
		if (geteuid() != 0 || clone_with_pid(1) != -EEXIST) {
			print_message("# no clone3 with a chosen pid here: the entry edit only\n");
			break;
		}
		/* a fresh process with the dead producer's pid: the helper */
		{
			char key[32];
			char *argv[] = { (char *)getenv("SHMX_RING_PEER"), "recv", key, NULL };
			struct tc_child c;
			long long ms;
			const char *line;
			int out[2];

			assert_non_null(argv[0]);
			snprintf(key, sizeof(key), "%d", (int)KEY);
			assert_int_equal(pipe2(out, O_CLOEXEC), 0);
			memset(&c, 0, sizeof(c));
			c.in = -1;
			c.out = out[0];
			c.pid = clone_with_pid(o.dead);
			if (c.pid == 0) {
				dup2(out[1], 1);
				execv(argv[0], argv);
				_exit(127);
			}
			assert_int_equal(c.pid, o.dead);
			close(out[1]);
			assert_int_equal(tc_expect_num(&c, "pid "), o.dead);
			line = tc_expect(&c, "recv ");
			if (sscanf(line, "%*d %lld", &ms) != 1 || atoi(line) != -EPIPE)
				fail_msg("the consumer with the dead producer's pid: recv %s", line);
			if (ms > TC_1S)
				fail_msg("-EPIPE after %lld ms", ms);
			assert_int_equal(tc_waitpid(c.pid, TC_REPLY_MS), 0);
			close(out[0]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(reused_pid_of_a_dead_producer_is_not_alive),
		tr_test(entry_naming_a_live_pid_but_not_its_start_is_dead),
		tr_test(consumer_reusing_the_dead_producers_pid_is_not_it),
	};

	return tr_run_tests("ring-pids", tests, 30);
}
