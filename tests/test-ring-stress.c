/* SPDX-License-Identifier: MIT */
/*
 * Rings under load: millions of messages through a ring of 4096 bytes, so
 * small that both sides sleep again and again, between two processes and
 * between two threads.  Every message is checked (number, length, bytes).
 *
 * A lost wake-up does not hang a ring (sleepers look again every
 * SHMX_RING_CHECK_MS, 200 ms), it stalls it: a watcher samples the header
 * and fails the test when a side stays asleep, unwoken, while the other
 * side has long made what it waits for and sleeps too (both blocked in the
 * kernel, as /proc says: a side merely preempted is not a lost wake-up).
 *
 * Each run sends up to 2 million messages (fewer in sanitized builds), for
 * at most 7 s; for longer runs by hand, SHMX_RING_STRESS_N sets the number
 * and SHMX_RING_STRESS_MS the time.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring-util.h"

#define KEY tc_key(1)
#define WATCHDOG_S 50
#define CAP 4096u
#define MAXLEN 2040u
/*
 * A side asleep this long, with what it waits for there and no wake-up
 * issued, while the other side is asleep too: a wake-up was lost.
 */
#define STALL_MS 100

static uint32_t messages(void)
{
	const char *n = getenv("SHMX_RING_STRESS_N");

	if (n && atol(n) > 0)
		return (uint32_t)atol(n);
#if TR_TSAN
	return 300000;
#else
	return TR_SANITIZED ? 1000000 : 2000000;
#endif
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/*
 * Message seq: its number, then words that follow from it.  Sizes come in
 * runs: long ones (the consumer, checking them, is the slower side and
 * the producer waits for room) and short ones (the producer is as quick,
 * and the consumer waits for data).
 */
static size_t msg_len(uint32_t seq)
{
	uint64_t m = mix64(seq);

	if ((seq >> 10) & 1)
		return 8 + m % 64;
	return 8 + m % (MAXLEN - 7);
}

static void msg_make(uint8_t *b, size_t len, uint32_t seq)
{
	uint64_t w = mix64((uint64_t)seq << 32 | 1);

	memcpy(b, &seq, 4);
	memcpy(b + 4, &w, 4);
	for (size_t i = 8; i < len; i += 8, w += 0x9e3779b97f4a7c15ull)
		memcpy(b + i, &w, len - i < 8 ? len - i : 8);
}

/* 0 when b is message seq, else the offset where it goes wrong plus 1. */
static size_t msg_check(const uint8_t *b, size_t len, uint32_t seq)
{
	uint8_t want[MAXLEN];

	if (len != msg_len(seq))
		return 1;
	msg_make(want, len, seq);
	for (size_t i = 0; i < len; i++)
		if (b[i] != want[i])
			return i + 1;
	return 0;
}

/* Sending stops after n messages, or after this long (a slow machine). */
#define BUDGET_MS budget_ms()

static int64_t budget_ms(void)
{
	const char *ms = getenv("SHMX_RING_STRESS_MS");

	return ms && atol(ms) > 0 ? atol(ms) : 7000 * TC_SLOW;
}

/*
 * The sides poll a little before they sleep; so that they sleep (and are
 * woken) often, runs of messages alternate: the producer dawdles before
 * every 32nd message (the consumer waits for data), the consumer after every
 * 32nd (the producer waits for room), or neither.
 */
#define DAWDLE_US 30

static void dawdle(void)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 < DAWDLE_US);
}

static int slow_side(uint32_t seq)
{
	return seq % 32 == 0 ? (int)((seq >> 10) % 3) : -1;
}

struct side {
	struct shmx_ring *r;
	uint32_t n;
	int64_t stop_ms;                /* producer: stop sending then */
	_Atomic uint32_t *sent;         /* how many it sent (shared) */
	_Atomic pid_t tid;              /* a thread's, once it runs */
	char err[256];
};

static void run_producer(struct side *s)
{
	uint8_t msg[MAXLEN];
	uint32_t seq;

	for (seq = 0; seq < s->n; seq++) {
		size_t len = msg_len(seq);
		ssize_t e;

		if (seq % 1024 == 0 && tc_now_ms() > s->stop_ms)
			break;
		if (slow_side(seq) == 0)
			dawdle();
		if (seq % 3 == 0) {
			void *slot;

			e = shmx_ring_reserve(s->r, len, &slot, 0);
			if (e == 0) {
				msg_make(slot, len, seq);
				e = shmx_ring_commit(s->r, len);
				if (e == 0)
					e = (ssize_t)len;
			}
		} else {
			msg_make(msg, len, seq);
			e = shmx_ring_send(s->r, msg, len, 0);
		}
		if (e != (ssize_t)len) {
			snprintf(s->err, sizeof(s->err), "send %u (%zu bytes): %zd", seq, len, e);
			break;
		}
	}
	/* before the close that ends the stream */
	atomic_store(s->sent, seq);
}

