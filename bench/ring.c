/* SPDX-License-Identifier: MIT */
/*
 * Ring cases (<shmx/ring.h>), producer(s) and consumer in separate
 * processes, beside pipes, sockets, the limit ring, a raw futex and
 * Boost.Interprocess (anchors.c, boost.cc):
 *
 *   64 B stream             vs pipe, SOCK_SEQPACKET       >= 10x pipe msgs/s
 *   4 KiB, 64 KiB stream    vs pipe, the limit ring       >= 3x pipe, >= 50% / 70% of limit
 *   zero copy 4 KiB         vs the limit ring             >= 80%
 *   64 B, 4 KiB             vs Boost message_queue        >= 3x
 *   ping-pong, blocking     vs pipe, raw futex            <= pipe's time
 *   2 producers, 64 B       vs the 1-producer stream      >= 40%
 *
 * Every measurement makes a ring of its own (a new key) and removes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmx.h>
#include <shmx/ring.h>

#include "bench.h"

#define CAP_SMALL (256u << 10)  /* 64 B and 4 KiB messages */
#define CAP_LARGE (1u << 20)    /* 64 KiB messages */
#define CAP_PINGPONG 4096u

static key_t next_key = 0x52000;

/* ---- streams ---- */

struct ring_stream {
	struct bench_stream *s;
	bool zerocopy;
	struct shmx_ring *prod0;        /* the creator's handle, closed once the producers opened */
	struct shmx_ring *cons;
	void *buf;
	int id;
	uint64_t sink;                  /* what zero copy read */
};

static int ring_prod(void *arg, int idx)
{
	struct ring_stream *rs = arg;
	struct bench_stream *s = rs->s;
	struct shmx_ring *p;
	char *src = malloc(s->len);
	uint64_t n = s->n / (uint64_t)s->nprod;
	int r;

	if (!src)
		return -ENOMEM;
	memset(src, 0x5a, s->len);
	r = shmx_ring_open(s->key, SHMX_RING_PRODUCER, &p);
	if (r < 0) {
		bench_error("shmx_ring_open(producer): %s", strerror(-r));
		return r;
	}
	bench_pair_ready();
	for (uint64_t i = 0; i < n && r >= 0; i++) {
		/* producers' messages interleave: their numbers too */
		uint64_t seq = i * (uint64_t)s->nprod + (uint64_t)idx;

		if (rs->zerocopy) {
			void *slot;

			r = shmx_ring_reserve(p, s->len, &slot, 0);
			if (r >= 0) {
				memcpy(slot, src, s->len);
				bench_fill(slot, s->len, seq);
				r = shmx_ring_commit(p, s->len);
			}
		} else {
			bench_fill(src, s->len, seq);
			r = (int)shmx_ring_send(p, src, s->len, 0);
		}
	}
	if (r < 0)
		bench_error("producer %d: %s", idx, strerror(-r));
	shmx_ring_close(p);
	free(src);
	return r < 0 ? r : 0;
}

static int ring_setup(void *arg)
{
	struct ring_stream *rs = arg;
	struct bench_stream *s = rs->s;
	int r;

	rs->id = -1;
	s->key = next_key++;
	rs->buf = malloc(s->len);
	if (!rs->buf)
		return -ENOMEM;
	r = shmx_ring_create(s->key, s->cap, SHMX_EXCL | 0600, &rs->prod0);
	if (r < 0) {
		bench_error("shmx_ring_create(%zu): %s", s->cap, strerror(-r));
		return r;
	}
	rs->id = shmx_ring_id(rs->prod0);
	if (shmx_ring_max_msg(rs->prod0) < s->len) {
		bench_error("a ring of %zu bytes takes messages up to %zu bytes, not %zu", s->cap,
			    shmx_ring_max_msg(rs->prod0), s->len);
		return -EMSGSIZE;
	}
	r = shmx_ring_open(s->key, SHMX_RING_CONSUMER, &rs->cons);
	if (r < 0)
		bench_error("shmx_ring_open(consumer): %s", strerror(-r));
	return r;
}

static int ring_ready(void *arg)
{
	struct ring_stream *rs = arg;

	/* only the measured producers are left */
	shmx_ring_close(rs->prod0);
	rs->prod0 = NULL;
	return 0;
}

