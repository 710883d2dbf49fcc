/* SPDX-License-Identifier: MIT */
/*
 * Rings (<shmx/ring.h>), the handles: creating and opening (and what is not
 * a ring), permissions and the limit of peers, close, and fork.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring-util.h"
#include "util/sys.h"

static uint64_t nattch(int id)
{
	struct shmx_ds ds;

	tc_stat(id, &ds);
	return ds.nattch;
}

/* ---- create and open ---- */

static void create_rounds_capacity_up(void **state)
{
	static const struct {
		size_t ask, cap;
	} cases[] = {
		{ 1, 4096 }, { 4095, 4096 }, { 4096, 4096 }, { 4097, 8192 },
		{ 5000, 8192 }, { 65536, 65536 }, { 65537, 131072 }, { (1u << 20) - 1, 1u << 20 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shmx_ring *r = tr_create(tc_key((int)i + 1), cases[i].ask, 0600);
		struct shmx_ds ds;

		assert_int_equal(shmx_ring_capacity(r), cases[i].cap);
		assert_int_equal(shmx_ring_max_msg(r), cases[i].cap / 2 - 8);
		/* a segment like any: the header page and the data area */
		tc_stat(shmx_ring_id(r), &ds);
		assert_int_equal(ds.segsz, SHMX_RING_HDR_SIZE + cases[i].cap);
		assert_int_equal(ds.key, tc_key((int)i + 1));
		assert_int_equal(ds.mode & 0777, 0600);
		assert_true(tc_listed(shmx_ring_id(r)));
		assert_int_equal(shmx_get(tc_key((int)i + 1), 0, 0), shmx_ring_id(r));
		shmx_ring_close(r);
	}
}

static void create_takes_one_gib_at_most(void **state)
{
	struct shmx_ring *r = NULL;
	struct shmx_info info;

	(void)state;
	assert_int_equal(shmx_ring_create(tc_key(1), (1u << 30) + 1, 0600, &r), -EINVAL);
	assert_null(r);
	assert_int_equal(shmx_ring_create(tc_key(1), (size_t)1 << 31, 0600, &r), -EINVAL);
	assert_int_equal(shmx_ring_create(tc_key(1), SIZE_MAX, 0600, &r), -EINVAL);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	assert_int_equal(shmx_info(&info), 0);
	if (info.max_segsz < SHMX_RING_HDR_SIZE + (1u << 30)) {
		print_message("# the namespace limits segments to %llu bytes: no 1 GiB ring\n",
			      (unsigned long long)info.max_segsz);
		return;
	}
	/* memfd pages come when touched: a 1 GiB ring costs its header */
	r = tr_create(tc_key(1), (1u << 30) - 1000, 0600);
	assert_int_equal(shmx_ring_capacity(r), 1u << 30);
	assert_int_equal(shmx_ring_max_msg(r), (1u << 29) - 8);
	{
		struct shmx_ring *c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
		char buf[64];

		assert_int_equal(shmx_ring_send(r, "big", 3, 0), 3);
		assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 3);
		assert_memory_equal(buf, "big", 3);
		shmx_ring_close(c);
	}
	shmx_ring_close(r);
	assert_int_equal(shmx_ctl(shmx_get(tc_key(1), 0, 0), SHMX_RMID, NULL), 0);
}

static void create_rejects_bad_arguments(void **state)
{
	struct shmx_ring *r = NULL;

	(void)state;
	assert_int_equal(shmx_ring_create(tc_key(1), 0, 0600, &r), -EINVAL);
	assert_int_equal(shmx_ring_create(tc_key(1), 4096, 0600, NULL), -EINVAL);
	assert_int_equal(shmx_ring_create(tc_key(1), 4096, 0600 | 0x100000, &r), -EINVAL);
	assert_int_equal(shmx_ring_create(tc_key(1), 4096, 0600 | SHMX_HUGETLB, &r), -EINVAL);
	assert_int_equal(shmx_ring_create(tc_key(1), 4096, -1, &r), -EINVAL);
	assert_null(r);
	/* nothing was left behind by the failures */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
}

