/* SPDX-License-Identifier: MIT */
/*
 * Rings with random garbage in the header (the indices, locks, counts and
 * peer entries) and the records, over and over: every call returns, with a
 * value it may return, and whatever it hands out (a peeked message, a
 * reservation) lies inside the data area.  Reproducible: each round seeds
 * its own generator, and a failure names the round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring-util.h"
#include "util/sys.h"

#define KEY tc_key(1)
#define CAP 4096u
#define ALARM_S (20 * TC_SLOW)

/* Runs fn in a child of its own on a ring of its own (ring-util.h). */
#define RUN(fn) tr_hostile_run(fn, #fn, KEY, CAP, ALARM_S)

static uint8_t buf[CAP];

static struct shmx_ring_rec *rec_at(struct tr_env *e, uint32_t pos)
{
	return (struct shmx_ring_rec *)(e->data + (pos & (CAP - 1)));
}

static uint32_t token(int slot, uint32_t gen)
{
	return (gen & 0xffffffu) << 7 | (uint32_t)(slot + 1);
}


/* A successful peek or reserve points inside the data area, all of it. */
static void check_inside(const uint8_t *base, const void *p, size_t len, const char *what)
{
	const uint8_t *q = p;

	if (q < base + SHMX_RING_REC_HDR || q + len > base + CAP)
		tc_child_fail(__FILE__, __LINE__, "%s of %zu bytes at offset %td, outside the area",
			      what, len, q - base);
}

static void one_of(long long got, const long long *ok, size_t n, const char *what, int round)
{
	for (size_t i = 0; i < n; i++)
		if (got == ok[i])
			return;
	tc_child_fail(__FILE__, __LINE__, "round %d: %s gave %lld", round, what, got);
}

#define ONE_OF(got, what, round, ...) do {				\
		const long long ok_[] = { __VA_ARGS__ };		\
		one_of((long long)(got), ok_, sizeof(ok_) / sizeof(ok_[0]), what, round); \
	} while (0)

/* The calls, on whatever the header says now; none may wait. */
static void poke(struct tr_env *e, int round)
{
	const void *m;
	void *slot;
	size_t ml, len = 1 + tr_rnd() % 2040;
	ssize_t got;
	int rc;

	rc = shmx_ring_peek(e->c, &m, &ml, SHMX_NONBLOCK);
	if (rc > 0) {
		TC_CHECK_EQ(ml, rc);
		TC_CHECK(ml <= shmx_ring_max_msg(e->c));
		check_inside(e->cdata, m, ml, "peeked message");
		/* all of it can be read */
		memcpy(buf, m, ml);
		TR_EXPECT(shmx_ring_release(e->c), 0);
	} else {
		ONE_OF(rc, "peek", round, 0, -EAGAIN, -EBADMSG, -EPIPE);
	}
	got = shmx_ring_recv(e->c, buf, len, SHMX_NONBLOCK);
	if (got <= 0)
		ONE_OF(got, "recv", round, 0, -EAGAIN, -EBADMSG, -EPIPE, -EMSGSIZE);
	else
		TC_CHECK((size_t)got <= len);
	rc = shmx_ring_reserve(e->p, len, &slot, SHMX_NONBLOCK);
	if (rc == 0) {
		check_inside(e->pdata, slot, len, "reservation");
		memset(slot, 's', len);
		TR_EXPECT(shmx_ring_commit(e->p, tr_rnd() % 2 ? len : 0), 0);
	} else {
		ONE_OF(rc, "reserve", round, -EAGAIN, -EBADMSG, -EPIPE);
	}
	memset(buf, 'S', len);
	got = shmx_ring_send(e->p, buf, len, SHMX_NONBLOCK);
	if (got != (ssize_t)len)
		ONE_OF(got, "send", round, -EAGAIN, -EBADMSG, -EPIPE);
}

