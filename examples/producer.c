/* SPDX-License-Identifier: MIT */
/*
 * shmx-producer KEY [--count N] [--size BYTES] [--file PATH]
 *
 * Sends messages to shmx-consumer through a ring (<shmx/ring.h>) found by
 * KEY: N generated messages of BYTES bytes each, or the file PATH in chunks
 * of BYTES, then an end message (ring-demo.h).  Start the two in either
 * order: the producer creates the ring, the consumer waits for it.
 *
 *   shmx-consumer 0x5eed &
 *   shmx-producer 0x5eed --count 100000
 *
 * Ctrl-C (or SIGTERM) stops it cleanly: the end message says "interrupted",
 * so the consumer can still check that nothing was lost.  If the consumer
 * goes away, sending fails with -EPIPE and the producer says so.
 *
 * Exit status: 0 all sent, 1 an error or the consumer went away, 2 usage,
 * 128 + the signal's number when stopped by one (130 for Ctrl-C).
 */
#include <fcntl.h>
#include <unistd.h>

#include "ring-demo.h"

static void usage(void)
{
	fprintf(stderr, "usage: shmx-producer KEY [--count N] [--size BYTES] [--file PATH]\n"
		"  KEY    the ring's key: 1234, 0x4d2 or 02322 (not 0)\n"
		"  N      messages to send, 1 to 1000000000 (default 1000)\n"
		"  BYTES  bytes per message, %d to %d (default 4096)\n"
		"  PATH   send this file instead (then N does not apply)\n",
		DEMO_MIN_SIZE, DEMO_MAX_SIZE);
	exit(2);
}

/*
 * Creates the ring.  SHMX_EXCL: a ring already there is not ours to send
 * into.  One that nobody has attached was left by a run that got killed
 * before it could remove it: remove it now and create a fresh one.
 */
static int create_ring(key_t key, struct shmx_ring **rp)
{
	struct shmx_ds ds;
	int rc, id;

	rc = shmx_ring_create(key, DEMO_RING_CAP, SHMX_EXCL | 0600, rp);
	if (rc != -EEXIST)
		return rc;
	id = shmx_get(key, 0, 0);
	if (id < 0 || shmx_ctl(id, SHMX_STAT, &ds) < 0 || ds.nattch > 0)
		return rc;
	printf("producer: removing a ring that a killed run left behind\n");
	shmx_ctl(id, SHMX_RMID, NULL);
	return shmx_ring_create(key, DEMO_RING_CAP, SHMX_EXCL | 0600, rp);
}

/*
 * Waits until someone else has the ring open: its segment counts every
 * attachment, as SysV's shm_nattch does, and ours is one.  Sending without
 * a consumer would work until the ring is full; but a short run would then
 * be over, and the ring removed, before the consumer ever found it.
 */
static int wait_for_consumer(struct shmx_ring *r)
{
	double deadline = demo_now() + DEMO_TIMEOUT_S;
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct shmx_ds ds;
	int rc;

	while ((rc = shmx_ctl(shmx_ring_id(r), SHMX_STAT, &ds)) == 0 && ds.nattch < 2) {
		if (demo_stop)
			return -EINTR;
		if (demo_now() > deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
	return rc;
}

/* Bytes that depend on seq: the consumer cannot predict them, only check them. */
static void fill(unsigned char *p, size_t len, uint64_t seq)
{
	uint64_t x = seq * UINT64_C(0x9e3779b97f4a7c15) | 1;

	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;           /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, len - i < 8 ? len - i : 8);
	}
}

/*
 * Sends DATA message seq of up to size bytes, zero copy: reserve gives room
 * in the ring itself, the data is generated (or read(2) from fd) straight
 * into it, and commit hands it to the consumer, who sees nothing before.
 * Returns the data bytes sent and its checksum in *sum, 0 at end of file.
 */
static ssize_t send_data(struct shmx_ring *r, uint64_t seq, size_t size, int fd, uint64_t *sum)
{
	struct demo_msg m = { .kind = DEMO_DATA, .seq = seq };
	size_t len = size - sizeof(m);
	unsigned char *slot;
	void *p;
	int rc;

	rc = shmx_ring_reserve(r, size, &p, 0);         /* waits for room */
	if (rc < 0)
		return rc;
	slot = p;
	if (fd >= 0) {
		ssize_t got = read(fd, slot + sizeof(m), len);

		if (got <= 0) {
			rc = got < 0 ? -errno : 0;
			shmx_ring_commit(r, 0);         /* sends nothing */
			return rc;
		}
		len = (size_t)got;
	} else {
		fill(slot + sizeof(m), len, seq);
	}
	m.sum = *sum = demo_msg_sum(seq, slot + sizeof(m), len);
	memcpy(slot, &m, sizeof(m));    /* the ring promises no alignment */
	rc = shmx_ring_commit(r, sizeof(m) + len);
	return rc < 0 ? rc : (ssize_t)len;
}

