/* SPDX-License-Identifier: MIT */
/* Helpers of the ring tests: see ring-util.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring-util.h"

/* ---- the watchdog ---- */

static int watchdog_s = 30;

static void watchdog(int sig)
{
	(void)sig;
	fail_msg("watchdog: the test was still running after %d s (blocked in a call?)",
		 watchdog_s * TC_SLOW);
}

int tr_setup(void **state)
{
	alarm((unsigned)(watchdog_s * TC_SLOW));
	return tc_setup(state);
}

int tr_teardown(void **state)
{
	alarm(0);
	return tc_teardown(state);
}

int tr_main(const char *group, const struct CMUnitTest *tests, size_t n, int seconds)
{
	struct sigaction sa;

	watchdog_s = seconds;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog;
	sa.sa_flags = SA_RESTART | SA_NODEFER;
	sigaction(SIGALRM, &sa, NULL);
	return tc_main(group, tests, n);
}

/* ---- handles ---- */

struct shmx_ring *tr_create(key_t key, size_t cap, int flags)
{
	struct shmx_ring *r = NULL;
	int e = shmx_ring_create(key, cap, flags, &r);

	if (e < 0)
		fail_msg("shmx_ring_create(%d, %zu, 0%o): %s", (int)key, cap, flags,
			 strerror(-e));
	assert_non_null(r);
	return r;
}

struct shmx_ring *tr_open(key_t key, int role)
{
	struct shmx_ring *r = NULL;
	int e = shmx_ring_open(key, role, &r);

	if (e < 0)
		fail_msg("shmx_ring_open(%d, %d): %s", (int)key, role, strerror(-e));
	assert_non_null(r);
	return r;
}

struct shmx_ring *tr_child_open(key_t key, int role)
{
	struct shmx_ring *r = NULL;
	int e = shmx_ring_open(key, role, &r);

	if (e < 0)
		tc_child_fail(__FILE__, __LINE__, "shmx_ring_open(%d, %d): %s", (int)key, role,
			      strerror(-e));
	return r;
}

struct shmx_ring_hdr *tr_hdr(const struct shmx_ring *r)
{
	void *p = NULL;
	int e = shmx_at(shmx_ring_id(r), NULL, 0, &p);

	if (e < 0)
		tc_child_fail(__FILE__, __LINE__, "shmx_at(ring %d): %s", shmx_ring_id(r),
			      strerror(-e));
	return p;
}

struct shmx_ring_peer *tr_entry(struct shmx_ring_hdr *h, pid_t pid, uint32_t role)
{
	for (int i = 0; i < SHMX_RING_NPEERS; i++)
		if (h->peers[i].pid == pid && SHMX_PEER_ROLE(atomic_load(&h->peers[i].state)) == role)
			return &h->peers[i];
	return NULL;
}

/* ---- random numbers ---- */

static uint64_t rng_state;

void tr_seed(uint64_t seed)
{
	rng_state = seed;
}

uint64_t tr_rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- messages ---- */

static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

size_t tr_len(uint32_t who, uint32_t seq, size_t min, size_t max)
{
	return min + mix(who * 0x9e3779b9u + seq) % (max - min + 1);
}

void tr_make(void *buf, size_t len, uint32_t who, uint32_t seq)
{
	struct tr_tag t = { who, seq };
	uint32_t base = mix(who * 131u + seq);
	uint8_t *b = buf;

	memcpy(b, &t, sizeof(t));
	for (size_t i = sizeof(t); i < len; i++)
		b[i] = (uint8_t)(base + i * 7u + (i >> 8));
}

bool tr_check(const void *buf, size_t len, size_t min, size_t max, struct tr_tag *t)
{
	const uint8_t *b = buf;
	uint32_t base;

	if (len < sizeof(*t))
		return false;
	memcpy(t, b, sizeof(*t));
	if (len != tr_len(t->who, t->seq, min, max))
		return false;
	base = mix(t->who * 131u + t->seq);
	for (size_t i = sizeof(*t); i < len; i++)
		if (b[i] != (uint8_t)(base + i * 7u + (i >> 8)))
			return false;
	return true;
}

