/* SPDX-License-Identifier: MIT */
/*
 * Rings whose shared memory is written by someone hostile (or broken): any
 * process that may write the segment may write garbage into the header and
 * the records.  The next call must end in -EBADMSG (or another clean error),
 * never crash, hang, or read or write outside the segment.
 *
 * Each case runs in a child with its own handles, under alarm(): a hang
 * kills it (SIGALRM), a fault ends it with TC_FAULTED, an ASan report with
 * its exit status (tr_hostile_run).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring-util.h"

#define KEY tc_key(1)
#define CAP 4096u
#define ALARM_S (5 * TC_SLOW)

/* Runs fn in a child of its own on a ring of its own (ring-util.h). */
#define RUN(fn) tr_hostile_run(fn, #fn, KEY, CAP, ALARM_S)

static uint8_t buf[CAP];

/* Sends and receives one message of len: both sides have seen the ring empty at tail. */
static void pass(struct tr_env *e, size_t len)
{
	memset(buf, 'p', len);
	TR_EXPECT(shmx_ring_send(e->p, buf, len, 0), len);
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), len);
}

/* Fills the ring: the producer then has to read head to send more. */
static void fill(struct tr_env *e)
{
	memset(buf, 'f', 1000);
	while (shmx_ring_send(e->p, buf, 1000, SHMX_NONBLOCK) == 1000)
		;
}

static struct shmx_ring_rec *rec_at(struct tr_env *e, uint32_t pos)
{
	return (struct shmx_ring_rec *)(e->data + (pos & (CAP - 1)));
}

static void recv_is_ebadmsg(struct tr_env *e)
{
	const void *m;
	size_t ml;

	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), -EBADMSG);
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), SHMX_NONBLOCK), -EBADMSG);
	TR_EXPECT(shmx_ring_peek(e->c, &m, &ml, 0), -EBADMSG);
	/* nothing left pending by the failures */
	TR_EXPECT(shmx_ring_release(e->c), -EINVAL);
}

/* (1000 bytes: more than the producer knows to be free after fill()) */
static void send_is_ebadmsg(struct tr_env *e)
{
	void *slot;

	memset(buf, 'x', 1000);
	TR_EXPECT(shmx_ring_send(e->p, buf, 1000, 0), -EBADMSG);
	TR_EXPECT(shmx_ring_send(e->p, buf, 1000, SHMX_NONBLOCK), -EBADMSG);
	TR_EXPECT(shmx_ring_reserve(e->p, 1000, &slot, 0), -EBADMSG);
	TR_EXPECT(shmx_ring_commit(e->p, 0), -EINVAL);
}

/* ---- the indices ---- */

static void tail_beyond_head_and_capacity(struct tr_env *e)
{
	pass(e, 100);
	atomic_store(&e->h->tail, atomic_load(&e->h->head) + CAP + 8);
	recv_is_ebadmsg(e);
	send_is_ebadmsg(e);
}

static void tail_not_a_multiple_of_8(struct tr_env *e)
{
	pass(e, 100);
	atomic_store(&e->h->tail, atomic_load(&e->h->head) + 4);
	recv_is_ebadmsg(e);
	send_is_ebadmsg(e);
}

static void head_beyond_tail(struct tr_env *e)
{
	fill(e);
	atomic_store(&e->h->head, atomic_load(&e->h->tail) + 8);
	send_is_ebadmsg(e);
	recv_is_ebadmsg(e);
}

static void head_not_a_multiple_of_8(struct tr_env *e)
{
	fill(e);
	atomic_fetch_add(&e->h->head, 4);
	send_is_ebadmsg(e);
	recv_is_ebadmsg(e);
}

static void indices_out_of_range(void **state)
{
	(void)state;
	RUN(tail_beyond_head_and_capacity);
	RUN(tail_not_a_multiple_of_8);
	RUN(head_beyond_tail);
	RUN(head_not_a_multiple_of_8);
}

/* ---- the records ---- */

/* One message of 100 bytes sent, its record header then set to len, kind. */
static void bad_record(struct tr_env *e, uint32_t len, uint32_t kind)
{
	uint32_t head;
	struct shmx_ring_rec *rec;

	pass(e, 24);
	head = atomic_load(&e->h->head);
	memset(buf, 'r', 100);
	TR_EXPECT(shmx_ring_send(e->p, buf, 100, 0), 100);
	rec = rec_at(e, head);
	TR_EXPECT(rec->len, 100);
	TR_EXPECT(rec->kind, SHMX_REC_MSG);
	rec->len = len;
	rec->kind = kind;
	recv_is_ebadmsg(e);
	/* the producer is not misled by the consumer's side */
	TR_EXPECT(shmx_ring_send(e->p, "y", 1, 0), 1);
}