static void run_consumer(struct side *s)
{
	uint8_t in[MAXLEN];

	for (uint32_t seq = 0; seq <= s->n; seq++) {
		ssize_t e;
		size_t bad;

		if (seq % 2 == 0) {
			e = shmx_ring_recv(s->r, in, sizeof(in), 0);
			bad = e > 0 ? msg_check(in, (size_t)e, seq) : 0;
		} else {
			const void *m;
			size_t ml;

			e = shmx_ring_peek(s->r, &m, &ml, 0);
			bad = e > 0 ? msg_check(m, ml, seq) : 0;
			if (e > 0 && shmx_ring_release(s->r) != 0)
				bad = 1;
		}
		if (e == 0 || seq == s->n) {
			/* the producer closed: the end, after all it sent */
			if (e != 0 || seq != atomic_load(s->sent))
				snprintf(s->err, sizeof(s->err), "%zd after message %u of %u", e, seq,
					 atomic_load(s->sent));
			return;
		}
		if (e <= 0 || bad) {
			snprintf(s->err, sizeof(s->err), "message %u: %zd bytes, wrong at %zu", seq, e,
				 bad ? bad - 1 : 0);
			return;
		}
		if (slow_side(seq) == 1)
			dawdle();
	}
}

/* ---- the watcher ---- */

struct watch {
	struct shmx_ring_hdr *h;
	pid_t tids[2];                  /* the producer's and the consumer's threads */
	int64_t since;                  /* the suspicious state was first seen, or 0 */
	uint32_t head, tail, wake;      /* ... and was this */
	bool cons;                      /* a consumer asleep (else a producer) */
	int64_t worst;
	char what[200];
};

