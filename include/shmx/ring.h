/* SPDX-License-Identifier: MIT */
/*
 * libshmx rings: a producer/consumer channel of variable-length messages
 * inside one libshmx segment, found by key like any segment (shmx_list()
 * and `shmx ls` show it; it lives as long as the segment: until it is
 * removed with shmx_ctl(id, SHMX_RMID) and its last user has closed it).
 *
 * Every function returns a non-negative value on success and a negative
 * errno value on failure; errno is left unchanged.
 *
 * Guarantees
 *   - Messages keep their boundaries: one send, one recv.  A message of
 *     length 0 is not allowed (recv returns 0 only at the end of the
 *     stream).
 *   - One producer and one consumer is the fast path: a send or recv that
 *     does not have to wait makes no system call.
 *   - Any number of producers and consumers (up to SHMX_RING_MAX_PEERS in
 *     all) may share a ring.  Every message is delivered exactly once, to one
 *     consumer, and the messages of each producer arrive in the order it sent
 *     them.  Producers take turns, and so do consumers: between reserve and
 *     commit a producer holds the ring's producer side, between peek and
 *     release a consumer holds the consumer side.
 *   - Waiting polls for about 10 us, then sleeps on a futex (no busy CPU).
 *     The side that makes room or data wakes the other only when someone is
 *     asleep.
 *   - recv returns 0 once every producer has closed and the ring is drained.
 *     When the last producer to leave died without closing (killed), a
 *     consumer gets -EPIPE instead, within a second of waiting.  send gets -EPIPE once the
 *     ring has had a consumer and has none left, as a pipe's writer does:
 *     at once when the last one closed, within a second of waiting for room
 *     when it died.  A process is told from a later one that reuses its pid
 *     by its start time.
 *   - A message is consumed when it is released (recv releases it itself).
 *     A consumer that dies between peek and release leaves the message to
 *     the next consumer; a producer that dies between reserve and commit
 *     leaves no trace.  Neither wedges the ring for the others.
 *   - The ring's shared memory may be written by any process that may write
 *     the segment, so everything read from it is checked: garbage gives
 *     -EBADMSG, never a crash, an access outside the segment or an endless
 *     loop.
 *
 * A wait ends with -EINTR when any signal handler runs, even one installed
 * with SA_RESTART.  Calls with SHMX_NONBLOCK that would have waited also
 * look for dead peers (at most every 200 ms per handle).
 *
 * A handle belongs to the process that opened it; after fork() the child
 * must open its own: the inherited one gives -EBADF (closing it is fine and
 * leaves the parent's alone).  Threads may share a handle: its calls take turns.  A
 * reserve/commit or peek/release pair must be made by one thread.
 */
#ifndef SHMX_RING_H
#define SHMX_RING_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shmx_ring;

#define SHMX_RING_PRODUCER 1
#define SHMX_RING_CONSUMER 2
#define SHMX_NONBLOCK      1          /* flags of send, recv, reserve, peek */

/* Producers and consumers that may have one ring open at a time. */
#define SHMX_RING_MAX_PEERS 64

/*
 * Creates a ring of at least capacity bytes (rounded up to a power of two,
 * at least 4096 and at most 1 GiB) in a new segment of key, or opens the
 * ring that key already holds if its capacity is enough and SHMX_EXCL is not
 * given.  flags: permission bits (0600...) | SHMX_EXCL.  The handle is a
 * producer's.
 */
int     shmx_ring_create(key_t key, size_t capacity, int flags, struct shmx_ring **ringp);

/* Opens the ring of key as role SHMX_RING_PRODUCER or SHMX_RING_CONSUMER.
 * Both need read and write permission on the segment (-EACCES). */
int     shmx_ring_open(key_t key, int role, struct shmx_ring **ringp);

/* Copies a message of len bytes in; returns len. */
ssize_t shmx_ring_send(struct shmx_ring *r, const void *msg, size_t len, int flags);

/* Copies the next message into buf; returns its length, 0 at the end of the
 * stream.  -EMSGSIZE if it is longer than cap (it stays in the ring). */
ssize_t shmx_ring_recv(struct shmx_ring *r, void *buf, size_t cap, int flags);

/* Zero copy, producer: room for a message of up to len bytes, in the ring,
 * at *slotp; commit(n) with 0 < n <= len sends its first n bytes, commit(0)
 * sends nothing. */
int     shmx_ring_reserve(struct shmx_ring *r, size_t len, void **slotp, int flags);
int     shmx_ring_commit(struct shmx_ring *r, size_t len);

/* Zero copy, consumer: the next message, in the ring, at *msgp, *lenp bytes;
 * returns its length (0 at the end of the stream, with *msgp NULL).  It
 * stays readable until release consumes it. */
int     shmx_ring_peek(struct shmx_ring *r, const void **msgp, size_t *lenp, int flags);
int     shmx_ring_release(struct shmx_ring *r);

/* Leaves the ring (a pending reservation is dropped, a peeked message stays
 * for the next consumer), detaches and frees the handle.  NULL is allowed. */
void    shmx_ring_close(struct shmx_ring *r);

/* The data area's size in bytes, and the longest message it takes
 * (capacity / 2 - 8). */
size_t  shmx_ring_capacity(const struct shmx_ring *r);
size_t  shmx_ring_max_msg(const struct shmx_ring *r);

/* The id of the ring's segment, for shmx_ctl() (SHMX_RMID, SHMX_STAT). */
int     shmx_ring_id(const struct shmx_ring *r);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_RING_H */
