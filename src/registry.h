/* SPDX-License-Identifier: MIT */
/*
 * The registry: the control segment of a namespace, libshmx's table of
 * shmid_kernel.  The keeper is its only writer; clients map it read-only.
 * Layout (docs/registry.md):
 *
 *   [0, 4096)                  struct shmx_reg_header
 *   [hash_off, +4*hash_size)   key hash: bucket -> record index + 1 (0: empty)
 *   [rec_off, +128*max_seg)    struct shmx_reg_record, one per slot
 *   [hold_off, +32*max_hold)   struct shmx_reg_holder: who holds which memfd
 *
 * Everything in it is untrusted input for its readers: a reader checks every
 * index and length it takes from it.
 */
#ifndef SHMX_REGISTRY_H
#define SHMX_REGISTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "shmx.h"

#define SHMX_REG_MAGIC   UINT64_C(0x31474552584d4853)   /* "SHMXREG1" */
#define SHMX_REG_VERSION 1u
#define SHMX_REG_HEADER_SIZE 4096u

#define SHMX_REG_SHARED  1u             /* header.flags: multi-user namespace */

/* Ids are slot index + sequence number, as ipc ids are. */
#define SHMX_ID_IDX_BITS 16
#define SHMX_ID_IDX_MASK ((1u << SHMX_ID_IDX_BITS) - 1)
#define SHMX_ID_SEQ_MAX  0x7fffu
#define SHMX_MAX_SEGMENTS_LIMIT (1u << SHMX_ID_IDX_BITS)
#define SHMX_HOLDERS_PER_SEGMENT 4u     /* holder table = 4 x max_segments */

enum shmx_rec_state {
	SHMX_REC_FREE = 0,
	SHMX_REC_USED = 1,
};

struct shmx_reg_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint32_t record_size;
	uint32_t holder_size;
	uint32_t flags;                 /* SHMX_REG_SHARED */
	uint32_t max_segments;          /* records in the table */
	uint32_t hash_size;             /* buckets, a power of two */
	uint32_t max_holders;
	uint64_t max_segsz;
	uint64_t max_total;
	uint64_t file_size;
	uint64_t generation;            /* bumped by every keeper that takes over */
	int32_t  keeper_pid;
	uint32_t reserved0;
	uint64_t keeper_start;          /* keeper's start time (clock ticks) */
	/* usage, under seq like a record */
	_Atomic uint32_t seq;
	uint32_t reserved1;
	uint64_t segments;
	uint64_t total;
	uint64_t rss;
};

struct shmx_reg_record {
	_Atomic uint32_t seq;           /* seqlock: odd while the keeper writes */
	uint32_t state;                 /* enum shmx_rec_state */
	int32_t  id;                    /* current id; kept after free (EIDRM) */
	int32_t  key;
	uint32_t uid, gid, cuid, cgid;
	uint32_t mode;                  /* low 9 bits */
	uint32_t status;                /* SHMX_DEST | SHMX_LOCKED */
	uint64_t segsz;
	uint64_t nattch;
	int64_t  atime, dtime, ctime;
	int32_t  cpid, lpid;
	uint64_t ino;                   /* the memfd's inode, for recovery */
	uint64_t dev;
	uint64_t rss;
	uint32_t seals;
	uint32_t flags;                 /* SHMX_HUGETLB | SHMX_NORESERVE */
	int32_t  hash_next;             /* next record index + 1 in the chain */
	uint32_t reserved;
};

/* One process holding one segment's memfd; read only by a recovering keeper. */
struct shmx_reg_holder {
	int32_t  record;                /* record index + 1; 0: free entry */
	int32_t  id;                    /* the segment's id (guards slot reuse) */
	int32_t  pid;
	int32_t  fd;                    /* descriptor number in that process */
	uint64_t starttime;             /* /proc/<pid>/stat field 22 */
	uint64_t count;                 /* that process's attachments */
};

