/* SPDX-License-Identifier: MIT */
/*
 * Where each segment's memfd is kept.  The keeper holds as many as its open
 * file limit allows, less a reserve for connections and the like; beyond
 * that, a vault holds them (vault.h), so the table is bounded by
 * --max-segments, not by the keeper's limit.  Whatever needs the memfd
 * borrows it: the keeper's own, or a copy fetched from the vault and closed
 * when it is returned.
 *
 * The reserve is a first guess.  The keeper also counts what it has open
 * (memfds, connections, orphans' pidfds, vault sockets) and keeps some
 * headroom below its limit, moving its own memfds to a vault to make room
 * for connections; and if a descriptor is refused all the same (EMFILE),
 * one memfd moves to make room for it.
 *
 * A segment's memfd is in one of three places: the keeper (memfd >= 0), a
 * vault (vault >= 0), or nowhere yet - pending, until a holder hands it back
 * (recover.c).  seg_pending() tells the last apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "keeper.h"
#include "procview.h"
#include "util/log.h"
#include "util/sys.h"
#include "vault.h"

/* Descriptors kept free for connections, orphans' pidfds, vault sockets and
 * the keeper's own, when the limit is large; half of it when it is not. */
#define FD_RESERVE 2048u
/* stdio, lock, directory, socket, epoll, signalfd, and a few in passing */
#define FD_FIXED 16u
/* kept free at all times: starting a vault takes two */
#define FD_HEADROOM 64u
/* memfds moved for connections at a time, should the limit drop a lot */
#define EVICT_MAX 64
/* rescues (one a tick) of a lost vault's segment no holder gave back yet */
#define RESCUE_TRIES 5

static uint64_t fds_used(const struct keeper *k)
{
	return (uint64_t)k->own_fds + k->nconns + k->norphans + k->nvaults + FD_FIXED;
}

static bool fd_room(const struct keeper *k)
{
	return fds_used(k) + FD_HEADROOM < k->fd_limit;
}

/* How many memfds the keeper keeps itself under the soft limit lim. */
static uint32_t own_max_for(const struct keeper *k, uint64_t lim)
{
	uint64_t own = lim > 2 * FD_RESERVE ? lim - FD_RESERVE : lim / 2;

	if (k->vault_after >= 0)
		own = (uint64_t)k->vault_after;
	return own > SHMX_MAX_SEGMENTS_LIMIT ? SHMX_MAX_SEGMENTS_LIMIT : (uint32_t)own;
}

void store_init(struct keeper *k)
{
	uint64_t lim = 1024, hard = 1024, spare, fits;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		lim = rl.rlim_cur;
		hard = rl.rlim_max;
	}
	k->fd_limit = lim;
	k->own_max = own_max_for(k, lim);
	/* a vault takes the hard limit; half the reserve may go to their sockets */
	spare = lim > k->own_max ? lim - k->own_max : 0;
	fits = k->own_max + spare / 2 * (hard > 2 * VAULT_SPARE_FDS ? hard - VAULT_SPARE_FDS : 0);
	if (fits < k->max_segments)
		log_warn("open file limit %llu (hard %llu): fewer than %u segments will fit",
			 (unsigned long long)lim, (unsigned long long)hard, k->max_segments);
}

/* Keeps fd as the slot's memfd, here or in a vault.  Consumes fd. */
int seg_store_fd(struct keeper *k, uint32_t idx, int id, int fd)
{
	struct kseg *s = &k->segs[idx];
	int r;

	if (k->own_fds < k->own_max && fd_room(k)) {
		s->memfd = fd;
		k->own_fds++;
		return 0;
	}
	r = vault_put(k, idx, id, fd);
	close(fd);
	if (r < 0)
		log_warn("no vault takes segment %d: %s", id, strerror(-r));
	return r;
}

