/* SPDX-License-Identifier: MIT */
/*
 * The report ring: how a client tells the keeper about attaches and
 * detaches without a syscall (docs/protocol.md).
 *
 * shmat() and shmdt() change nattch inside the kernel at no extra cost; a
 * message on a socket per attach costs a sendmsg and a wake-up of the keeper,
 * more than the mmap itself.  So each connection has a ring in a small memfd
 * that the client creates, seals and hands over with HELLO: the client
 * appends records (ATTACH, DETACH, RELEASE) and advances `tail`; the keeper
 * consumes them, without being woken, whenever it must be exact: before it
 * handles a request of that connection, before it answers a SYNC (all
 * rings), before it destroys a segment (all rings), and on its 1 s tick.
 * A full ring makes the client ask for a SYNC, which empties it.
 *
 * The ring is written by the client, so the keeper treats every field as
 * untrusted: it keeps its own copy of the size, checks tail - head against
 * it, and validates each record as it would a message.
 */
#ifndef SHMX_REPORT_H
#define SHMX_REPORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHMX_REPORT_MAGIC   UINT32_C(0x52585053)        /* "SPXR" */
#define SHMX_REPORT_ENTRIES 1024u                       /* a power of two */
#define SHMX_REPORT_MIN     64u
#define SHMX_REPORT_MAX     65536u

struct shmx_report {
	uint32_t type;          /* SHMX_MSG_ATTACH, _DETACH or _RELEASE */
	int32_t  id;
	int32_t  fd;            /* ATTACH: the descriptor's number in the client */
	int32_t  flags;         /* ATTACH: shmx_at() flags */
};

struct shmx_report_ring {
	uint32_t magic;
	uint32_t entries;       /* a power of two; the keeper's copy is the one used */
	uint8_t  pad0[56];
	/* records produced: written by the client (release), read by the keeper (acquire) */
	_Atomic uint64_t tail;
	uint8_t  pad1[56];
	/* records consumed: written by the keeper (release), read by the client (acquire) */
	_Atomic uint64_t head;
	uint8_t  pad2[56];
	struct shmx_report rec[];
};

_Static_assert(sizeof(struct shmx_report) == 16, "report layout");
_Static_assert(offsetof(struct shmx_report_ring, tail) == 64, "report ring layout");
_Static_assert(offsetof(struct shmx_report_ring, head) == 128, "report ring layout");
_Static_assert(offsetof(struct shmx_report_ring, rec) == 192, "report ring layout");

static inline size_t shmx_report_ring_size(uint32_t entries)
{
	return offsetof(struct shmx_report_ring, rec) + (size_t)entries * sizeof(struct shmx_report);
}

#endif /* SHMX_REPORT_H */
