/* SPDX-License-Identifier: MIT */
/*
 * shmx-consumer KEY
 *
 * Receives the records shmx-producer sends through the segment found by KEY,
 * checks each one (sequence number and checksum), acknowledges it, and prints
 * a summary when the producer is done.  Start the two in either order:
 * whichever comes first creates the segment, the other finds it.
 *
 * Everything in shared memory was written by another process and is checked
 * before use, the length first: a bad one must not make us read past the
 * segment.  The layout of the segment is in demo.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static void usage(void)
{
	fprintf(stderr, "usage: shmx-consumer KEY\n"
		"  KEY  the segment's key: 1234, 0x4d2 or 02322 (not 0)\n");
	exit(2);
}

/* Progress at 100, 200, ... 1000, 2000, ... 10000, 20000, ... */
static int worth_a_line(uint64_t n)
{
	uint64_t step = 100;

	while (n >= step * 10)
		step *= 10;
	return n % step == 0;
}

int main(int argc, char **argv)
{
	uint32_t total = 2166136261u;   /* checksum of all record checksums */
	unsigned long long bytes = 0;
	struct demo_header *h;
	uint64_t expected = 1;          /* the next record we want */
	int64_t deadline;
	int id, r, rc = 1;
	key_t key;

	if (argc != 2 || demo_parse_key(argv[1], &key) < 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);        /* lines in order with the peer's */

	r = demo_open("consumer", key, &id, &h);
	if (r < 0)
		return 1;
	if (atomic_load_explicit(&h->ack, memory_order_acquire) != 0) {
		fprintf(stderr, "consumer: another consumer is using key 0x%x\n", (unsigned)key);
		goto out;
	}
	printf("consumer: segment %d (key 0x%x), waiting for records\n", id, (unsigned)key);

	deadline = demo_now_ms() + DEMO_TIMEOUT_S * 1000;
	for (;;) {
		/* Acquire: pairs with the producer's release, so the record
		 * behind this number is complete when we read it. */
		uint64_t seq = atomic_load_explicit(&h->seq, memory_order_acquire);

		if (seq == expected) {
			struct demo_record *rec = demo_record(h);
			uint32_t len = rec->len;        /* read once, then check */

			if (rec->seq != seq || len > DEMO_MAX_DATA ||
			    demo_record_sum(seq, rec->data, len) != rec->sum) {
				fprintf(stderr, "consumer: record %llu is corrupt\n",
					(unsigned long long)seq);
				goto out;
			}
			total = demo_sum(total, &rec->sum, sizeof(rec->sum));
			bytes += len;

			/* Release: we are done with the record; the producer
			 * may overwrite it once it sees this. */
			atomic_store_explicit(&h->ack, seq, memory_order_release);
			if (worth_a_line(seq))
				printf("consumer: %llu records checked\n", (unsigned long long)seq);
			expected++;
			deadline = demo_now_ms() + DEMO_TIMEOUT_S * 1000;
			continue;
		}
		if (seq != expected - 1) {
			fprintf(stderr, "consumer: got record %llu, expected %llu\n",
				(unsigned long long)seq, (unsigned long long)expected);
			goto out;
		}
		/* The producer sets done only after we acknowledged its last
		 * record, so nothing can be left unread when we see it. */
		if (atomic_load_explicit(&h->done, memory_order_acquire))
			break;
		if (demo_wait_step(deadline) < 0) {
			if (expected == 1)
				fprintf(stderr, "consumer: no producer showed up within %d s\n",
					DEMO_TIMEOUT_S);
			else
				fprintf(stderr, "consumer: the producer stopped after record %llu\n",
					(unsigned long long)expected - 1);
			goto out;
		}
	}

	/* count and total_sum were written before done (acquire above). */
	if (h->count != expected - 1 || h->total_sum != total) {
		fprintf(stderr, "consumer: the producer sent %llu records (checksum %08x), "
			"we checked %llu (checksum %08x)\n", (unsigned long long)h->count,
			(unsigned)h->total_sum, (unsigned long long)expected - 1, (unsigned)total);
		goto out;
	}
	printf("consumer: done: %llu records, %llu bytes, checksum %08x, all correct\n",
	       (unsigned long long)expected - 1, bytes, (unsigned)total);
	rc = 0;
out:
	demo_close("consumer", id, h);
	return rc;
}
