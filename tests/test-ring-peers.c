/* SPDX-License-Identifier: MIT */
/*
 * Rings between processes: peers killed while the other side waits, or
 * while holding a side (between reserve and commit, peek and release), and
 * many producers and consumers at once.
 *
 * Killed children are not reaped while the test waits on the ring: a
 * zombie is as dead as a reaped process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring-util.h"

#define KEY tc_key(1)

/* ---- dead peers ---- */

static void killed_producer_wakes_the_waiting_consumer(void **state)
{
	struct shmx_ring *p, *c;
	struct tr_call *call;
	struct tr_peer a;
	int64_t killed, woke;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_SEND, 3);
	shmx_ring_close(p);
	for (uint32_t s = 0; s < 3; s++)
		assert_true(tr_recv_is(c, 1, s));
	/* a live producer is waited for */
	call = tr_call_start(c, TR_RECV, NULL, TR_MAX, 0);
	tc_sleep_ms(600);
	assert_false(tr_call_done(call));
	killed = tc_now_ms();
	tr_peer_kill(&a);
	/* not reaped while we wait: a zombie */
	assert_int_equal(tr_call_finish(call, 5 * TC_1S, NULL, &woke), -EPIPE);
	if (woke - killed > TC_1S)
		fail_msg("-EPIPE %lld ms after the kill", (long long)(woke - killed));
	/* and it stays so */
	assert_int_equal(shmx_ring_recv(c, NULL, 0, SHMX_NONBLOCK), -EPIPE);
	tr_peer_reap(&a);
	assert_int_equal(shmx_ring_recv(c, NULL, 0, 0), -EPIPE);
	shmx_ring_close(c);
}

static void dead_producers_messages_come_before_epipe(void **state)
{
	struct shmx_ring *p, *c;
	struct tr_peer a;
	int64_t t0;

	(void)state;
	p = tr_create(KEY, 8192, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_SEND, 5);
	shmx_ring_close(p);
	tr_peer_kill(&a);
	tc_sleep_ms(50);
	t0 = tc_now_ms();
	for (uint32_t s = 0; s < 5; s++)
		assert_true(tr_recv_is(c, 1, s));
	assert_int_equal(shmx_ring_recv(c, NULL, 0, 0), -EPIPE);
	if (tc_now_ms() - t0 > TC_1S)
		fail_msg("-EPIPE after %lld ms", (long long)(tc_now_ms() - t0));
	tr_peer_reap(&a);
	shmx_ring_close(c);
}

static void killed_consumer_wakes_the_waiting_producer(void **state)
{
	struct shmx_ring *p;
	struct tr_call *call;
	struct tr_peer a;
	char msg[900];
	int64_t killed, woke;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	tr_peer_start(&a, KEY, SHMX_RING_CONSUMER, TR_ACT_NONE, 0);
	memset(msg, 'x', sizeof(msg));
	while (shmx_ring_send(p, msg, sizeof(msg), SHMX_NONBLOCK) > 0)
		;
	call = tr_call_start(p, TR_SEND, msg, sizeof(msg), 0);
	tc_sleep_ms(600);
	assert_false(tr_call_done(call));
	killed = tc_now_ms();
	tr_peer_kill(&a);
	assert_int_equal(tr_call_finish(call, 5 * TC_1S, NULL, &woke), -EPIPE);
	if (woke - killed > TC_1S)
		fail_msg("-EPIPE %lld ms after the kill", (long long)(woke - killed));
	tr_peer_reap(&a);
	shmx_ring_close(p);
}

/* A process that sleeps until killed (teardown kills it at the latest). */
/* ---- killed while holding a side ---- */

static int second_consumer_gets_the_message(void *arg)
{
	struct shmx_ring *c = tr_child_open(KEY, SHMX_RING_CONSUMER);
	int64_t t0 = tc_now_ms();

	(void)arg;
	TC_CHECK(tr_recv_is(c, 1, 0));
	if (tc_now_ms() - t0 > 2 * TC_1S)
		tc_child_fail(__FILE__, __LINE__, "the message came after %lld ms",
			      (long long)(tc_now_ms() - t0));
	TC_CHECK(tr_recv_is(c, 1, 1));
	TC_CHECK_EQ(shmx_ring_recv(c, NULL, 0, SHMX_NONBLOCK), -EAGAIN);
	shmx_ring_close(c);
	return 0;
}

static void consumer_killed_after_peek_leaves_the_message(void **state)
{
	struct shmx_ring *p;
	struct tr_peer a;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	tr_send_msgs(p, 1, 0, 2);
	tr_peer_start(&a, KEY, SHMX_RING_CONSUMER, TR_ACT_PEEK, 0);
	tr_peer_kill(&a);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, second_consumer_gets_the_message, NULL,
				      5 * TC_1S), 0);
	tr_peer_reap(&a);
	shmx_ring_close(p);
}

