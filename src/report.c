/* SPDX-License-Identifier: MIT */
/*
 * The client's side of the report ring (report.h): attaches and detaches
 * reported to the keeper with two stores instead of a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "report.h"
#include "util/log.h"
#include "util/sys.h"

#define C shmx_client

int shmx_report_ring_new(struct shmx_report_ring **ringp, int *fdp)
{
	size_t len = shmx_report_ring_size(SHMX_REPORT_ENTRIES);
	struct shmx_report_ring *ring;
	int fd, r;

	fd = shmx_memfd_create("shmx-reports", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0)
		return fd;
	/* sealed, so the keeper's mapping can never lose its pages under it */
	if (ftruncate(fd, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	ring->magic = SHMX_REPORT_MAGIC;
	ring->entries = SHMX_REPORT_ENTRIES;
	*ringp = ring;
	*fdp = fd;
	return 0;
}

void shmx_report_ring_free(struct shmx_report_ring *ring)
{
	if (ring)
		munmap(ring, shmx_report_ring_size(SHMX_REPORT_ENTRIES));
}

/*
 * Room for one more record, or false if the keeper does not empty the ring
 * (or the SYNC asked for replaced the connection: see shmx_client_report).
 */
static bool ring_room(uint64_t gen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t head;

		if (!C.ring || C.conn_gen != gen)
			return false;
		/* acquire: the keeper is done reading the records below head */
		head = atomic_load_explicit(&C.ring->head, memory_order_acquire);
		if (C.ring_tail - head < SHMX_REPORT_ENTRIES)
			return true;
		/* full: a SYNC makes the keeper consume every ring */
		if (shmx_client_sync(SHMX_SYNC_NONE) < 0)
			return false;
	}
	return false;
}

/*
 * Reports a change the caller has already made to its holdings.  If the
 * connection is replaced on the way, the new connection's REATTACH carries
 * the change, so the record must not be written again.
 */
int shmx_client_report(enum shmx_msg_type type, int id, int fd, int flags)
{
	uint64_t gen = C.conn_gen;
	struct shmx_report *rec;
	struct shmx_req req;
	int r;

	/* writing to a dead keeper's ring fails no more than writing to a live
	 * one's: look at the connection (a poll, no wake-up) so that a lost
	 * keeper is replaced now, the reconnection reporting what we hold */
	r = shmx_client_check_alive();
	if (C.conn_gen != gen)
		return 0;
	/* failing that, the old connection still counts for this process */
	if (r < 0 && C.sock < 0)
		return r;
	if (ring_room(gen)) {
		rec = &C.ring->rec[C.ring_tail & (SHMX_REPORT_ENTRIES - 1)];
		rec->type = type;
		rec->id = id;
		rec->fd = fd;
		rec->flags = flags;
		/* release: the record is complete before the keeper can see it */
		atomic_store_explicit(&C.ring->tail, ++C.ring_tail, memory_order_release);
		return 0;
	}
	if (C.conn_gen != gen)
		return 0;
	/* no ring, or a keeper that does not read it: a message does the same */
	shmx_req_init(&req, type);
	req.id = id;
	req.fd = fd;
	req.flags = flags;
	return shmx_client_post(&req, -1);
}
