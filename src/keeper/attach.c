/* SPDX-License-Identifier: MIT */
/*
 * Attachments: what do_shmat and shm_close count in shm_nattch.  Each peer's
 * holding of a segment carries its count; ATTACH and DETACH move it, a
 * peer's end drops it, REATTACH hands it over after fork or a keeper restart.
 *
 * Only a connection that holds the segment may count attachments of it, as
 * only a process with the file mapped is counted by the kernel: it holds it
 * once the keeper has handed it the descriptor (FD), or once it has shown
 * that it holds one (REATTACH).  Read permission alone is not enough, or any
 * reader could keep a removed segment alive for ever.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"

/* Moves nattch; stamps dtime/lpid (detach) or atime/lpid (attach) if pid. */
static void nattch_add(struct keeper *k, uint32_t idx, int64_t delta, pid_t pid)
{
	struct shmx_reg_record *rec = rec_begin(k, idx);

	if (delta < 0 && (uint64_t)-delta > rec->nattch)
		delta = -(int64_t)rec->nattch;     /* never below the truth */
	rec->nattch += (uint64_t)delta;
	if (pid > 0 && delta > 0) {
		rec->atime = shmx_now();
		rec->lpid = pid;
	} else if (pid > 0 && delta < 0) {
		rec->dtime = shmx_now();
		rec->lpid = pid;
	}
	rec_end(rec);
}

void seg_attach(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid)
{
	int access = 4 | (req->flags & SHMX_RDONLY ? 0 : 2) | (req->flags & SHMX_EXEC ? 1 : 0);
	struct hold *h;
	uint32_t idx;
	int r;

	r = seg_lookup(k, req->id, &idx);
	if (r == 0 && shmx_ipcperms(&p->cred, rec_of(k, idx), access) < 0)
		r = -EACCES;
	if (r < 0) {
		log_info("pid %d: ATTACH of %d ignored: %s", (int)pid, req->id, strerror(-r));
		return;
	}
	/* the library asks FD (or sends REATTACH) before its first ATTACH here */
	h = hold_find(k, p, idx);
	if (!h || h->id != req->id) {
		log_info("pid %d: ATTACH of %d ignored: this connection holds no descriptor of it",
			 (int)pid, req->id);
		return;
	}
	if (h->count >= SHMX_MAX_ATTACH_COUNT)
		return;
	h->count++;
	h->fd = req->fd;
	hold_sync(k, h);
	nattch_add(k, idx, 1, pid);
	fork_note(k, p, idx);
}

void seg_detach(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid)
{
	struct hold *h = NULL;
	uint32_t idx;

	if (seg_lookup(k, req->id, &idx) == 0)
		h = hold_find(k, p, idx);
	if (!h || h->id != req->id || h->count == 0) {
		log_info("pid %d: DETACH of %d without an attachment: ignored", (int)pid, req->id);
		return;
	}
	h->count--;
	hold_sync(k, h);
	nattch_add(k, idx, -1, pid);
	seg_check_gone(k, idx);
}

void seg_release(struct keeper *k, struct peer *p, const struct shmx_req *req)
{
	struct hold *h = NULL;
	uint32_t idx;

	if (seg_lookup(k, req->id, &idx) == 0)
		h = hold_find(k, p, idx);
	if (!h || h->id != req->id || h->count != 0) {
		log_debug("pid %d: RELEASE of %d ignored", (int)p->pid, req->id);
		return;
	}
	hold_free(k, h);
	seg_check_gone(k, idx);
}

/* Adds attachments to a holding, as many as one process may have at most;
 * fd is the descriptor's number in the holder, for a later recovery. */
void seg_hold_add(struct keeper *k, struct hold *h, uint64_t add, int fd)
{
	if (add > SHMX_MAX_ATTACH_COUNT - h->count)
		add = SHMX_MAX_ATTACH_COUNT - h->count;
	h->count += add;
	h->fd = fd;
	hold_sync(k, h);
	nattch_add(k, h->idx, (int64_t)add, 0);
	seg_check_gone(k, h->idx);
}

