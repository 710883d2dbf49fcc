/* SPDX-License-Identifier: MIT */
/*
 * <shmx/ring.h>: messages through one segment (layout: ringlayout.h).
 *
 * A producer, holding prod_lock, writes a record at tail and then moves tail
 * past it; a consumer, holding cons_lock, reads the record at head and then
 * moves head past it.  Each side keeps the other's index as last seen
 * (r->cached) and reads the shared one only when that says there is not
 * enough: most calls touch only their own side's cache line and the data.
 * Membership, locks and sleeping are in ringpeer.c; making, opening and
 * closing in ringopen.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmx.h>
#include <shmx/ring.h>

#include "client.h"
#include "ring.h"
#include "util/sys.h"

#define ALIGN8(n) (((n) + 7u) & ~(uint32_t)7u)

/* A per-thread address: who made a reservation or a peek pending. */
static __thread char thread_mark;
#define THIS_THREAD ((uintptr_t)&thread_mark)

/* ------------------------------------------------------------------ */
/* Both sides */

/* Checks a call's handle, role and flags, and that this thread has nothing
 * pending on it (which would wait for itself). */
/* The wrong role, or a copy inherited through fork(): not a member here. */
static bool acts_as(const struct shmx_ring *r, int role)
{
	return r->role == role &&
	       r->fork_gen == atomic_load_explicit(&ring_fork_gen, memory_order_relaxed);
}

static int check_call(struct shmx_ring *r, int role, int flags)
{
	if (!r || (flags & ~SHMX_NONBLOCK))
		return -EINVAL;
	if (!acts_as(r, role))
		return -EBADF;
	if (atomic_load_explicit(&r->pending, memory_order_acquire) != RING_IDLE &&
	    atomic_load_explicit(&r->holder, memory_order_relaxed) == THIS_THREAD)
		return -EBUSY;
	return 0;
}

/*
 * With its side's lock held: whether this handle was the last of its side to
 * hold it.  If another was (or this handle is new), the other side's index
 * as this handle last saw it may be any number of 2^32 laps behind, though it
 * looks recent: the caller reads it afresh.  A token names entry and
 * generation, so it is never a new handle's by chance.
 */
static bool side_was_ours(struct shmx_ring *r, _Atomic uint32_t *last)
{
	if (atomic_load_explicit(last, memory_order_relaxed) == r->token)
		return true;
	atomic_store_explicit(last, r->token, memory_order_relaxed);
	return false;
}

/* Ends a reservation or peek: only by the thread that made it. */
static int check_pending(struct shmx_ring *r, int role, enum ring_pending what)
{
	if (!r)
		return -EINVAL;
	if (!acts_as(r, role))
		return -EBADF;
	if (atomic_load_explicit(&r->pending, memory_order_acquire) != (int)what ||
	    atomic_load_explicit(&r->holder, memory_order_relaxed) != THIS_THREAD)
		return -EINVAL;
	return 0;
}

static void set_pending(struct shmx_ring *r, enum ring_pending what)
{
	atomic_store_explicit(&r->holder, THIS_THREAD, memory_order_relaxed);
	atomic_store_explicit(&r->pending, what, memory_order_release);
}

/* ------------------------------------------------------------------ */
/* Producers */

/* Bytes free, from the head last seen; checks what it reads. */
static int room(struct shmx_ring *r, uint32_t tail, uint32_t *freep, bool reload)
{
	uint32_t used = tail - r->cached;

	if (reload || used > r->cap) {
		uint32_t head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);

		used = tail - head;
		if (used > r->cap || (head & 7u))
			return -EBADMSG;
		r->cached = head;
	}
	*freep = r->cap - used;
	return 0;
}

struct room_arg {
	uint32_t tail, need;
};

static int room_ready(struct shmx_ring *r, void *arg)
{
	const struct room_arg *a = arg;
	uint32_t free_bytes;
	int rc = room(r, a->tail, &free_bytes, true);

	return rc < 0 ? rc : free_bytes >= a->need;
}

static int consumers_gone(struct shmx_ring *r)
{
	if (atomic_load(&r->hdr->consumers_seen) && !ring_has(r, SHMX_PEER_CONSUMER))
		return -EPIPE;
	return 0;
}

