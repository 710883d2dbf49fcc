/* SPDX-License-Identifier: MIT */
/*
 * Rings, the messages, in one process: boundaries kept at every size and
 * position, the argument errors, zero copy (reserve/commit, peek/release),
 * the end of the stream, and -EPIPE without consumers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring-util.h"

#define MAXBUF (1u << 16)

/* ---- messages ---- */

static void messages_of_every_size_keep_their_bounds(void **state)
{
	struct shmx_ring *p, *c;
	uint8_t *out = malloc(MAXBUF), *in = malloc(MAXBUF);
	size_t max;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	max = shmx_ring_max_msg(p);
	assert_int_equal(max, 2040);
	/* one at a time: every length, from every position the data reaches */
	for (size_t len = 1; len <= max; len++) {
		tc_fill(out, len, (unsigned)len);
		assert_int_equal(shmx_ring_send(p, out, len, SHMX_NONBLOCK), len);
		memset(in, 0xee, len + 16);
		assert_int_equal(shmx_ring_recv(c, in, MAXBUF, SHMX_NONBLOCK), len);
		if (tc_verify(in, len, (unsigned)len) != -1)
			fail_msg("message of %zu bytes differs at %ld", len,
				 tc_verify(in, len, (unsigned)len));
		/* not a byte more written */
		assert_int_equal(in[len], 0xee);
	}
	/* batches up to full, of each length, read back in order */
	for (size_t len = 1; len <= max; len += len < 64 ? 1 : 37) {
		uint32_t sent = 0, got = 0;
		ssize_t e;

		for (;; sent++) {
			tr_make(out, len < 8 ? 8 : len, 9, sent);
			e = shmx_ring_send(p, out, len, SHMX_NONBLOCK);
			if (e == -EAGAIN)
				break;
			assert_int_equal(e, len);
		}
		assert_true(sent >= 1);
		for (; got < sent; got++) {
			tr_make(out, len < 8 ? 8 : len, 9, got);
			assert_int_equal(shmx_ring_recv(c, in, len, SHMX_NONBLOCK), len);
			assert_memory_equal(in, out, len);
		}
		assert_int_equal(shmx_ring_recv(c, in, MAXBUF, SHMX_NONBLOCK), -EAGAIN);
	}
	free(out);
	free(in);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void largest_message_fits_an_empty_ring_anywhere(void **state)
{
	struct shmx_ring *p, *c;
	uint8_t *buf = malloc(MAXBUF);
	size_t max;

	(void)state;
	/* a capacity of 8192: wherever head is, an empty ring takes max_msg (a
	 * record of half the area, after a pad of up to the other half) */
	p = tr_create(tc_key(1), 8192, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	max = shmx_ring_max_msg(p);
	assert_int_equal(max, 4088);
	for (unsigned round = 0; round < 1100; round++) {
		tc_fill(buf, max, round);
		if (shmx_ring_send(p, buf, max, SHMX_NONBLOCK) != (ssize_t)max)
			fail_msg("round %u: a message of max_msg does not fit the empty ring", round);
		memset(buf, 0, max);
		assert_int_equal(shmx_ring_recv(c, buf, max, SHMX_NONBLOCK), max);
		assert_int_equal(tc_verify(buf, max, round), -1);
		/* one byte more than max never fits */
		assert_int_equal(shmx_ring_send(p, buf, max + 1, SHMX_NONBLOCK), -EMSGSIZE);
		/* head moves on by 16 bytes: the next round starts elsewhere */
		assert_int_equal(shmx_ring_send(p, buf, 1, 0), 1);
		assert_int_equal(shmx_ring_recv(c, buf, MAXBUF, 0), 1);
	}
	free(buf);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void send_and_recv_reject_bad_arguments(void **state)
{
	struct shmx_ring *p, *c;
	char buf[64];
	const void *m;
	size_t ml;
	void *slot;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(p, "x", 0, 0), -EINVAL);
	assert_int_equal(shmx_ring_send(p, buf, 2041, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_send(p, buf, SIZE_MAX, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_send(p, buf, (size_t)1 << 32, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_send(p, "x", 1, 2), -EINVAL);
	assert_int_equal(shmx_ring_send(p, "x", 1, -1), -EINVAL);
	assert_int_equal(shmx_ring_reserve(p, 0, &slot, 0), -EINVAL);
	assert_int_equal(shmx_ring_reserve(p, 2041, &slot, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_reserve(p, 8, &slot, 2), -EINVAL);
	assert_int_equal(shmx_ring_reserve(p, 8, NULL, 0), -EINVAL);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 2), -EINVAL);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, 2), -EINVAL);
	assert_int_equal(shmx_ring_peek(c, NULL, &ml, SHMX_NONBLOCK), -EINVAL);
	assert_int_equal(shmx_ring_peek(c, &m, NULL, SHMX_NONBLOCK), -EINVAL);
	/* the wrong role */
	assert_int_equal(shmx_ring_recv(p, buf, sizeof(buf), SHMX_NONBLOCK), -EBADF);
	assert_int_equal(shmx_ring_peek(p, &m, &ml, SHMX_NONBLOCK), -EBADF);
	assert_int_equal(shmx_ring_send(c, "x", 1, SHMX_NONBLOCK), -EBADF);
	assert_int_equal(shmx_ring_reserve(c, 8, &slot, SHMX_NONBLOCK), -EBADF);
	assert_int_equal(shmx_ring_commit(c, 1), -EBADF);
	assert_int_equal(shmx_ring_release(p), -EBADF);
	/* nothing got in on the way */
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	/* the largest is fine */
	{
		char *big = malloc(2040);

		tc_fill(big, 2040, 3);
		assert_int_equal(shmx_ring_send(p, big, 2040, 0), 2040);
		memset(big, 0, 2040);
		assert_int_equal(shmx_ring_recv(c, big, 2040, 0), 2040);
		assert_int_equal(tc_verify(big, 2040, 3), -1);
		free(big);
	}
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void short_buffer_leaves_the_message(void **state)
{
	struct shmx_ring *p, *c;
	char out[200], in[200];

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	tc_fill(out, 100, 5);
	assert_int_equal(shmx_ring_send(p, out, 100, 0), 100);
	assert_int_equal(shmx_ring_send(p, "next", 4, 0), 4);
	assert_int_equal(shmx_ring_recv(c, in, 99, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_recv(c, in, 0, 0), -EMSGSIZE);
	assert_int_equal(shmx_ring_recv(c, in, 1, SHMX_NONBLOCK), -EMSGSIZE);
	assert_int_equal(shmx_ring_recv(c, in, 100, 0), 100);
	assert_int_equal(tc_verify(in, 100, 5), -1);
	assert_int_equal(shmx_ring_recv(c, in, 4, 0), 4);
	assert_memory_equal(in, "next", 4);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void nonblock_on_full_and_empty_is_eagain(void **state)
{
	struct shmx_ring *p, *c;
	char buf[1000];
	void *slot;
	const void *m;
	size_t ml;
	int n = 0;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, SHMX_NONBLOCK), -EAGAIN);
	memset(buf, 'f', sizeof(buf));
	while (shmx_ring_send(p, buf, sizeof(buf), SHMX_NONBLOCK) == (ssize_t)sizeof(buf))
		assert_true(++n < 100);
	/* 4096 bytes take four records of 1008 (three, if one needed a pad) */
	assert_true(n >= 3 && n <= 4);
	assert_int_equal(shmx_ring_send(p, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_reserve(p, sizeof(buf), &slot, SHMX_NONBLOCK), -EAGAIN);
	/* still usable after the refusals */
	for (int i = 0; i < n; i++)
		assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), sizeof(buf));
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_send(p, buf, sizeof(buf), SHMX_NONBLOCK), sizeof(buf));
	shmx_ring_close(p);
	shmx_ring_close(c);
}

/* ---- zero copy ---- */

static void reserve_and_commit(void **state)
{
	struct shmx_ring *p, *c;
	uint8_t in[2048];
	void *slot = NULL;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_commit(p, 1), -EINVAL);
	assert_int_equal(shmx_ring_commit(p, 0), -EINVAL);
	/* commit sends the first n bytes of the room */
	for (unsigned i = 0; i < 400; i++) {
		size_t len = 1 + (i * 53) % 2040, n = 1 + (i * 31) % len;

		assert_int_equal(shmx_ring_reserve(p, len, &slot, SHMX_NONBLOCK), 0);
		assert_non_null(slot);
		tc_fill(slot, len, i);
		assert_int_equal(shmx_ring_commit(p, n), 0);
		assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), n);
		assert_int_equal(tc_verify(in, n, i), -1);
	}
	/* commit(0) sends nothing */
	assert_int_equal(shmx_ring_reserve(p, 100, &slot, 0), 0);
	memset(slot, 'z', 100);
	assert_int_equal(shmx_ring_commit(p, 0), 0);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	/* more than reserved: refused, and the reservation stays */
	assert_int_equal(shmx_ring_reserve(p, 100, &slot, 0), 0);
	memset(slot, 'y', 100);
	assert_int_equal(shmx_ring_commit(p, 101), -EINVAL);
	assert_int_equal(shmx_ring_commit(p, 100), 0);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 100);
	assert_int_equal(in[0], 'y');
	assert_int_equal(in[99], 'y');
	/* a commit is one: the second has nothing to commit */
	assert_int_equal(shmx_ring_commit(p, 1), -EINVAL);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

