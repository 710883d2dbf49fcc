/* SPDX-License-Identifier: MIT */
/*
 * Rings: waiting and waking, in one process.  A side that must wait sleeps
 * (counted in the header, no CPU) and is woken at once; one that need not
 * wait makes no system call; threads and handles take turns.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "ring-util.h"

/* A woken sleeper runs within this; a lost wake-up costs SHMX_RING_CHECK_MS (200). */
#define WAKE_MS (TR_SANITIZED ? 1000 : 150)

static int64_t cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until *word is at least want: whether it got there within timeout_ms. */
static bool wait_count(_Atomic uint32_t *word, uint32_t want, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;

	while (atomic_load(word) < want) {
		if (tc_now_ms() > end)
			return false;
		tc_sleep_ms(1);
	}
	return true;
}

/* The call stays blocked for ms, using (almost) no CPU meanwhile. */
static void stays_asleep(struct tr_call *c, int ms)
{
	int64_t cpu0 = cpu_ms(), cpu;

	tc_sleep_ms(ms);
	cpu = cpu_ms() - cpu0;
	assert_false(tr_call_done(c));
	if (cpu > ms / 5)
		fail_msg("%lld ms of CPU in %d ms of waiting: not asleep", (long long)cpu, ms);
}

static void recv_sleeps_until_a_message_comes(void **state)
{
	struct shmx_ring *p, *c;
	struct shmx_ring_hdr *h;
	char in[64];

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	h = tr_hdr(p);
	assert_int_equal(atomic_load(&h->cons_waiters), 0);
	for (int round = 0; round < 5; round++) {
		struct tr_call *call = tr_call_start(c, TR_RECV, NULL, sizeof(in), 0);
		int64_t sent, woke;

		if (!wait_count(&h->cons_waiters, 1, TC_1S))
			fail_msg("round %d: no consumer counted asleep", round);
		if (round == 0)
			stays_asleep(call, 500);
		sent = tc_now_ms();
		assert_int_equal(shmx_ring_send(p, "wake", 4, 0), 4);
		assert_int_equal(tr_call_finish(call, TC_1S, in, &woke), 4);
		assert_memory_equal(in, "wake", 4);
		if (woke - sent > WAKE_MS)
			fail_msg("round %d: recv returned %lld ms after the send", round,
				 (long long)(woke - sent));
		assert_int_equal(atomic_load(&h->cons_waiters), 0);
	}
	assert_int_equal(atomic_load(&h->prod_waiters), 0);
	shmx_dt(h);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void send_sleeps_until_there_is_room(void **state)
{
	struct shmx_ring *p, *c;
	struct shmx_ring_hdr *h;
	char msg[1000], in[1000];
	int n = 0;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	h = tr_hdr(p);
	for (; n < 100; n++) {
		tr_make(msg, sizeof(msg), 1, (uint32_t)n);
		if (shmx_ring_send(p, msg, sizeof(msg), SHMX_NONBLOCK) < 0)
			break;
	}
	assert_true(n >= 3);
	for (int round = 0; round < 5; round++) {
		struct tr_call *call;
		struct tr_tag t;
		int64_t freed, woke;

		tr_make(msg, sizeof(msg), 1, (uint32_t)(n + round));
		call = tr_call_start(p, TR_SEND, msg, sizeof(msg), 0);
		if (!wait_count(&h->prod_waiters, 1, TC_1S))
			fail_msg("round %d: no producer counted asleep", round);
		if (round == 0)
			stays_asleep(call, 500);
		freed = tc_now_ms();
		assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), sizeof(in));
		assert_true(tr_check(in, sizeof(in), sizeof(in), sizeof(in), &t));
		assert_int_equal(t.seq, round);
		assert_int_equal(tr_call_finish(call, TC_1S, NULL, &woke), sizeof(msg));
		if (woke - freed > WAKE_MS)
			fail_msg("round %d: send returned %lld ms after room was made", round,
				 (long long)(woke - freed));
		assert_int_equal(atomic_load(&h->prod_waiters), 0);
	}
	shmx_dt(h);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

