/* SPDX-License-Identifier: MIT */
/*
 * <shmx/ring.h>: making, opening and closing rings (layout: ringlayout.h).
 * A ring is a segment found by key whose first page is the ring's header;
 * the creator fills in the constants and then the magic, and an opener
 * waits briefly for a ring being made.  The messages are in ring.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <shmx.h>
#include <shmx/ring.h>

#include "client.h"
#include "ring.h"
#include "util/sys.h"

#define INIT_WAIT_MS 1000       /* how long open waits for a creator to finish */

_Atomic unsigned ring_fork_gen;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
	atomic_fetch_add_explicit(&ring_fork_gen, 1, memory_order_relaxed);
}

static void hook_fork(void)
{
	pthread_atfork(NULL, NULL, count_fork);
}

static uint32_t round_capacity(size_t capacity)
{
	uint32_t cap = SHMX_RING_MIN_CAP;

	while (cap < capacity)
		cap <<= 1;
	return cap;
}

/* The constants of a ready ring, checked against the segment they are in. */
static int check_constants(struct shmx_ring *r, size_t segsz)
{
	struct shmx_ring_hdr *h = r->hdr;
	uint32_t cap = h->capacity;

	if (h->version != SHMX_RING_VERSION || h->hdr_size != SHMX_RING_HDR_SIZE ||
	    cap < SHMX_RING_MIN_CAP || cap > SHMX_RING_MAX_CAP || (cap & (cap - 1)) ||
	    (size_t)cap + SHMX_RING_HDR_SIZE > segsz || h->max_msg != cap / 2 - SHMX_RING_REC_HDR)
		return -EBADMSG;
	r->cap = cap;
	r->mask = cap - 1;
	r->max_msg = cap / 2 - SHMX_RING_REC_HDR;
	r->data = (unsigned char *)r->hdr + SHMX_RING_HDR_SIZE;
	return 0;
}

/* Makes a fresh segment a ring (the memfd starts zero-filled), unless it
 * was taken from us meanwhile (then false). */
static bool init_ring(struct shmx_ring *r, uint32_t cap)
{
	struct shmx_ring_hdr *h = r->hdr;
	uint64_t mine = SHMX_RING_INIT_MAGIC(r->pid);

	h->init_pid = r->pid;
	h->init_start = r->start;
	h->version = SHMX_RING_VERSION;
	h->hdr_size = SHMX_RING_HDR_SIZE;
	h->capacity = cap;
	h->max_msg = cap / 2 - SHMX_RING_REC_HDR;
	return atomic_compare_exchange_strong(&h->magic, &mine, SHMX_RING_MAGIC);
}

/* Whether the creator named by an "initializing" magic is gone: no such
 * process, a zombie, or (once it wrote its start time) a later process
 * with its pid. */
static bool creator_gone(const struct shmx_ring_hdr *h, uint64_t m)
{
	pid_t pid = (pid_t)(uint32_t)m;

	return !shmx_proc_alive(pid, h->init_pid == pid ? h->init_start : 0);
}

/*
 * Waits until the ring is ready.  fresh_cap != 0: we created the segment (or
 * may have) and make it a ring if nobody has; a creator that died while at
 * it is taken over.  -EAGAIN if it stays uninitialized, -EBADMSG if it is not
 * a ring.
 */
static int await_ready(struct shmx_ring *r, uint32_t fresh_cap, size_t segsz)
{
	struct shmx_ring_hdr *h = r->hdr;
	int64_t deadline = shmx_mono_ms() + INIT_WAIT_MS;
	struct timespec pause = { 0, 1000000 };

	for (;;) {
		uint64_t m = atomic_load(&h->magic);

		if (m == SHMX_RING_MAGIC)
			return check_constants(r, segsz);
		if (m == 0 && fresh_cap) {
			if (atomic_compare_exchange_strong(&h->magic, &m,
							   SHMX_RING_INIT_MAGIC(r->pid)) &&
			    init_ring(r, fresh_cap))
				return check_constants(r, segsz);
			continue;
		}
		if (m != 0 && !SHMX_RING_IS_INIT(m))
			return -EBADMSG;
		if (SHMX_RING_IS_INIT(m) && (pid_t)(uint32_t)m != r->pid && creator_gone(h, m)) {
			/* its creator died half way: start again (only if that
			 * same creator is still named: a new one's start stays) */
			atomic_compare_exchange_strong(&h->magic, &m, 0);
			continue;
		}
		if (shmx_mono_ms() >= deadline)
			return -EAGAIN;
		nanosleep(&pause, NULL);
	}
}