static void create_opens_the_existing_ring_unless_excl(void **state)
{
	struct shmx_ring *a, *b, *c, *x = NULL;
	char buf[16];

	(void)state;
	a = tr_create(tc_key(1), 8192, 0600 | SHMX_EXCL);
	/* a smaller or equal capacity is enough: the same ring, as a producer */
	b = tr_create(tc_key(1), 100, 0600);
	assert_int_equal(shmx_ring_id(b), shmx_ring_id(a));
	assert_int_equal(shmx_ring_capacity(b), 8192);
	assert_int_equal(shmx_ring_create(tc_key(1), 8192, 0600 | SHMX_EXCL, &x), -EEXIST);
	assert_null(x);
	/* more than it holds: no */
	assert_true(shmx_ring_create(tc_key(1), 16384, 0600, &x) < 0);
	assert_null(x);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(b, "from b", 6, 0), 6);
	assert_int_equal(shmx_ring_recv(b, buf, sizeof(buf), SHMX_NONBLOCK), -EBADF);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 6);
	assert_memory_equal(buf, "from b", 6);
	shmx_ring_close(a);
	shmx_ring_close(b);
	shmx_ring_close(c);
}

static void ring_lives_as_long_as_its_segment(void **state)
{
	struct shmx_ring *p, *c, *x = NULL;
	char buf[16];
	int id;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	id = shmx_ring_id(p);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_true(nattch(id) >= 2);
	/* removed: no longer found by key, still working for those who have it */
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, &x), -ENOENT);
	assert_int_equal(shmx_ring_send(p, "after", 5, 0), 5);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 5);
	shmx_ring_close(p);
	assert_int_equal(shmx_ring_recv(c, buf, sizeof(buf), 0), 0);
	shmx_ring_close(c);
	/* the last user gone, so is the segment */
	assert_true(tc_wait_gone(id, TC_1S) < 0);
	/* and the key is free for a new ring */
	p = tr_create(tc_key(1), 4096, 0600 | SHMX_EXCL);
	shmx_ring_close(p);
}

static void close_detaches(void **state)
{
	struct shmx_ring *p, *c1, *c2;
	uint64_t n0;
	int id;

	(void)state;
	p = tr_create(tc_key(1), 4096, 0600);
	id = shmx_ring_id(p);
	n0 = nattch(id);
	assert_true(n0 >= 1);
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	c2 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_true(nattch(id) > n0);
	shmx_ring_close(c1);
	shmx_ring_close(c2);
	assert_int_equal(nattch(id), n0);
	shmx_ring_close(p);
	assert_int_equal(nattch(id), 0);
	shmx_ring_close(NULL);
	/* the segment stays (not removed) and opens as a ring again */
	c1 = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	shmx_ring_close(c1);
}

static void open_rejects_bad_arguments(void **state)
{
	struct shmx_ring *r = NULL, *p;

	(void)state;
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, &r), -ENOENT);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_PRODUCER, &r), -ENOENT);
	p = tr_create(tc_key(1), 4096, 0600);
	assert_int_equal(shmx_ring_open(tc_key(1), 0, &r), -EINVAL);
	assert_int_equal(shmx_ring_open(tc_key(1), 3, &r), -EINVAL);
	assert_int_equal(shmx_ring_open(tc_key(1), -1, &r), -EINVAL);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, NULL), -EINVAL);
	assert_null(r);
	shmx_ring_close(p);
}