/* ---- no system call on the fast path ---- */

static volatile sig_atomic_t trapped;
static volatile long trapped_nr;

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)sig;
	if (!trapped)
		trapped_nr = si->si_syscall;
	trapped++;
	/* the call fails with ENOSYS and the caller carries on */
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long long)-ENOSYS;
#endif
}

#if defined(__x86_64__)
#define TR_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TR_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

#ifdef TR_AUDIT_ARCH
/* From here on every system call but write and exit raises SIGSYS (counted). */
static void trap_syscalls(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TR_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		ALLOW(__NR_write),
		ALLOW(__NR_exit),
		ALLOW(__NR_exit_group),
		ALLOW(__NR_rt_sigreturn),
		/* ASan's hook before _exit (a noreturn call) looks at the signal stack */
		ALLOW(__NR_sigaltstack),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	TC_CHECK_EQ(sigaction(SIGSYS, &sa, NULL), 0);
	TC_CHECK_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	TC_CHECK_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

static int uncontended_calls(void *arg)
{
	static uint8_t msg[2048], in[2048];
	struct shmx_ring *p, *c;
	int rounds = TR_SANITIZED ? 20000 : 200000;
	long n, nr;

	(void)arg;
	p = tr_child_open(tc_key(1), SHMX_RING_PRODUCER);
	c = tr_child_open(tc_key(1), SHMX_RING_CONSUMER);
	tc_fill(msg, sizeof(msg), 1);
	/* warm up: whatever is done once is done */
	for (int i = 0; i < 100; i++) {
		TC_CHECK_EQ(shmx_ring_send(p, msg, 100, 0), 100);
		TC_CHECK_EQ(shmx_ring_recv(c, in, sizeof(in), 0), 100);
	}
	trap_syscalls();
	for (int i = 0; i < rounds; i++) {
		size_t len = 1 + (size_t)(i * 37) % (i % 3 ? 2040 : 1000);
		const void *m;
		size_t ml;
		void *slot;

		/* sizes that make it wrap often; one message in the ring, or two
		 * that always fit */
		if (shmx_ring_send(p, msg, len, i & 1 ? SHMX_NONBLOCK : 0) != (ssize_t)len)
			tc_child_fail(__FILE__, __LINE__, "send %d of %zu failed", i, len);
		if (i % 3 == 0) {
			if (shmx_ring_reserve(p, 8, &slot, 0) != 0)
				tc_child_fail(__FILE__, __LINE__, "reserve %d failed", i);
			memcpy(slot, "reserved", 8);
			if (shmx_ring_commit(p, 8) != 0)
				tc_child_fail(__FILE__, __LINE__, "commit %d failed", i);
		}
		if (shmx_ring_recv(c, in, sizeof(in), i & 2 ? SHMX_NONBLOCK : 0) != (ssize_t)len)
			tc_child_fail(__FILE__, __LINE__, "recv %d of %zu failed", i, len);
		if (i % 3 == 0) {
			if (shmx_ring_peek(c, &m, &ml, 0) != 8 || shmx_ring_release(c) != 0)
				tc_child_fail(__FILE__, __LINE__, "peek %d failed", i);
		}
	}
	n = trapped;
	nr = trapped_nr;
	/* the control: a system call is seen */
	syscall(SYS_getppid);
	TC_CHECK_EQ(trapped, n + 1);
	if (n)
		tc_child_fail(__FILE__, __LINE__, "%ld system calls in %d rounds, the first %ld",
			      n, rounds, nr);
	_exit(0);
}
#endif

static void calls_that_need_not_wait_make_no_system_call(void **state)
{
	struct shmx_ring *p, *c;

	(void)state;
#ifndef TR_AUDIT_ARCH
	print_message("# skip: no seccomp arch for this machine\n");
	skip();
#else
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, uncontended_calls, NULL, 10 * TC_REPLY_MS), 0);
	shmx_ring_close(c);
	shmx_ring_close(p);
#endif
}

