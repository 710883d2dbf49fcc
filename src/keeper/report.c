/* SPDX-License-Identifier: MIT */
/*
 * Report rings (src/report.h, docs/protocol.md "Report ring"): a client
 * writes its ATTACH, DETACH and RELEASE to a memfd it handed over with
 * HELLO; the keeper consumes them when it must be exact, and each record is
 * then handled as the one-way message of that type would be.
 *
 * Order.  A record must be applied after every socket message its writer
 * sent before writing it, and before every request sent after.  Nothing in
 * a record says where it falls among the messages, so:
 *  - before a request that gets a reply (and before a socket ATTACH, DETACH
 *    or RELEASE), the ring is read to its tail: the client waits for the
 *    reply, so every record there was written before the request;
 *  - before a REATTACH or IDENT, it is not: those start a connection's life
 *    (reconnect, fork), and records written after them - an ATTACH of what
 *    the REATTACH hands over - must not be read first, or they would be
 *    ignored;
 *  - at the end of the stream (the process closed it, or died), all of it:
 *    its last attaches and detaches stamp atime, dtime and lpid;
 *  - otherwise (a drain, the tick, a fork's judgement) a ring is read only
 *    when its socket holds no unread message, looked at after its tail was:
 *    a message sent before those records would still be queued.
 *
 * The page is the client's: head is kept here and only published there,
 * the size is HELLO's, tail is checked against both, and each record is
 * read once into a request and checked like a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "keeper.h"
#include "report.h"
#include "util/log.h"

/* Why fd cannot be a ring of count records, or NULL; maps it if it can. */
static const char *ring_map(struct ring *ring, uint64_t count, int fd)
{
	size_t len = shmx_report_ring_size((uint32_t)count);
	struct statfs sfs;
	struct stat st;
	void *map;
	int seals;

	if (count < SHMX_REPORT_MIN || count > SHMX_REPORT_MAX || (count & (count - 1)))
		return "entries not a power of two in range";
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return "not a regular file";
	/* hugetlbfs may fail a fault with SIGBUS once the client punches a
	 * hole and the pool is empty; shmem never does */
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != TMPFS_MAGIC)
		return "not a memfd";
	/* without it the client could truncate the file under our mapping,
	 * and our next read of it would be a SIGBUS */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return "not sealed against shrinking";
	if ((uint64_t)st.st_size < len)
		return "file smaller than its entries";
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return "cannot be mapped read-write";
	ring->map = map;
	ring->len = len;
	if (ring->map->magic != SHMX_REPORT_MAGIC) {
		munmap(map, len);
		ring->map = NULL;
		return "bad magic";
	}
	ring->entries = (uint32_t)count;
	/* where the client starts; from here on ours is the one that counts */
	ring->head = atomic_load_explicit(&ring->map->head, memory_order_relaxed);
	return NULL;
}

/*
 * HELLO: with a descriptor, the connection's report ring.  Consumes fd.
 * < 0: the connection is to be closed (a bad ring, or a second HELLO once
 * it has one: the keeper would not know which ring comes first).
 */
int report_hello(struct peer *p, const struct shmx_req *req, int fd)
{
	const char *why;

	if (p->ring.map)
		why = "a second HELLO";
	else if (fd < 0)
		why = req->count ? "entries without a ring" : NULL;
	else
		why = ring_map(&p->ring, req->count, fd);
	if (fd >= 0)
		close(fd);      /* the mapping keeps the file */
	if (why) {
		log_warn("pid %d: report ring refused (%s): disconnecting", (int)p->pid, why);
		return -EBADMSG;
	}
	if (p->ring.map)
		log_debug("pid %d: report ring of %u entries", (int)p->pid, p->ring.entries);
	return 0;
}

void report_close(struct peer *p)
{
	if (p->ring.map)
		munmap(p->ring.map, p->ring.len);
	p->ring.map = NULL;
}

