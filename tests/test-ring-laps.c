/* SPDX-License-Identifier: MIT */
/*
 * Rings whose positions went round 2^32 (they wrap at 32 bits): a handle
 * that sat idle while others of its side moved the index by a multiple of
 * 2^32 bytes, and a handle new to a ring whose index is such a multiple,
 * must not trust the other side's index as they last saw it.  Also what the
 * review of the ring found about locks and calls that never wait.
 *
 * 2^32 bytes go through in about 8192 records of half a 1 MiB ring: the
 * tests reserve and commit without writing the bytes, so it is quick.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring-util.h"

#define CAP (1u << 20)

static size_t records_per_lap(const struct shmx_ring *r)
{
	return (size_t)((UINT64_C(1) << 32) / (shmx_ring_max_msg(r) + 8));
}

static void send_max(struct shmx_ring *p, uint64_t seq)
{
	void *slot;

	assert_int_equal(shmx_ring_reserve(p, shmx_ring_max_msg(p), &slot, SHMX_NONBLOCK), 0);
	memcpy(slot, &seq, sizeof(seq));
	assert_int_equal(shmx_ring_commit(p, shmx_ring_max_msg(p)), 0);
}

static uint64_t recv_max(struct shmx_ring *c)
{
	const void *m;
	uint64_t seq;
	size_t len;

	assert_int_equal(shmx_ring_peek(c, &m, &len, SHMX_NONBLOCK), (int)shmx_ring_max_msg(c));
	memcpy(&seq, m, sizeof(seq));
	assert_int_equal(shmx_ring_release(c), 0);
	return seq;
}

/* p2 sends a whole lap while p1 sits idle; the ring is then full. */
static void idle_producer_after_a_lap_sees_the_ring_full(void **state)
{
	struct shmx_ring *p1, *p2, *c;
	size_t n;
	void *slot;

	(void)state;
	p1 = tr_create(tc_key(1), CAP, 0600);
	p2 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	n = records_per_lap(p1);
	send_max(p1, 0);
	assert_int_equal(recv_max(c), 0);
	for (size_t i = 1; i <= n; i++) {
		send_max(p2, i);
		if (i < n - 1)
			assert_int_equal(recv_max(c), i);
	}
	/* two unread records fill it */
	assert_int_equal(shmx_ring_reserve(p1, shmx_ring_max_msg(p1), &slot, SHMX_NONBLOCK),
			 -EAGAIN);
	assert_int_equal(recv_max(c), n - 1);
	assert_int_equal(recv_max(c), n);
	shmx_ring_close(p1);
	shmx_ring_close(p2);
	shmx_ring_close(c);
}

/* c2 takes a whole lap while c1 sits idle; the ring is then empty. */
static void idle_consumer_after_a_lap_sees_the_ring_empty(void **state)
{
	struct shmx_ring *p, *c1, *c2;
	const void *m;
	size_t n, len;

	(void)state;
	p = tr_create(tc_key(1), CAP, 0600);
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	c2 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	n = records_per_lap(p);
	send_max(p, 0);
	send_max(p, 1);
	assert_int_equal(recv_max(c1), 0);
	for (size_t i = 1; i <= n; i++) {
		assert_int_equal(recv_max(c2), i);
		if (i < n)
			send_max(p, i + 1);
	}
	/* nothing is left: no old record delivered twice */
	assert_int_equal(shmx_ring_peek(c1, &m, &len, SHMX_NONBLOCK), -EAGAIN);
	send_max(p, n + 1);
	assert_int_equal(recv_max(c1), n + 1);
	shmx_ring_close(p);
	shmx_ring_close(c1);
	shmx_ring_close(c2);
}

/* A producer opened when tail is a multiple of 2^32 and the ring is full. */
static void new_producer_at_a_lap_sees_the_ring_full(void **state)
{
	struct shmx_ring *p1, *p2, *c;
	size_t n;
	void *slot;

	(void)state;
	p1 = tr_create(tc_key(1), CAP, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	n = records_per_lap(p1);
	for (size_t i = 0; i < n; i++) {
		send_max(p1, i);
		if (i < n - 2)
			assert_int_equal(recv_max(c), i);
	}
	assert_int_equal(atomic_load(&tr_hdr(p1)->tail), 0);
	p2 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	assert_int_equal(shmx_ring_reserve(p2, shmx_ring_max_msg(p2), &slot, SHMX_NONBLOCK),
			 -EAGAIN);
	assert_int_equal(recv_max(c), n - 2);
	assert_int_equal(recv_max(c), n - 1);
	shmx_ring_close(p1);
	shmx_ring_close(p2);
	shmx_ring_close(c);
}

/* A consumer killed between peek and release: another one that only ever
 * calls with SHMX_NONBLOCK still gets the messages, within a second or so. */
static void nonblocking_consumer_notices_a_dead_holder(void **state)
{
	struct shmx_ring *p, *c2;
	int64_t end;
	char buf[16];
	ssize_t n = -EAGAIN;
	pid_t pid;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c2 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	for (int i = 0; i < 3; i++)
		assert_int_equal(shmx_ring_send(p, "msg", 3, 0), 3);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shmx_ring *c;
		const void *m;
		size_t len;

		if (shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, &c) < 0 ||
		    shmx_ring_peek(c, &m, &len, 0) != 3)
			_exit(1);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	end = tc_now_ms() + 2 * TC_1S;
	while ((n = shmx_ring_recv(c2, buf, sizeof(buf), SHMX_NONBLOCK)) == -EAGAIN &&
	       tc_now_ms() < end)
		tc_sleep_ms(10);
	assert_int_equal(n, 3);
	shmx_ring_close(p);
	shmx_ring_close(c2);
}

static struct shmx_ring *sender_ring;
static ssize_t sender_result = 1;

static void *send_one(void *arg)
{
	(void)arg;
	sender_result = shmx_ring_send(sender_ring, "x", 1, 0);
	return NULL;
}

/* A lock word with only the sleepers' flag (no holder) is a free lock. */
static void lock_with_only_the_sleepers_flag_is_free(void **state)
{
	struct shmx_ring *c;
	char buf[4];
	pthread_t t;

	(void)state;
	sender_ring = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	atomic_store(&tr_hdr(sender_ring)->prod_lock, SHMX_LOCK_WAITERS);
	assert_int_equal(pthread_create(&t, NULL, send_one, NULL), 0);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sender_result, 1);
	shmx_ring_close(sender_ring);
	shmx_ring_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(idle_producer_after_a_lap_sees_the_ring_full),
		tr_test(idle_consumer_after_a_lap_sees_the_ring_empty),
		tr_test(new_producer_at_a_lap_sees_the_ring_full),
		tr_test(nonblocking_consumer_notices_a_dead_holder),
		tr_test(lock_with_only_the_sleepers_flag_is_free),
	};

	return tr_run_tests("ring-laps", tests, 30);
}