static int do_reserve(struct shmx_ring *r, size_t len, void **slotp, int flags)
{
	struct shmx_ring_hdr *h;
	uint32_t tail, off, need, total, free_bytes, gen;
	int rc;

	rc = check_call(r, SHMX_RING_PRODUCER, flags);
	if (rc < 0)
		return rc;
	if (len == 0 || !slotp)
		return -EINVAL;
	if (len > r->max_msg)
		return -EMSGSIZE;
	h = r->hdr;
	rc = ring_lock(r, &h->prod_lock, flags & SHMX_NONBLOCK);
	if (rc < 0)
		return rc;
	/* like a pipe's writer once its readers are gone; the entries are
	 * read again only when one was taken or freed */
	gen = atomic_load(&h->members_gen);
	if (gen != r->members_seen) {
		r->members_seen = gen;
		r->no_consumers = consumers_gone(r) < 0;
	}
	rc = -EPIPE;
	if (r->no_consumers)
		goto fail;
	tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
	rc = -EBADMSG;
	if (tail & 7u)
		goto fail;
	/* the record, and before it a pad if it does not fit before the end */
	need = ALIGN8((uint32_t)len) + SHMX_RING_REC_HDR;
	off = tail & r->mask;
	total = need <= r->cap - off ? need : r->cap - off + need;
	rc = room(r, tail, &free_bytes, !side_was_ours(r, &h->prod_last));
	if (rc == 0 && free_bytes < total)
		rc = room(r, tail, &free_bytes, true);
	if (rc < 0)
		goto fail;
	if (free_bytes < total) {
		struct room_arg arg = { tail, total };

		rc = -EAGAIN;
		if (flags & SHMX_NONBLOCK) {
			/* a caller that never waits still notices dead readers */
			if (ring_check_due(r)) {
				ring_reap(r);
				if (consumers_gone(r) < 0)
					rc = -EPIPE;
			}
			goto fail;
		}
		rc = ring_wait(r, &h->prod_waiters, &h->prod_wake, room_ready, &arg, consumers_gone);
		if (rc < 0)
			goto fail;
	}
	if (total != need) {
		struct shmx_ring_rec pad = { r->cap - off - SHMX_RING_REC_HDR, SHMX_REC_PAD };

		memcpy(r->data + off, &pad, sizeof(pad));
		tail += r->cap - off;
		off = 0;
	}
	r->pend_pos = tail;
	r->pend_len = (uint32_t)len;
	set_pending(r, RING_RESERVED);
	*slotp = r->data + off + SHMX_RING_REC_HDR;
	return 0;

fail:
	ring_unlock(r, &h->prod_lock);
	return rc;
}

static int do_commit(struct shmx_ring *r, size_t len)
{
	struct shmx_ring_hdr *h;
	int rc;

	rc = check_pending(r, SHMX_RING_PRODUCER, RING_RESERVED);
	if (rc < 0)
		return rc;
	if (len > r->pend_len)
		return -EINVAL;
	h = r->hdr;
	if (len > 0) {
		struct shmx_ring_rec rec = { (uint32_t)len, SHMX_REC_MSG };

		memcpy(r->data + (r->pend_pos & r->mask), &rec, sizeof(rec));
		/* the record before the index that publishes it; and the
		 * index before the look at the sleepers (ringpeer.c) */
		atomic_store(&h->tail, r->pend_pos + ALIGN8((uint32_t)len) + SHMX_RING_REC_HDR);
		ring_wake(&h->cons_waiters, &h->cons_wake);
	}
	atomic_store_explicit(&r->pending, RING_IDLE, memory_order_relaxed);
	ring_unlock(r, &h->prod_lock);
	return 0;
}

static ssize_t do_send(struct shmx_ring *r, const void *msg, size_t len, int flags)
{
	void *slot;
	int rc;

	if (!msg && len)
		return -EINVAL;
	rc = do_reserve(r, len, &slot, flags);
	if (rc < 0)
		return rc;
	memcpy(slot, msg, len);
	rc = do_commit(r, len);
	return rc < 0 ? rc : (ssize_t)len;
}

/* ------------------------------------------------------------------ */
/* Consumers */

/* Bytes to read from head, from the tail last seen; checks what it reads. */
static int filled(struct shmx_ring *r, uint32_t head, uint32_t *usedp, bool reload)
{
	uint32_t used = r->cached - head;

	if (reload || used == 0 || used > r->cap) {
		uint32_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);

		used = tail - head;
		if (used > r->cap || (tail & 7u))
			return -EBADMSG;
		r->cached = tail;
	}
	*usedp = used;
	return 0;
}

static int data_ready(struct shmx_ring *r, void *arg)
{
	uint32_t used;
	int rc = filled(r, *(uint32_t *)arg, &used, true);

	return rc < 0 ? rc : used > 0;
}

static int producers_gone(struct shmx_ring *r)
{
	if (ring_has(r, SHMX_PEER_PRODUCER))
		return 0;
	return atomic_load(&r->hdr->producer_died) ? -EPIPE : RING_EOF;
}

/*
 * The next message at head (skipping a pad record), with cons_lock held:
 * 1 and its place, RING_EOF, or an error.  Every length is checked against
 * what the producers have published, so garbage cannot send us outside the
 * data area or round in circles.
 */