static int ring_open_id(int id, int role, uint32_t fresh_cap, uint32_t want_cap,
			struct shmx_ring **ringp)
{
	struct shmx_ring *r;
	struct shmx_ds ds;
	void *base;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->id = id;
	r->role = role;
	pthread_once(&fork_hook_once, hook_fork);
	r->fork_gen = atomic_load_explicit(&ring_fork_gen, memory_order_relaxed);
	r->pid = getpid();
	r->start = shmx_proc_starttime(r->pid);
	r->slot = -1;
	/* read and write: a consumer moves head, so SHMX_RDONLY cannot do */
	rc = shmx_at(id, NULL, 0, &base);
	if (rc < 0)
		goto fail_free;
	r->hdr = base;
	rc = shmx_ctl(id, SHMX_STAT, &ds);
	if (rc < 0)
		goto fail_dt;
	rc = -EBADMSG;
	if (ds.segsz < SHMX_RING_HDR_SIZE + SHMX_RING_MIN_CAP)
		goto fail_dt;
	rc = await_ready(r, fresh_cap, ds.segsz);
	if (rc < 0)
		goto fail_dt;
	rc = -EINVAL;
	if (r->cap < want_cap)          /* an existing ring, too small */
		goto fail_dt;
	rc = ring_join(r);
	if (rc < 0)
		goto fail_dt;
	*ringp = r;
	return 0;

fail_dt:
	shmx_dt(base);
fail_free:
	free(r);
	return rc;
}

static int do_create(key_t key, size_t capacity, int flags, struct shmx_ring **ringp)
{
	uint32_t cap;
	int id;

	if (!ringp || capacity == 0 || capacity > SHMX_RING_MAX_CAP || (flags & ~(0777 | SHMX_EXCL)))
		return -EINVAL;
	cap = round_capacity(capacity);
	id = shmx_get(key, SHMX_RING_HDR_SIZE + (size_t)cap, SHMX_CREAT | flags);
	if (id < 0)
		return id;
	return ring_open_id(id, SHMX_RING_PRODUCER, cap, cap, ringp);
}

static int do_open(key_t key, int role, struct shmx_ring **ringp)
{
	int id;

	if (!ringp || (role != SHMX_RING_PRODUCER && role != SHMX_RING_CONSUMER))
		return -EINVAL;
	id = shmx_get(key, 0, 0);
	if (id < 0)
		return id;
	return ring_open_id(id, role, 0, 0, ringp);
}

static void do_close(struct shmx_ring *r)
{
	if (!r)
		return;
	/* a copy inherited through fork() is not a member: leave the
	 * parent's entry and locks alone */
	if (r->pid == getpid()) {
		if (atomic_load(&r->pending) != RING_IDLE) {
			atomic_store(&r->pending, RING_IDLE);
			ring_unlock(r, r->role == SHMX_RING_PRODUCER ? &r->hdr->prod_lock
								     : &r->hdr->cons_lock);
		}
		ring_leave(r);
	}
	shmx_dt(r->hdr);
	free(r);
}

_public_ size_t shmx_ring_capacity(const struct shmx_ring *r)
{
	return r ? r->cap : 0;
}

_public_ size_t shmx_ring_max_msg(const struct shmx_ring *r)
{
	return r ? r->max_msg : 0;
}

_public_ int shmx_ring_id(const struct shmx_ring *r)
{
	return r ? r->id : -EINVAL;
}

/* The public functions leave errno as it was (API.md). */

_public_ int shmx_ring_create(key_t key, size_t capacity, int flags, struct shmx_ring **ringp)
{
	return KEEP_ERRNO(do_create(key, capacity, flags, ringp));
}

_public_ int shmx_ring_open(key_t key, int role, struct shmx_ring **ringp)
{
	return KEEP_ERRNO(do_open(key, role, ringp));
}

_public_ void shmx_ring_close(struct shmx_ring *r)
{
	int saved = errno;

	do_close(r);
	errno = saved;
}
