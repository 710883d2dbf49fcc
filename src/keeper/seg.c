/* SPDX-License-Identifier: MIT */
/*
 * Segments: ipc/shm.c's newseg, shmget, shmctl and shm_destroy on the
 * keeper's memfds, and handing descriptors out (do_shmat's permission
 * check).  Every change is written to the registry record under its seqlock,
 * where clients read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* Resolves an id: 0 (live, or pending recovery) and the slot, -EIDRM (that
 * segment was removed), -EINVAL (stale or never). */
int seg_lookup(struct keeper *k, int id, uint32_t *idxp)
{
	uint32_t idx = shmx_id_idx(id);
	const struct shmx_reg_record *rec;

	if (id < 0 || shmx_id_seq(id) == 0 || idx >= k->reg.lay.max_segments)
		return -EINVAL;
	rec = rec_of(k, idx);
	if (rec->id != id)
		return -EINVAL;
	if (rec->state != SHMX_REC_USED)
		return -EIDRM;
	*idxp = idx;
	return 0;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static int next_seq(int old_id)
{
	uint32_t seq = shmx_id_seq(old_id) + 1;

	return seq > SHMX_ID_SEQ_MAX ? 1 : (int)seq;
}

/*
 * As shmget(SHM_HUGETLB) does, reserve the huge pages now, so that a lack of
 * them is -ENOMEM here and not SIGBUS in some client later.  A shared
 * hugetlb mapping's reservation belongs to the file and outlives the mapping.
 */
static int reserve_huge(int fd, uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		log_info("no huge pages for %llu bytes: %s", (unsigned long long)len, strerror(errno));
		return errno == EINVAL ? -EINVAL : -ENOMEM;
	}
	munmap(p, len);
	return 0;
}

/* newseg(): a new memfd of a fixed size, and its record. */
static int newseg(struct keeper *k, const struct shmx_cred *cred, int32_t key,
		  uint64_t size, int flags, pid_t pid)
{
	const struct shmx_reg_header *h = shmx_reg_hdr(&k->reg);
	unsigned mfd = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL;
	uint64_t unit = k->page_size;
	struct shmx_reg_record *rec;
	struct kseg *s;
	struct stat st;
	char name[32];
	uint32_t idx;
	int fd, seals, id, r;

	if (size == 0 || size > k->max_segsz)
		return -EINVAL;
	if (k->free_head == NO_SLOT)
		return -ENOSPC;
	if (h->total > k->max_total || size > k->max_total - h->total)
		return -ENOMEM;
	if (flags & SHMX_HUGETLB) {
		mfd |= MFD_HUGETLB;
		unit = k->huge_page_size;
	}
	if (size > (uint64_t)INT64_MAX - unit)
		return -EINVAL;
	snprintf(name, sizeof(name), "shmx:0x%08x", (unsigned)key);
	fd = shmx_memfd_create(name, mfd);
	if (fd == -EMFILE && store_room(k) == 0)
		fd = shmx_memfd_create(name, mfd);
	if (fd < 0)
		return fd == -EMFILE || fd == -ENFILE ? -ENOSPC : fd;
	if (ftruncate(fd, (off_t)round_up(size, unit)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, SEALS) < 0 || fchmod(fd, 0600) < 0 || fstat(fd, &st) < 0) {
		r = errno == EFBIG ? -EINVAL : -errno;
		log_warn("cannot set up a segment of %llu bytes: %s",
			 (unsigned long long)size, strerror(errno));
		close(fd);
		return r;
	}
	if ((flags & SHMX_HUGETLB) && !(flags & SHMX_NORESERVE)) {
		r = reserve_huge(fd, (uint64_t)st.st_size);
		if (r < 0) {
			close(fd);
			return r;
		}
	}
	seals = fcntl(fd, F_GET_SEALS);

	/* the slot slot_alloc() gives next: a vault files the memfd under it */
	idx = k->free_head;
	id = shmx_make_id(idx, (uint32_t)next_seq(rec_of(k, idx)->id));
	r = seg_store_fd(k, idx, id, fd);
	if (r < 0)
		return r;
	slot_alloc(k);
	s = &k->segs[idx];
	s->fsize = (uint64_t)st.st_size;
	rec = rec_begin(k, idx);
	rec->state = SHMX_REC_USED;
	rec->id = id;
	rec->key = key;
	rec->uid = rec->cuid = cred->uid;
	rec->gid = rec->cgid = cred->gid;
	rec->mode = (uint32_t)flags & 0777;
	rec->status = 0;
	rec->segsz = size;
	rec->nattch = 0;
	rec->atime = rec->dtime = 0;
	rec->ctime = shmx_now();
	rec->cpid = pid;
	rec->lpid = 0;
	rec->ino = st.st_ino;
	rec->dev = st.st_dev;
	rec->rss = 0;
	rec->seals = seals < 0 ? 0 : (uint32_t)seals;
	rec->flags = (uint32_t)flags & (SHMX_HUGETLB | SHMX_NORESERVE);
	rec_end(rec);
	if (key != SHMX_PRIVATE)
		hash_insert(k, idx);
	usage_add(k, 1, (int64_t)size);
	log_debug("pid %d: created %d (key 0x%08x, %llu bytes)", (int)pid, id,
		  (unsigned)key, (unsigned long long)size);
	return id;
}