static void peek_and_release(void **state)
{
	struct shmx_ring *p, *c;
	const void *m = NULL;
	size_t ml = 0;
	char in[64];

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_release(c), -EINVAL);
	assert_int_equal(shmx_ring_send(p, "one", 3, 0), 3);
	assert_int_equal(shmx_ring_send(p, "two!", 4, 0), 4);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, 0), 3);
	assert_int_equal(ml, 3);
	assert_memory_equal(m, "one", 3);
	assert_int_equal(shmx_ring_release(c), 0);
	assert_int_equal(shmx_ring_release(c), -EINVAL);
	/* peek does not consume until release */
	assert_int_equal(shmx_ring_peek(c, &m, &ml, SHMX_NONBLOCK), 4);
	assert_memory_equal(m, "two!", 4);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, SHMX_NONBLOCK), -EBUSY);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EBUSY);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), -EBUSY);
	assert_memory_equal(m, "two!", 4);
	assert_int_equal(shmx_ring_release(c), 0);
	assert_int_equal(shmx_ring_peek(c, &m, &ml, SHMX_NONBLOCK), -EAGAIN);
	/* every size, across the wrap */
	for (unsigned i = 0; i < 300; i++) {
		size_t len = 1 + (i * 67) % 2040;
		char *out = malloc(len);

		tc_fill(out, len, i);
		assert_int_equal(shmx_ring_send(p, out, len, SHMX_NONBLOCK), len);
		assert_int_equal(shmx_ring_peek(c, &m, &ml, SHMX_NONBLOCK), len);
		assert_int_equal(ml, len);
		assert_int_equal(tc_verify(m, len, i), -1);
		assert_int_equal(shmx_ring_release(c), 0);
		free(out);
	}
	/* end of stream: 0 and no message */
	shmx_ring_close(p);
	m = in;
	ml = 77;
	assert_int_equal(shmx_ring_peek(c, &m, &ml, 0), 0);
	assert_null(m);
	assert_int_equal(shmx_ring_release(c), -EINVAL);
	shmx_ring_close(c);
}