/* ---- turns ---- */

static void producers_take_turns(void **state)
{
	struct shmx_ring *p1, *p2, *c;
	struct tr_call *call;
	char in[64];
	void *slot;

	(void)state;
	p1 = tr_create(tc_key(1), 4096, 0600);
	p2 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	/* p1 holds the producers' side from reserve to commit */
	assert_int_equal(shmx_ring_reserve(p1, 5, &slot, 0), 0);
	assert_int_equal(shmx_ring_send(p2, "two", 3, SHMX_NONBLOCK), -EAGAIN);
	call = tr_call_start(p2, TR_SEND, "two", 3, 0);
	tc_sleep_ms(300);
	assert_false(tr_call_done(call));
	memcpy(slot, "one!!", 5);
	assert_int_equal(shmx_ring_commit(p1, 5), 0);
	assert_int_equal(tr_call_finish(call, TC_1S, NULL, NULL), 3);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 5);
	assert_memory_equal(in, "one!!", 5);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 3);
	assert_memory_equal(in, "two", 3);
	shmx_ring_close(p1);
	shmx_ring_close(p2);
	shmx_ring_close(c);
}

static void consumers_take_turns(void **state)
{
	struct shmx_ring *p, *c1, *c2;
	struct tr_call *call;
	const void *m;
	size_t ml;
	char in[64];

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	c2 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(p, "first", 5, 0), 5);
	assert_int_equal(shmx_ring_send(p, "second", 6, 0), 6);
	assert_int_equal(shmx_ring_peek(c1, &m, &ml, 0), 5);
	assert_int_equal(shmx_ring_recv(c2, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	call = tr_call_start(c2, TR_RECV, NULL, 64, 0);
	tc_sleep_ms(300);
	assert_false(tr_call_done(call));
	assert_memory_equal(m, "first", 5);
	assert_int_equal(shmx_ring_release(c1), 0);
	/* the next one, not the one c1 consumed */
	assert_int_equal(tr_call_finish(call, TC_1S, in, NULL), 6);
	assert_memory_equal(in, "second", 6);
	shmx_ring_close(p);
	shmx_ring_close(c1);
	shmx_ring_close(c2);
}

/* Another thread of the same handle waits for a pending pair: no -EBUSY. */
static void a_pending_pair_holds_the_handles_other_threads(void **state)
{
	struct shmx_ring *p, *c;
	struct tr_call *call;
	const void *m;
	size_t ml;
	char in[64];
	void *slot;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_reserve(p, 5, &slot, 0), 0);
	call = tr_call_start(p, TR_SEND, "later", 5, 0);
	tc_sleep_ms(300);
	assert_false(tr_call_done(call));
	memcpy(slot, "first", 5);
	assert_int_equal(shmx_ring_commit(p, 5), 0);
	assert_int_equal(tr_call_finish(call, TC_1S, NULL, NULL), 5);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, 0), 5);
	assert_memory_equal(m, "first", 5);
	call = tr_call_start(c, TR_RECV, NULL, sizeof(in), 0);
	tc_sleep_ms(300);
	assert_false(tr_call_done(call));
	assert_int_equal(shmx_ring_release(c), 0);
	assert_int_equal(tr_call_finish(call, TC_1S, in, NULL), 5);
	assert_memory_equal(in, "later", 5);
	/* without waiting: -EAGAIN (the side is taken), not -EBUSY (that is ours) */
	assert_int_equal(shmx_ring_reserve(p, 5, &slot, 0), 0);
	call = tr_call_start(p, TR_SEND, "x", 1, SHMX_NONBLOCK);
	assert_int_equal(tr_call_finish(call, TC_1S, NULL, NULL), -EAGAIN);
	assert_int_equal(shmx_ring_commit(p, 0), 0);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void last_producer_closing_wakes_every_consumer(void **state)
{
	struct shmx_ring *p, *c[3];
	struct tr_call *call[3];
	struct shmx_ring_hdr *h;
	int64_t closed;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	h = tr_hdr(p);
	for (int i = 0; i < 3; i++) {
		c[i] = tr_open(tc_key(1), SHMX_RING_CONSUMER);
		call[i] = tr_call_start(c[i], TR_RECV, NULL, 64, 0);
	}
	/* one sleeps for data, the others for their turn */
	assert_true(wait_count(&h->cons_waiters, 1, TC_1S));
	tc_sleep_ms(50);
	closed = tc_now_ms();
	shmx_ring_close(p);
	for (int i = 0; i < 3; i++) {
		int64_t woke;

		assert_int_equal(tr_call_finish(call[i], TC_1S, NULL, &woke), 0);
		if (woke - closed > WAKE_MS)
			fail_msg("consumer %d saw the end %lld ms after the close", i,
				 (long long)(woke - closed));
	}
	for (int i = 0; i < 3; i++)
		shmx_ring_close(c[i]);
	shmx_dt(h);
}