static void producer_killed_after_reserve_leaves_no_trace(void **state)
{
	static const size_t advance[] = { 2040, 1528 };
	struct shmx_ring *p, *c;
	struct tr_call *call;
	uint8_t buf[2048];
	struct tr_peer a;
	size_t len = tr_len(1, 0, TR_MIN, TR_MAX);
	int64_t t0, woke;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	/* tail to 3584 (records of 2048 and 1536 bytes), and a message of 200
	 * that stays: the reservation of 500 then needs a pad, at 3792 */
	for (int i = 0; i < 2; i++) {
		memset(buf, 'f', advance[i]);
		assert_int_equal(shmx_ring_send(p, buf, advance[i], 0), advance[i]);
		assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), advance[i]);
	}
	tc_fill(buf, 200, 77);
	assert_int_equal(shmx_ring_send(p, buf, 200, 0), 200);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_RESERVE, 0);
	tr_peer_kill(&a);
	tr_make(buf, len, 1, 0);
	t0 = tc_now_ms();
	call = tr_call_start(p, TR_SEND, buf, len, 0);
	assert_int_equal(tr_call_finish(call, 5 * TC_1S, NULL, &woke), len);
	if (woke - t0 > 2 * TC_1S)
		fail_msg("the producers' side was free %lld ms after the kill",
			 (long long)(woke - t0));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 200);
	assert_int_equal(tc_verify(buf, 200, 77), -1);
	assert_true(tr_recv_is(c, 1, 0));
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	tr_peer_reap(&a);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void one_of_two_producers_killed(void **state)
{
	struct shmx_ring *p, *c;
	struct tr_peer a;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	c = tr_open(KEY, SHMX_RING_CONSUMER);
	tr_peer_start(&a, KEY, SHMX_RING_PRODUCER, TR_ACT_SEND, 2);
	tr_peer_kill(&a);
	assert_true(tr_recv_is(c, 1, 0));
	assert_true(tr_recv_is(c, 1, 1));
	/* the live one is waited for, dead peers looked for meanwhile */
	{
		struct tr_call *call = tr_call_start(c, TR_RECV, NULL, TR_MAX, 0);
		uint8_t in[TR_MAX];
		struct tr_tag t;

		tc_sleep_ms(600);
		assert_false(tr_call_done(call));
		tr_send_msgs(p, 2, 0, 1);
		assert_int_equal(tr_call_finish(call, TC_1S, in, NULL), tr_len(2, 0, TR_MIN, TR_MAX));
		assert_true(tr_check(in, tr_len(2, 0, TR_MIN, TR_MAX), TR_MIN, TR_MAX, &t));
		assert_int_equal(t.who, 2);
	}
	/* the last producer to leave closed: a clean end (shmx_ring(3)) */
	shmx_ring_close(p);
	assert_int_equal(shmx_ring_recv(c, NULL, 0, 0), 0);
	/* a new producer starts a new stream, which can end cleanly */
	p = tr_open(KEY, SHMX_RING_PRODUCER);
	tr_send_msgs(p, 3, 0, 1);
	shmx_ring_close(p);
	assert_true(tr_recv_is(c, 3, 0));
	assert_int_equal(shmx_ring_recv(c, NULL, 0, 0), 0);
	tr_peer_reap(&a);
	shmx_ring_close(c);
}

static void entries_of_dead_processes_are_taken_again(void **state)
{
	struct shmx_ring *p, *x = NULL;
	struct tr_peer a;

	(void)state;
	p = tr_create(KEY, 4096, 0600);
	tr_peer_start(&a, KEY, SHMX_RING_CONSUMER, TR_ACT_OPEN_MANY, SHMX_RING_MAX_PEERS - 1);
	assert_int_equal(shmx_ring_open(KEY, SHMX_RING_CONSUMER, &x), -EUSERS);
	tr_peer_kill(&a);
	/* a zombie: dead already */
	x = tr_open(KEY, SHMX_RING_CONSUMER);
	shmx_ring_close(x);
	tr_peer_reap(&a);
	for (int i = 0; i < 3; i++) {
		x = tr_open(KEY, SHMX_RING_PRODUCER);
		shmx_ring_close(x);
	}
	shmx_ring_close(p);
}

/* ---- many processes ---- */

#define NPROD 3
#define NCONS 2

struct mpmc {
	uint32_t per;
	int ready[2], go[2];
	int who;
	/* shared with the children */
	struct mpmc_out {
		uint32_t count[NCONS];
		uint32_t got[];         /* per consumer NPROD * per: who << 24 | seq */
	} *out;
};