/* One record as the message of its type; false if it is not a valid one. */
static bool apply(struct keeper *k, struct peer *p, const volatile struct shmx_report *src)
{
	struct shmx_req req;

	/* each field read once: the client may rewrite it meanwhile */
	shmx_req_init(&req, SHMX_MSG_ATTACH);
	req.type = src->type;
	req.id = src->id;
	req.fd = src->fd;
	req.flags = src->flags;
	if (shmx_req_check(&req, sizeof(req)) < 0)
		return false;
	log_debug("pid %d: %s id %d (ring)", (int)p->pid, shmx_msg_name(req.type), req.id);
	switch (req.type) {
	case SHMX_MSG_ATTACH:
		seg_attach(k, p, &req, p->pid);
		return true;
	case SHMX_MSG_DETACH:
		seg_detach(k, p, &req, p->pid);
		return true;
	case SHMX_MSG_RELEASE:
		seg_release(k, p, &req);
		return true;
	}
	return false;
}

/*
 * Consumes p's records up to tail (read with acquire, so the records below
 * it are complete).  At most entries of them: a ring that claims more, or
 * less than nothing, or holds a record that is no valid report, is broken
 * or hostile, and its connection is closed as for a malformed message.
 * < 0: p was closed.
 */
static int consume(struct keeper *k, struct peer *p, uint64_t tail)
{
	struct ring *ring = &p->ring;
	uint64_t head = ring->head;

	if (tail < head || tail - head > ring->entries) {
		log_warn("pid %d: report ring corrupt (head %llu, tail %llu, %u entries): "
			 "disconnecting", (int)p->pid, (unsigned long long)head,
			 (unsigned long long)tail, ring->entries);
		peer_close(k, p);
		return -EBADMSG;
	}
	for (; head != tail; head++) {
		if (!apply(k, p, &ring->map->rec[head & (ring->entries - 1)])) {
			log_warn("pid %d: malformed report %llu: disconnecting", (int)p->pid,
				 (unsigned long long)head);
			peer_close(k, p);
			return -EBADMSG;
		}
		if (p->dead)
			return -EBADMSG;
	}
	if (ring->head != head) {
		ring->head = head;
		/* release: the client may reuse these entries once it sees it */
		atomic_store_explicit(&ring->map->head, head, memory_order_release);
	}
	return 0;
}

/* Every record p has written so far.  < 0: p was closed. */
int report_drain(struct keeper *k, struct peer *p)
{
	if (!p->ring.map)
		return 0;
	return consume(k, p, atomic_load_explicit(&p->ring.map->tail, memory_order_acquire));
}

/* Before p's message of this type is handled (see the top).  < 0: p was closed. */
int report_before(struct keeper *k, struct peer *p, uint32_t type)
{
	if (type == SHMX_MSG_HELLO || type == SHMX_MSG_REATTACH || type == SHMX_MSG_IDENT)
		return 0;
	return report_drain(k, p);
}

/*
 * Consumes p's ring if its socket holds no unread message.  0, or 1 if it
 * was skipped for one (read that message first), or < 0: p was closed.
 */
static int drain_quiet(struct keeper *k, struct peer *p)
{
	uint64_t tail;
	int queued = 0;

	if (!p->ring.map || p->dead || p->waiting)
		return 0;       /* a parked connection's records wait behind its message */
	tail = atomic_load_explicit(&p->ring.map->tail, memory_order_acquire);
	if (tail == p->ring.head)
		return 0;
	/* after tail: whatever was sent before those records is queued by now */
	if (ioctl(p->fd, FIONREAD, &queued) < 0 || queued > 0)
		return 1;
	return consume(k, p, tail);
}

/*
 * Every connection's ring (the drain before SYNC, RMID and destroys; the
 * tick).  How many were skipped because their socket was not quiet.
 */
int report_drain_all(struct keeper *k)
{
	struct peer *p, *next;
	int skipped = 0;

	for (p = k->peers; p; p = next) {
		next = p->next;         /* p may be closed, and then it leaves the list */
		if (p->src.kind == SRC_CONN && drain_quiet(k, p) > 0)
			skipped++;
	}
	return skipped;
}

/* The rings of a process about to fork, before its REATTACH is judged. */
void report_drain_sender(struct keeper *k, struct peer *self, pid_t pid, uint64_t start)
{
	struct peer *p, *next;

	for (p = k->peers; p; p = next) {
		next = p->next;
		if (p != self && p->src.kind == SRC_CONN && !p->fork_pending && p->pid == pid &&
		    p->starttime == start)
			drain_quiet(k, p);
	}
}