/* One of the keeper's memfds goes to a vault.  0 if one did. */
static int evict(struct keeper *k)
{
	uint32_t max = k->reg.lay.max_segments;

	for (uint32_t n = 0; n < max && k->own_fds; n++) {
		uint32_t idx = (k->room_next + n) % max;
		struct kseg *s = &k->segs[idx];

		if (s->memfd < 0)
			continue;
		k->room_next = idx + 1;
		if (vault_put(k, idx, rec_of(k, idx)->id, s->memfd) < 0)
			return -ENOSPC;
		close(s->memfd);
		s->memfd = -1;
		k->own_fds--;
		log_debug("segment %d moved to a vault", rec_of(k, idx)->id);
		return 0;
	}
	return -ENOSPC;
}

/* Out of descriptors (EMFILE): a memfd goes to a vault, and so do all new
 * ones until the tick (store_tick) looks at the limit again.  0 if a
 * descriptor was freed. */
int store_room(struct keeper *k)
{
	int r = evict(k);

	if (k->own_max > k->own_fds)
		k->own_max = k->own_fds;
	if (r == 0)
		log_info("out of descriptors: a segment moved to a vault");
	return r;
}

/* Before a connection is accepted: the headroom, at the memfds' expense. */
void store_headroom(struct keeper *k)
{
	/* no vault to take them (backing off): not one fork per accept */
	if (fd_room(k) || !vault_room(k))
		return;
	for (int n = 0; n < EVICT_MAX && !fd_room(k); n++)
		if (evict(k) < 0)
			return;
}

/* The tick: a limit changed from outside (prlimit) is followed, and what an
 * EMFILE took from own_max comes back (fd_room still keeps the headroom);
 * lost vaults still dying are reaped; rescues not done are tried again. */
void store_tick(struct keeper *k)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		k->fd_limit = rl.rlim_cur;
		k->own_max = own_max_for(k, rl.rlim_cur);
	}
	vault_reap(k);
	if (k->rescue_retry) {
		k->rescue_retry = false;
		k->rescue = true;       /* settle() runs it, after its drain */
	}
}

/* The slot's memfd, for the caller to use until seg_fd_return(); -EAGAIN
 * if it is pending. */
int seg_fd_borrow(struct keeper *k, uint32_t idx)
{
	struct kseg *s = &k->segs[idx];
	int fd;

	if (s->memfd >= 0)
		return s->memfd;
	if (s->vault < 0)
		return -EAGAIN;
	fd = vault_get(k, idx);
	if (fd == -EMFILE && store_room(k) == 0)
		fd = vault_get(k, idx);
	/* not the client's EMFILE: shmat's ENOMEM, no room for the attachment;
	 * nor a slow vault's: the segment is there, this request fails */
	return fd == -EMFILE || fd == -ETIMEDOUT ? -ENOMEM : fd;
}

void seg_fd_return(struct keeper *k, uint32_t idx, int fd)
{
	if (fd >= 0 && fd != k->segs[idx].memfd)
		close(fd);
}

/* Closes the slot's memfd wherever it is (punch: its pages go first, from
 * every process that still has the file, as shm_destroy's do). */
void seg_fd_drop(struct keeper *k, uint32_t idx, bool punch)
{
	struct kseg *s = &k->segs[idx];

	if (s->memfd >= 0) {
		if (punch && fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				       (off_t)s->fsize) < 0)
			log_debug("punching %d: %s", rec_of(k, idx)->id, strerror(errno));
		close(s->memfd);
		s->memfd = -1;
		k->own_fds--;
	} else if (s->vault >= 0) {
		vault_drop(k, idx, punch);
	}
}

/* At exit: the keeper's memfds close with it, a vault's with the vault. */
void seg_fd_close_all(struct keeper *k)
{
	for (uint32_t idx = 0; k->segs && idx < k->reg.lay.max_segments; idx++) {
		struct kseg *s = &k->segs[idx];

		if (s->memfd >= 0)
			close(s->memfd);
		s->memfd = -1;
		s->vault = -1;
	}
	k->own_fds = 0;
}

/* What a holder has of segments, read once per rescue: a lost vault's
 * segments are often many, held by few processes. */
struct rescue_views {
	struct rescue_view {
		pid_t pid;
		struct proc_view view;
	} *t;
	size_t n;
};