_Static_assert(sizeof(struct shmx_reg_header) <= SHMX_REG_HEADER_SIZE, "header");
_Static_assert(offsetof(struct shmx_reg_header, seq) == 88, "header layout");
_Static_assert(sizeof(struct shmx_reg_header) == 120, "header layout");
_Static_assert(sizeof(struct shmx_reg_record) == 128, "record layout");
_Static_assert(offsetof(struct shmx_reg_record, segsz) == 40, "record layout");
_Static_assert(offsetof(struct shmx_reg_record, ino) == 88, "record layout");
_Static_assert(sizeof(struct shmx_reg_holder) == 32, "holder layout");

/* Where things are in a registry of a given size. */
struct shmx_reg_layout {
	uint32_t max_segments;
	uint32_t hash_size;
	uint32_t max_holders;
	uint64_t hash_off;
	uint64_t rec_off;
	uint64_t hold_off;
	uint64_t file_size;
};

/* A mapped registry: the keeper's read-write, a client's read-only. */
struct shmx_reg {
	void *base;
	size_t size;
	struct shmx_reg_layout lay;
	uint64_t ino;                   /* the file's inode (a new keeper makes a new file) */
	uint64_t dev;
};

int shmx_reg_layout(uint32_t max_segments, struct shmx_reg_layout *lay);

/* Checks a header found in a file of file_size bytes; fills the layout.
 * -EBADMSG with the reason logged when anything is off. */
int shmx_reg_check_header(const struct shmx_reg_header *h, uint64_t file_size,
			  struct shmx_reg_layout *lay);

/* Maps the registry at dirfd/"registry" read-only and checks it. */
int shmx_reg_open_ro(int dirfd, struct shmx_reg *reg);
void shmx_reg_close(struct shmx_reg *reg);

static inline struct shmx_reg_header *shmx_reg_hdr(const struct shmx_reg *reg)
{
	return (struct shmx_reg_header *)reg->base;
}

static inline uint32_t *shmx_reg_hash(const struct shmx_reg *reg)
{
	return (uint32_t *)((char *)reg->base + reg->lay.hash_off);
}

static inline struct shmx_reg_record *shmx_reg_rec(const struct shmx_reg *reg, uint32_t idx)
{
	return (struct shmx_reg_record *)((char *)reg->base + reg->lay.rec_off) + idx;
}

static inline struct shmx_reg_holder *shmx_reg_holder(const struct shmx_reg *reg, uint32_t i)
{
	return (struct shmx_reg_holder *)((char *)reg->base + reg->lay.hold_off) + i;
}

static inline uint32_t shmx_id_idx(int id) { return (uint32_t)id & SHMX_ID_IDX_MASK; }
static inline uint32_t shmx_id_seq(int id) { return (uint32_t)id >> SHMX_ID_IDX_BITS; }
static inline int shmx_make_id(uint32_t idx, uint32_t seq)
{
	return (int)((seq << SHMX_ID_IDX_BITS) | idx);
}

uint32_t shmx_key_hash(int32_t key, uint32_t hash_size);

/* Seqlock readers: a consistent copy, or -EAGAIN if the writer never settled. */
int shmx_reg_read_record(const struct shmx_reg *reg, uint32_t idx, struct shmx_reg_record *out);
int shmx_reg_read_usage(const struct shmx_reg *reg, struct shmx_reg_header *out);

/* Seqlock writers (keeper only). */
void shmx_reg_write_begin(_Atomic uint32_t *seq);
void shmx_reg_write_end(_Atomic uint32_t *seq);

/*
 * Looks a key up in the hash (O(1)); fills *out with a consistent copy of a
 * live, non-private record with that key.  -ENOENT if none was seen.  A miss
 * here is not authoritative while the keeper is writing: callers that must
 * be sure ask the keeper.
 */
int shmx_reg_find_key(const struct shmx_reg *reg, int32_t key, struct shmx_reg_record *out);

/*
 * Resolves an id: 0 and a copy of the live record, -EIDRM if that very
 * segment was removed (its slot has not been reused since), -EINVAL for an id
 * that never was or whose slot now holds a newer segment.
 */
int shmx_reg_find_id(const struct shmx_reg *reg, int id, struct shmx_reg_record *out);

void shmx_reg_to_ds(const struct shmx_reg_record *rec, struct shmx_ds *ds);

#endif /* SHMX_REGISTRY_H */