static void record_longer_than_the_ring(struct tr_env *e)
{
	bad_record(e, 2 * CAP, SHMX_REC_MSG);
}

static void record_of_uint32_max(struct tr_env *e)
{
	bad_record(e, UINT32_MAX, SHMX_REC_MSG);
}

static void record_longer_than_max_msg(struct tr_env *e)
{
	bad_record(e, CAP / 2 - 8 + 1, SHMX_REC_MSG);
}

static void record_beyond_what_was_published(struct tr_env *e)
{
	bad_record(e, 1000, SHMX_REC_MSG);
}

static void record_of_length_0(struct tr_env *e)
{
	bad_record(e, 0, SHMX_REC_MSG);
}

static void record_of_a_bad_kind(struct tr_env *e)
{
	bad_record(e, 100, 0xdeadbeef);
}

static void pad_in_the_middle(struct tr_env *e)
{
	/* at 48: the rest of the area would be 4048 bytes, not 108 */
	bad_record(e, 100, SHMX_REC_PAD);
}

static void pad_at_the_start(struct tr_env *e)
{
	/* to 4064 (the learning record, 2048 and 2000), and 32 more in
	 * bad_record: the message at 0, made a pad, would fill the whole area */
	pass(e, 2040);
	pass(e, 1992);
	TR_EXPECT(atomic_load(&e->h->head) & (CAP - 1), 4064);
	bad_record(e, CAP - 8, SHMX_REC_PAD);
}

/* Both sides at 3840 (the learning record, 2048 and 1776). */
static uint32_t to_3840(struct tr_env *e)
{
	pass(e, 2040);
	pass(e, 1768);
	TR_EXPECT(atomic_load(&e->h->head) & (CAP - 1), 3840);
	return atomic_load(&e->h->head);
}

static void pad_beyond_what_was_published(struct tr_env *e)
{
	uint32_t head = to_3840(e);

	/* a pad of 248 would reach the end, but only 16 bytes are there */
	TR_EXPECT(shmx_ring_send(e->p, "z", 1, 0), 1);
	rec_at(e, head)->kind = SHMX_REC_PAD;
	rec_at(e, head)->len = CAP - 3840 - 8;
	recv_is_ebadmsg(e);
}

static void two_pads_in_a_row(struct tr_env *e)
{
	uint32_t head = to_3840(e);

	/* a message that needs a pad: the pad at 3840, the record at 0, made
	 * a pad too */
	memset(buf, 'q', 500);
	TR_EXPECT(shmx_ring_send(e->p, buf, 500, 0), 500);
	TR_EXPECT(rec_at(e, head)->kind, SHMX_REC_PAD);
	TR_EXPECT(rec_at(e, head)->len, CAP - 3840 - 8);
	TR_EXPECT(rec_at(e, 0)->kind, SHMX_REC_MSG);
	rec_at(e, 0)->kind = SHMX_REC_PAD;
	rec_at(e, 0)->len = CAP - 8;
	recv_is_ebadmsg(e);
}

static void pad_filling_the_whole_area(struct tr_env *e)
{
	uint32_t head;

	/* a full ring whose record at 0 is a pad of all of it: no message, and
	 * a pad never starts the area */
	pass(e, 2040);
	pass(e, 2024);
	head = atomic_load(&e->h->head);
	TR_EXPECT(head & (CAP - 1), 0);
	atomic_store(&e->h->tail, head + CAP);
	rec_at(e, head)->kind = SHMX_REC_PAD;
	rec_at(e, head)->len = CAP - 8;
	recv_is_ebadmsg(e);
}

static void records_out_of_bounds(void **state)
{
	(void)state;
	RUN(record_longer_than_the_ring);
	RUN(record_of_uint32_max);
	RUN(record_longer_than_max_msg);
	RUN(record_beyond_what_was_published);
	RUN(record_of_length_0);
	RUN(record_of_a_bad_kind);
	RUN(pad_in_the_middle);
	RUN(pad_at_the_start);
	RUN(pad_beyond_what_was_published);
	RUN(two_pads_in_a_row);
	RUN(pad_filling_the_whole_area);
}

/* ---- the locks ---- */

static uint32_t token(int slot, uint32_t gen)
{
	return (gen & 0xffffffu) << 7 | (uint32_t)(slot + 1);
}