/* A plain segment with these bytes at key: opening it as a ring fails with err (or err2). */
static void not_a_ring(int n, size_t size, unsigned seed, int err, int err2)
{
	struct shmx_ring *r = NULL;
	int id = tc_create(tc_key(n), size, 0600);
	uint8_t *p = tc_attach(id, 0);
	int e;

	if (seed)
		tc_fill(p, size, seed);
	/* (a zero-filled one is waited for, a second: one role will do) */
	for (int role = seed ? SHMX_RING_PRODUCER : SHMX_RING_CONSUMER; role <= SHMX_RING_CONSUMER;
	     role++) {
		e = shmx_ring_open(tc_key(n), role, &r);
		if (e != err && e != err2)
			fail_msg("segment %d of %zu bytes, seed %u, role %d: open gave %d", n, size,
				 seed, role, e);
		assert_null(r);
	}
	/* nor does create turn it into one, unless it is all zeroes: then it
	 * may be a segment whose creator has yet to make it a ring */
	e = shmx_ring_create(tc_key(n), 4096, 0600, &r);
	if (e == 0 && !seed && size >= SHMX_RING_HDR_SIZE + 4096) {
		shmx_ring_close(r);
		r = NULL;
	} else if (e != err && e != err2 && e != -EINVAL) {
		fail_msg("segment %d: create gave %d", n, e);
	}
	assert_null(r);
	if (seed)
		assert_int_equal(tc_verify(p, size, seed), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void open_rejects_what_is_not_a_ring(void **state)
{
	(void)state;
	not_a_ring(1, 8192, 7, -EBADMSG, -EBADMSG);
	not_a_ring(2, SHMX_RING_HDR_SIZE + 65536, 8, -EBADMSG, -EBADMSG);
	/* too small to hold a header at all */
	not_a_ring(3, 100, 9, -EBADMSG, -EBADMSG);
	not_a_ring(4, 100, 0, -EBADMSG, -EAGAIN);
	/* zeroes: a creator that never got to write the header */
	not_a_ring(5, 8192, 0, -EBADMSG, -EAGAIN);
}

/* The header of a closed ring with one field changed: not a ring any more. */
static void open_checks_the_header_fields(void **state)
{
	struct shmx_ring *r, *x = NULL;
	struct shmx_ring_hdr *h, saved;
	static const struct {
		size_t off, size;
		uint64_t value;
	} edits[] = {
		{ offsetof(struct shmx_ring_hdr, magic), 8, 0x31474e495258484eull },
		{ offsetof(struct shmx_ring_hdr, version), 4, 2 },
		{ offsetof(struct shmx_ring_hdr, version), 4, 0 },
		{ offsetof(struct shmx_ring_hdr, hdr_size), 4, 2048 },
		{ offsetof(struct shmx_ring_hdr, hdr_size), 4, 8192 },
		{ offsetof(struct shmx_ring_hdr, capacity), 4, 4096 * 3 },  /* not a power of 2 */
		{ offsetof(struct shmx_ring_hdr, capacity), 4, 16384 },     /* beyond the segment */
		{ offsetof(struct shmx_ring_hdr, capacity), 4, 2048 },      /* below the minimum */
		{ offsetof(struct shmx_ring_hdr, capacity), 4, 0 },
		{ offsetof(struct shmx_ring_hdr, capacity), 4, 0x80000000u },
		{ offsetof(struct shmx_ring_hdr, max_msg), 4, 8192 },
		{ offsetof(struct shmx_ring_hdr, max_msg), 4, 0xffffffffu },
	};
	int id;

	(void)state;
	r = tr_create(tc_key(1), 8192, 0600);
	id = shmx_ring_id(r);
	shmx_ring_close(r);
	h = tc_attach(id, 0);
	memcpy(&saved, h, sizeof(saved));
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		uint8_t *f = (uint8_t *)h + edits[i].off;
		uint32_t v32 = (uint32_t)edits[i].value;
		int e;

		if (edits[i].size == 8)
			memcpy(f, &edits[i].value, 8);
		else
			memcpy(f, &v32, 4);
		for (int role = SHMX_RING_PRODUCER; role <= SHMX_RING_CONSUMER; role++) {
			e = shmx_ring_open(tc_key(1), role, &x);
			if (e != -EBADMSG)
				fail_msg("edit %zu (offset %zu = 0x%llx), role %d: open gave %d", i,
					 edits[i].off, (unsigned long long)edits[i].value, role, e);
			assert_null(x);
		}
		memcpy(h, &saved, sizeof(saved));
		/* the control: restored, it opens */
		x = tr_open(tc_key(1), SHMX_RING_CONSUMER);
		shmx_ring_close(x);
		x = NULL;
	}
	assert_int_equal(shmx_dt(h), 0);
}

static int nobody_opens(void *arg)
{
	struct shmx_ring *r = NULL;
	char buf[16];

	(void)arg;
	/* read-only for others, none for others: no role at all */
	TC_CHECK_EQ(shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, &r), -EACCES);
	TC_CHECK_EQ(shmx_ring_open(tc_key(1), SHMX_RING_PRODUCER, &r), -EACCES);
	TC_CHECK_EQ(shmx_ring_open(tc_key(2), SHMX_RING_CONSUMER, &r), -EACCES);
	TC_CHECK_EQ(shmx_ring_create(tc_key(1), 4096, 0600, &r), -EACCES);
	TC_CHECK(r == NULL);
	/* the control: 0666 is open to all */
	r = tr_child_open(tc_key(3), SHMX_RING_CONSUMER);
	TC_CHECK_EQ(shmx_ring_recv(r, buf, sizeof(buf), 0), 5);
	TC_CHECK(memcmp(buf, "hello", 5) == 0);
	shmx_ring_close(r);
	return 0;
}