static int ring_cons(void *arg)
{
	struct ring_stream *rs = arg;
	struct bench_stream *s = rs->s;
	uint64_t n = s->n / (uint64_t)s->nprod * (uint64_t)s->nprod;

	for (uint64_t seq = 0; seq < n; seq++) {
		const void *msg = rs->buf;
		size_t len = 0;
		ssize_t r;

		if (rs->zerocopy) {
			r = shmx_ring_peek(rs->cons, &msg, &len, 0);
			if (r > 0)
				rs->sink += bench_read_all(msg, len);
		} else {
			r = shmx_ring_recv(rs->cons, rs->buf, s->len, 0);
			len = r > 0 ? (size_t)r : 0;
		}
		if (r <= 0) {
			bench_error("%s, message %llu: %s", rs->zerocopy ? "peek" : "recv",
				    (unsigned long long)seq, r ? strerror((int)-r) : "end of stream");
			return r ? (int)r : -EPIPE;
		}
		if (len != s->len || !(s->nprod == 1 ? bench_check(msg, len, seq) :
				       bench_check_any(msg, len))) {
			bench_error("message %llu arrived damaged (%zu bytes)",
				    (unsigned long long)seq, len);
			return -EBADMSG;
		}
		if (rs->zerocopy && (r = shmx_ring_release(rs->cons)) < 0) {
			bench_error("release: %s", strerror((int)-r));
			return (int)r;
		}
	}
	return 0;
}

static void ring_done(void *arg)
{
	struct ring_stream *rs = arg;

	if (rs->id >= 0)
		shmx_ctl(rs->id, SHMX_RMID, NULL);
	shmx_ring_close(rs->prod0);
	shmx_ring_close(rs->cons);
	free(rs->buf);
}

static int stream(struct bench_stream *s, bool zerocopy, struct bench_meas *m)
{
	struct ring_stream rs = { .s = s, .zerocopy = zerocopy };
	struct bench_pair p = {
		.nprod = s->nprod, .prod = ring_prod, .cons_setup = ring_setup,
		.cons_ready = ring_ready, .cons_run = ring_cons, .cons_done = ring_done,
		.arg = &rs,
	};
	int r = bench_pair_run(&p, &m->secs);

	m->ops = s->n / (uint64_t)s->nprod * (uint64_t)s->nprod;
	m->bytes = m->ops * s->len;
	return r;
}

static int ring_stream(void *arg, struct bench_meas *m)
{
	return stream(arg, false, m);
}

static int ring_zerocopy(void *arg, struct bench_meas *m)
{
	return stream(arg, true, m);
}

/* ---- ping-pong ---- */

struct ring_pp {
	struct bench_stream *s;
	key_t up, down;                 /* parent -> child, child -> parent */
	struct shmx_ring *up_p, *down_p0, *down_c;
	int up_id, down_id;
	void *buf;
};

static int pp_pong(void *arg, int idx)
{
	struct ring_pp *pp = arg;
	size_t len = pp->s->len;
	struct shmx_ring *in = NULL, *out = NULL;
	ssize_t r;

	(void)idx;
	r = shmx_ring_open(pp->up, SHMX_RING_CONSUMER, &in);
	if (r == 0)
		r = shmx_ring_open(pp->down, SHMX_RING_PRODUCER, &out);
	if (r < 0) {
		bench_error("ping-pong: shmx_ring_open: %s", strerror((int)-r));
		return (int)r;
	}
	bench_pair_ready();
	for (uint64_t i = 0; i < pp->s->n && r >= 0; i++) {
		r = shmx_ring_recv(in, pp->buf, len, 0);
		if (r != (ssize_t)len || !bench_check(pp->buf, len, i)) {
			r = r < 0 ? r : -EBADMSG;
			break;
		}
		bench_fill(pp->buf, len, i);
		r = shmx_ring_send(out, pp->buf, len, 0);
	}
	if (r < 0)
		bench_error("pong: %s", strerror((int)-r));
	shmx_ring_close(in);
	shmx_ring_close(out);
	return r < 0 ? (int)r : 0;
}