static void last_consumer_closing_wakes_the_producer(void **state)
{
	struct shmx_ring *p, *c;
	struct shmx_ring_hdr *h;
	struct tr_call *call;
	char msg[1000];
	int64_t closed, woke;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	h = tr_hdr(p);
	memset(msg, 'm', sizeof(msg));
	while (shmx_ring_send(p, msg, sizeof(msg), SHMX_NONBLOCK) > 0)
		;
	call = tr_call_start(p, TR_SEND, msg, sizeof(msg), 0);
	assert_true(wait_count(&h->prod_waiters, 1, TC_1S));
	closed = tc_now_ms();
	shmx_ring_close(c);
	assert_int_equal(tr_call_finish(call, TC_1S, NULL, &woke), -EPIPE);
	if (woke - closed > WAKE_MS)
		fail_msg("the producer saw no consumer %lld ms after the close",
			 (long long)(woke - closed));
	shmx_ring_close(p);
	shmx_dt(h);
}

/* ---- threads ---- */

#define MAX_THREADS 8

struct worker {
	struct shmx_ring *r;
	uint32_t who;
	uint32_t count;                 /* producer: to send; consumer: received */
	uint32_t *got;                  /* consumer: tags received, who << 24 | seq */
	uint32_t max;
	char err[200];
};

#define MSG_MIN 8
#define MSG_MAX 700