static void one_pending_pair_per_thread_is_ebusy(void **state)
{
	struct shmx_ring *p, *c;
	void *slot, *slot2;
	char in[64];

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_reserve(p, 10, &slot, 0), 0);
	/* without EBUSY these would wait for the thread itself */
	assert_int_equal(shmx_ring_reserve(p, 10, &slot2, 0), -EBUSY);
	assert_int_equal(shmx_ring_reserve(p, 10, &slot2, SHMX_NONBLOCK), -EBUSY);
	assert_int_equal(shmx_ring_send(p, "x", 1, 0), -EBUSY);
	memcpy(slot, "0123456789", 10);
	assert_int_equal(shmx_ring_commit(p, 10), 0);
	assert_int_equal(shmx_ring_send(p, "x", 1, 0), 1);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 10);
	assert_memory_equal(in, "0123456789", 10);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 1);
	shmx_ring_close(p);
	shmx_ring_close(c);
}

/* ---- end of the stream ---- */

static void recv_after_last_producer_closed_drains_then_returns_0(void **state)
{
	struct shmx_ring *p1, *p2, *c;
	char in[64];

	(void)state;
	p1 = tr_create(tc_key(1), 4096, 0600);
	p2 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(p1, "a", 1, 0), 1);
	assert_int_equal(shmx_ring_send(p2, "b", 1, 0), 1);
	shmx_ring_close(p1);
	/* one producer left: still waiting, not the end */
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 1);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 1);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_send(p2, "c", 1, 0), 1);
	shmx_ring_close(p2);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 1);
	assert_int_equal(in[0], 'c');
	for (int i = 0; i < 3; i++) {
		assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 0);
		assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), 0);
	}
	/* a new producer starts a new stream */
	p1 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_send(p1, "d", 1, 0), 1);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 1);
	shmx_ring_close(p1);
	shmx_ring_close(c);
}

/* Fills the ring with messages of 500 bytes: how many it took. */
static int fill(struct shmx_ring *p)
{
	char buf[500];
	int n = 0;

	memset(buf, 'f', sizeof(buf));
	while (shmx_ring_send(p, buf, sizeof(buf), SHMX_NONBLOCK) == (ssize_t)sizeof(buf))
		n++;
	return n;
}

