/* SPDX-License-Identifier: MIT */
/*
 * Who has a ring open, and how its users take turns, sleep and wake.
 *
 * Membership: each handle holds an entry of hdr->peers (pid, start time,
 * role, generation).  Whoever waits for SHMX_RING_CHECK_MS without progress
 * looks for entries whose process is gone (or whose pid now belongs to a
 * process that started later) and removes them, releasing any lock they held
 * and waking everyone to look again.
 *
 * Locks: producers take turns on prod_lock, consumers on cons_lock.  A lock
 * word holds its owner's token (entry and generation), so a waiter can tell
 * a live owner from a dead or departed one.  Uncontended, taking and
 * releasing is one atomic operation each and no system call.
 *
 * Sleeping: a waiter first polls its condition for a few microseconds (the
 * other side is most often running), then counts itself in (waiters), makes
 * the wake word even, checks its condition and sleeps on the wake word; the
 * other side changes the condition, then (only if the count is not zero and
 * the word is even) makes the word odd and wakes the sleepers: one wake-up
 * per sleep, not one per message.  Both sides' accesses are sequentially
 * consistent, so either the waiter sees the change or the other side sees
 * the waiter and the even word.
 *
 * Everything read from the header may be garbage written by another process:
 * bad values end in -EBADMSG, and every loop is bounded.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <shmx/ring.h>

#include "ring.h"
#include "util/sys.h"

#define SPIN_LOOPS 100
/* How long a waiter polls before it sleeps, in pauses (400: about 10 us
 * here).  Adaptive, per handle: doubled when a poll found what it waited
 * for, halved when it had to sleep anyway, so a peer that is descheduled or
 * slow costs little polling and a busy stream pays no sleeps. */
#define POLL_MAX 400
#define POLL_MIN 16

static uint32_t token_of(int slot, uint32_t state)
{
	return ((state >> 2) & 0xffffffu) << 7 | (uint32_t)(slot + 1);
}

static int futex_wait(_Atomic uint32_t *word, uint32_t val, int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	/* not FUTEX_PRIVATE: the sleepers and wakers are different processes */
	if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, &ts, NULL, 0) < 0)
		return -errno;
	return 0;
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Wakes the sleepers of the other side, once: an odd wake word says that a
 * wake-up went out and no sleeper has gone back to sleep since, so the
 * sends (releases) after it make no system call until one has.
 */
void ring_wake(_Atomic uint32_t *waiters, _Atomic uint32_t *wake)
{
	uint32_t w;

	if (atomic_load(waiters) == 0)
		return;
	w = atomic_load(wake);
	if ((w & 1) == 0 && atomic_compare_exchange_strong(wake, &w, w + 1))
		futex_wake(wake, INT_MAX);
}

/* A sleeper makes the wake word even again (bounded: it is shared memory). */
static uint32_t rearm(_Atomic uint32_t *wake)
{
	uint32_t w = atomic_load(wake);

	for (int i = 0; (w & 1) && i < 100; i++)
		if (atomic_compare_exchange_weak(wake, &w, w + 1))
			return w + 1;
	return w;
}

/* Everyone asleep looks again: membership changed. */
static void wake_all(struct shmx_ring_hdr *h)
{
	/* by 2: an odd word stays odd (see ring_wake) */
	atomic_fetch_add(&h->cons_wake, 2);
	futex_wake(&h->cons_wake, INT_MAX);
	atomic_fetch_add(&h->prod_wake, 2);
	futex_wake(&h->prod_wake, INT_MAX);
}

/* Keeps a count from going below 0 (a garbage 0 stays 0). */
static void count_down(_Atomic uint32_t *count)
{
	uint32_t n = atomic_load(count);

	while (n > 0 && !atomic_compare_exchange_weak(count, &n, n - 1))
		;
}

bool ring_has(struct shmx_ring *r, uint32_t role)
{
	int i;

	/* our own entry says what we are, whatever it holds now */
	if (r->slot >= 0 && SHMX_PEER_ROLE(r->state) == role)
		return true;
	for (i = 0; i < SHMX_RING_NPEERS; i++)
		if (i != r->slot && SHMX_PEER_ROLE(atomic_load(&r->hdr->peers[i].state)) == role)
			return true;
	return false;
}

/* A lock held by token is released (the holder left or died). */
static void drop_lock_of(_Atomic uint32_t *lock, uint32_t token)
{
	uint32_t v = atomic_load(lock);

	if ((v & ~SHMX_LOCK_WAITERS) == token && atomic_compare_exchange_strong(lock, &v, 0) &&
	    (v & SHMX_LOCK_WAITERS))
		futex_wake(lock, INT_MAX);
}

