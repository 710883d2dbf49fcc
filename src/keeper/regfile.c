/* SPDX-License-Identifier: MIT */
/*
 * The keeper's side of the registry: it builds a new file for every keeper
 * generation, and is its only writer.  Clients read it concurrently, so every
 * record change is bracketed by the record's seqlock, and the hash buckets
 * and chain links are published with atomic stores.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"

int reg_create(struct keeper *k, uint64_t generation)
{
	struct shmx_reg_layout lay;
	struct shmx_reg_header *h;
	mode_t mode = k->shared ? 0644 : 0600;
	struct stat st;
	void *base;
	int fd, r;

	r = shmx_reg_layout(k->max_segments, &lay);
	if (r < 0)
		return r;
	if (unlinkat(k->dirfd, "registry.new", 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(k->dirfd, "registry.new", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	/* the umask must not decide who may read it */
	if (fchmod(fd, mode) < 0 || ftruncate(fd, (off_t)lay.file_size) < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	base = mmap(NULL, lay.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	close(fd);
	k->reg.base = base;
	k->reg.size = lay.file_size;
	k->reg.lay = lay;
	k->reg.ino = st.st_ino;
	k->reg.dev = st.st_dev;
	k->generation = generation;

	/* the file is new and zero-filled: every record is FREE with id 0 */
	h = shmx_reg_hdr(&k->reg);
	h->magic = SHMX_REG_MAGIC;
	h->version = SHMX_REG_VERSION;
	h->header_size = SHMX_REG_HEADER_SIZE;
	h->record_size = sizeof(struct shmx_reg_record);
	h->holder_size = sizeof(struct shmx_reg_holder);
	h->flags = k->shared ? SHMX_REG_SHARED : 0;
	h->max_segments = lay.max_segments;
	h->hash_size = lay.hash_size;
	h->max_holders = lay.max_holders;
	h->max_segsz = k->max_segsz;
	h->max_total = k->max_total;
	h->file_size = lay.file_size;
	h->generation = generation;
	reg_set_keeper(k);

	k->segs = calloc(lay.max_segments, sizeof(*k->segs));
	k->free_entries = malloc(sizeof(uint32_t) * lay.max_holders);
	if (!k->segs || !k->free_entries)
		return -ENOMEM;
	for (uint32_t i = 0; i < lay.max_segments; i++) {
		k->segs[i].memfd = -1;
		k->segs[i].vault = -1;
		k->segs[i].next_free = NO_SLOT;
		k->segs[i].next_queued = NO_SLOT;
	}
	k->free_head = k->free_tail = NO_SLOT;
	k->queue_head = NO_SLOT;
	/* a stack, entry 0 on top */
	for (uint32_t i = 0; i < lay.max_holders; i++)
		k->free_entries[i] = lay.max_holders - 1 - i;
	k->nfree_entries = lay.max_holders;
	return hold_init(k);
fail:
	close(fd);
	unlinkat(k->dirfd, "registry.new", 0);
	return r;
}

/*
 * Puts the new registry in place.  The one it replaces may still be mapped by
 * clients: its magic is cleared so that they notice and map the new one.
 */
int reg_publish(struct keeper *k)
{
	static const uint64_t zero;
	struct stat st;
	int old;

	old = openat(k->dirfd, "registry", O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (old >= 0 && (fstat(old, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())) {
		close(old);
		old = -1;
	}
	if (renameat(k->dirfd, "registry.new", k->dirfd, "registry") < 0) {
		int r = -errno;

		if (old >= 0)
			close(old);
		return r;
	}
	if (old >= 0) {
		if (pwrite(old, &zero, sizeof(zero), offsetof(struct shmx_reg_header, magic)) < 0)
			log_debug("cannot mark the old registry: %s", strerror(errno));
		close(old);
	}
	return 0;
}

void reg_set_keeper(struct keeper *k)
{
	struct shmx_reg_header *h = shmx_reg_hdr(&k->reg);

	h->keeper_pid = (int32_t)getpid();
	h->keeper_start = shmx_proc_starttime(getpid());
}

void reg_free(struct keeper *k)
{
	hold_fini(k);
	free(k->segs);
	free(k->free_entries);
	k->segs = NULL;
	k->free_entries = NULL;
	shmx_reg_close(&k->reg);
}

struct shmx_reg_record *rec_begin(struct keeper *k, uint32_t idx)
{
	struct shmx_reg_record *rec = rec_of(k, idx);

	shmx_reg_write_begin(&rec->seq);
	return rec;
}

void rec_end(struct shmx_reg_record *rec)
{
	shmx_reg_write_end(&rec->seq);
}

void usage_add(struct keeper *k, int64_t segments, int64_t total)
{
	struct shmx_reg_header *h = shmx_reg_hdr(&k->reg);

	shmx_reg_write_begin(&h->seq);
	h->segments += (uint64_t)segments;
	h->total += (uint64_t)total;
	shmx_reg_write_end(&h->seq);
}

static _Atomic uint32_t *bucket_of(struct keeper *k, int32_t key)
{
	return (_Atomic uint32_t *)&shmx_reg_hash(&k->reg)[shmx_key_hash(key, k->reg.lay.hash_size)];
}

/* hash_next is a plain field of the record; readers copy it under the
 * record's seqlock, so it is written inside one, atomically for good measure. */
static void set_next(struct keeper *k, uint32_t idx, int32_t next)
{
	struct shmx_reg_record *rec = rec_begin(k, idx);

	__atomic_store_n(&rec->hash_next, next, __ATOMIC_RELAXED);
	rec_end(rec);
}

/* Links a record (key already written) at the head of its chain. */
void hash_insert(struct keeper *k, uint32_t idx)
{
	_Atomic uint32_t *b = bucket_of(k, rec_of(k, idx)->key);

	set_next(k, idx, (int32_t)atomic_load_explicit(b, memory_order_relaxed));
	/* release: a reader that sees the new head sees the record's contents */
	atomic_store_explicit(b, idx + 1, memory_order_release);
	k->segs[idx].hashed = true;
}

/*
 * Unlinks a record from its chain.  The record keeps its own hash_next, so a
 * reader standing on it still walks on to the rest of the chain.
 */
void hash_unlink(struct keeper *k, uint32_t idx)
{
	struct shmx_reg_record *rec = rec_of(k, idx);
	_Atomic uint32_t *b;
	uint32_t cur;

	if (!k->segs[idx].hashed)
		return;
	k->segs[idx].hashed = false;
	b = bucket_of(k, rec->key);
	cur = atomic_load_explicit(b, memory_order_relaxed);
	if (cur == idx + 1) {
		atomic_store_explicit(b, (uint32_t)rec->hash_next, memory_order_release);
		return;
	}
	for (uint32_t steps = 0; cur && steps < k->reg.lay.max_segments; steps++) {
		uint32_t next = (uint32_t)rec_of(k, cur - 1)->hash_next;

		if (next == idx + 1) {
			set_next(k, cur - 1, rec->hash_next);
			return;
		}
		cur = next;
	}
	log_error("record %u missing from its hash chain", idx);
}

/* The live, keyed record with this key: its slot, or -1. */
int32_t hash_lookup(struct keeper *k, int32_t key)
{
	uint32_t cur = atomic_load_explicit(bucket_of(k, key), memory_order_relaxed);

	for (uint32_t steps = 0; cur && steps < k->reg.lay.max_segments; steps++) {
		const struct shmx_reg_record *rec = rec_of(k, cur - 1);

		if (rec->state == SHMX_REC_USED && rec->key == key && !(rec->status & SHMX_DEST))
			return (int32_t)(cur - 1);
		cur = (uint32_t)rec->hash_next;
	}
	return -1;
}

/* Free slots are reused oldest first, so a removed id answers -EIDRM as long
 * as it can. */
uint32_t slot_alloc(struct keeper *k)
{
	uint32_t idx = k->free_head;

	if (idx == NO_SLOT)
		return NO_SLOT;
	k->free_head = k->segs[idx].next_free;
	if (k->free_head == NO_SLOT)
		k->free_tail = NO_SLOT;
	k->segs[idx].next_free = NO_SLOT;
	return idx;
}

void slot_free(struct keeper *k, uint32_t idx)
{
	k->segs[idx].next_free = NO_SLOT;
	if (k->free_tail == NO_SLOT)
		k->free_head = idx;
	else
		k->segs[k->free_tail].next_free = idx;
	k->free_tail = idx;
}