/* shmget(): ipcget_public's checks, or newseg. */
int seg_get(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid,
	    bool *createdp)
{
	*createdp = false;
	if (req->key != SHMX_PRIVATE) {
		int32_t idx = hash_lookup(k, req->key);

		if (idx >= 0) {
			const struct shmx_reg_record *rec = rec_of(k, (uint32_t)idx);

			if ((req->flags & SHMX_CREAT) && (req->flags & SHMX_EXCL))
				return -EEXIST;
			/* shmget's order: size, then permission */
			if (req->size > rec->segsz)
				return -EINVAL;
			if (shmx_ipcperms(&p->cred, rec, shmx_flags_access(req->flags)) < 0)
				return -EACCES;
			return rec->id;
		}
		if (!(req->flags & SHMX_CREAT))
			return -ENOENT;
	}
	*createdp = true;
	return newseg(k, &p->cred, req->key, req->size, req->flags, pid);
}

/*
 * The descriptor to send for a FD request: the memfd itself, a copy from
 * its vault, or a fresh read-only open of it (*closep: the caller closes it
 * once sent).  The connection now holds the segment (count 0, descriptor
 * number unknown until an ATTACH names it): only then are its ATTACHes
 * counted (attach.c).
 */
int seg_fd(struct keeper *k, struct peer *p, const struct shmx_req *req, int *fdp, bool *closep)
{
	bool rdonly = req->flags & SHMX_RDONLY;
	char path[64];
	uint32_t idx;
	int r, fd, mfd;

	r = seg_lookup(k, req->id, &idx);
	if (r < 0)
		return r;
	if (shmx_ipcperms(&p->cred, rec_of(k, idx), rdonly ? 4 : 6) < 0)
		return -EACCES;
	/* removed and unused: gone as soon as the drain ends, as in shmctl */
	if ((rec_of(k, idx)->status & SHMX_DEST) && rec_of(k, idx)->nattch == 0)
		return -EIDRM;
	for (int tries = 0;; tries++) {
		mfd = seg_fd_borrow(k, idx);
		if (mfd < 0 || !rdonly) {
			fd = mfd;
			break;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		r = -errno;
		seg_fd_return(k, idx, mfd);
		if (fd >= 0)
			break;
		/* returned first, borrowed again after: store_room() may move
		 * this very memfd to a vault */
		if (r != -EMFILE || tries || store_room(k) < 0)
			return r == -EMFILE ? -ENOMEM : r;
	}
	if (fd < 0)
		return fd;
	if (!hold_get(k, p, idx, req->id)) {
		if (fd != k->segs[idx].memfd)
			close(fd);
		return -ENOMEM;
	}
	*fdp = fd;
	*closep = fd != k->segs[idx].memfd;
	return 0;
}

int seg_lock(struct keeper *k, uint32_t idx)
{
	struct kseg *s = &k->segs[idx];
	struct shmx_reg_record *rec;
	void *addr;
	int fd, r;

	fd = seg_fd_borrow(k, idx);
	if (fd < 0)
		return fd;
	/* the mapping keeps the file; the descriptor is not needed after */
	addr = mmap(NULL, s->fsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = -errno;
	seg_fd_return(k, idx, fd);
	if (addr == MAP_FAILED)
		return r;
	if (mlock(addr, s->fsize) < 0) {
		r = -errno;
		munmap(addr, s->fsize);
		return r;
	}
	s->lock_addr = addr;
	rec = rec_begin(k, idx);
	rec->status |= SHMX_LOCKED;
	rec_end(rec);
	return 0;
}

static void seg_unlock(struct keeper *k, uint32_t idx)
{
	struct kseg *s = &k->segs[idx];
	struct shmx_reg_record *rec;

	if (s->lock_addr) {
		munlock(s->lock_addr, s->fsize);
		munmap(s->lock_addr, s->fsize);
		s->lock_addr = NULL;
	}
	rec = rec_begin(k, idx);
	rec->status &= ~(uint32_t)SHMX_LOCKED;
	rec_end(rec);
}

/* shmctl() for the commands that change something. */
int seg_ctl(struct keeper *k, struct peer *p, const struct shmx_req *req)
{
	struct shmx_reg_record *rec;
	uint32_t idx;
	int r;

	r = seg_lookup(k, req->id, &idx);
	if (r < 0)
		return r;
	rec = rec_of(k, idx);
	switch (req->cmd) {
	case SHMX_RMID:
		if (shmx_may_own(&p->cred, rec) < 0)
			return -EPERM;
		if (!(rec->status & SHMX_DEST)) {
			/* the key is free now; the memory goes with the last user */
			hash_unlink(k, idx);
			rec = rec_begin(k, idx);
			rec->status |= SHMX_DEST;
			rec->key = SHMX_PRIVATE;
			rec->ctime = shmx_now();
			rec_end(rec);
		}
		if (rec->nattch == 0)
			seg_queue(k, idx);
		return 0;
	case SHMX_SET:
		if (shmx_may_own(&p->cred, rec) < 0)
			return -EPERM;
		if (req->uid == (uint32_t)-1 || req->gid == (uint32_t)-1)
			return -EINVAL;
		rec = rec_begin(k, idx);
		rec->uid = req->uid;
		rec->gid = req->gid;
		rec->mode = req->mode & 0777;
		rec->ctime = shmx_now();
		rec_end(rec);
		return 0;
	case SHMX_LOCK:
		if (shmx_may_own(&p->cred, rec) < 0)
			return -EPERM;
		if (rec->status & SHMX_LOCKED)
			return 0;
		return seg_lock(k, idx);
	case SHMX_UNLOCK:
		if (shmx_may_own(&p->cred, rec) < 0)
			return -EPERM;
		if (rec->status & SHMX_LOCKED)
			seg_unlock(k, idx);
		return 0;
	default:
		return -EINVAL;
	}
}

/* Whether a slot is to be destroyed once everything in flight is counted. */
void seg_check_gone(struct keeper *k, uint32_t idx)
{
	const struct shmx_reg_record *rec = rec_of(k, idx);

	if (rec->state != SHMX_REC_USED)
		return;
	if (((rec->status & SHMX_DEST) && rec->nattch == 0) ||
	    (seg_pending(&k->segs[idx]) && !k->segs[idx].holds))
		seg_queue(k, idx);
}

/* Takes a descriptor handed back for a slot still pending recovery, if it is
 * that very memfd.  Consumes fd. */
int seg_adopt_fd(struct keeper *k, uint32_t idx, int fd)
{
	const struct shmx_reg_record *rec = rec_of(k, idx);
	struct kseg *s = &k->segs[idx];
	struct stat st;
	char path[64];
	int fl, rw, r;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_dev != rec->dev || (uint64_t)st.st_ino != rec->ino ||
	    (uint64_t)st.st_size < rec->segsz) {
		log_warn("descriptor offered for %d is not its memfd: refused", rec->id);
		close(fd);
		return -EBADF;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDWR) {
		/* a read-only holder: open the inode again, ours to open (0600) */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		rw = open(path, O_RDWR | O_CLOEXEC);
		r = -errno;
		close(fd);
		if (rw < 0) {
			log_warn("cannot reopen %d read-write: %s", rec->id, strerror(-r));
			return r;
		}
		fd = rw;
	}
	s->fsize = (uint64_t)st.st_size;
	/* near the keeper's file limit, a vault keeps it */
	r = seg_store_fd(k, idx, rec->id, fd);
	if (r < 0)
		return r;
	if ((rec->status & SHMX_LOCKED) && !s->lock_addr) {
		r = seg_lock(k, idx);
		if (r < 0) {
			log_warn("cannot lock %d again: %s", rec->id, strerror(-r));
			seg_unlock(k, idx);
		}
	}
	log_debug("adopted the memfd of %d", rec->id);
	return 0;
}

void seg_queue(struct keeper *k, uint32_t idx)
{
	struct kseg *s = &k->segs[idx];

	if (s->queued)
		return;
	s->queued = true;
	s->next_queued = k->queue_head;
	k->queue_head = idx;
}

/* After a drain: destroys what is still unused. */
void seg_settle(struct keeper *k)
{
	while (k->queue_head != NO_SLOT) {
		uint32_t idx = k->queue_head;
		const struct shmx_reg_record *rec = rec_of(k, idx);
		struct kseg *s = &k->segs[idx];

		k->queue_head = s->next_queued;
		s->next_queued = NO_SLOT;
		s->queued = false;
		if (rec->state != SHMX_REC_USED)
			continue;
		if (((rec->status & SHMX_DEST) && rec->nattch == 0) || (seg_pending(s) && !s->holds))
			seg_destroy(k, idx);
	}
}

/* shm_destroy(): the memory goes now, even from processes that still cache
 * the descriptor; the record keeps its id so that id answers -EIDRM. */
void seg_destroy(struct keeper *k, uint32_t idx)
{
	struct kseg *s = &k->segs[idx];
	struct shmx_reg_record *rec = rec_of(k, idx);
	uint64_t segsz = rec->segsz;

	if (rec->state != SHMX_REC_USED)
		return;
	seg_fd_drop(k, idx, true);
	if (s->lock_addr) {
		munlock(s->lock_addr, s->fsize);
		munmap(s->lock_addr, s->fsize);
		s->lock_addr = NULL;
	}
	while (s->holds) {
		struct peer *p = s->holds->peer;

		hold_free(k, s->holds);
		peer_orphan_check(k, p);
	}
	hash_unlink(k, idx);
	rec = rec_begin(k, idx);
	rec->state = SHMX_REC_FREE;
	rec->nattch = 0;
	rec->rss = 0;
	rec->status &= ~(uint32_t)SHMX_LOCKED;
	rec_end(rec);
	usage_add(k, -1, -(int64_t)segsz);
	slot_free(k, idx);
	log_debug("destroyed %d", rec->id);
}

/* At exit: the memfds close with the process; clients keep theirs. */
void seg_close_all(struct keeper *k)
{
	for (uint32_t idx = 0; k->segs && idx < k->reg.lay.max_segments; idx++) {
		struct kseg *s = &k->segs[idx];

		if (s->lock_addr)
			munmap(s->lock_addr, s->fsize);
		s->lock_addr = NULL;
	}
	seg_fd_close_all(k);
}