void tr_send_msgs(struct shmx_ring *r, uint32_t who, uint32_t from, uint32_t n)
{
	uint8_t msg[TR_MAX];

	for (uint32_t s = from; s < from + n; s++) {
		size_t len = tr_len(who, s, TR_MIN, TR_MAX);

		tr_make(msg, len, who, s);
		TC_CHECK_EQ(shmx_ring_send(r, msg, len, 0), len);
	}
}

bool tr_recv_is(struct shmx_ring *r, uint32_t who, uint32_t seq)
{
	uint8_t in[TR_MAX];
	struct tr_tag t;
	ssize_t e = shmx_ring_recv(r, in, sizeof(in), 0);

	return e > 0 && tr_check(in, (size_t)e, TR_MIN, TR_MAX, &t) && t.who == who && t.seq == seq;
}

/* ---- calls in a thread ---- */

struct tr_call {
	pthread_t thread;
	struct shmx_ring *r;
	int op, flags;
	size_t len;
	ssize_t ret;
	_Atomic int done;
	int64_t end_ms;                 /* when the call returned */
	uint8_t buf[];                  /* the message sent, or the one received */
};

static void *call_run(void *arg)
{
	struct tr_call *c = arg;

	if (c->op == TR_SEND)
		c->ret = shmx_ring_send(c->r, c->buf, c->len, c->flags);
	else
		c->ret = shmx_ring_recv(c->r, c->buf, c->len, c->flags);
	c->end_ms = tc_now_ms();
	atomic_store(&c->done, 1);
	return NULL;
}

struct tr_call *tr_call_start(struct shmx_ring *r, int op, const void *msg, size_t len, int flags)
{
	/* on the heap: a call that never returns keeps it after the test */
	struct tr_call *c = calloc(1, sizeof(*c) + len);

	assert_non_null(c);
	c->r = r;
	c->op = op;
	c->len = len;
	c->flags = flags;
	if (msg)
		memcpy(c->buf, msg, len);
	assert_int_equal(pthread_create(&c->thread, NULL, call_run, c), 0);
	return c;
}

bool tr_call_done(struct tr_call *c)
{
	return atomic_load(&c->done) != 0;
}

ssize_t tr_call_finish(struct tr_call *c, int timeout_ms, void *out, int64_t *end_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;
	ssize_t ret;

	while (!tr_call_done(c)) {
		if (tc_now_ms() > end)
			fail_msg("%s did not return within %d ms", c->op == TR_SEND ? "send" : "recv",
				 timeout_ms);
		tc_sleep_ms(1);
	}
	pthread_join(c->thread, NULL);
	ret = c->ret;
	if (out && ret > 0)
		memcpy(out, c->buf, (size_t)ret);
	if (end_ms)
		*end_ms = c->end_ms;
	free(c);
	return ret;
}

/* ---- pipes ---- */

void tr_signal(int fd)
{
	char c = 1;

	while (write(fd, &c, 1) < 0 && errno == EINTR)
		;
}

int tr_wait_byte(int fd, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = end - tc_now_ms();
		ssize_t n;
		char c;

		if (left < 0)
			return -1;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 ? 1 : 0;
	}
}

/* ---- peers ---- */

static int peer_main(void *arg)
{
	struct tr_peer *a = arg;
	struct shmx_ring *r = NULL;

	close(a->ready[0]);
	if (a->act != TR_ACT_OPEN_MANY)
		r = tr_child_open(a->key, a->role);
	switch (a->act) {
	case TR_ACT_NONE:
		break;
	case TR_ACT_SEND:
		tr_send_msgs(r, 1, 0, (uint32_t)a->n);
		break;
	case TR_ACT_RESERVE: {
		void *slot;

		TC_CHECK_EQ(shmx_ring_reserve(r, 500, &slot, 0), 0);
		memset(slot, 0xa5, 500);
		break;
	}
	case TR_ACT_PEEK: {
		const void *m;
		size_t ml;
		struct tr_tag t;

		TC_CHECK(shmx_ring_peek(r, &m, &ml, 0) > 0);
		TC_CHECK(tr_check(m, ml, TR_MIN, TR_MAX, &t) && t.who == 1 && t.seq == 0);
		break;
	}
	case TR_ACT_OPEN_MANY:
		for (int i = 0; i < a->n; i++)
			tr_child_open(a->key, a->role);
		break;
	}
	tr_signal(a->ready[1]);
	/* until killed (teardown kills it at the latest) */
	for (int i = 0; i < 600; i++)
		tc_sleep_ms(100);
	return 1;
}