static int pp_setup(void *arg)
{
	struct ring_pp *pp = arg;
	int r;

	pp->up_id = pp->down_id = -1;
	pp->up = next_key++;
	pp->down = next_key++;
	pp->buf = malloc(pp->s->len);
	if (!pp->buf)
		return -ENOMEM;
	r = shmx_ring_create(pp->up, CAP_PINGPONG, SHMX_EXCL | 0600, &pp->up_p);
	if (r == 0) {
		pp->up_id = shmx_ring_id(pp->up_p);
		r = shmx_ring_create(pp->down, CAP_PINGPONG, SHMX_EXCL | 0600, &pp->down_p0);
	}
	if (r == 0) {
		pp->down_id = shmx_ring_id(pp->down_p0);
		r = shmx_ring_open(pp->down, SHMX_RING_CONSUMER, &pp->down_c);
	}
	if (r < 0)
		bench_error("ping-pong set-up: %s", strerror(-r));
	return r;
}

static int pp_ready(void *arg)
{
	struct ring_pp *pp = arg;

	shmx_ring_close(pp->down_p0);
	pp->down_p0 = NULL;
	return 0;
}

static int pp_ping(void *arg)
{
	struct ring_pp *pp = arg;
	size_t len = pp->s->len;

	for (uint64_t i = 0; i < pp->s->n; i++) {
		ssize_t r;

		bench_fill(pp->buf, len, i);
		r = shmx_ring_send(pp->up_p, pp->buf, len, 0);
		if (r == (ssize_t)len)
			r = shmx_ring_recv(pp->down_c, pp->buf, len, 0);
		if (r != (ssize_t)len || !bench_check(pp->buf, len, i)) {
			bench_error("ping, round trip %llu: %s", (unsigned long long)i,
				    r < 0 ? strerror((int)-r) : "bad message");
			return r < 0 ? (int)r : -EBADMSG;
		}
	}
	return 0;
}

static void pp_done(void *arg)
{
	struct ring_pp *pp = arg;

	if (pp->up_id >= 0)
		shmx_ctl(pp->up_id, SHMX_RMID, NULL);
	if (pp->down_id >= 0)
		shmx_ctl(pp->down_id, SHMX_RMID, NULL);
	shmx_ring_close(pp->up_p);
	shmx_ring_close(pp->down_p0);
	shmx_ring_close(pp->down_c);
	free(pp->buf);
}

static int ring_pingpong(void *arg, struct bench_meas *m)
{
	struct ring_pp pp = { .s = arg };
	struct bench_pair p = {
		.nprod = 1, .prod = pp_pong, .cons_setup = pp_setup, .cons_ready = pp_ready,
		.cons_run = pp_ping, .cons_done = pp_done, .arg = &pp,
	};
	int r = bench_pair_run(&p, &m->secs);

	m->ops = pp.s->n;
	return r;
}

/* ---- the cases ---- */

static struct bench_stream stream_of(size_t len, uint64_t n, size_t cap)
{
	return (struct bench_stream){ .len = len, .n = n, .cap = cap, .nprod = 1 };
}

static void case_spsc_64(void)
{
	struct bench_result *res = bench_new("ring.spsc_64", "ring 64 B, 1 producer 1 consumer",
					     BENCH_MSGS);
	static const char *const names[] = { NULL, "pipe", "AF_UNIX SOCK_SEQPACKET",
					     "limit ring (busy polling)" };
	const bench_fn fns[] = { ring_stream, bench_pipe_stream, bench_seqpacket_stream,
				 bench_limit_stream };
	struct bench_stream x = stream_of(64, bench_iters(1000000, 2000), CAP_SMALL), l = x;
	struct bench_stream p = stream_of(64, bench_iters(300000, 200), CAP_SMALL), q = p;
	void *const args[] = { &x, &p, &q, &l };

	if (!res)
		return;
	bench_note(res, "ring and limit ring capacity %u KiB, pipe buffer the same", CAP_SMALL >> 10);
	if (bench_interleave(res, names, fns, args, 4) == 0)
		bench_target(res, 1, false, 10);
}

static void case_spsc_big(const char *id, const char *title, size_t len, size_t cap,
			  uint64_t n, uint64_t npipe, double vs_limit)
{
	struct bench_result *res = bench_new(id, title, BENCH_GBS);
	static const char *const names[] = { NULL, "pipe", "limit ring (busy polling)" };
	const bench_fn fns[] = { ring_stream, bench_pipe_stream, bench_limit_stream };
	struct bench_stream x = stream_of(len, bench_iters(n, 20), cap);
	struct bench_stream p = stream_of(len, bench_iters(npipe, 20), cap), l = x;
	void *const args[] = { &x, &p, &l };

	if (!res)
		return;
	bench_note(res, "ring and limit ring capacity %zu KiB, pipe buffer the same", cap >> 10);
	if (bench_interleave(res, names, fns, args, 3) == 0) {
		bench_target(res, 1, false, 3);
		bench_target(res, 2, false, vs_limit);
	}
}

