/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the ring tests (tests/test-ring*.c): a watchdog on every test,
 * handles asserted open, the ring's memory mapped by the test, self-checking
 * messages, blocking calls in a thread of their own, peer processes, and
 * children that corrupt a live ring.
 *
 * A message made by tr_make() carries who sent it and its number, has a
 * length that follows from both, and bytes that follow from all three, so
 * the receiver tells a lost, doubled, reordered, truncated or torn message
 * from a good one.
 */
#ifndef SHMX_TESTS_RING_UTIL_H
#define SHMX_TESTS_RING_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmx/ring.h>

#include "common.h"
#include "ringlayout.h"

#if defined(__SANITIZE_THREAD__)
#define TR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TR_TSAN 1
#endif
#endif
#ifndef TR_TSAN
#define TR_TSAN 0
#endif

/* sanitized builds: fewer rounds of the loops that count */
#if TC_SLOW > 1 || TR_TSAN
#define TR_SANITIZED 1
#else
#define TR_SANITIZED 0
#endif

/*
 * Every test runs under a watchdog: a call that blocks for good fails the
 * test (SIGALRM, as CMocka fails one on SIGSEGV) instead of the whole run.
 * A forked child that may hang sets SIGALRM back to SIG_DFL.
 */
int tr_setup(void **state);
int tr_teardown(void **state);
#define tr_test(f) cmocka_unit_test_setup_teardown(f, tr_setup, tr_teardown)
/* As tc_main(), with the watchdog: seconds per test (times TC_SLOW). */
int tr_main(const char *group, const struct CMUnitTest *tests, size_t n, int watchdog_s);
#define tr_run_tests(group, tests, watchdog_s) \
	tr_main(group, tests, sizeof(tests) / sizeof((tests)[0]), watchdog_s)

/* Asserted: create, open; in a forked child (TC_CHECK): open. */
struct shmx_ring *tr_create(key_t key, size_t cap, int flags);
struct shmx_ring *tr_open(key_t key, int role);
struct shmx_ring *tr_child_open(key_t key, int role);

/* The ring's memory, attached by the test itself: header, then data. */
struct shmx_ring_hdr *tr_hdr(const struct shmx_ring *r);
static inline uint8_t *tr_data(struct shmx_ring_hdr *h)
{
	return (uint8_t *)h + SHMX_RING_HDR_SIZE;
}

/* The entry of pid with role (SHMX_PEER_PRODUCER, ...), or NULL. */
struct shmx_ring_peer *tr_entry(struct shmx_ring_hdr *h, pid_t pid, uint32_t role);

/* ---- self-checking messages ---- */

struct tr_tag {
	uint32_t who;
	uint32_t seq;
};

/* The length of message seq of who: in [min, max], min >= 8. */
/* Random numbers reproducible from a seed (xorshift64*), for fuzzing. */
void tr_seed(uint64_t seed);
uint64_t tr_rnd(void);

size_t tr_len(uint32_t who, uint32_t seq, size_t min, size_t max);
void tr_make(void *buf, size_t len, uint32_t who, uint32_t seq);
/*
 * Whether buf holds a whole message of tr_make (with the length tr_len gives
 * for min and max); its tag in *t either way.
 */
bool tr_check(const void *buf, size_t len, size_t min, size_t max, struct tr_tag *t);

/* The same with lengths in [TR_MIN, TR_MAX]: sent (TC_CHECK), received. */
#define TR_MIN 8
#define TR_MAX 1000
void tr_send_msgs(struct shmx_ring *r, uint32_t who, uint32_t from, uint32_t n);
/* The next message (blocking recv) is who's number seq. */
bool tr_recv_is(struct shmx_ring *r, uint32_t who, uint32_t seq);

/* ---- a blocking call in a thread of its own, to act while it waits ---- */

enum { TR_SEND, TR_RECV };
struct tr_call;

/* Starts send (msg, len) or recv (a buffer of len) on r in a new thread. */
struct tr_call *tr_call_start(struct shmx_ring *r, int op, const void *msg, size_t len, int flags);
bool tr_call_done(struct tr_call *c);
/*
 * Waits up to timeout_ms for the call to return, fails the test if it has
 * not (the thread and its memory are then left to it); its result, the
 * message received copied to out (if not NULL) and when it returned in
 * *end_ms (if not NULL).
 */
ssize_t tr_call_finish(struct tr_call *c, int timeout_ms, void *out, int64_t *end_ms);

/* ---- pipes ---- */

/* Writes one byte. */
void tr_signal(int fd);
/* Waits up to timeout_ms for one byte: 1, 0 at EOF, -1 on timeout. */
int tr_wait_byte(int fd, int timeout_ms);

/* ---- peer processes: open, act, then wait to be killed ---- */

enum tr_act {
	TR_ACT_NONE,
	TR_ACT_SEND,                    /* n messages of who 1 (tr_send_msgs) */
	TR_ACT_RESERVE,                 /* reserve 500 bytes and scribble over them */
	TR_ACT_PEEK,                    /* peek, and check it is message 0 of who 1 */
	TR_ACT_OPEN_MANY,               /* open n handles of the role */
};

struct tr_peer {
	struct tc_fork f;
	key_t key;
	int role;
	enum tr_act act;
	int n;
	int ready[2];
};

/* Starts a peer on the ring of key and waits until it has done its act. */
void tr_peer_start(struct tr_peer *a, key_t key, int role, enum tr_act act, int n);
/* SIGKILL, and waits until it is a zombie (kill() returns before that). */
void tr_peer_kill(struct tr_peer *a);
/* Reaps it, asserting it died of the SIGKILL. */
void tr_peer_reap(struct tr_peer *a);

/* ---- a child that corrupts a live ring ---- */

struct tr_env {
	struct shmx_ring *p, *c;        /* the child's handles (set NULL if closed) */
	struct shmx_ring_hdr *h;
	uint8_t *data;                  /* our own view of the data area */
	const uint8_t *pdata, *cdata;   /* the producer's and consumer's views */
};

/*
 * Creates a ring of key and cap (the test's handle closed at once), then
 * in a child: opens a producer and a consumer, passes one message of 8
 * bytes (to learn where the handles see the data area), and runs fn, with
 * SIGSEGV and SIGBUS caught and alarm(alarm_s): a hang or a crash fails
 * the test, naming fn.  The ring is removed after.
 */
void tr_hostile_run(void (*fn)(struct tr_env *e), const char *name, key_t key, size_t cap,
		    int alarm_s);

/* In such a child: call must give want. */
#define TR_EXPECT(call, want) do {					\
		long long got_ = (long long)(call);			\
		if (got_ != (long long)(want))				\
			tc_child_fail(__FILE__, __LINE__, "%s: %lld, not %s", #call, got_, #want); \
	} while (0)

#endif