static void *produce(void *arg)
{
	struct worker *w = arg;
	uint8_t msg[MSG_MAX];

	for (uint32_t s = 0; s < w->count; s++) {
		size_t len = tr_len(w->who, s, MSG_MIN, MSG_MAX);
		ssize_t e;

		tr_make(msg, len, w->who, s);
		e = shmx_ring_send(w->r, msg, len, 0);
		if (e != (ssize_t)len) {
			snprintf(w->err, sizeof(w->err), "producer %u: send %u: %zd", w->who, s, e);
			break;
		}
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct worker *w = arg;
	uint8_t in[MSG_MAX];

	for (;;) {
		ssize_t e = shmx_ring_recv(w->r, in, sizeof(in), 0);
		struct tr_tag t;

		if (e == 0)
			break;
		if (e < 0 || !tr_check(in, (size_t)e, MSG_MIN, MSG_MAX, &t) || w->count >= w->max) {
			snprintf(w->err, sizeof(w->err), "consumer %u: message %u: %zd bytes, bad",
				 w->who, w->count, e);
			break;
		}
		w->got[w->count++] = t.who << 24 | t.seq;
	}
	return NULL;
}

/*
 * Every (producer, seq) exactly once over all consumers, and each
 * producer's in order within each consumer.
 */
static void check_delivery(struct worker *cons, int ncons, int nprod, uint32_t per)
{
	uint8_t *seen = calloc((size_t)nprod * per, 1);
	uint64_t total = 0;

	for (int c = 0; c < ncons; c++) {
		int64_t last[MAX_THREADS];

		if (cons[c].err[0])
			fail_msg("%s", cons[c].err);
		for (int i = 0; i < MAX_THREADS; i++)
			last[i] = -1;
		for (uint32_t i = 0; i < cons[c].count; i++) {
			uint32_t who = cons[c].got[i] >> 24, seq = cons[c].got[i] & 0xffffff;

			if (who >= (uint32_t)nprod || seq >= per)
				fail_msg("consumer %d: a message from %u, number %u", c, who, seq);
			if ((int64_t)seq <= last[who])
				fail_msg("consumer %d: %u's message %u after %lld", c, who, seq,
					 (long long)last[who]);
			last[who] = seq;
			if (seen[who * per + seq]++)
				fail_msg("%u's message %u delivered twice", who, seq);
			total++;
		}
	}
	if (total != (uint64_t)nprod * per)
		fail_msg("%llu messages delivered of %llu", (unsigned long long)total,
			 (unsigned long long)nprod * per);
	free(seen);
}

static void run_threads(int nprod, int ncons, bool share_handle, uint32_t per)
{
	struct worker prod[MAX_THREADS], cons[MAX_THREADS];
	pthread_t pt[MAX_THREADS], ct[MAX_THREADS];
	struct shmx_ring *creator, *shared = NULL;

	memset(prod, 0, sizeof(prod));
	memset(cons, 0, sizeof(cons));
	creator = tr_create(tc_key(1), 4096, 0600);
	if (share_handle)
		shared = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	for (int i = 0; i < ncons; i++) {
		cons[i].r = tr_open(tc_key(1), SHMX_RING_CONSUMER);
		cons[i].who = (uint32_t)i;
		cons[i].max = (uint32_t)nprod * per;
		cons[i].got = calloc(cons[i].max, sizeof(uint32_t));
		assert_int_equal(pthread_create(&ct[i], NULL, consume, &cons[i]), 0);
	}
	for (int i = 0; i < nprod; i++) {
		prod[i].r = share_handle ? shared : tr_open(tc_key(1), SHMX_RING_PRODUCER);
		prod[i].who = (uint32_t)i;
		prod[i].count = per;
	}
	/* the producers are in: the creator's handle may go */
	shmx_ring_close(creator);
	for (int i = 0; i < nprod; i++)
		assert_int_equal(pthread_create(&pt[i], NULL, produce, &prod[i]), 0);
	for (int i = 0; i < nprod; i++) {
		pthread_join(pt[i], NULL);
		if (prod[i].err[0])
			fail_msg("%s", prod[i].err);
		if (!share_handle)
			shmx_ring_close(prod[i].r);
	}
	shmx_ring_close(shared);
	/* the end of the stream lets the consumers go */
	for (int i = 0; i < ncons; i++)
		pthread_join(ct[i], NULL);
	check_delivery(cons, ncons, nprod, per);
	for (int i = 0; i < ncons; i++) {
		shmx_ring_close(cons[i].r);
		free(cons[i].got);
	}
}

static void threads_share_a_producer_handle(void **state)
{
	(void)state;
	run_threads(2, 1, true, TR_SANITIZED ? 5000 : 50000);
}

static void threads_share_a_producer_handle_among_consumers(void **state)
{
	(void)state;
	run_threads(3, 2, true, TR_SANITIZED ? 3000 : 30000);
}

static void producer_and_consumer_threads_with_handles_of_their_own(void **state)
{
	(void)state;
	run_threads(3, 2, false, TR_SANITIZED ? 3000 : 30000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(recv_sleeps_until_a_message_comes),
		tr_test(send_sleeps_until_there_is_room),
		tr_test(calls_that_need_not_wait_make_no_system_call),
		tr_test(producers_take_turns),
		tr_test(consumers_take_turns),
		tr_test(a_pending_pair_holds_the_handles_other_threads),
		tr_test(last_producer_closing_wakes_every_consumer),
		tr_test(last_consumer_closing_wakes_the_producer),
		tr_test(threads_share_a_producer_handle),
		tr_test(threads_share_a_producer_handle_among_consumers),
		tr_test(producer_and_consumer_threads_with_handles_of_their_own),
	};

	return tr_run_tests("ring-wait", tests, 30);
}