/* A blocking call on a lock that names nobody: -EBADMSG, once it has looked. */
static void lock_naming_no_entry(struct tr_env *e, uint32_t v)
{
	int64_t t0;

	pass(e, 10);
	TR_EXPECT(shmx_ring_send(e->p, "m", 1, 0), 1);
	atomic_store(&e->h->cons_lock, v);
	/* a non-blocking call looks at the holder too (at most every 200 ms) */
	{
		ssize_t nb = shmx_ring_recv(e->c, buf, sizeof(buf), SHMX_NONBLOCK);

		if (nb != -EAGAIN && nb != -EBADMSG)
			tc_child_fail(__FILE__, __LINE__, "non-blocking recv: %zd", nb);
	}
	t0 = tc_now_ms();
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), -EBADMSG);
	if (tc_now_ms() - t0 > TC_1S)
		tc_child_fail(__FILE__, __LINE__, "-EBADMSG after %lld ms",
			      (long long)(tc_now_ms() - t0));
	atomic_store(&e->h->prod_lock, v);
	{
		ssize_t nb = shmx_ring_send(e->p, "m", 1, SHMX_NONBLOCK);

		if (nb != -EAGAIN && nb != -EBADMSG)
			tc_child_fail(__FILE__, __LINE__, "non-blocking send: %zd", nb);
	}
	TR_EXPECT(shmx_ring_send(e->p, "m", 1, 0), -EBADMSG);
}

static void lock_slot_0(struct tr_env *e)
{
	lock_naming_no_entry(e, 0x12345600u);   /* slot bits 0: entry -1 */
}

static void lock_slot_beyond_the_entries(struct tr_env *e)
{
	lock_naming_no_entry(e, token(SHMX_RING_NPEERS, 5));
}

static void lock_slot_126_with_waiters(struct tr_env *e)
{
	lock_naming_no_entry(e, 0x7fu | SHMX_LOCK_WAITERS);
}

/* A lock naming a free entry, or a used one of another generation, is stale. */
static void stale_lock(struct tr_env *e, uint32_t v)
{
	pass(e, 10);
	TR_EXPECT(shmx_ring_send(e->p, "m", 1, 0), 1);
	atomic_store(&e->h->cons_lock, v);
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), 1);
	atomic_store(&e->h->prod_lock, v);
	TR_EXPECT(shmx_ring_send(e->p, "n", 1, 0), 1);
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), 1);
	TR_EXPECT(buf[0], 'n');
}

static void lock_of_a_free_entry(struct tr_env *e)
{
	stale_lock(e, token(40, 3) | SHMX_LOCK_WAITERS);
}

static int slot_of_pid(struct shmx_ring_hdr *h, pid_t pid, uint32_t role)
{
	for (int i = 0; i < SHMX_RING_NPEERS; i++)
		if (h->peers[i].pid == pid && SHMX_PEER_ROLE(atomic_load(&h->peers[i].state)) == role)
			return i;
	tc_child_fail(__FILE__, __LINE__, "no entry of role %u for %d", role, (int)pid);
}

static void lock_of_an_old_generation(struct tr_env *e)
{
	int slot = slot_of_pid(e->h, getpid(), SHMX_PEER_CONSUMER);
	uint32_t gen = atomic_load(&e->h->peers[slot].state) >> 2;

	stale_lock(e, token(slot, gen + 1));
}

static void lock_of_a_dead_process(struct tr_env *e)
{
	/* an entry of role producer whose process is gone */
	struct shmx_ring_peer *p = &e->h->peers[50];

	p->pid = INT_MAX;
	p->starttime = 1;
	atomic_store(&p->state, 7u << 2 | SHMX_PEER_PRODUCER);
	stale_lock(e, token(50, 7));
	/* it was taken out while at it */
	TR_EXPECT(SHMX_PEER_ROLE(atomic_load(&p->state)), SHMX_PEER_FREE);
}

static void garbage_locks(void **state)
{
	(void)state;
	RUN(lock_slot_0);
	RUN(lock_slot_beyond_the_entries);
	RUN(lock_slot_126_with_waiters);
	RUN(lock_of_a_free_entry);
	RUN(lock_of_an_old_generation);
	RUN(lock_of_a_dead_process);
}

/* ---- the entries ---- */


