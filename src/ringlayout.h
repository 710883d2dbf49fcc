/* SPDX-License-Identifier: MIT */
/*
 * The memory of a ring (<shmx/ring.h>): a 4096-byte header, then the data
 * area of `capacity` bytes (a power of two).  Every process that may write
 * the segment may write all of it, so a reader checks every value it takes
 * from here and keeps its own copy of the constants.
 *
 * Cache lines: the constants are read by all and written once; head and the
 * consumer lock are written by consumers (and a lock by whoever frees it
 * from a dead holder), tail and the producer lock by producers; each side's
 * waiter count and wake word sit on a line of their own, written when
 * someone sleeps and when a peer joins or leaves.
 *
 * head and tail are byte positions that wrap at 2^32 (capacity <= 2^30, so
 * tail - head, taken modulo 2^32, is the bytes in use).  Records start at
 * multiples of 8: an 8-byte record header, then the message, padded to 8.
 * A record that would not fit before the end of the data area is preceded by
 * a pad record that fills the rest of it.
 */
#ifndef SHMX_RINGLAYOUT_H
#define SHMX_RINGLAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHMX_RING_MAGIC         UINT64_C(0x31474e495258484d)  /* "MHXRING1" little-endian */
/* magic while a creator fills the header in: a tag and the creator's pid,
 * so that taking over from a dead creator cannot undo a live one's start */
#define SHMX_RING_INIT_TAG      UINT64_C(0x54494e4900000000)    /* "INIT" */
#define SHMX_RING_INIT_MAGIC(pid) (SHMX_RING_INIT_TAG | (uint32_t)(pid))
#define SHMX_RING_IS_INIT(m)    (((m) & UINT64_C(0xffffffff00000000)) == SHMX_RING_INIT_TAG)
#define SHMX_RING_VERSION       1
#define SHMX_RING_HDR_SIZE      4096u
#define SHMX_RING_MIN_CAP       4096u
#define SHMX_RING_MAX_CAP       (1u << 30)
#define SHMX_RING_NPEERS        64
#define SHMX_RING_ALIGN         8u
#define SHMX_RING_REC_HDR       8u

/* rec.kind */
#define SHMX_REC_MSG  0x4d534731u    /* a message */
#define SHMX_REC_PAD  0x50414431u    /* filler up to the end of the data area */

/*
 * peer.state: the role in bits 0-1, a generation in bits 2-31.  Who is a
 * member is read off these entries (no counters that garbage could skew);
 * an entry being filled in (CLAIMED) counts for no side.
 */
#define SHMX_PEER_FREE      0u
#define SHMX_PEER_PRODUCER  1u
#define SHMX_PEER_CONSUMER  2u
#define SHMX_PEER_CLAIMED   3u       /* being filled in */
#define SHMX_PEER_ROLE(s)   ((s) & 3u)

/*
 * Lock words (prod_lock, cons_lock): 0 when free, else the owner's token:
 * (slot + 1) in bits 0-6 and its generation's low 24 bits in bits 7-30.
 * Bit 31 says someone may be asleep on it.
 */
#define SHMX_LOCK_WAITERS   0x80000000u
#define SHMX_TOKEN_SLOT(t)  ((int)((t) & 0x7fu) - 1)

struct shmx_ring_rec {
	uint32_t len;                   /* message bytes (without this header) */
	uint32_t kind;                  /* SHMX_REC_MSG or SHMX_REC_PAD */
};

struct shmx_ring_peer {
	_Atomic uint32_t state;
	int32_t pid;
	uint64_t starttime;             /* /proc/<pid>/stat field 22 */
	uint64_t reserved[2];
};

struct shmx_ring_hdr {
	/* line 0: written once, by the creator */
	_Atomic uint64_t magic;         /* SHMX_RING_MAGIC once ready */
	uint32_t version;
	uint32_t hdr_size;
	uint32_t capacity;
	uint32_t max_msg;
	int32_t init_pid;               /* the creator, while initializing... */
	uint32_t pad0;
	uint64_t init_start;            /* ...and its start time, once written */
	uint8_t pad0b[64 - 40];

	/* line 1: producers */
	_Atomic uint32_t tail;
	_Atomic uint32_t prod_lock;
	_Atomic uint32_t prod_last;     /* token of the last producer to hold it */
	uint8_t pad1[52];

	/* line 2: consumers */
	_Atomic uint32_t head;
	_Atomic uint32_t cons_lock;
	_Atomic uint32_t cons_last;     /* token of the last consumer to hold it */
	uint8_t pad2[52];

	/* line 3: consumers asleep waiting for data */
	_Atomic uint32_t cons_waiters;
	_Atomic uint32_t cons_wake;     /* bumped to wake them */
	uint8_t pad3[56];

	/* line 4: producers asleep waiting for room */
	_Atomic uint32_t prod_waiters;
	_Atomic uint32_t prod_wake;
	uint8_t pad4[56];

	/* line 5: written when a peer opens or is found dead */
	_Atomic uint32_t consumers_seen; /* a consumer ever opened */
	_Atomic uint32_t producer_died;  /* the last producer to leave died */
	_Atomic uint32_t members_gen;    /* bumped whenever a peer entry is taken or freed */
	uint8_t pad5[52];

	/* lines 6..: who has the ring open */
	struct shmx_ring_peer peers[SHMX_RING_NPEERS];
};

_Static_assert(offsetof(struct shmx_ring_hdr, tail) == 64, "ring header layout");
_Static_assert(offsetof(struct shmx_ring_hdr, head) == 128, "ring header layout");
_Static_assert(offsetof(struct shmx_ring_hdr, cons_waiters) == 192, "ring header layout");
_Static_assert(offsetof(struct shmx_ring_hdr, prod_waiters) == 256, "ring header layout");
_Static_assert(offsetof(struct shmx_ring_hdr, consumers_seen) == 320, "ring header layout");
_Static_assert(offsetof(struct shmx_ring_hdr, peers) == 384, "ring header layout");
_Static_assert(sizeof(struct shmx_ring_peer) == 32, "ring peer layout");
_Static_assert(sizeof(struct shmx_ring_hdr) <= SHMX_RING_HDR_SIZE, "ring header size");
_Static_assert(sizeof(struct shmx_ring_rec) == SHMX_RING_REC_HDR, "ring record header");

#endif /* SHMX_RINGLAYOUT_H */