static void open_needs_read_and_write_permission(void **state)
{
	struct shmx_ring *a, *b, *c;

	(void)state;
	TC_REQUIRE_ROOT();
	tc_start_shared_keeper();
	a = tr_create(tc_key(1), 4096, 0644);
	b = tr_create(tc_key(2), 4096, 0600);
	c = tr_create(tc_key(3), 4096, 0666);
	assert_int_equal(shmx_ring_send(c, "hello", 5, 0), 5);
	assert_int_equal(tc_run_as(TC_NOBODY, TC_NOGROUP, nobody_opens, NULL), 0);
	shmx_ring_close(a);
	shmx_ring_close(b);
	shmx_ring_close(c);
}

static void open_beyond_max_peers_is_eusers(void **state)
{
	struct shmx_ring *r[SHMX_RING_MAX_PEERS], *x = NULL;

	(void)state;
	r[0] = tr_create(tc_key(1), 4096, 0600);
	for (int i = 1; i < SHMX_RING_MAX_PEERS; i++)
		r[i] = tr_open(tc_key(1), i % 2 ? SHMX_RING_CONSUMER : SHMX_RING_PRODUCER);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_CONSUMER, &x), -EUSERS);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_PRODUCER, &x), -EUSERS);
	assert_int_equal(shmx_ring_create(tc_key(1), 4096, 0600, &x), -EUSERS);
	assert_null(x);
	/* a slot freed by close is taken again */
	shmx_ring_close(r[5]);
	r[5] = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_open(tc_key(1), SHMX_RING_PRODUCER, &x), -EUSERS);
	/* all of them work */
	{
		char buf[8];

		assert_int_equal(shmx_ring_send(r[0], "x", 1, 0), 1);
		assert_int_equal(shmx_ring_recv(r[63], buf, sizeof(buf), 0), 1);
	}
	for (int i = 0; i < SHMX_RING_MAX_PEERS; i++)
		shmx_ring_close(r[i]);
	x = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	shmx_ring_close(x);
}

/* ---- the constants, and a creator half way ---- */

#define KEY tc_key(1)
#define CAP 4096u
#define ALARM_S (5 * TC_SLOW)

static uint8_t buf[CAP];

static void pass(struct tr_env *e, size_t len)
{
	memset(buf, 'p', len);
	TR_EXPECT(shmx_ring_send(e->p, buf, len, 0), len);
	TR_EXPECT(shmx_ring_recv(e->c, buf, sizeof(buf), 0), len);
}

static void constants_changed_under_open_handles(struct tr_env *e)
{
	struct shmx_ring *x = NULL;

	/* the handles keep their own copies */
	e->h->capacity = 1u << 30;
	e->h->max_msg = UINT32_MAX;
	e->h->hdr_size = 0;
	for (int i = 0; i < 20; i++)
		pass(e, 1 + (size_t)i * 101);
	memset(buf, 'b', CAP / 2);
	TR_EXPECT(shmx_ring_send(e->p, buf, CAP / 2 - 7, 0), -EMSGSIZE);
	/* a new one is refused */
	TR_EXPECT(shmx_ring_open(KEY, SHMX_RING_CONSUMER, &x), -EBADMSG);
	atomic_store(&e->h->magic, 0x1234);
	pass(e, 200);
	TR_EXPECT(shmx_ring_open(KEY, SHMX_RING_PRODUCER, &x), -EBADMSG);
}

