/* SPDX-License-Identifier: MIT */
/*
 * Recovery: a keeper that finds the registry of one that died.  The old
 * file is untrusted input: it is read into private memory, checked field by
 * field, and only what passes is copied into a new registry, whose hash is
 * built anew.  The memfds died with the old keeper; their living holders
 * (holder table: pid, start time, descriptor number) still have them, and
 * we take them back (pidfd_getfd, or /proc/<pid>/fd/<n>) when the inode
 * matches.  Living holders become orphan peers, watched by pidfd; segments
 * no living process holds are gone, as after a reboot.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeper.h"
#include "procview.h"
#include "util/log.h"
#include "util/sys.h"

/* A process named by holder entries: alive (peer) or not (NULL). */
struct proc {
	pid_t pid;
	uint64_t starttime;
	struct peer *peer;
	bool used;
	struct proc_view view;          /* what it holds, read once */
	bool viewed;
};

struct procs {
	struct proc *t;
	uint32_t size;                  /* a power of two */
};

static int fresh(struct keeper *k, uint64_t generation)
{
	int r = reg_create(k, generation);

	if (r < 0)
		return r;
	for (uint32_t idx = 0; idx < k->reg.lay.max_segments; idx++)
		slot_free(k, idx);
	return 0;
}

static int set_aside(struct keeper *k, const char *why)
{
	log_warn("registry in %s refused (%s): moved to registry.corrupt, starting empty",
		 k->dir, why);
	if (renameat(k->dirfd, "registry", k->dirfd, "registry.corrupt") < 0)
		return -errno;
	return fresh(k, 1);
}

/* Reads the old registry into memory; NULL and *why if it is not one. */
static void *read_old(struct keeper *k, int fd, size_t *lenp, const char **why)
{
	struct shmx_reg_layout max;
	struct stat st;
	size_t done = 0;
	char *buf;

	shmx_reg_layout(SHMX_MAX_SEGMENTS_LIMIT, &max);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return NULL;
	}
	if (st.st_uid != geteuid()) {
		*why = "not ours";
		return NULL;
	}
	if (st.st_size < (off_t)sizeof(struct shmx_reg_header) || (uint64_t)st.st_size > max.file_size) {
		*why = "implausible size";
		return NULL;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		*why = "out of memory";
		return NULL;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	*lenp = done;
	return buf;
}

static bool record_ok(const struct shmx_reg_record *o, uint32_t idx, const struct keeper *k)
{
	return o->state == SHMX_REC_USED && o->id > 0 && shmx_id_idx(o->id) == idx &&
	       shmx_id_seq(o->id) != 0 && o->segsz >= 1 && o->segsz <= k->max_segsz &&
	       o->mode <= 0777 && !(o->status & ~(uint32_t)(SHMX_DEST | SHMX_LOCKED)) &&
	       !(o->flags & ~(uint32_t)(SHMX_HUGETLB | SHMX_NORESERVE));
}

/* Copies the records that validate; the others keep only their id. */
static void copy_records(struct keeper *k, const struct shmx_reg_record *old)
{
	uint64_t total = 0;

	for (uint32_t idx = 0; idx < k->reg.lay.max_segments; idx++) {
		struct shmx_reg_record o = old[idx];  /* a copy: the checks see what is used */
		struct shmx_reg_record *rec = rec_of(k, idx);

		if (!record_ok(&o, idx, k) || o.segsz > k->max_total - total) {
			if (o.state == SHMX_REC_USED)
				log_warn("record %u of the old registry is not valid: dropped", idx);
			/* a stale id stays stale */
			if (o.id > 0 && shmx_id_idx(o.id) == idx && shmx_id_seq(o.id) != 0)
				rec->id = o.id;
			continue;
		}
		total += o.segsz;
		rec->state = SHMX_REC_USED;
		rec->id = o.id;
		rec->key = (o.status & SHMX_DEST) ? SHMX_PRIVATE : o.key;
		rec->uid = o.uid;
		rec->gid = o.gid;
		rec->cuid = o.cuid;
		rec->cgid = o.cgid;
		rec->mode = o.mode;
		rec->status = o.status;
		rec->segsz = o.segsz;
		rec->atime = o.atime;
		rec->dtime = o.dtime;
		rec->ctime = o.ctime;
		rec->cpid = o.cpid;
		rec->lpid = o.lpid;
		rec->ino = o.ino;
		rec->dev = o.dev;
		rec->seals = o.seals;
		rec->flags = o.flags;
		if (rec->key == SHMX_PRIVATE)
			continue;
		if (hash_lookup(k, rec->key) >= 0) {
			log_warn("key 0x%08x held by two records: %d made private",
				 (unsigned)rec->key, rec->id);
			rec->key = SHMX_PRIVATE;
			continue;
		}
		hash_insert(k, idx);
	}
}

