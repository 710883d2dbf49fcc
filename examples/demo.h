/* SPDX-License-Identifier: MIT */
/*
 * What shmx-producer and shmx-consumer agree on: the layout of the segment
 * they share, its checksum, and a few helpers.  Both programs include it, so
 * the layout is written down once.
 *
 * The segment (found by key, created by whichever program comes first):
 *
 *   [0, 64)       struct demo_header: magic, sequence counters, done flag
 *   [64, end)     struct demo_record: the one record in flight
 *
 * The producer writes a record, then publishes its sequence number; the
 * consumer reads and checks it, then acknowledges that number.  One record is
 * in flight at a time: simple, and enough to show two processes sharing a
 * segment.  (The ring, <shmx/ring.h>, is the fast way to do this.)
 */
#ifndef SHMX_DEMO_H
#define SHMX_DEMO_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmx.h>

#define DEMO_MAGIC      UINT64_C(0x314d4544584d4853)    /* "SHMXDEM1" */
#define DEMO_SEG_SIZE   (64 * 1024)
#define DEMO_TIMEOUT_S  10              /* how long to wait for the peer */
#define DEMO_POLL_NS    100000          /* 0.1 ms between looks */

/*
 * Atomics in shared memory work across processes only if they are lock-free
 * (a lock-based atomic would use a lock private to each process).
 */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

struct demo_header {
	/* 0 in a fresh segment (a memfd starts zero-filled); whoever comes
	 * first sets it, so no other initialisation is needed. */
	_Atomic uint64_t magic;
	_Atomic uint64_t seq;           /* producer: last record published */
	_Atomic uint64_t ack;           /* consumer: last record checked */
	_Atomic uint32_t done;          /* producer: no more records */
	_Atomic uint32_t users;         /* programs attached (demo_close) */
	uint64_t count;                 /* valid once done: records sent */
	uint32_t total_sum;             /* valid once done: checksum of all */
	uint32_t pad2[5];
};

struct demo_record {
	uint64_t seq;                   /* must equal header.seq */
	uint32_t len;                   /* bytes of data */
	uint32_t sum;                   /* checksum of seq and data */
	unsigned char data[];
};

_Static_assert(sizeof(struct demo_header) == 64, "header is 64 bytes");

#define DEMO_MAX_DATA (DEMO_SEG_SIZE - sizeof(struct demo_header) - sizeof(struct demo_record))

static inline struct demo_record *demo_record(struct demo_header *h)
{
	return (struct demo_record *)(h + 1);
}

/* FNV-1a: a small checksum, enough to catch a torn or misplaced record. */
static inline uint32_t demo_sum(uint32_t sum, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		sum = (sum ^ b[i]) * 16777619u;
	return sum;
}

static inline uint32_t demo_record_sum(uint64_t seq, const void *data, size_t len)
{
	return demo_sum(demo_sum(2166136261u, &seq, sizeof(seq)), data, len);
}

/* KEY as System V tools take it: decimal, 0x... hex or 0... octal. */
static inline int demo_parse_key(const char *s, key_t *key)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || v == 0 ||
	    v < INT32_MIN || v > (long)UINT32_MAX)
		return -EINVAL;
	*key = (key_t)(int32_t)(uint32_t)v;     /* 0xffffffff is key -1 */
	return 0;
}

static inline int64_t demo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One polling step: sleep a little, or -ETIMEDOUT once the deadline passed. */
static inline int demo_wait_step(int64_t deadline_ms)
{
	struct timespec ts = { 0, DEMO_POLL_NS };

	if (demo_now_ms() >= deadline_ms)
		return -ETIMEDOUT;
	nanosleep(&ts, NULL);
	return 0;
}

/*
 * Finds the segment by key, or creates it if nobody has yet: SHMX_CREAT
 * without SHMX_EXCL, so two programs racing get the same segment.  Then
 * claims it for the demo: a zero magic becomes ours, another magic means the
 * key is used by something else.
 */