static int next_message(struct shmx_ring *r, int flags, uint32_t *offp, uint32_t *lenp)
{
	struct shmx_ring_hdr *h = r->hdr;
	uint32_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
	int pads = 0, rc;

	if (head & 7u)
		return -EBADMSG;
	if (!side_was_ours(r, &h->cons_last))
		r->cached = head;       /* says empty: read tail */
	for (;;) {
		struct shmx_ring_rec rec;
		uint32_t used, off;

		rc = filled(r, head, &used, false);
		if (rc < 0)
			return rc;
		if (used == 0) {
			/* the last message may have come just before its
			 * producer left: look again once they are gone */
			rc = producers_gone(r);
			if (rc == 0 && (flags & SHMX_NONBLOCK) && ring_check_due(r)) {
				ring_reap(r);
				rc = producers_gone(r);
			}
			if (rc != 0) {
				int again = filled(r, head, &used, true);

				if (again < 0)
					return again;
				if (used == 0)
					return rc;
				continue;
			}
			if (flags & SHMX_NONBLOCK)
				return -EAGAIN;
			rc = ring_wait(r, &h->cons_waiters, &h->cons_wake, data_ready, &head,
				       producers_gone);
			if (rc != 0)
				return rc;
			continue;
		}
		off = head & r->mask;
		memcpy(&rec, r->data + off, sizeof(rec));
		if (rec.kind == SHMX_REC_PAD) {
			uint32_t padlen = r->cap - off;

			/* a pad fills the rest of the area; one in a row */
			if (pads++ || off == 0 || rec.len != padlen - SHMX_RING_REC_HDR || padlen > used)
				return -EBADMSG;
			head += padlen;
			atomic_store_explicit(&h->head, head, memory_order_release);
			continue;
		}
		if (rec.kind != SHMX_REC_MSG || rec.len == 0 || rec.len > r->max_msg ||
		    ALIGN8(rec.len) + SHMX_RING_REC_HDR > used ||
		    off + SHMX_RING_REC_HDR + rec.len > r->cap)
			return -EBADMSG;
		*offp = off;
		*lenp = rec.len;
		r->pend_pos = head + ALIGN8(rec.len) + SHMX_RING_REC_HDR;
		return 1;
	}
}

static int do_peek(struct shmx_ring *r, const void **msgp, size_t *lenp, int flags)
{
	struct shmx_ring_hdr *h;
	uint32_t off = 0, len = 0;
	int rc;

	rc = check_call(r, SHMX_RING_CONSUMER, flags);
	if (rc < 0)
		return rc;
	if (!msgp || !lenp)
		return -EINVAL;
	h = r->hdr;
	rc = ring_lock(r, &h->cons_lock, flags & SHMX_NONBLOCK);
	if (rc < 0)
		return rc;
	rc = next_message(r, flags, &off, &len);
	if (rc != 1) {
		ring_unlock(r, &h->cons_lock);
		*msgp = NULL;
		*lenp = 0;
		return rc == RING_EOF ? 0 : rc;
	}
	set_pending(r, RING_PEEKED);
	*msgp = r->data + off + SHMX_RING_REC_HDR;
	*lenp = len;
	return (int)len;
}

static int do_release(struct shmx_ring *r)
{
	struct shmx_ring_hdr *h;
	int rc;

	rc = check_pending(r, SHMX_RING_CONSUMER, RING_PEEKED);
	if (rc < 0)
		return rc;
	h = r->hdr;
	/* done with the message before the index that frees its room; and
	 * the index before the look at the sleepers (ringpeer.c) */
	atomic_store(&h->head, r->pend_pos);
	ring_wake(&h->prod_waiters, &h->prod_wake);
	atomic_store_explicit(&r->pending, RING_IDLE, memory_order_relaxed);
	ring_unlock(r, &h->cons_lock);
	return 0;
}

static ssize_t do_recv(struct shmx_ring *r, void *buf, size_t cap, int flags)
{
	const void *msg;
	size_t len;
	int rc;

	if (!buf && cap)
		return -EINVAL;
	rc = do_peek(r, &msg, &len, flags);
	if (rc <= 0)
		return rc;
	if (len > cap) {
		/* it stays for a call with room for it */
		atomic_store_explicit(&r->pending, RING_IDLE, memory_order_relaxed);
		ring_unlock(r, &r->hdr->cons_lock);
		return -EMSGSIZE;
	}
	memcpy(buf, msg, len);
	rc = do_release(r);
	return rc < 0 ? rc : (ssize_t)len;
}

/* ------------------------------------------------------------------ */
/* The public functions leave errno as it was (API.md). */

_public_ int shmx_ring_reserve(struct shmx_ring *r, size_t len, void **slotp, int flags)
{
	return KEEP_ERRNO(do_reserve(r, len, slotp, flags));
}

_public_ int shmx_ring_commit(struct shmx_ring *r, size_t len)
{
	return KEEP_ERRNO(do_commit(r, len));
}

_public_ ssize_t shmx_ring_send(struct shmx_ring *r, const void *msg, size_t len, int flags)
{
	return KEEP_ERRNO(do_send(r, msg, len, flags));
}

_public_ int shmx_ring_peek(struct shmx_ring *r, const void **msgp, size_t *lenp, int flags)
{
	return KEEP_ERRNO(do_peek(r, msgp, lenp, flags));
}

_public_ int shmx_ring_release(struct shmx_ring *r)
{
	return KEEP_ERRNO(do_release(r));
}

_public_ ssize_t shmx_ring_recv(struct shmx_ring *r, void *buf, size_t cap, int flags)
{
	return KEEP_ERRNO(do_recv(r, buf, cap, flags));
}
