/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"
#include "util/log.h"

/* Retries of a seqlock read before giving up on a writer that never settles
 * (a keeper killed mid-write leaves a record odd forever). */
#define SEQ_RETRIES 1000

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int shmx_reg_layout(uint32_t max_segments, struct shmx_reg_layout *lay)
{
	uint32_t hash = 1;

	if (max_segments == 0 || max_segments > SHMX_MAX_SEGMENTS_LIMIT)
		return -EINVAL;
	while (hash < 2 * max_segments)
		hash <<= 1;
	lay->max_segments = max_segments;
	lay->hash_size = hash;
	lay->max_holders = max_segments * SHMX_HOLDERS_PER_SEGMENT;
	lay->hash_off = SHMX_REG_HEADER_SIZE;
	lay->rec_off = align_up(lay->hash_off + (uint64_t)hash * sizeof(uint32_t), 4096);
	lay->hold_off = align_up(lay->rec_off + (uint64_t)max_segments * sizeof(struct shmx_reg_record), 4096);
	lay->file_size = align_up(lay->hold_off + (uint64_t)lay->max_holders * sizeof(struct shmx_reg_holder), 4096);
	return 0;
}

int shmx_reg_check_header(const struct shmx_reg_header *h, uint64_t file_size,
			  struct shmx_reg_layout *lay)
{
	const char *why = NULL;

	if (file_size < SHMX_REG_HEADER_SIZE)
		why = "file shorter than its header";
	else if (h->magic != SHMX_REG_MAGIC)
		why = "bad magic";
	else if (h->version != SHMX_REG_VERSION)
		why = "unknown layout version";
	else if (h->header_size != SHMX_REG_HEADER_SIZE ||
		 h->record_size != sizeof(struct shmx_reg_record) ||
		 h->holder_size != sizeof(struct shmx_reg_holder))
		why = "unexpected structure sizes";
	else if (h->flags & ~SHMX_REG_SHARED)
		why = "unknown flags";
	else if (shmx_reg_layout(h->max_segments, lay) < 0)
		why = "segment limit out of range";
	else if (h->hash_size != lay->hash_size || h->max_holders != lay->max_holders ||
		 h->file_size != lay->file_size)
		why = "table sizes disagree with the segment limit";
	else if (file_size < lay->file_size)
		why = "file shorter than its tables";
	else if (h->max_segsz == 0 || h->max_total == 0)
		why = "zero limits";
	if (why) {
		log_warn("registry refused: %s", why);
		return -EBADMSG;
	}
	return 0;
}

int shmx_reg_open_ro(int dirfd, struct shmx_reg *reg)
{
	struct shmx_reg_header h;
	struct stat st;
	void *base;
	int fd, r;

	memset(reg, 0, sizeof(*reg));
	fd = openat(dirfd, "registry", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EBADMSG;
		goto fail;
	}
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		r = -EBADMSG;
		goto fail;
	}
	r = shmx_reg_check_header(&h, (uint64_t)st.st_size, &reg->lay);
	if (r < 0)
		goto fail;
	base = mmap(NULL, reg->lay.file_size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	close(fd);
	reg->base = base;
	reg->size = reg->lay.file_size;
	reg->ino = st.st_ino;
	reg->dev = st.st_dev;
	return 0;
fail:
	close(fd);
	return r;
}

void shmx_reg_close(struct shmx_reg *reg)
{
	if (reg->base)
		munmap(reg->base, reg->size);
	memset(reg, 0, sizeof(*reg));
}

uint32_t shmx_key_hash(int32_t key, uint32_t hash_size)
{
	/* a multiplicative hash (Knuth): keys are often small or sequential */
	return ((uint32_t)key * 2654435761u) & (hash_size - 1);
}

/*
 * Seqlock.  The writer makes seq odd (relaxed store, then a release fence so
 * the data stores cannot move above it), writes, then makes it even with a
 * release store.  The reader loads seq with acquire, copies, and an acquire
 * fence keeps the copy above the second, relaxed, load of seq.
 */
static int seq_read(const _Atomic uint32_t *seqp, void *dst, const void *src, size_t len)
{
	for (int i = 0; i < SEQ_RETRIES; i++) {
		uint32_t s1 = atomic_load_explicit(seqp, memory_order_acquire);

		if (s1 & 1)
			continue;
		memcpy(dst, src, len);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(seqp, memory_order_relaxed) == s1)
			return 0;
	}
	return -EAGAIN;
}

int shmx_reg_read_record(const struct shmx_reg *reg, uint32_t idx, struct shmx_reg_record *out)
{
	struct shmx_reg_record *rec;

	if (idx >= reg->lay.max_segments)
		return -EINVAL;
	rec = shmx_reg_rec(reg, idx);
	return seq_read(&rec->seq, out, rec, sizeof(*out));
}

int shmx_reg_read_usage(const struct shmx_reg *reg, struct shmx_reg_header *out)
{
	struct shmx_reg_header *h = shmx_reg_hdr(reg);

	return seq_read(&h->seq, out, h, sizeof(*out));
}

void shmx_reg_write_begin(_Atomic uint32_t *seq)
{
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

void shmx_reg_write_end(_Atomic uint32_t *seq)
{
	atomic_store_explicit(seq, atomic_load_explicit(seq, memory_order_relaxed) + 1,
			      memory_order_release);
}

int shmx_reg_find_key(const struct shmx_reg *reg, int32_t key, struct shmx_reg_record *out)
{
	const _Atomic uint32_t *bucket;
	uint32_t next;

	bucket = (const _Atomic uint32_t *)&shmx_reg_hash(reg)[shmx_key_hash(key, reg->lay.hash_size)];
	next = atomic_load_explicit(bucket, memory_order_acquire);
	/* a chain can't be longer than the table; a longer one is a loop */
	for (uint32_t steps = 0; next && steps < reg->lay.max_segments; steps++) {
		if (shmx_reg_read_record(reg, next - 1, out) < 0)
			return -ENOENT;
		if (out->state == SHMX_REC_USED && out->key == key && key != SHMX_PRIVATE &&
		    !(out->status & SHMX_DEST) && shmx_id_idx(out->id) == next - 1)
			return 0;
		next = (uint32_t)out->hash_next;
	}
	return -ENOENT;
}

int shmx_reg_find_id(const struct shmx_reg *reg, int id, struct shmx_reg_record *out)
{
	uint32_t idx = shmx_id_idx(id);

	if (id < 0 || shmx_id_seq(id) == 0 || idx >= reg->lay.max_segments)
		return -EINVAL;
	if (shmx_reg_read_record(reg, idx, out) < 0)
		return -EAGAIN;
	if (out->id != id)
		return -EINVAL;
	return out->state == SHMX_REC_USED ? 0 : -EIDRM;
}

void shmx_reg_to_ds(const struct shmx_reg_record *rec, struct shmx_ds *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->key = rec->key;
	ds->id = rec->id;
	ds->uid = rec->uid;
	ds->cuid = rec->cuid;
	ds->gid = rec->gid;
	ds->cgid = rec->cgid;
	ds->mode = rec->mode & 0777;
	ds->status = rec->status & (SHMX_DEST | SHMX_LOCKED);
	ds->segsz = (size_t)rec->segsz;
	ds->nattch = rec->nattch;
	ds->atime = (time_t)rec->atime;
	ds->dtime = (time_t)rec->dtime;
	ds->ctime = (time_t)rec->ctime;
	ds->cpid = rec->cpid;
	ds->lpid = rec->lpid;
	ds->rss = rec->rss;
}