static inline int demo_attach(const char *who, key_t key, int *idp, struct demo_header **hp)
{
	uint64_t expected = 0;
	void *p;
	int id, r;

	id = shmx_get(key, DEMO_SEG_SIZE, SHMX_CREAT | 0600);
	if (id < 0) {
		fprintf(stderr, "%s: shmx_get(0x%x): %s\n", who, (unsigned)key, strerror(-id));
		return id;
	}
	r = shmx_at(id, NULL, 0, &p);
	if (r < 0) {
		fprintf(stderr, "%s: shmx_at(%d): %s\n", who, id, strerror(-r));
		return r;
	}
	*hp = p;
	*idp = id;
	/* acq_rel: if the other side claimed it first, see what it wrote before */
	if (!atomic_compare_exchange_strong_explicit(&(*hp)->magic, &expected, DEMO_MAGIC,
						     memory_order_acq_rel, memory_order_acquire) &&
	    expected != DEMO_MAGIC) {
		fprintf(stderr, "%s: key 0x%x is used by something else (magic %#llx)\n",
			who, (unsigned)key, (unsigned long long)expected);
		shmx_dt(p);
		return -EEXIST;
	}
	atomic_fetch_add_explicit(&(*hp)->users, 1, memory_order_relaxed);
	return 0;
}

/*
 * demo_attach(), but a segment left by an earlier, finished run is removed
 * first.  SHMX_RMID frees the key at once (the kernel's IPC_RMID does the
 * same), so the second shmx_get() creates a fresh segment.
 */
static inline int demo_open(const char *who, key_t key, int *idp, struct demo_header **hp)
{
	int r = demo_attach(who, key, idp, hp);

	if (r < 0 || !atomic_load_explicit(&(*hp)->done, memory_order_acquire))
		return r;
	printf("%s: segment %d is left over from a finished run; replacing it\n", who, *idp);
	shmx_ctl(*idp, SHMX_RMID, NULL);
	shmx_dt(*hp);
	return demo_attach(who, key, idp, hp);
}

/*
 * Detaches; the last one out removes the segment.  Two ways to be last:
 *
 * - users drops to 0 with us: we remove it *before* detaching.  SHMX_RMID
 *   frees the key at once, and the memory when the last attachment goes
 *   (the kernel's deferred destroy), so the other side, if still attached,
 *   carries on unharmed.
 * - the other side died without getting here: its attachment ended with its
 *   process, so after our detach SHMX_STAT shows nattch 0 and no SHMX_DEST.
 *   SHMX_STAT counts every attach and detach made before it, by any
 *   process, so it never shows 0 while the other side is still attached.
 */
static inline void demo_close(const char *who, int id, struct demo_header *h)
{
	struct shmx_ds ds;
	bool last;
	int r;

	/* acq_rel: whoever removes the segment comes after the other's use of it */
	last = atomic_fetch_sub_explicit(&h->users, 1, memory_order_acq_rel) == 1;
	if (last) {
		r = shmx_ctl(id, SHMX_RMID, NULL);
		if (r < 0)
			fprintf(stderr, "%s: removing segment %d: %s\n", who, id, strerror(-r));
		else
			printf("%s: last one out: segment %d removed\n", who, id);
	}
	r = shmx_dt(h);
	if (r < 0)
		fprintf(stderr, "%s: shmx_dt: %s\n", who, strerror(-r));
	if (last)
		return;
	r = shmx_ctl(id, SHMX_STAT, &ds);
	if (r == 0 && ds.nattch == 0 && !(ds.status & SHMX_DEST)) {
		r = shmx_ctl(id, SHMX_RMID, NULL);
		if (r == 0)
			printf("%s: the other side is gone: segment %d removed\n", who, id);
	}
	/* -EIDRM, -EINVAL: already removed, and maybe destroyed */
	if (r < 0 && r != -EIDRM && r != -EINVAL)
		fprintf(stderr, "%s: segment %d: %s\n", who, id, strerror(-r));
}

#endif /* SHMX_DEMO_H */
