// SPDX-License-Identifier: MIT
/*
 * The Boost.Interprocess anchor: boost::interprocess::message_queue, a
 * bounded queue of fixed-size slots in POSIX shared memory, guarded by a
 * process-shared mutex and two condition variables.  The same messages and
 * the same touching of the data as every other transport (pair.c); the
 * queue holds as many messages as the ring's capacity would.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>

#include "bench.h"

namespace bip = boost::interprocess;

namespace {

struct boost_stream {
	struct bench_stream *s;
	char name[64];          // the queue's name; "/" + name in /dev/shm
	char shm[72];
	bip::message_queue *q;
	void *buf;
};

int boost_prod(void *arg, int idx)
{
	boost_stream *b = static_cast<boost_stream *>(arg);
	size_t len = b->s->len;
	char *src = static_cast<char *>(malloc(len));

	(void)idx;
	if (!src)
		return -ENOMEM;
	memset(src, 0x5a, len);
	try {
		bip::message_queue q(bip::open_only, b->name);

		bench_pair_ready();
		for (uint64_t seq = 0; seq < b->s->n; seq++) {
			bench_fill(src, len, seq);
			q.send(src, len, 0);
		}
	} catch (const std::exception &e) {
		bench_error("boost producer: %s", e.what());
		free(src);
		return -EIO;
	}
	free(src);
	return 0;
}

int boost_setup(void *arg)
{
	boost_stream *b = static_cast<boost_stream *>(arg);
	static unsigned n;

	snprintf(b->name, sizeof(b->name), "shmx-bench-boost-%d-%u", (int)getpid(), n++);
	snprintf(b->shm, sizeof(b->shm), "/%s", b->name);
	b->buf = malloc(b->s->len);
	if (!b->buf)
		return -ENOMEM;
	bip::message_queue::remove(b->name);
	try {
		bench_track_posix(b->shm);
		b->q = new bip::message_queue(bip::create_only, b->name, b->s->cap / b->s->len,
					      b->s->len);
	} catch (const std::exception &e) {
		bench_error("boost message_queue: %s", e.what());
		return -EIO;
	}
	return 0;
}

int boost_cons(void *arg)
{
	boost_stream *b = static_cast<boost_stream *>(arg);
	size_t len = b->s->len;

	try {
		for (uint64_t seq = 0; seq < b->s->n; seq++) {
			bip::message_queue::size_type got;
			unsigned prio;

			b->q->receive(b->buf, len, got, prio);
			if (got != len || !bench_check(b->buf, len, seq)) {
				bench_error("boost: message %llu arrived damaged",
					    (unsigned long long)seq);
				return -EBADMSG;
			}
		}
	} catch (const std::exception &e) {
		bench_error("boost consumer: %s", e.what());
		return -EIO;
	}
	return 0;
}

void boost_done(void *arg)
{
	boost_stream *b = static_cast<boost_stream *>(arg);

	delete b->q;
	if (b->name[0]) {
		bip::message_queue::remove(b->name);
		bench_untrack_posix(b->shm);
	}
	free(b->buf);
}

} // namespace

extern "C" bool bench_boost_available(void)
{
	return true;
}

extern "C" int bench_boost_stream(void *arg, struct bench_meas *m)
{
	boost_stream b = {};
	struct bench_pair p = {};
	int r;

	b.s = static_cast<struct bench_stream *>(arg);
	p.nprod = 1;
	p.prod = boost_prod;
	p.cons_setup = boost_setup;
	p.cons_run = boost_cons;
	p.cons_done = boost_done;
	p.arg = &b;
	r = bench_pair_run(&p, &m->secs);
	m->ops = b.s->n;
	m->bytes = b.s->n * b.s->len;
	return r;
}
