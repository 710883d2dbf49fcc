/* SPDX-License-Identifier: MIT */
/*
 * fork: what dup_mmap does for each shared mapping (shm_open: nattch + 1).
 * A process about to fork sends, on the connection its child will use,
 * REATTACH(SHMX_REATTACH_FORK) with the attachments the child inherits.  A
 * child inherits no more than its parent has, so the count is bounded by
 * what the sender holds of that segment on its other peers: its own
 * connection (one it made, or one an IDENT made its), or the orphan recovery
 * made of it.  A sender that holds nothing gets nothing counted.
 *
 * The sender's ATTACHes are one-way, on another connection or in its report
 * ring, and may still be unread when its REATTACH is; its rings are read
 * first when they can be (report.c).  A REATTACH that finds its sender short
 * waits for the next drain, which reads everything sent before it, and is
 * judged then against the most the sender held in the meantime (it may
 * detach right after fork, and that may be read in the same drain).
 */
#include <string.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"

/* What a process holds of a slot on its peers other than self; a fork's
 * connection is its child's, not the process's, even before IDENT says so. */
static uint64_t sender_count(struct keeper *k, const struct peer *self, pid_t pid,
			     uint64_t start, uint32_t idx, bool *heldp)
{
	uint64_t sum = 0;

	for (struct hold *h = k->segs[idx].holds; h; h = h->snext) {
		const struct peer *q = h->peer;

		if (q == self || q->fork_pending || q->pid != pid || q->starttime != start)
			continue;
		*heldp = true;
		sum += h->count;
	}
	return sum;
}

static uint64_t count_of(struct keeper *k, struct peer *p, uint32_t idx)
{
	struct hold *h = hold_find(k, p, idx);

	return h ? h->count : 0;
}

/* Counts what the sender may pass on: bound attachments on p, in all. */
static void fork_apply(struct keeper *k, struct peer *p, const struct shmx_req *req,
		       uint32_t idx, uint64_t bound, bool held)
{
	uint64_t have = count_of(k, p, idx), add = req->count;
	struct hold *h;

	if (!held) {
		log_info("pid %d: fork REATTACH of %d ignored: the sender holds nothing of it",
			 (int)p->wait_pid, req->id);
		return;
	}
	if (have + add > bound) {
		add = bound > have ? bound - have : 0;
		log_info("pid %d: fork REATTACH of %d claims %llu attachments, the sender has %llu",
			 (int)p->wait_pid, req->id, (unsigned long long)req->count,
			 (unsigned long long)bound);
	}
	/* a holding even at 0: the child has the descriptor, its ATTACHes count */
	h = hold_get(k, p, idx, req->id);
	if (h)
		seg_hold_add(k, h, add, req->fd);
}

/* A fork's REATTACH on p, from pid; true: it waits for the next drain. */
bool fork_reattach(struct keeper *k, struct peer *p, const struct shmx_req *req, uint32_t idx,
		   pid_t pid)
{
	bool held = false;
	uint64_t bound;

	p->fork_pending = true;
	p->wait_req = *req;
	p->wait_pid = pid;
	p->wait_start = pid == p->pid ? p->starttime : shmx_proc_starttime(pid);
	/* its attaches and detaches in its rings count before it is judged */
	report_drain_sender(k, p, pid, p->wait_start);
	bound = sender_count(k, p, pid, p->wait_start, idx, &held);
	if (held && count_of(k, p, idx) + req->count <= bound) {
		fork_apply(k, p, req, idx, bound, held);
		return false;
	}
	p->wait_peak = bound;
	p->wait_held = held;
	return true;
}

/* Judges one waiting REATTACH (final: as it stands); true: it waits on. */
static bool fork_retry(struct keeper *k, struct peer *p, bool final)
{
	const struct shmx_req *req = &p->wait_req;
	bool held = p->wait_held;
	uint64_t bound;
	uint32_t idx;
	int r;

	r = seg_lookup(k, req->id, &idx);
	if (r < 0) {
		log_info("pid %d: fork REATTACH of %d ignored: %s", (int)p->wait_pid, req->id,
			 strerror(-r));
		return false;
	}
	bound = sender_count(k, p, p->wait_pid, p->wait_start, idx, &held);
	if (bound < p->wait_peak)
		bound = p->wait_peak;
	if (!final && (!held || count_of(k, p, idx) + req->count > bound)) {
		p->wait_peak = bound;
		p->wait_held = held;
		return true;
	}
	fork_apply(k, p, req, idx, bound, held);
	return false;
}

/* Judges the waiting fork REATTACHes; those judged are read again.  How many. */
int fork_judge(struct keeper *k, bool final)
{
	struct peer **pp = &k->fork_waits;
	int n = 0;

	while (*pp) {
		struct peer *p = *pp;

		if (fork_retry(k, p, final)) {
			pp = &p->wait_next;
			continue;
		}
		*pp = p->wait_next;
		p->wait_next = NULL;
		p->waiting = false;
		peer_resume(k, p);
		n++;
	}
	return n;
}

/* p's holding of idx grew, or p became its process's own: a REATTACH waiting
 * on that process remembers what it holds now. */
void fork_note(struct keeper *k, struct peer *p, uint32_t idx)
{
	for (struct peer *w = k->fork_waits; w; w = w->wait_next) {
		bool held = false;
		uint64_t n;

		if (w->wait_pid != p->pid || w->wait_start != p->starttime ||
		    shmx_id_idx(w->wait_req.id) != idx)
			continue;
		n = sender_count(k, w, w->wait_pid, w->wait_start, idx, &held);
		w->wait_held |= held;
		if (n > w->wait_peak)
			w->wait_peak = n;
	}
}