static void constants_are_copied_at_open(void **state)
{
	(void)state;
	tr_hostile_run(constants_changed_under_open_handles, "constants_changed_under_open_handles",
		       KEY, CAP, ALARM_S);
}

/* A segment whose creator is, or was, half way through making it a ring. */
static int half_made(void *arg)
{
	pid_t *init = arg;
	struct shmx_ring *r = NULL;
	struct shmx_ring_hdr *h;
	int id, e;
	int64_t t0;

	signal(SIGALRM, SIG_DFL);
	alarm(ALARM_S);
	id = shmx_get(KEY, SHMX_RING_HDR_SIZE + CAP, SHMX_CREAT | SHMX_EXCL | 0600);
	TC_CHECK(id >= 0);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, (void **)&h), 0);
	h->init_pid = init[0];
	h->init_start = init[0] > 0 ? shmx_proc_starttime(init[0]) : 0;
	atomic_store(&h->magic, SHMX_RING_INIT_MAGIC(init[0]));
	/* an opener waits for the creator, a while */
	t0 = tc_now_ms();
	TR_EXPECT(shmx_ring_open(KEY, SHMX_RING_CONSUMER, &r), -EAGAIN);
	TC_CHECK(tc_now_ms() - t0 < 3 * TC_1S);
	e = shmx_ring_create(KEY, CAP, 0600, &r);
	if (init[1]) {
		/* the creator is dead: another creator takes over */
		TR_EXPECT(e, 0);
		TC_CHECK_EQ(atomic_load(&h->magic), SHMX_RING_MAGIC);
		shmx_ring_close(r);
		r = tr_child_open(KEY, SHMX_RING_CONSUMER);
		shmx_ring_close(r);
	} else {
		TR_EXPECT(e, -EAGAIN);
	}
	shmx_dt(h);
	return 0;
}

static void creator_half_way(void **state)
{
	pid_t init[2];
	pid_t dead;

	(void)state;
	/* a live creator: wait, then give up */
	init[0] = tc_keeper_pid();
	init[1] = 0;
	assert_int_equal(tc_fork_call((uid_t)-1, 0, half_made, init, 3 * ALARM_S * 1000), 0);
	assert_int_equal(shmx_ctl(shmx_get(KEY, 0, 0), SHMX_RMID, NULL), 0);
	/* a dead one */
	dead = fork();
	assert_true(dead >= 0);
	if (dead == 0)
		_exit(0);
	assert_int_equal(tc_waitpid(dead, TC_REPLY_MS), 0);
	init[0] = dead;
	init[1] = 1;
	assert_int_equal(tc_fork_call((uid_t)-1, 0, half_made, init, 3 * ALARM_S * 1000), 0);
}

/* ---- close ---- */

static void close_drops_a_reservation(void **state)
{
	struct shmx_ring *p1, *p2, *c;
	char in[256];
	void *slot;

	(void)state;
	p1 = tr_create(tc_key(1), 4096, 0600);
	p2 = tr_open(tc_key(1), SHMX_RING_PRODUCER);
	c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	assert_int_equal(shmx_ring_send(p1, "before", 6, 0), 6);
	assert_int_equal(shmx_ring_reserve(p1, 200, &slot, 0), 0);
	memset(slot, 0xa5, 200);
	shmx_ring_close(p1);
	/* the other producer is not held up by the dropped reservation */
	assert_int_equal(shmx_ring_send(p2, "after", 5, SHMX_NONBLOCK), 5);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 6);
	assert_memory_equal(in, "before", 6);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 5);
	assert_memory_equal(in, "after", 5);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), SHMX_NONBLOCK), -EAGAIN);
	shmx_ring_close(p2);
	assert_int_equal(shmx_ring_recv(c, in, sizeof(in), 0), 0);
	shmx_ring_close(c);
}