int main(int argc, char **argv)
{
	unsigned long long count = 1000, size = 4096;
	const char *keyarg = NULL, *path = NULL;
	uint64_t seq, bytes = 0, total = DEMO_SUM_SEED;    /* of every message's sum */
	struct demo_msg end = { .kind = DEMO_END };
	struct shmx_ring *r;
	int fd = -1, rc, sig = 0, status = 1;
	double t0;
	key_t key;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			if (demo_parse_number(argv[++i], 1, 1000000000, &count) < 0)
				usage();
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			if (demo_parse_number(argv[++i], DEMO_MIN_SIZE, DEMO_MAX_SIZE, &size) < 0)
				usage();
		} else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (!keyarg && argv[i][0] != '-') {
			keyarg = argv[i];
		} else {
			usage();
		}
	}
	if (!keyarg || demo_parse_key(keyarg, &key) < 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);        /* lines in order with the peer's */
	demo_catch_signals();
	if (path && (fd = open(path, O_RDONLY)) < 0) {
		fprintf(stderr, "producer: %s: %s\n", path, strerror(errno));
		return 1;
	}

	rc = create_ring(key, &r);
	if (rc < 0) {
		fprintf(stderr, "producer: creating a ring with key 0x%x: %s\n", (unsigned)key,
			rc == -EEXIST ? "another program is using it" : strerror(-rc));
		return 1;
	}
	printf("producer: ring %d (key 0x%x, %zu KiB), waiting for a consumer\n",
	       shmx_ring_id(r), (unsigned)key, shmx_ring_capacity(r) / 1024);
	rc = wait_for_consumer(r);
	if (rc < 0) {
		fprintf(stderr, "producer: %s\n", rc == -ETIMEDOUT ? "no consumer showed up" :
			rc == -EINTR ? "interrupted" : strerror(-rc));
		sig = demo_stop;
		goto out;
	}
	if (path)
		printf("producer: sending %s in messages of %llu bytes\n", path, size);
	else
		printf("producer: sending %llu messages of %llu bytes\n", count, size);

	t0 = demo_now();
	for (seq = 1; path || seq <= count; seq++) {
		uint64_t sum = 0;
		ssize_t n;

		/* A signal that lands outside a wait is seen here, at the next message. */
		n = demo_stop ? -EINTR : send_data(r, seq, size, fd, &sum);
		if (n == 0 || n == -EINTR)      /* end of file, or stopped */
			break;
		if (n < 0) {                    /* -EPIPE: no consumer left */
			fprintf(stderr, "producer: %s after %llu messages\n", n == -EPIPE ?
				"the consumer went away" : strerror((int)-n),
				(unsigned long long)seq - 1);
			goto out;
		}
		total = demo_sum(total, &sum, sizeof(sum));
		bytes += (uint64_t)n;
	}

	/* The end message: how many went before it, and their checksum.  A
	 * plain send copies it in from our own memory. */
	sig = demo_stop;
	end.seq = seq - 1;
	end.sum = total;
	end.flags = sig ? DEMO_INTERRUPTED : 0;
	rc = (int)shmx_ring_send(r, &end, sizeof(end), 0);
	if (rc < 0) {
		fprintf(stderr, "producer: sending the end message: %s\n",
			rc == -EPIPE ? "the consumer went away" : strerror(-rc));
		goto out;
	}
	printf("producer: %s %llu messages, %llu bytes, checksum %016llx\n",
	       sig ? "interrupted: sent" : "sent", (unsigned long long)end.seq,
	       (unsigned long long)bytes, (unsigned long long)total);
	demo_print_rate("producer", end.seq, bytes, demo_now() - t0);
	status = 0;
out:
	demo_remove("producer", r);
	shmx_ring_close(r);     /* the consumer's recv returns 0 once it drained the ring */
	if (fd >= 0)
		close(fd);
	return sig ? 128 + sig : status;
}