static struct proc *proc_slot(struct procs *ps, pid_t pid, uint64_t starttime)
{
	uint32_t i = ((uint32_t)pid * 2654435761u) & (ps->size - 1);

	while (ps->t[i].used && (ps->t[i].pid != pid || ps->t[i].starttime != starttime))
		i = (i + 1) & (ps->size - 1);
	return &ps->t[i];
}

/* The orphan for a holder process, if that very process is still alive. */
static struct peer *proc_peer(struct keeper *k, struct procs *ps, pid_t pid, uint64_t starttime)
{
	struct proc *pr = proc_slot(ps, pid, starttime);
	int pidfd;

	if (pr->used)
		return pr->peer;
	pr->used = true;
	pr->pid = pid;
	pr->starttime = starttime;
	if (pid == getpid() || starttime == 0)
		return NULL;
	/* without pidfds (before Linux 5.3, or filtered) the loop polls /proc */
	pidfd = shmx_pidfd_open(pid);
	if (pidfd < 0 && pidfd != -ENOSYS && pidfd != -EPERM)
		return NULL;
	/* read after pidfd_open: if the start time matches, the pidfd is that process */
	if (shmx_proc_starttime(pid) != starttime) {
		if (pidfd >= 0)
			close(pidfd);
		return NULL;
	}
	pr->peer = peer_new_orphan(k, pid, starttime, pidfd);
	if (!pr->peer && pidfd >= 0)
		close(pidfd);
	return pr->peer;
}

/*
 * Takes the segment's descriptor from a holder, by the number /proc shows
 * for its inode (the holder table's number may be unknown or reused).
 */
static void grab_fd(struct keeper *k, uint32_t idx, struct peer *p, const struct proc_seg *ps)
{
	const struct shmx_reg_record *rec = rec_of(k, idx);
	int fd;

	if (!ps || ps->fd < 0) {
		log_debug("pid %d holds no descriptor of segment %d", (int)p->pid, rec->id);
		return;
	}
	fd = proc_take_fd(p->pid, p->fd, ps->fd);
	if (fd < 0) {
		log_debug("cannot take segment %d from pid %d", rec->id, (int)p->pid);
		return;
	}
	/* checks the inode again: the number may have changed since we looked */
	seg_adopt_fd(k, idx, fd);
}

static bool holder_ok(const struct shmx_reg_holder *e, const struct keeper *k)
{
	const struct shmx_reg_record *rec;

	if (e->record <= 0 || (uint32_t)e->record > k->reg.lay.max_segments)
		return false;
	rec = shmx_reg_rec(&k->reg, (uint32_t)e->record - 1);
	return rec->state == SHMX_REC_USED && rec->id == e->id && e->pid > 0 && e->fd >= -1 &&
	       e->count <= SHMX_MAX_ATTACH_COUNT;
}

static int adopt_holders(struct keeper *k, const struct shmx_reg_holder *old, uint32_t n)
{
	struct procs ps = { NULL, 1 };
	uint32_t valid = 0;

	for (uint32_t i = 0; i < n; i++)
		valid += holder_ok(&old[i], k);
	while (ps.size < 2 * valid)
		ps.size <<= 1;
	ps.t = calloc(ps.size, sizeof(*ps.t));
	if (!ps.t)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct shmx_reg_holder e = old[i];
		const struct shmx_reg_record *rec;
		const struct proc_seg *seen;
		struct proc *pr;
		struct hold *h;
		struct peer *p;
		uint32_t idx;

		if (!holder_ok(&e, k))
			continue;
		idx = (uint32_t)e.record - 1;
		rec = rec_of(k, idx);
		p = proc_peer(k, &ps, e.pid, e.starttime);
		if (!p)
			continue;
		pr = proc_slot(&ps, e.pid, e.starttime);
		if (!pr->viewed) {
			proc_view_read(&pr->view, e.pid);
			pr->viewed = true;
		}
		seen = proc_view_find(&pr->view, rec->dev, rec->ino);
		if (seg_pending(&k->segs[idx]))
			grab_fd(k, idx, p, seen);
		h = hold_get(k, p, idx, e.id);
		if (!h)
			continue;
		/*
		 * Its attachments are its mappings of the segment: the holder
		 * table's count misses what was still in the dead keeper's
		 * report rings.  (Set, not added: a corrupt table may name the
		 * same holding twice.)
		 */
		rec_of(k, idx)->nattch -= h->count;
		h->count = seen ? seen->maps : 0;
		h->fd = seen && seen->fd >= 0 ? seen->fd : e.fd;
		hold_sync(k, h);
		/* not yet published: nobody reads it concurrently */
		rec_of(k, idx)->nattch += h->count;
	}
	for (uint32_t i = 0; i < ps.size; i++)
		proc_view_free(&ps.t[i].view);
	free(ps.t);
	return 0;
}