static void close_leaves_a_peeked_message(void **state)
{
	struct shmx_ring *p, *c1, *c2;
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
	shmx_ring_close(c1);
	assert_int_equal(shmx_ring_recv(c2, in, sizeof(in), SHMX_NONBLOCK), 5);
	assert_memory_equal(in, "first", 5);
	assert_int_equal(shmx_ring_recv(c2, in, sizeof(in), SHMX_NONBLOCK), 6);
	assert_memory_equal(in, "second", 6);
	shmx_ring_close(c2);
	shmx_ring_close(p);
}

/* ---- fork ---- */

struct forked {
	struct shmx_ring *p, *c;
};

static int child_opens_its_own(void *arg)
{
	struct forked *f = arg;
	struct shmx_ring *p;
	char in[8];
	void *slot;

	/* the inherited handles are not the child's to use */
	TC_CHECK_EQ(shmx_ring_send(f->p, "x", 1, SHMX_NONBLOCK), -EBADF);
	TC_CHECK_EQ(shmx_ring_reserve(f->p, 1, &slot, SHMX_NONBLOCK), -EBADF);
	TC_CHECK_EQ(shmx_ring_recv(f->c, in, sizeof(in), SHMX_NONBLOCK), -EBADF);
	/* closing them leaves the parent's alone */
	shmx_ring_close(f->p);
	shmx_ring_close(f->c);
	p = tr_child_open(tc_key(1), SHMX_RING_PRODUCER);
	TC_CHECK_EQ(shmx_ring_send(p, "from the child", 14, 0), 14);
	shmx_ring_close(p);
	return 0;
}

static int child_leaves_inherited_handles(void *arg)
{
	(void)arg;
	/* exits with them: the ring must not count the child as a peer */
	return 0;
}

static void a_child_opens_its_own_handle(void **state)
{
	struct forked f;
	char in[64];
	int id;

	(void)state;
	f.p = tr_create(tc_key(1), 4096, 0600);
	f.c = tr_open(tc_key(1), SHMX_RING_CONSUMER);
	id = shmx_ring_id(f.p);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_opens_its_own, &f, TC_REPLY_MS), 0);
	assert_int_equal(shmx_ring_recv(f.c, in, sizeof(in), SHMX_NONBLOCK), 14);
	assert_memory_equal(in, "from the child", 14);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, child_leaves_inherited_handles, &f,
				      TC_REPLY_MS), 0);
	/* the parent's handles were untouched by both */
	assert_int_equal(shmx_ring_send(f.p, "parent", 6, 0), 6);
	assert_int_equal(shmx_ring_recv(f.c, in, sizeof(in), 0), 6);
	assert_int_equal(tc_wait_nattch(id, 2, TC_1S), 2);
	shmx_ring_close(f.p);
	/* the only producer was the parent's: the end, not a wait for the children */
	assert_int_equal(shmx_ring_recv(f.c, in, sizeof(in), SHMX_NONBLOCK), 0);
	shmx_ring_close(f.c);
	assert_int_equal(tc_wait_nattch(id, 0, TC_1S), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tr_test(create_rounds_capacity_up),
		tr_test(create_takes_one_gib_at_most),
		tr_test(create_rejects_bad_arguments),
		tr_test(create_opens_the_existing_ring_unless_excl),
		tr_test(ring_lives_as_long_as_its_segment),
		tr_test(close_detaches),
		tr_test(open_rejects_bad_arguments),
		tr_test(open_rejects_what_is_not_a_ring),
		tr_test(open_checks_the_header_fields),
		tr_test(open_needs_read_and_write_permission),
		tr_test(open_beyond_max_peers_is_eusers),
		tr_test(constants_are_copied_at_open),
		tr_test(creator_half_way),
		tr_test(close_drops_a_reservation),
		tr_test(close_leaves_a_peeked_message),
		tr_test(a_child_opens_its_own_handle),
	};

	return tr_run_tests("ring", tests, 30);
}