static const struct proc_view *view_of(struct rescue_views *rv, pid_t pid)
{
	struct rescue_view *t;

	for (size_t i = 0; i < rv->n; i++)
		if (rv->t[i].pid == pid)
			return &rv->t[i].view;
	t = realloc(rv->t, (rv->n + 1) * sizeof(*t));
	if (!t)
		return NULL;
	rv->t = t;
	t[rv->n].pid = pid;
	proc_view_read(&t[rv->n].view, pid);
	return &t[rv->n++].view;
}

/* Takes segment idx back from the holder p, by the descriptor number /proc
 * shows for its inode (the holder may never have named one: shmx_fd). */
static void rescue_from(struct keeper *k, uint32_t idx, struct peer *p, struct rescue_views *rv)
{
	const struct shmx_reg_record *rec = rec_of(k, idx);
	const struct proc_view *view;
	const struct proc_seg *ps;
	int fd;

	if (p->pid <= 0)
		return;
	view = view_of(rv, p->pid);
	ps = view ? proc_view_find(view, rec->dev, rec->ino) : NULL;
	if (!ps || ps->fd < 0)
		return;
	fd = proc_take_fd(p->pid, p->src.kind == SRC_ORPHAN ? p->fd : -1, ps->fd);
	/* checks that it is that very file */
	if (fd >= 0 && seg_adopt_fd(k, idx, fd) == 0)
		log_info("segment %d taken back from pid %d", rec->id, (int)p->pid);
}

/*
 * Segments of a lost vault that some process holds: take the descriptor
 * back from one (as recovery does).  One not found is looked for again on
 * the next few ticks (a holder between receiving the descriptor and
 * keeping it), then stays pending until a holder hands it back or all of
 * them end.
 */
void store_rescue(struct keeper *k)
{
	struct rescue_views rv = { NULL, 0 };

	k->rescue = false;
	for (uint32_t idx = 0; idx < k->reg.lay.max_segments; idx++) {
		struct kseg *s = &k->segs[idx];

		if (!s->rescue)
			continue;
		for (struct hold *h = s->holds; h && seg_pending(s); h = h->snext)
			rescue_from(k, idx, h->peer, &rv);
		if (seg_pending(s) && s->holds && ++s->rescue_tries < RESCUE_TRIES) {
			k->rescue_retry = true;
		} else {
			s->rescue = false;
			s->rescue_tries = 0;
		}
		seg_check_gone(k, idx);
	}
	for (size_t i = 0; i < rv.n; i++)
		proc_view_free(&rv.t[i].view);
	free(rv.t);
}

/* Writes a segment's rss to its record; returns it. */
uint64_t seg_set_rss(struct keeper *k, uint32_t idx, uint64_t rss)
{
	struct shmx_reg_record *rec = rec_of(k, idx);

	if (rec->rss != rss) {
		rec = rec_begin(k, idx);
		rec->rss = rss;
		rec_end(rec);
	}
	return rss;
}

/* SYNC: the rss of one segment, or of all and their sum.  A vault answers
 * for all of its segments at once. */
void seg_refresh_rss(struct keeper *k, int id)
{
	struct shmx_reg_header *h = shmx_reg_hdr(&k->reg);
	uint64_t sum = 0, rss;
	uint32_t idx;

	if (id == SHMX_SYNC_NONE)
		return;
	if (id != SHMX_SYNC_ALL) {
		if (seg_lookup(k, id, &idx) < 0)
			return;
		if (k->segs[idx].memfd >= 0)
			seg_set_rss(k, idx, shmx_fd_rss(k->segs[idx].memfd));
		else if (k->segs[idx].vault >= 0 && vault_rss(k, idx, &rss) == 0)
			seg_set_rss(k, idx, rss);
		return;
	}
	for (idx = 0; idx < k->reg.lay.max_segments; idx++)
		if (k->segs[idx].memfd >= 0)
			sum += seg_set_rss(k, idx, shmx_fd_rss(k->segs[idx].memfd));
	sum += vault_rss_all(k);
	shmx_reg_write_begin(&h->seq);
	h->rss = sum;
	shmx_reg_write_end(&h->seq);
}