static void case_zerocopy(void)
{
	struct bench_result *res = bench_new("ring.zerocopy_4k",
					     "ring 4 KiB zero copy (reserve, peek)",
					     BENCH_GBS);
	static const char *const names[] = { NULL, "limit ring (copying, busy polling)" };
	const bench_fn fns[] = { ring_zerocopy, bench_limit_stream };
	struct bench_stream x = stream_of(4096, bench_iters(250000, 20), CAP_SMALL), l = x;
	void *const args[] = { &x, &l };

	if (!res)
		return;
	bench_note(res, "capacity %u KiB; the producer writes each message in place, the "
		   "consumer reads it in place", CAP_SMALL >> 10);
	if (bench_interleave(res, names, fns, args, 2) == 0)
		bench_target(res, 1, false, 0.8);
}

static void case_boost(const char *id, const char *title, size_t len, enum bench_unit unit,
		       uint64_t n, uint64_t nboost)
{
	struct bench_result *res = bench_new(id, title, unit);
	static const char *const names[] = { NULL, "Boost.Interprocess message_queue" };
	const bench_fn fns[] = { ring_stream, bench_boost_stream };
	struct bench_stream x = stream_of(len, bench_iters(n, 200), CAP_SMALL);
	struct bench_stream b = stream_of(len, bench_iters(nboost, 200), CAP_SMALL);
	void *const args[] = { &x, &b };

	if (!res)
		return;
	if (!bench_boost_available()) {
		bench_skip(res, "built without Boost.Interprocess (Debian: libboost-dev)");
		return;
	}
	bench_note(res, "capacity %u KiB; the queue holds as many messages (%zu)",
		   CAP_SMALL >> 10, CAP_SMALL / len);
	if (bench_interleave(res, names, fns, args, 2) == 0)
		bench_target(res, 1, false, 3);
}

static void case_pingpong(void)
{
	struct bench_result *res = bench_new("ring.pingpong",
					     "ring ping-pong 64 B, both sides blocking", BENCH_US_RT);
	static const char *const names[] = { NULL, "pipe ping-pong", "raw futex ping-pong" };
	const bench_fn fns[] = { ring_pingpong, bench_pipe_pingpong, bench_futex_pingpong };
	struct bench_stream x = stream_of(64, bench_iters(20000, 100), CAP_PINGPONG), p = x, f = x;
	void *const args[] = { &x, &p, &f };

	if (!res)
		return;
	bench_note(res, "two rings of %u bytes; the futex moves no data", CAP_PINGPONG);
	if (bench_interleave(res, names, fns, args, 3) == 0)
		bench_target(res, 1, true, 1);
}

static void case_mpsc(void)
{
	struct bench_result *res = bench_new("ring.mpsc_64", "ring 64 B, 2 producers 1 consumer",
					     BENCH_MSGS);
	static const char *const names[] = { NULL, "the same ring, 1 producer" };
	const bench_fn fns[] = { ring_stream, ring_stream };
	struct bench_stream x = stream_of(64, bench_iters(1000000, 2000), CAP_SMALL), s = x;
	void *const args[] = { &x, &s };

	if (!res)
		return;
	x.nprod = 2;
	bench_note(res, "capacity %u KiB; three processes on this machine's CPUs", CAP_SMALL >> 10);
	if (bench_interleave(res, names, fns, args, 2) == 0)
		bench_target(res, 1, false, 0.4);
}

void bench_ring_cases(void)
{
	case_spsc_64();
	case_spsc_big("ring.spsc_4k", "ring 4 KiB, 1 producer 1 consumer", 4096, CAP_SMALL,
		      250000, 100000, 0.5);
	case_spsc_big("ring.spsc_64k", "ring 64 KiB, 1 producer 1 consumer", 65536, CAP_LARGE,
		      30000, 10000, 0.7);
	case_zerocopy();
	case_boost("ring.boost_64", "ring 64 B vs Boost", 64, BENCH_MSGS, 1000000, 500000);
	case_boost("ring.boost_4k", "ring 4 KiB vs Boost", 4096, BENCH_GBS, 250000, 150000);
	case_pingpong();
	case_mpsc();
}
