/* SPDX-License-Identifier: MIT */
/*
 * The anchors the ring is compared with, each moving the same messages
 * between the same processes with the same touching of the data (pair.c):
 *
 *   pipe              write/read; its buffer set to the ring's capacity
 *                     (F_SETPIPE_SZ, as far as pipe-max-size allows)
 *   SOCK_SEQPACKET    AF_UNIX send/recv, default buffers
 *   the limit ring    the least a copying shared-memory ring can do: one
 *                     producer, one consumer, busy polling (no futex, no
 *                     checks, no peers), the ring's record format and cache
 *                     line split, cached copies of the other side's index
 *   raw futex         ping-pong on one word, both sides always sleeping and
 *                     waking with a syscall
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define STUCK_SECS 10.0         /* a busy-polling side that sees nothing this long gives up */

/* A spin-wait step; every 1024th gives the CPU away, so that a busy machine
 * (a third task on our CPU) does not leave the other side waiting a time
 * slice for nothing: the limit ring stays the best a copying ring can do. */
static inline void cpu_relax(unsigned spins)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
	if ((spins & 1023) == 1023)
		sched_yield();
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t k = write(fd, c, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		c += k;
		len -= (size_t)k;
	}
	return 0;
}

/* A whole message of len bytes, or -EPIPE at the end of the stream. */
static int read_all(int fd, void *p, size_t len)
{
	char *c = p;

	while (len) {
		ssize_t k = read(fd, c, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EPIPE;
		c += k;
		len -= (size_t)k;
	}
	return 0;
}

/* ---- pipe and SOCK_SEQPACKET streams ---- */

struct fd_stream {
	struct bench_stream *s;
	int fd[2];              /* [0] the consumer's end, [1] the producer's */
	bool seqpacket;
	void *buf;
};

static int fd_prod(void *arg, int idx)
{
	struct fd_stream *f = arg;
	size_t len = f->s->len;
	char *src = malloc(len);
	int r = 0;

	(void)idx;
	close(f->fd[0]);
	if (!src)
		return -ENOMEM;
	memset(src, 0x5a, len);
	bench_pair_ready();
	for (uint64_t seq = 0; seq < f->s->n && r == 0; seq++) {
		bench_fill(src, len, seq);
		if (f->seqpacket)
			r = send(f->fd[1], src, len, 0) == (ssize_t)len ? 0 : -EIO;
		else
			r = write_all(f->fd[1], src, len);
	}
	free(src);
	return r;
}

static int fd_setup(void *arg)
{
	struct fd_stream *f = arg;

	f->fd[0] = f->fd[1] = -1;
	f->buf = malloc(f->s->len);
	if (!f->buf)
		return -ENOMEM;
	if (f->seqpacket) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, f->fd) < 0)
			return -errno;
	} else {
		if (pipe(f->fd) < 0)
			return -errno;
		/* as much buffer as the ring has: best effort (pipe-max-size) */
		fcntl(f->fd[1], F_SETPIPE_SZ, (int)(f->s->cap > INT_MAX ? INT_MAX : f->s->cap));
	}
	return 0;
}

static int fd_ready(void *arg)
{
	struct fd_stream *f = arg;

	/* so that a producer that dies ends the stream */
	close(f->fd[1]);
	f->fd[1] = -1;
	return 0;
}

static int fd_cons(void *arg)
{
	struct fd_stream *f = arg;
	size_t len = f->s->len;

	for (uint64_t seq = 0; seq < f->s->n; seq++) {
		int r;

		if (f->seqpacket)
			r = recv(f->fd[0], f->buf, len, 0) == (ssize_t)len ? 0 : -EIO;
		else
			r = read_all(f->fd[0], f->buf, len);
		if (r < 0) {
			bench_error("%s: message %llu: %s", f->seqpacket ? "recv" : "read",
				    (unsigned long long)seq, strerror(-r));
			return r;
		}
		if (!bench_check(f->buf, len, seq)) {
			bench_error("message %llu arrived damaged", (unsigned long long)seq);
			return -EBADMSG;
		}
	}
	return 0;
}

static void fd_done(void *arg)
{
	struct fd_stream *f = arg;

	for (int i = 0; i < 2; i++)
		if (f->fd[i] >= 0)
			close(f->fd[i]);
	free(f->buf);
}

static int fd_stream(struct bench_stream *s, bool seqpacket, struct bench_meas *m)
{
	struct fd_stream f = { .s = s, .seqpacket = seqpacket };
	struct bench_pair p = {
		.nprod = 1, .prod = fd_prod, .cons_setup = fd_setup, .cons_ready = fd_ready,
		.cons_run = fd_cons, .cons_done = fd_done, .arg = &f,
	};
	int r = bench_pair_run(&p, &m->secs);

	m->ops = s->n;
	m->bytes = s->n * s->len;
	return r;
}

int bench_pipe_stream(void *arg, struct bench_meas *m)
{
	return fd_stream(arg, false, m);
}