static void send_after_the_last_consumer_closed_is_epipe(void **state)
{
	struct shmx_ring *p, *c1, *c2;
	void *slot;
	char in[600];
	int n;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	/* no consumer yet: messages wait for one, and a full ring is -EAGAIN */
	assert_int_equal(shmx_ring_send(p, "early", 5, 0), 5);
	n = fill(p);
	assert_true(n >= 6);
	assert_int_equal(shmx_ring_send(p, in, 500, SHMX_NONBLOCK), -EAGAIN);
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	c2 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_recv(c2, in, sizeof(in), 0), 5);
	shmx_ring_close(c1);
	/* one consumer left: a full ring is still only full */
	assert_int_equal(shmx_ring_send(p, in, 500, SHMX_NONBLOCK), -EAGAIN);
	shmx_ring_close(c2);
	/* none left: nobody will make room */
	assert_int_equal(shmx_ring_send(p, in, 500, 0), -EPIPE);
	assert_int_equal(shmx_ring_send(p, in, 500, SHMX_NONBLOCK), -EPIPE);
	assert_int_equal(shmx_ring_reserve(p, 500, &slot, 0), -EPIPE);
	/* a new consumer: sending works again, and what was left is there */
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	for (int i = 0; i < n; i++)
		assert_int_equal(shmx_ring_recv(c1, in, sizeof(in), 0), 500);
	assert_int_equal(shmx_ring_send(p, "again", 5, 0), 5);
	assert_int_equal(shmx_ring_recv(c1, in, sizeof(in), 0), 5);
	assert_memory_equal(in, "again", 5);
	shmx_ring_close(c1);
	shmx_ring_close(p);
}

/*
 * The header: "send gets -EPIPE once the ring has had a consumer and has
 * none left" -- like write(2) to a pipe without readers, whether or not
 * there is room.
 */
static void send_with_room_but_no_consumer_left_is_epipe(void **state)
{
	struct shmx_ring *p, *c;
	void *slot;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(p, "one", 3, 0), 3);
	shmx_ring_close(c);
	assert_int_equal(shmx_ring_send(p, "none", 4, 0), -EPIPE);
	assert_int_equal(shmx_ring_send(p, "none", 4, SHMX_NONBLOCK), -EPIPE);
	assert_int_equal(shmx_ring_reserve(p, 4, &slot, 0), -EPIPE);
	shmx_ring_close(p);
}

/* A producer thread that sends one message after a pause. */
static void *send_later(void *arg)
{
	struct shmx_ring *p = arg;

	tc_sleep_ms(450);
	if (shmx_ring_send(p, "late", 4, 0) != 4)
		abort();
	return NULL;
}

static void calls_leave_errno_alone(void **state)
{
	struct shmx_ring *p, *c, *x;
	char buf[16];
	pthread_t t;

	(void)state;
	errno = EDOM;
	p = tr_create(tc_key(1), 4096, 0600);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(errno, EDOM);
	/* failures */
	assert_int_equal(shmx_ring_open(tc_key(2), SHMX_RING_CONSUMER, &x), -ENOENT);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), SHMX_NONBLOCK), -EAGAIN);
	assert_int_equal(shmx_ring_send(p, buf, 0, 0), -EINVAL);
	assert_int_equal(errno, EDOM);
	/* a recv that sleeps (its futex waits time out and are woken) */
	assert_int_equal(pthread_create(&t, NULL, send_later, p), 0);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 4);
	assert_int_equal(errno, EDOM);
	assert_int_equal(pthread_join(t, NULL), 0);
	shmx_ring_close(p);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 0);
	shmx_ring_close(c);
	assert_int_equal(errno, EDOM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(messages_of_every_size_keep_their_bounds),
		tr_test(largest_message_fits_an_empty_ring_anywhere),
		tr_test(send_and_recv_reject_bad_arguments),
		tr_test(short_buffer_leaves_the_message),
		tr_test(nonblock_on_full_and_empty_is_eagain),
		tr_test(reserve_and_commit),
		tr_test(peek_and_release),
		tr_test(one_pending_pair_per_thread_is_ebusy),
		tr_test(recv_after_last_producer_closed_drains_then_returns_0),
		tr_test(send_after_the_last_consumer_closed_is_epipe),
		tr_test(send_with_room_but_no_consumer_left_is_epipe),
		tr_test(calls_leave_errno_alone),
	};

	return tr_run_tests("ring-msg", tests, 30);
}