/* Clears what nobody holds, rebuilds the free list and the usage. */
static void finish(struct keeper *k)
{
	uint32_t max = k->reg.lay.max_segments, live = 0, pending = 0;
	struct shmx_reg_header *h = shmx_reg_hdr(&k->reg);
	uint64_t total = 0;

	for (uint32_t idx = 0; idx < max; idx++) {
		struct shmx_reg_record *rec = rec_of(k, idx);
		struct kseg *s = &k->segs[idx];

		if (rec->state != SHMX_REC_USED)
			continue;
		if (!s->holds) {
			/* no punch: a process the holder table missed may have it */
			seg_fd_drop(k, idx, false);
			hash_unlink(k, idx);
			rec->state = SHMX_REC_FREE;
			rec->nattch = 0;
			rec->status = 0;
			continue;
		}
		live++;
		total += rec->segsz;
		if (seg_pending(s)) {
			pending++;
			log_info("segment %d waits for a holder to hand its memfd back", rec->id);
		}
		if ((rec->status & SHMX_DEST) && rec->nattch == 0)
			seg_queue(k, idx);
	}
	/* never-used slots first: a removed id answers -EIDRM the longest */
	for (uint32_t idx = 0; idx < max; idx++)
		if (rec_of(k, idx)->state != SHMX_REC_USED && rec_of(k, idx)->id == 0)
			slot_free(k, idx);
	for (uint32_t idx = 0; idx < max; idx++)
		if (rec_of(k, idx)->state != SHMX_REC_USED && rec_of(k, idx)->id != 0)
			slot_free(k, idx);
	h->segments = live;
	h->total = total;
	log_info("recovered %u segments (%u pending), %u holders", live, pending, k->norphans);
}

int keeper_recover(struct keeper *k)
{
	struct shmx_reg_layout lay;
	const struct shmx_reg_header *old;
	const char *why = NULL;
	size_t len = 0;
	void *buf;
	int fd, r;

	fd = openat(k->dirfd, "registry", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return fresh(k, 1);
	if (fd < 0)
		return set_aside(k, errno == ELOOP ? "a symbolic link" : strerror(errno));
	buf = read_old(k, fd, &len, &why);
	close(fd);
	if (!buf)
		return set_aside(k, why);
	old = buf;
	if (shmx_reg_check_header(old, len, &lay) < 0) {
		free(buf);
		return set_aside(k, "bad header");
	}
	if (k->limits_given && (k->max_segments != old->max_segments ||
				k->max_segsz != old->max_segsz || k->max_total != old->max_total))
		log_warn("keeping the limits of the existing registry: %u segments, "
			 "%llu bytes each, %llu in all", old->max_segments,
			 (unsigned long long)old->max_segsz, (unsigned long long)old->max_total);
	if (k->shared != !!(old->flags & SHMX_REG_SHARED))
		log_warn("the existing registry is %s: keeping that",
			 (old->flags & SHMX_REG_SHARED) ? "shared" : "not shared");
	k->max_segments = old->max_segments;
	k->max_segsz = old->max_segsz;
	k->max_total = old->max_total;
	k->shared = old->flags & SHMX_REG_SHARED;

	r = reg_create(k, old->generation + 1);
	if (r == 0) {
		copy_records(k, (const struct shmx_reg_record *)((char *)buf + lay.rec_off));
		r = adopt_holders(k, (const struct shmx_reg_holder *)((char *)buf + lay.hold_off),
				  lay.max_holders);
	}
	if (r == 0)
		finish(k);
	free(buf);
	return r;
}