/* Takes entry slot, seen in state, out of the ring (it left or died). */
static void remove_peer(struct shmx_ring_hdr *h, int slot, uint32_t state, bool died)
{
	uint32_t token = token_of(slot, state);

	/* the generation stays, so the next user of the entry has a new one */
	/* the last producer to leave says how the stream ended; said before
	 * the entry goes, so that whoever sees it gone sees how */
	if (SHMX_PEER_ROLE(state) == SHMX_PEER_PRODUCER)
		atomic_store(&h->producer_died, died);
	if (!atomic_compare_exchange_strong(&h->peers[slot].state, &state, state & ~3u))
		return;                 /* someone else removed it first */
	atomic_fetch_add(&h->members_gen, 1);
	drop_lock_of(&h->prod_lock, token);
	drop_lock_of(&h->cons_lock, token);
	wake_all(h);
}

static bool peer_alive(const struct shmx_ring *r, const struct shmx_ring_peer *p)
{
	/* ourselves (another handle of this process), or an earlier process
	 * that had our pid */
	if (p->pid == r->pid)
		return p->starttime == r->start;
	return shmx_proc_alive(p->pid, p->starttime);
}

void ring_reap(struct shmx_ring *r)
{
	struct shmx_ring_hdr *h = r->hdr;
	int i;

	for (i = 0; i < SHMX_RING_NPEERS; i++) {
		uint32_t s = atomic_load(&h->peers[i].state);

		/* an entry being filled in may still show its last user's pid */
		if (SHMX_PEER_ROLE(s) == SHMX_PEER_FREE || SHMX_PEER_ROLE(s) == SHMX_PEER_CLAIMED ||
		    i == r->slot)
			continue;
		if (!peer_alive(r, &h->peers[i]))
			remove_peer(h, i, s, true);
	}
}

int ring_join(struct shmx_ring *r)
{
	struct shmx_ring_hdr *h = r->hdr;
	uint32_t role = r->role == SHMX_RING_PRODUCER ? SHMX_PEER_PRODUCER : SHMX_PEER_CONSUMER;
	int pass, i;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < SHMX_RING_NPEERS; i++) {
			struct shmx_ring_peer *p = &h->peers[i];
			uint32_t s = atomic_load(&p->state), claimed;

			if (SHMX_PEER_ROLE(s) != SHMX_PEER_FREE)
				continue;
			claimed = (((s >> 2) + 1) << 2) | SHMX_PEER_CLAIMED;
			if (!atomic_compare_exchange_strong(&p->state, &s, claimed))
				continue;
			p->pid = r->pid;
			p->starttime = r->start;
			r->slot = i;
			r->state = (claimed & ~3u) | role;
			r->token = token_of(i, r->state);
			atomic_store(&p->state, r->state);
			atomic_fetch_add(&h->members_gen, 1);
			if (role == SHMX_PEER_CONSUMER)
				atomic_store(&h->consumers_seen, 1);
			else
				atomic_store(&h->producer_died, 0);
			wake_all(h);
			return 0;
		}
		/* full: entries of dead processes may be free for the taking */
		r->slot = -1;
		ring_reap(r);
	}
	return -EUSERS;
}

void ring_leave(struct shmx_ring *r)
{
	remove_peer(r->hdr, r->slot, r->state, false);
}

/*
 * The holder of a lock we have waited on for a while: gone (entry free or
 * reused) means the lock is stale, dead means it is removed; both free the
 * lock.  A token that names no entry is garbage.
 */
static int check_holder(struct shmx_ring *r, _Atomic uint32_t *lock, uint32_t v)
{
	uint32_t token = v & ~SHMX_LOCK_WAITERS;
	int slot = SHMX_TOKEN_SLOT(token);
	uint32_t s;

	if (token == 0)
		return 0;               /* released meanwhile */
	if (slot < 0 || slot >= SHMX_RING_NPEERS)
		return -EBADMSG;
	s = atomic_load(&r->hdr->peers[slot].state);
	if (SHMX_PEER_ROLE(s) == SHMX_PEER_FREE || token_of(slot, s) != token) {
		drop_lock_of(lock, token);
		return 0;
	}
	if (!peer_alive(r, &r->hdr->peers[slot]))
		remove_peer(r->hdr, slot, s, true);
	return 0;
}

bool ring_check_due(struct shmx_ring *r)
{
	int64_t now = shmx_mono_ms();

	if (now - atomic_load_explicit(&r->last_check, memory_order_relaxed) < SHMX_RING_CHECK_MS)
		return false;
	atomic_store_explicit(&r->last_check, now, memory_order_relaxed);
	return true;
}

