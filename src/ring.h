/* SPDX-License-Identifier: MIT */
/*
 * Inside a ring (<shmx/ring.h>): the handle, and what ring.c (the messages)
 * and ringpeer.c (membership, locks, sleeping and waking) share.
 */
#ifndef SHMX_RING_INTERNAL_H
#define SHMX_RING_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringlayout.h"

/* How long a waiter sleeps before it looks for dead peers: a peer killed
 * while the other side waits is noticed within this (plus the look). */
#define SHMX_RING_CHECK_MS 200

enum ring_pending {
	RING_IDLE,
	RING_RESERVED,                  /* between reserve and commit */
	RING_PEEKED,                    /* between peek and release */
};

struct shmx_ring {
	struct shmx_ring_hdr *hdr;
	unsigned char *data;
	/* our own copies of the constants: the shared ones may change */
	uint32_t cap, mask, max_msg;
	int id;
	int role;
	pid_t pid;                      /* the process that opened it */
	unsigned fork_gen;              /* ring_fork_gen then: a child's copy differs */
	uint64_t start;                 /* and its start time */
	int slot;                       /* our entry in hdr->peers */
	uint32_t state;                 /* its state word while we are in */
	uint32_t token;                 /* what our locks hold */

	/* Guarded by the ring's lock of our side (prod_lock or cons_lock). */
	uint32_t cached;                /* producer: head seen; consumer: tail seen */
	uint32_t members_seen;          /* producer: hdr->members_gen when it last
	                                   looked for consumers ... */
	bool no_consumers;              /* ... and whether they were all gone */
	uint32_t pend_pos;              /* reserved: where the record goes;
	                                   peeked: the head after it */
	uint32_t pend_len;              /* reserved: bytes asked for */
	/* Read without the lock (to answer -EBUSY), so atomic. */
	_Atomic int pending;            /* enum ring_pending */
	_Atomic int poll_loops;         /* how long ring_wait polls (ringpeer.c) */
	_Atomic int64_t last_check;     /* when a non-blocking call last looked
	                                   for dead peers (ms, monotonic) */
	_Atomic uintptr_t holder;       /* the thread that made it pending */
};

/* Evaluates a call with errno kept as it was. */
#define KEEP_ERRNO(expr)                        \
	({                                      \
		int saved_errno_ = errno;       \
		__typeof__(expr) r_ = (expr);   \
		errno = saved_errno_;           \
		r_;                             \
	})

/* ringopen.c: bumped in every child fork() makes (pthread_atfork), so a
 * handle can tell it was inherited without a getpid() system call. */
extern _Atomic unsigned ring_fork_gen;

/* ringpeer.c */
int ring_join(struct shmx_ring *r);
void ring_leave(struct shmx_ring *r);
int ring_lock(struct shmx_ring *r, _Atomic uint32_t *lock, bool nonblock);
void ring_unlock(struct shmx_ring *r, _Atomic uint32_t *lock);
/*
 * Sleeps until ready() returns 1 (-> 0) or an error (< 0), or gone()
 * returns RING_EOF or an error: the peers that could make it ready are gone.
 * Looks for dead peers every SHMX_RING_CHECK_MS.  -EINTR on a signal.
 */
#define RING_EOF 2
int ring_wait(struct shmx_ring *r, _Atomic uint32_t *waiters, _Atomic uint32_t *wake,
	      int (*ready)(struct shmx_ring *r, void *arg), void *arg,
	      int (*gone)(struct shmx_ring *r));
void ring_wake(_Atomic uint32_t *waiters, _Atomic uint32_t *wake);
void ring_reap(struct shmx_ring *r);
/* Whether a call that does not wait should look for dead peers now (at most
 * once every SHMX_RING_CHECK_MS per handle). */
bool ring_check_due(struct shmx_ring *r);
/* Whether an entry of role (SHMX_PEER_PRODUCER, _CONSUMER) is in use. */
bool ring_has(struct shmx_ring *r, uint32_t role);

#endif /* SHMX_RING_INTERNAL_H */