static int mpmc_producer(void *arg)
{
	struct mpmc *m = arg;
	struct shmx_ring *r;
	char c;

	close(m->ready[0]);
	close(m->go[1]);
	r = tr_child_open(KEY, SHMX_RING_PRODUCER);
	tr_signal(m->ready[1]);
	/* all together: EOF on go */
	TC_CHECK_EQ(read(m->go[0], &c, 1), 0);
	tr_send_msgs(r, (uint32_t)m->who, 0, m->per);
	shmx_ring_close(r);
	return 0;
}

static int mpmc_consumer(void *arg)
{
	struct mpmc *m = arg;
	uint32_t *count = &m->out->count[m->who], *got = m->out->got + (size_t)m->who * NPROD * m->per;
	struct shmx_ring *r;
	uint8_t in[TR_MAX];

	close(m->ready[0]);
	close(m->go[1]);
	r = tr_child_open(KEY, SHMX_RING_CONSUMER);
	tr_signal(m->ready[1]);
	for (;;) {
		ssize_t e = shmx_ring_recv(r, in, sizeof(in), 0);
		struct tr_tag t;

		if (e == 0)
			break;
		TC_CHECK(e > 0);
		if (!tr_check(in, (size_t)e, TR_MIN, TR_MAX, &t) || t.who >= NPROD || t.seq >= m->per)
			tc_child_fail(__FILE__, __LINE__, "message %u: %zd bytes, not one sent",
				      *count, e);
		TC_CHECK(*count < NPROD * m->per);
		got[(*count)++] = t.who << 24 | t.seq;
	}
	shmx_ring_close(r);
	return 0;
}

static void producer_and_consumer_processes(void **state)
{
	struct tc_fork prod[NPROD], cons[NCONS];
	struct shmx_ring *p;
	uint8_t *seen;
	uint64_t total = 0;
	struct mpmc m;
	size_t outsz;

	(void)state;
	m.per = TR_SANITIZED ? 2000 : 20000;
	outsz = sizeof(*m.out) + NCONS * (size_t)NPROD * m.per * sizeof(uint32_t);
	m.out = mmap(NULL, outsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(m.out != MAP_FAILED);
	p = tr_create(KEY, 4096, 0600);
	assert_int_equal(pipe(m.ready), 0);
	assert_int_equal(pipe(m.go), 0);
	for (m.who = 0; m.who < NCONS; m.who++)
		tc_fork_start(&cons[m.who], (uid_t)-1, 0, mpmc_consumer, &m);
	for (m.who = 0; m.who < NPROD; m.who++)
		tc_fork_start(&prod[m.who], (uid_t)-1, 0, mpmc_producer, &m);
	close(m.ready[1]);
	for (int i = 0; i < NPROD + NCONS; i++)
		assert_int_equal(tr_wait_byte(m.ready[0], TC_REPLY_MS), 1);
	/* the producers are in; the creator leaves, and off they go */
	shmx_ring_close(p);
	close(m.go[1]);
	for (int i = 0; i < NPROD; i++)
		assert_int_equal(tc_fork_finish(&prod[i], 20 * TC_1S), 0);
	for (int i = 0; i < NCONS; i++)
		assert_int_equal(tc_fork_finish(&cons[i], 5 * TC_1S), 0);
	close(m.ready[0]);
	close(m.go[0]);
	/* each message once; each producer's in order within each consumer */
	seen = calloc(NPROD, m.per);
	for (int c = 0; c < NCONS; c++) {
		int64_t last[NPROD] = { -1, -1, -1 };

		for (uint32_t i = 0; i < m.out->count[c]; i++) {
			uint32_t v = m.out->got[(size_t)c * NPROD * m.per + i];
			uint32_t who = v >> 24, seq = v & 0xffffff;

			if ((int64_t)seq <= last[who])
				fail_msg("consumer %d: %u's message %u after %lld", c, who, seq,
					 (long long)last[who]);
			last[who] = seq;
			if (seen[who * m.per + seq]++)
				fail_msg("%u's message %u delivered twice", who, seq);
			total++;
		}
	}
	assert_int_equal(total, NPROD * m.per);
	/* both consumers had a share (they take turns, and the ring is small) */
	assert_true(m.out->count[0] > 0 && m.out->count[1] > 0);
	free(seen);
	munmap(m.out, outsz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(killed_producer_wakes_the_waiting_consumer),
		tr_test(dead_producers_messages_come_before_epipe),
		tr_test(killed_consumer_wakes_the_waiting_producer),
		tr_test(consumer_killed_after_peek_leaves_the_message),
		tr_test(producer_killed_after_reserve_leaves_no_trace),
		tr_test(one_of_two_producers_killed),
		tr_test(entries_of_dead_processes_are_taken_again),
		tr_test(producer_and_consumer_processes),
	};

	return tr_run_tests("ring-peers", tests, 30);
}