/* Garbage producers and consumers, none alive, in every entry but keep's. */
static void garbage_entries_but(struct tr_env *e, int keep)
{
	static const int32_t pids[] = { 0, -1, INT_MIN, INT_MAX, 1, 2 };

	tr_seed(0x9e3779b97f4a7c15ull);
	for (int i = 0; i < SHMX_RING_NPEERS; i++) {
		struct shmx_ring_peer *p = &e->h->peers[i];

		if (i == keep)
			continue;
		atomic_store(&p->state, (uint32_t)tr_rnd() << 2 |
					(i % 2 ? SHMX_PEER_PRODUCER : SHMX_PEER_CONSUMER));
		p->pid = i < 6 ? pids[i] : (int32_t)tr_rnd();
		if (p->pid == getpid())
			p->pid = 0;
		p->starttime = tr_rnd();
		p->reserved[0] = tr_rnd();
		p->reserved[1] = tr_rnd();
	}
}

static void recv_sees_no_producer(struct tr_env *e)
{
	ssize_t got = shmx_ring_recv(e->c, buf, sizeof(buf), 0);

	if (got != -EPIPE && got != 0)
		tc_child_fail(__FILE__, __LINE__, "recv without producers: %zd", got);
}

static void garbage_entries_but_the_consumers(struct tr_env *e)
{
	pass(e, 10);
	TR_EXPECT(shmx_ring_send(e->p, "m", 1, 0), 1);
	garbage_entries_but(e, slot_of_pid(e->h, getpid(), SHMX_PEER_CONSUMER));
	/* what was sent is still there; then the producers are all gone */
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), 1);
	recv_sees_no_producer(e);
	/* a new handle finds room among them */
	{
		struct shmx_ring *p = tr_child_open(KEY, SHMX_RING_PRODUCER);

		TR_EXPECT(shmx_ring_send(p, "n", 1, 0), 1);
		TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), 1);
		shmx_ring_close(p);
	}
}

static void garbage_entries_but_the_producers(struct tr_env *e)
{
	fill(e);
	garbage_entries_but(e, slot_of_pid(e->h, getpid(), SHMX_PEER_PRODUCER));
	/* the consumers are all gone, and the ring is full */
	TR_EXPECT(shmx_ring_send(e->p, buf, 1000, 0), -EPIPE);
	{
		struct shmx_ring *c = tr_child_open(KEY, SHMX_RING_CONSUMER);

		TR_EXPECT(shmx_ring_recv(c, buf, sizeof(buf), 0), 1000);
		shmx_ring_close(c);
	}
}

/* Our own entry says we are someone else, of the other role, long dead. */
static void disguise(struct tr_env *e, uint32_t role, uint32_t as)
{
	struct shmx_ring_peer *p = &e->h->peers[slot_of_pid(e->h, getpid(), role)];

	atomic_store(&p->state, 12345u << 2 | as);
	p->pid = INT_MAX;
	p->starttime = 1;
}

static void consumers_entry_says_dead_producer(struct tr_env *e)
{
	/* the only producer leaves, but the consumer's own entry claims to be one */
	shmx_ring_close(e->p);
	e->p = NULL;
	disguise(e, SHMX_PEER_CONSUMER, SHMX_PEER_PRODUCER);
	recv_sees_no_producer(e);
}

static void producers_entry_says_dead_consumer(struct tr_env *e)
{
	fill(e);
	shmx_ring_close(e->c);
	e->c = NULL;
	disguise(e, SHMX_PEER_PRODUCER, SHMX_PEER_CONSUMER);
	TR_EXPECT(shmx_ring_send(e->p, buf, 1000, 0), -EPIPE);
}

static void own_entry_overwritten_consumer(void **state)
{
	(void)state;
	RUN(consumers_entry_says_dead_producer);
}

static void own_entry_overwritten_producer(void **state)
{
	(void)state;
	RUN(producers_entry_says_dead_consumer);
}

static void entries_claimed_for_ever(struct tr_env *e)
{
	struct shmx_ring *x = NULL;

	/* every free entry stuck half way: no room, and said so */
	for (int i = 0; i < SHMX_RING_NPEERS; i++)
		if (SHMX_PEER_ROLE(atomic_load(&e->h->peers[i].state)) == SHMX_PEER_FREE)
			atomic_store(&e->h->peers[i].state, SHMX_PEER_CLAIMED);
	TR_EXPECT(shmx_ring_open(KEY, SHMX_RING_CONSUMER, &x), -EUSERS);
	pass(e, 100);
}

static void garbage_entries(void **state)
{
	(void)state;
	RUN(garbage_entries_but_the_consumers);
	RUN(garbage_entries_but_the_producers);
	RUN(entries_claimed_for_ever);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(indices_out_of_range),
		tr_test(records_out_of_bounds),
		tr_test(garbage_locks),
		tr_test(garbage_entries),
		tr_test(own_entry_overwritten_consumer),
		tr_test(own_entry_overwritten_producer),
	};

	return tr_run_tests("ring-hostile", tests, 30);
}