/* Whether fd is the segment's file (the memfd or a read-only open of it). */
static bool fd_is_segment(struct keeper *k, uint32_t idx, int fd)
{
	const struct shmx_reg_record *rec = rec_of(k, idx);
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_dev == rec->dev && (uint64_t)st.st_ino == rec->ino;
}

/*
 * A process reconnected (the keeper restarted, or its identity changed).  It
 * holds the segment if recovery found it holding it (an orphan of the same
 * pid and start time: its holding is taken over, not added to), or if the
 * descriptor it sent is the segment's.
 */
static void reattach_restart(struct keeper *k, struct peer *p, const struct shmx_req *req,
			     uint32_t idx, bool has_fd)
{
	struct peer *o = peer_find_orphan(k, p->pid, p->starttime);
	struct hold *oh = o ? hold_find(k, o, idx) : NULL;
	struct hold *h;

	if (!oh && !has_fd) {
		log_info("pid %d: REATTACH of %d ignored: it showed no descriptor of it",
			 (int)p->pid, req->id);
		return;
	}
	if (oh) {
		nattch_add(k, idx, -(int64_t)oh->count, 0);
		hold_free(k, oh);
		peer_orphan_check(k, o);
	}
	h = hold_get(k, p, idx, req->id);
	if (!h) {
		seg_check_gone(k, idx);
		return;
	}
	seg_hold_add(k, h, req->count, req->fd);
	fork_note(k, p, idx);
}

/*
 * A process reports a descriptor it holds: after a keeper restart, or for a
 * child it is about to fork (SHMX_REATTACH_FORK, fork.c).  Consumes fd; a
 * descriptor of a segment pending recovery brings its memory back.  True:
 * the message waits for the next drain (fork.c).
 */
bool seg_reattach(struct keeper *k, struct peer *p, const struct shmx_req *req, int fd, pid_t pid)
{
	bool has_fd;
	uint32_t idx;
	int r;

	/*
	 * No permission check: the sender proves it holds the segment (its
	 * descriptor, an orphan holding, or its parent's count), and like the
	 * kernel's, attachments outlive a change of identity (setuid).
	 */
	r = seg_lookup(k, req->id, &idx);
	if (r < 0) {
		log_info("pid %d: REATTACH of %d ignored: %s", (int)p->pid, req->id, strerror(-r));
		if (fd >= 0)
			close(fd);
		return false;
	}
	has_fd = fd_is_segment(k, idx, fd);
	if (has_fd && seg_pending(&k->segs[idx]))
		seg_adopt_fd(k, idx, fd);
	else if (fd >= 0)
		close(fd);
	if (req->flags & SHMX_REATTACH_FORK)
		return fork_reattach(k, p, req, idx, pid);
	reattach_restart(k, p, req, idx, has_fd);
	return false;
}

/* The connection now belongs to pid (a forked child took it over). */
void seg_ident(struct keeper *k, struct peer *p, pid_t pid)
{
	if (pid <= 0 || (pid == p->pid && !p->fork_pending))
		return;
	/* from now on its holdings count as the sender's own when it forks (fork.c) */
	p->fork_pending = false;
	if (pid != p->pid) {
		log_debug("connection of pid %d now belongs to pid %d", (int)p->pid, (int)pid);
		p->pid = pid;
		p->starttime = shmx_proc_starttime(pid);
	}
	for (struct hold *h = p->holds; h; h = h->pnext) {
		hold_sync(k, h);
		fork_note(k, p, h->idx);
	}
}

/* A peer ended (connection closed, orphan died): its attachments end. */
void seg_peer_gone(struct keeper *k, struct peer *p)
{
	while (p->holds) {
		struct hold *h = p->holds;
		uint32_t idx = h->idx;

		if (h->count)
			nattch_add(k, idx, -(int64_t)h->count, p->pid);
		hold_free(k, h);
		seg_check_gone(k, idx);
	}
}