int bench_seqpacket_stream(void *arg, struct bench_meas *m)
{
	return fd_stream(arg, true, m);
}

/* ---- the limit ring ---- */

struct limit_hdr {
	_Alignas(64) _Atomic uint32_t tail;     /* the producer's line */
	_Alignas(64) _Atomic uint32_t head;     /* the consumer's line */
	_Alignas(64) char data[];
};

#define REC_MSG 1u
#define REC_PAD 2u

struct limit {
	struct bench_stream *s;
	struct limit_hdr *h;
	size_t maplen;
	void *buf;
};

static inline uint32_t rec_size(size_t len)
{
	return 8 + (((uint32_t)len + 7) & ~7u);
}

static int limit_prod(void *arg, int idx)
{
	struct limit *l = arg;
	struct limit_hdr *h = l->h;
	uint32_t cap = (uint32_t)l->s->cap, len = (uint32_t)l->s->len, rec = rec_size(len);
	uint32_t tail = 0, head = 0;
	char *src = malloc(len);
	double stuck = 0;

	(void)idx;
	if (!src)
		return -ENOMEM;
	memset(src, 0x5a, len);
	bench_pair_ready();
	for (uint64_t seq = 0; seq < l->s->n; seq++) {
		uint32_t off = tail & (cap - 1);
		uint32_t need = rec + (off + rec > cap ? cap - off : 0);
		uint32_t hdr[2] = { len, REC_MSG };

		bench_fill(src, len, seq);
		for (unsigned spins = 0; cap - (tail - head) < need; spins++) {
			head = atomic_load_explicit(&h->head, memory_order_acquire);
			cpu_relax(spins);
			if ((spins & 0xfffff) == 0xfffff) {
				if (!stuck)
					stuck = bench_now();
				else if (bench_now() - stuck > STUCK_SECS)
					return -ETIMEDOUT;
			}
		}
		stuck = 0;
		if (off + rec > cap) {
			uint32_t pad[2] = { cap - off - 8, REC_PAD };

			memcpy(h->data + off, pad, 8);
			tail += cap - off;
			off = 0;
		}
		memcpy(h->data + off, hdr, 8);
		memcpy(h->data + off + 8, src, len);
		tail += rec;
		atomic_store_explicit(&h->tail, tail, memory_order_release);
	}
	free(src);
	return 0;
}

static int limit_setup(void *arg)
{
	struct limit *l = arg;

	l->maplen = sizeof(struct limit_hdr) + l->s->cap;
	l->h = mmap(NULL, l->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l->h == MAP_FAILED) {
		l->h = NULL;
		return -errno;
	}
	l->buf = malloc(l->s->len);
	return l->buf ? 0 : -ENOMEM;
}

static int limit_cons(void *arg)
{
	struct limit *l = arg;
	struct limit_hdr *h = l->h;
	uint32_t cap = (uint32_t)l->s->cap, head = 0, tail = 0;
	double stuck = 0;

	for (uint64_t seq = 0; seq < l->s->n;) {
		uint32_t off, hdr[2];

		for (unsigned spins = 0; head == tail; spins++) {
			tail = atomic_load_explicit(&h->tail, memory_order_acquire);
			if (head != tail)
				break;
			cpu_relax(spins);
			if ((spins & 0xfffff) == 0xfffff) {
				if (!stuck)
					stuck = bench_now();
				else if (bench_now() - stuck > STUCK_SECS) {
					bench_error("limit ring: no message for %.0f s", STUCK_SECS);
					return -ETIMEDOUT;
				}
			}
		}
		stuck = 0;
		off = head & (cap - 1);
		memcpy(hdr, h->data + off, 8);
		if (hdr[1] == REC_PAD) {
			head += cap - off;
			continue;
		}
		if (hdr[0] != l->s->len) {
			bench_error("limit ring: a record of %u bytes", hdr[0]);
			return -EBADMSG;
		}
		memcpy(l->buf, h->data + off + 8, hdr[0]);
		head += rec_size(hdr[0]);
		atomic_store_explicit(&h->head, head, memory_order_release);
		if (!bench_check(l->buf, hdr[0], seq)) {
			bench_error("limit ring: message %llu damaged", (unsigned long long)seq);
			return -EBADMSG;
		}
		seq++;
	}
	return 0;
}

static void limit_done(void *arg)
{
	struct limit *l = arg;

	if (l->h)
		munmap(l->h, l->maplen);
	free(l->buf);
}

int bench_limit_stream(void *arg, struct bench_meas *m)
{
	struct bench_stream *s = arg;
	struct limit l = { .s = s };
	struct bench_pair p = {
		.nprod = 1, .prod = limit_prod, .cons_setup = limit_setup,
		.cons_run = limit_cons, .cons_done = limit_done, .arg = &l,
	};
	int r;

	if (s->cap & (s->cap - 1) || rec_size(s->len) * 2 > s->cap)
		return -EINVAL;
	r = bench_pair_run(&p, &m->secs);
	m->ops = s->n;
	m->bytes = s->n * s->len;
	return r;
}