void tr_peer_start(struct tr_peer *a, key_t key, int role, enum tr_act act, int n)
{
	a->key = key;
	a->role = role;
	a->act = act;
	a->n = n;
	assert_int_equal(pipe(a->ready), 0);
	tc_fork_start(&a->f, (uid_t)-1, 0, peer_main, a);
	close(a->ready[1]);
	if (tr_wait_byte(a->ready[0], TC_REPLY_MS) != 1) {
		int st = tc_fork_finish(&a->f, 0);

		fail_msg("peer %d (role %d, act %d) did not get ready: %d", (int)a->f.pid, role, act,
			 st);
	}
	close(a->ready[0]);
}

void tr_peer_kill(struct tr_peer *a)
{
	int64_t end = tc_now_ms() + 2000;

	assert_int_equal(kill(a->f.pid, SIGKILL), 0);
	while (tc_pid_alive(a->f.pid)) {
		if (tc_now_ms() > end)
			fail_msg("peer %d still alive 2 s after SIGKILL", (int)a->f.pid);
		tc_sleep_ms(1);
	}
}

void tr_peer_reap(struct tr_peer *a)
{
	assert_int_equal(tc_fork_finish(&a->f, TC_REPLY_MS), 128 + SIGKILL);
}

/* ---- corrupting children ---- */

struct hostile {
	void (*fn)(struct tr_env *e);
	key_t key;
	int alarm_s;
};

/* The data area as the handles see it (a fresh ring: the first record at 0). */
static void learn_views(struct tr_env *e)
{
	const void *m;
	void *slot;
	size_t ml;

	TC_CHECK_EQ(shmx_ring_reserve(e->p, 8, &slot, 0), 0);
	memcpy(slot, "learning", 8);
	TC_CHECK_EQ(shmx_ring_commit(e->p, 8), 0);
	e->pdata = (uint8_t *)slot - SHMX_RING_REC_HDR;
	TC_CHECK_EQ(shmx_ring_peek(e->c, &m, &ml, 0), 8);
	e->cdata = (const uint8_t *)m - SHMX_RING_REC_HDR;
	TC_CHECK_EQ(shmx_ring_release(e->c), 0);
}

static int hostile_child(void *arg)
{
	struct hostile *x = arg;
	struct tr_env e;

	tc_exit_on_fault();
	/* a hang kills the child (the watchdog's handler would fail a test) */
	signal(SIGALRM, SIG_DFL);
	alarm((unsigned)x->alarm_s);
	e.p = tr_child_open(x->key, SHMX_RING_PRODUCER);
	e.c = tr_child_open(x->key, SHMX_RING_CONSUMER);
	e.h = tr_hdr(e.p);
	e.data = tr_data(e.h);
	learn_views(&e);
	x->fn(&e);
	/* leaving a wrecked ring is fine too */
	shmx_ring_close(e.p);
	shmx_ring_close(e.c);
	shmx_dt(e.h);
	return 0;
}

void tr_hostile_run(void (*fn)(struct tr_env *e), const char *name, key_t key, size_t cap,
		    int alarm_s)
{
	struct hostile x = { fn, key, alarm_s };
	struct shmx_ring *r = tr_create(key, cap, 0600 | SHMX_EXCL);
	int st;

	/* the segment stays; the child's handles are the only ones */
	shmx_ring_close(r);
	st = tc_fork_call((uid_t)-1, 0, hostile_child, &x, 3 * alarm_s * 1000);
	if (st == 128 + SIGALRM || st == -1)
		fail_msg("%s: a call on the corrupted ring did not return within %d s", name, alarm_s);
	if (st == TC_FAULTED || st > 128)
		fail_msg("%s: the child crashed on the corrupted ring (status %d)", name, st);
	if (st != 0)
		fail_msg("%s: failed", name);
	/* the next case gets a ring of its own */
	assert_int_equal(shmx_ctl(shmx_get(key, 0, 0), SHMX_RMID, NULL), 0);
}