/* Takes a lock that is free (0, or only the sleepers' flag left over). */
static bool try_take(struct shmx_ring *r, _Atomic uint32_t *lock)
{
	uint32_t v = atomic_load(lock);

	/* others may be asleep: keep the flag for them */
	return (v & ~SHMX_LOCK_WAITERS) == 0 &&
	       atomic_compare_exchange_strong(lock, &v, r->token | (v & SHMX_LOCK_WAITERS));
}

int ring_lock(struct shmx_ring *r, _Atomic uint32_t *lock, bool nonblock)
{
	uint32_t v = 0;
	int64_t since;
	int i, rc;

	if (atomic_compare_exchange_strong(lock, &v, r->token))
		return 0;
	if (nonblock) {
		/* a caller that never waits still notices a dead holder */
		if (ring_check_due(r)) {
			rc = check_holder(r, lock, atomic_load(lock));
			if (rc < 0)
				return rc;
			if (try_take(r, lock))
				return 0;
		}
		return -EAGAIN;
	}
	for (i = 0; i < SPIN_LOOPS; i++) {
		cpu_relax();
		if (try_take(r, lock))
			return 0;
	}
	since = shmx_mono_ms();
	for (;;) {
		v = atomic_load(lock);
		if ((v & ~SHMX_LOCK_WAITERS) == 0) {
			/* others may be asleep too: keep the flag for them */
			if (atomic_compare_exchange_strong(lock, &v, r->token | SHMX_LOCK_WAITERS))
				return 0;
			continue;
		}
		if (!(v & SHMX_LOCK_WAITERS) &&
		    !atomic_compare_exchange_strong(lock, &v, v | SHMX_LOCK_WAITERS))
			continue;
		rc = futex_wait(lock, v | SHMX_LOCK_WAITERS, SHMX_RING_CHECK_MS);
		if (rc == -EINTR)
			return rc;
		if (shmx_mono_ms() - since >= SHMX_RING_CHECK_MS) {
			rc = check_holder(r, lock, atomic_load(lock));
			if (rc < 0)
				return rc;
			since = shmx_mono_ms();
		}
	}
}

void ring_unlock(struct shmx_ring *r, _Atomic uint32_t *lock)
{
	uint32_t v = atomic_exchange(lock, 0);

	if (v & SHMX_LOCK_WAITERS)
		futex_wake(lock, 1);
}

int ring_wait(struct shmx_ring *r, _Atomic uint32_t *waiters, _Atomic uint32_t *wake,
	      int (*ready)(struct shmx_ring *r, void *arg), void *arg,
	      int (*gone)(struct shmx_ring *r))
{
	int64_t since = shmx_mono_ms();

	/* the other side is most often running: polling a few microseconds
	 * saves a sleep and a wake-up (two syscalls, two context switches) */
	int loops = atomic_load_explicit(&r->poll_loops, memory_order_relaxed);

	if (loops < POLL_MIN || loops > POLL_MAX)
		loops = POLL_MAX;
	for (int i = 0; i < loops; i++) {
		int rc = ready(r, arg);

		if (rc != 0) {
			atomic_store_explicit(&r->poll_loops, loops < POLL_MAX ? 2 * loops : POLL_MAX,
					      memory_order_relaxed);
			return rc == 1 ? 0 : rc;
		}
		cpu_relax();
	}
	atomic_store_explicit(&r->poll_loops, loops > POLL_MIN ? loops / 2 : POLL_MIN,
			      memory_order_relaxed);
	for (;;) {
		uint32_t w;
		int rc;

		atomic_fetch_add(waiters, 1);
		w = rearm(wake);
		/* the condition's loads are acquire loads: keep them after the
		 * count and the word, as the waker's look is after its store */
		atomic_thread_fence(memory_order_seq_cst);
		rc = ready(r, arg);
		if (rc == 0) {
			/* what they did before they left counts */
			rc = gone(r);
			if (rc != 0 && ready(r, arg) == 1)
				rc = 1;
		}
		if (rc != 0) {
			count_down(waiters);
			return rc == 1 ? 0 : rc;
		}
		rc = futex_wait(wake, w, SHMX_RING_CHECK_MS);
		count_down(waiters);
		if (rc == -EINTR)
			return rc;
		if (shmx_mono_ms() - since >= SHMX_RING_CHECK_MS) {
			ring_reap(r);
			since = shmx_mono_ms();
		}
	}
}