static void random_bytes(struct tr_env *e)
{
	/* lines 1-5 and the entries; not the constants the handles copied */
	uint8_t *from = (uint8_t *)e->h + offsetof(struct shmx_ring_hdr, tail);
	size_t n = sizeof(struct shmx_ring_hdr) - offsetof(struct shmx_ring_hdr, tail);
	int rounds = TR_SANITIZED ? 100 : 400;

	for (int round = 0; round < rounds; round++) {
		tr_seed(0x5eed0000ull + (uint64_t)round);
		for (size_t i = 0; i < n; i++)
			from[i] = (uint8_t)tr_rnd();
		for (size_t i = 0; i < 64; i++)
			e->data[tr_rnd() % CAP] = (uint8_t)tr_rnd();
		poke(e, round);
		/* now and then a call that may wait: the garbage must end it */
		if (round % 20 == 0) {
			ssize_t got = shmx_ring_recv(e->c, buf, sizeof(buf), 0);

			if (got <= 0)
				ONE_OF(got, "blocking recv", round, 0, -EBADMSG, -EPIPE);
		}
	}
}

/* Values a ring could hold, mixed wrongly. */
static void plausible_garbage(struct tr_env *e, pid_t dead, pid_t live)
{
	int rounds = TR_SANITIZED ? 1000 : 5000;

	for (int round = 0; round < rounds; round++) {
		struct shmx_ring_hdr *h = e->h;
		uint32_t tail, head;

		tr_seed(0xfeed0000ull + (uint64_t)round);
		tail = (uint32_t)tr_rnd() & ~7u;
		if (tr_rnd() % 8 == 0)
			tail += (uint32_t)(tr_rnd() % 8);
		head = tail - (uint32_t)(tr_rnd() % (CAP / 8 + 8)) * 8;
		if (tr_rnd() % 8 == 0)
			head += (uint32_t)tr_rnd() % 64;
		atomic_store(&h->tail, tail);
		atomic_store(&h->head, head);
		/* a record at head, and one after it */
		for (int k = 0; k < 2; k++) {
			uint32_t at = (head + (k ? (uint32_t)(tr_rnd() % 256) * 8 : 0)) & ~7u;
			struct shmx_ring_rec *rec = rec_at(e, at);
			static const uint32_t kinds[] = {
				SHMX_REC_MSG, SHMX_REC_MSG, SHMX_REC_PAD, 0,
			};
			uint32_t lens[] = { 0, 1 + (uint32_t)(tr_rnd() % 2040), 2041,
					    CAP - (at & (CAP - 1)) - 8,
					    CAP, (uint32_t)tr_rnd() };

			rec->kind = kinds[tr_rnd() % 4];
			rec->len = lens[tr_rnd() % 6];
		}
		/* locks: mostly free */
		for (int k = 0; k < 2; k++) {
			_Atomic uint32_t *l = k ? &h->prod_lock : &h->cons_lock;
			uint32_t choice = (uint32_t)(tr_rnd() % 8);

			atomic_store(l, choice < 5 ? 0 : choice == 5 ? (uint32_t)tr_rnd()
					: token((int)(tr_rnd() % 70), (uint32_t)tr_rnd()));
		}
		atomic_store(&h->cons_waiters, (uint32_t)(tr_rnd() % 3));
		atomic_store(&h->prod_waiters, (uint32_t)(tr_rnd() % 3));
		atomic_store(&h->consumers_seen, (uint32_t)(tr_rnd() % 3));
		atomic_store(&h->producer_died, (uint32_t)(tr_rnd() % 3));
		for (int i = 0; i < SHMX_RING_NPEERS; i++) {
			struct shmx_ring_peer *p = &h->peers[i];
			const int32_t pids[] = { 0, -1, dead, live, (int32_t)tr_rnd() };

			if (tr_rnd() % 2) {
				atomic_store(&p->state, (uint32_t)tr_rnd() << 2);
				continue;
			}
			atomic_store(&p->state, (uint32_t)tr_rnd());
			p->pid = pids[tr_rnd() % 5];
			if (p->pid == getpid())
				p->pid = dead;
			p->starttime = tr_rnd() % 2 ? tr_rnd() : shmx_proc_starttime(live) + 1;
		}
		poke(e, round);
	}
}

static pid_t fuzz_dead, fuzz_live;

static void plausible(struct tr_env *e)
{
	plausible_garbage(e, fuzz_dead, fuzz_live);
}

static void random_headers(void **state)
{
	(void)state;
	RUN(random_bytes);
	fuzz_dead = fork();
	assert_true(fuzz_dead >= 0);
	if (fuzz_dead == 0)
		_exit(0);
	assert_int_equal(tc_waitpid(fuzz_dead, TC_REPLY_MS), 0);
	fuzz_live = tc_keeper_pid();
	RUN(plausible);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(random_headers),
	};

	return tr_run_tests("ring-fuzz", tests, 60);
}