/* ---- ping-pong: pipe, raw futex ---- */

struct pingpong {
	struct bench_stream *s;
	int up[2], down[2];     /* pipes: parent -> child, child -> parent */
	_Atomic uint32_t *turn; /* futex: 0 the parent's, 1 the child's */
	void *buf;
};

static int pipe_pong(void *arg, int idx)
{
	struct pingpong *pp = arg;
	size_t len = pp->s->len;
	int r = 0;

	(void)idx;
	close(pp->up[1]);
	close(pp->down[0]);
	bench_pair_ready();
	for (uint64_t i = 0; i < pp->s->n && r == 0; i++) {
		r = read_all(pp->up[0], pp->buf, len);
		if (r == 0 && !bench_check(pp->buf, len, i))
			r = -EBADMSG;
		if (r == 0) {
			bench_fill(pp->buf, len, i);
			r = write_all(pp->down[1], pp->buf, len);
		}
	}
	return r;
}

static int pipe_pp_setup(void *arg)
{
	struct pingpong *pp = arg;

	pp->up[0] = pp->up[1] = pp->down[0] = pp->down[1] = -1;
	pp->buf = malloc(pp->s->len);
	if (!pp->buf || pipe(pp->up) < 0 || pipe(pp->down) < 0)
		return -errno;
	return 0;
}

static int pipe_pp_ready(void *arg)
{
	struct pingpong *pp = arg;

	close(pp->up[0]);
	close(pp->down[1]);
	pp->up[0] = pp->down[1] = -1;
	return 0;
}

static int pipe_ping(void *arg)
{
	struct pingpong *pp = arg;
	size_t len = pp->s->len;

	for (uint64_t i = 0; i < pp->s->n; i++) {
		int r;

		bench_fill(pp->buf, len, i);
		r = write_all(pp->up[1], pp->buf, len);
		if (r == 0)
			r = read_all(pp->down[0], pp->buf, len);
		if (r == 0 && !bench_check(pp->buf, len, i))
			r = -EBADMSG;
		if (r < 0) {
			bench_error("pipe ping-pong, round trip %llu: %s", (unsigned long long)i,
				    strerror(-r));
			return r;
		}
	}
	return 0;
}

static void pipe_pp_done(void *arg)
{
	struct pingpong *pp = arg;
	int *fds[] = { &pp->up[0], &pp->up[1], &pp->down[0], &pp->down[1] };

	for (int i = 0; i < 4; i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(pp->buf);
}

int bench_pipe_pingpong(void *arg, struct bench_meas *m)
{
	struct pingpong pp = { .s = arg };
	struct bench_pair p = {
		.nprod = 1, .prod = pipe_pong, .cons_setup = pipe_pp_setup,
		.cons_ready = pipe_pp_ready, .cons_run = pipe_ping, .cons_done = pipe_pp_done,
		.arg = &pp,
	};
	int r = bench_pair_run(&p, &m->secs);

	m->ops = pp.s->n;
	return r;
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val)
{
	return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

/* Waits until *turn is mine; passing it on always wakes the other side. */
static void futex_wait_for(_Atomic uint32_t *turn, uint32_t mine)
{
	uint32_t v;

	while ((v = atomic_load(turn)) != mine)
		futex(turn, FUTEX_WAIT, v);
}

static void futex_pass(_Atomic uint32_t *turn, uint32_t to)
{
	atomic_store(turn, to);
	futex(turn, FUTEX_WAKE, 1);
}

static int futex_pong(void *arg, int idx)
{
	struct pingpong *pp = arg;

	(void)idx;
	bench_pair_ready();
	for (uint64_t i = 0; i < pp->s->n; i++) {
		futex_wait_for(pp->turn, 1);
		futex_pass(pp->turn, 0);
	}
	return 0;
}

static int futex_setup(void *arg)
{
	struct pingpong *pp = arg;
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	pp->turn = p;
	return 0;
}

static int futex_ping(void *arg)
{
	struct pingpong *pp = arg;

	for (uint64_t i = 0; i < pp->s->n; i++) {
		futex_pass(pp->turn, 1);
		futex_wait_for(pp->turn, 0);
	}
	return 0;
}

static void futex_done(void *arg)
{
	struct pingpong *pp = arg;

	if (pp->turn)
		munmap((void *)pp->turn, 4096);
}

int bench_futex_pingpong(void *arg, struct bench_meas *m)
{
	struct pingpong pp = { .s = arg };
	struct bench_pair p = {
		.nprod = 1, .prod = futex_pong, .cons_setup = futex_setup,
		.cons_run = futex_ping, .cons_done = futex_done, .arg = &pp,
	};
	int r = bench_pair_run(&p, &m->secs);

	m->ops = pp.s->n;
	return r;
}