/* A thread is blocked in the kernel (state S: in our case, a futex). */
static bool asleep(pid_t tid)
{
	char buf[512], *p;

	if (tc_read_proc(tid, "stat", buf, sizeof(buf)) <= 0)
		return false;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

/* Looks once: false after a stall of STALL_MS. */
static bool watch_once(struct watch *w)
{
	struct shmx_ring_hdr *h = w->h;
	uint32_t head = atomic_load(&h->head), tail = atomic_load(&h->tail);
	uint32_t cw = atomic_load(&h->cons_waiters), pw = atomic_load(&h->prod_waiters);
	uint32_t ck = atomic_load(&h->cons_wake), pk = atomic_load(&h->prod_wake);
	/* a consumer asleep with data there, a producer asleep with the ring empty */
	bool cons = cw > 0 && tail != head, prod = pw > 0 && tail == head;
	int64_t now = tc_now_ms();

	if (!cons && !prod) {
		w->since = 0;
		return true;
	}
	if (!w->since || w->head != head || w->tail != tail || w->cons != cons ||
	    w->wake != (cons ? ck : pk)) {
		w->since = now;
		w->head = head;
		w->tail = tail;
		w->cons = cons;
		w->wake = cons ? ck : pk;
		return true;
	}
	if (now - w->since > w->worst)
		w->worst = now - w->since;
	if (now - w->since < STALL_MS || !asleep(w->tids[0]) || !asleep(w->tids[1]))
		return true;
	snprintf(w->what, sizeof(w->what),
		 "a %s asleep for %lld ms, unwoken, with %u bytes in the ring (head %u, tail %u), "
		 "the other side asleep too", cons ? "consumer" : "producer",
		 (long long)(now - w->since), tail - head, head, tail);
	return false;
}

static void report(const char *how, uint32_t n, int64_t ms, struct shmx_ring_hdr *h,
		   const struct watch *w)
{
	/* (n: the messages sent, maybe fewer than asked for on a slow machine) */
	uint32_t cw = atomic_load(&h->cons_wake), pw = atomic_load(&h->prod_wake);

	print_message("# %s: %u messages in %lld ms; consumers woken %u times, producers %u; "
		      "longest stall %lld ms\n", how, n, (long long)ms, cw, pw, (long long)w->worst);
	/* the run made both sides sleep, often: else it tested nothing */
	if (cw < n / 1000 || pw < n / 1000)
		fail_msg("%s: too few sleeps to test wake-ups (%u and %u)", how, cw, pw);
}

/* ---- two processes ---- */

/* Whether a child has ended (it is left to be reaped). */
static bool ended(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == pid;
}

/* Waits until pid holds an entry of role. */
static void await_entry(struct shmx_ring_hdr *h, pid_t pid, uint32_t role)
{
	int64_t end = tc_now_ms() + TC_REPLY_MS;

	while (!tr_entry(h, pid, role)) {
		if (tc_now_ms() > end)
			fail_msg("process %d did not open the ring", (int)pid);
		tc_sleep_ms(1);
	}
}

/* What both processes are told. */
struct run {
	uint32_t n;
	int64_t stop_ms;
	_Atomic uint32_t *sent;         /* in shared memory */
};

static int producer_process(void *arg)
{
	const struct run *run = arg;
	struct side s = { .n = run->n, .stop_ms = run->stop_ms, .sent = run->sent };

	s.r = tr_child_open(KEY, SHMX_RING_PRODUCER);
	run_producer(&s);
	if (s.err[0])
		tc_child_fail(__FILE__, __LINE__, "%s", s.err);
	shmx_ring_close(s.r);
	return 0;
}

static int consumer_process(void *arg)
{
	const struct run *run = arg;
	struct side s = { .n = run->n, .sent = run->sent };

	s.r = tr_child_open(KEY, SHMX_RING_CONSUMER);
	run_consumer(&s);
	if (s.err[0])
		tc_child_fail(__FILE__, __LINE__, "%s", s.err);
	shmx_ring_close(s.r);
	return 0;
}

static void lost_wakeups_between_processes(void **state)
{
	struct tc_fork prod, cons;
	struct shmx_ring *r;
	struct watch w;
	struct run run = { .n = messages(), .stop_ms = tc_now_ms() + BUDGET_MS };
	int64_t t0, deadline;
	int pst = -2, cst = -2;

	(void)state;
	run.sent = mmap(NULL, sizeof(*run.sent), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	assert_true(run.sent != MAP_FAILED);
	r = tr_create(KEY, CAP, 0600);
	memset(&w, 0, sizeof(w));
	w.h = tr_hdr(r);
	tc_fork_start(&cons, (uid_t)-1, 0, consumer_process, &run);
	tc_fork_start(&prod, (uid_t)-1, 0, producer_process, &run);
	/* the creator stays a producer until the other is in */
	await_entry(w.h, prod.pid, SHMX_PEER_PRODUCER);
	await_entry(w.h, cons.pid, SHMX_PEER_CONSUMER);
	w.tids[0] = prod.pid;
	w.tids[1] = cons.pid;
	shmx_ring_close(r);
	t0 = tc_now_ms();
	deadline = t0 + (WATCHDOG_S - 10) * 1000 * TC_SLOW;
	while (pst == -2 || cst == -2) {
		if (!watch_once(&w)) {
			kill(prod.pid, SIGKILL);
			kill(cons.pid, SIGKILL);
			tc_fork_finish(&prod, TC_1S);
			tc_fork_finish(&cons, TC_1S);
			fail_msg("lost wake-up: %s", w.what);
		}
		if (tc_now_ms() > deadline)
			fail_msg("not done after %lld ms", (long long)(tc_now_ms() - t0));
		if (pst == -2 && ended(prod.pid))
			pst = tc_fork_finish(&prod, TC_1S);
		if (cst == -2 && ended(cons.pid))
			cst = tc_fork_finish(&cons, TC_1S);
		tc_sleep_ms(2);
	}
	assert_int_equal(pst, 0);
	assert_int_equal(cst, 0);
	report("processes", atomic_load(run.sent), tc_now_ms() - t0, w.h, &w);
	munmap((void *)run.sent, sizeof(*run.sent));
	shmx_dt(w.h);
}

/* ---- two threads ---- */

static void *producer_thread(void *arg)
{
	struct side *s = arg;

	atomic_store(&s->tid, gettid());
	run_producer(s);
	shmx_ring_close(s->r);
	return NULL;
}

static void *consumer_thread(void *arg)
{
	struct side *s = arg;

	atomic_store(&s->tid, gettid());
	run_consumer(s);
	return NULL;
}

static void lost_wakeups_between_threads(void **state)
{
	struct side ps, cs;
	pthread_t pt, ct;
	struct shmx_ring *r;
	struct watch w;
	_Atomic uint32_t sent = 0;
	int64_t t0, deadline;

	(void)state;
	memset(&ps, 0, sizeof(ps));
	memset(&cs, 0, sizeof(cs));
	memset(&w, 0, sizeof(w));
	ps.r = tr_create(KEY, CAP, 0600);
	cs.r = tr_open(KEY, SHMX_RING_CONSUMER);
	ps.n = cs.n = messages();
	ps.sent = cs.sent = &sent;
	ps.stop_ms = tc_now_ms() + BUDGET_MS;
	r = ps.r;
	w.h = tr_hdr(r);
	t0 = tc_now_ms();
	deadline = t0 + (WATCHDOG_S - 10) * 1000 * TC_SLOW;
	assert_int_equal(pthread_create(&ct, NULL, consumer_thread, &cs), 0);
	assert_int_equal(pthread_create(&pt, NULL, producer_thread, &ps), 0);
	while (!atomic_load(&ps.tid) || !atomic_load(&cs.tid))
		tc_sleep_ms(1);
	w.tids[0] = atomic_load(&ps.tid);
	w.tids[1] = atomic_load(&cs.tid);
	/* the consumer ends last, at the end of the stream */
	while (pthread_tryjoin_np(ct, NULL) != 0) {
		if (!watch_once(&w))
			fail_msg("lost wake-up: %s", w.what);
		if (tc_now_ms() > deadline)
			fail_msg("not done after %lld ms", (long long)(tc_now_ms() - t0));
		tc_sleep_ms(2);
	}
	pthread_join(pt, NULL);
	if (ps.err[0])
		fail_msg("%s", ps.err);
	if (cs.err[0])
		fail_msg("%s", cs.err);
	report("threads", atomic_load(&sent), tc_now_ms() - t0, w.h, &w);
	shmx_ring_close(cs.r);
	shmx_dt(w.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(lost_wakeups_between_processes),
		tr_test(lost_wakeups_between_threads),
	};

	return tr_run_tests("ring-stress", tests, WATCHDOG_S);
}
