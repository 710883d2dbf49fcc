/* SPDX-License-Identifier: MIT */
/*
 * shmx-producer KEY [--count N]
 *
 * Sends N records (default 1000) to shmx-consumer through one shared-memory
 * segment found by KEY, one record at a time.  Start the two in either order:
 * whichever comes first creates the segment, the other finds it.
 *
 *   shmx-consumer 0x5eed &
 *   shmx-producer 0x5eed --count 500
 *
 * What it shows: a segment found by key (shmx_get), attached (shmx_at), used
 * by two processes through C11 atomics, and removed by the last one out
 * (demo.h).  The layout of the segment is in demo.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static void usage(void)
{
	fprintf(stderr, "usage: shmx-producer KEY [--count N]\n"
		"  KEY  the segment's key: 1234, 0x4d2 or 02322 (not 0)\n"
		"  N    records to send, 1 to 1000000000 (default 1000)\n");
	exit(2);
}

/*
 * Fills a record with bytes that depend on its sequence number and returns
 * their length (64 bytes to almost the whole segment).  The consumer cannot
 * predict them; it checks them against the record's checksum.
 */
static uint32_t fill(unsigned char *data, uint64_t seq)
{
	uint32_t len = (uint32_t)(64 + seq * 997 % (DEMO_MAX_DATA - 64));
	uint64_t x = seq * UINT64_C(0x9e3779b97f4a7c15) | 1;

	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;           /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (unsigned char)x;
	}
	return len;
}

int main(int argc, char **argv)
{
	unsigned long long count = 1000, bytes = 0;
	uint32_t total = 2166136261u;   /* checksum of all record checksums */
	struct demo_header *h;
	const char *keyarg = NULL;
	int id, r, rc = 1;
	key_t key;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			char *end;

			count = strtoull(argv[++i], &end, 10);
			if (*end || count < 1 || count > 1000000000)
				usage();
		} else if (!keyarg && argv[i][0] != '-') {
			keyarg = argv[i];
		} else {
			usage();
		}
	}
	if (!keyarg || demo_parse_key(keyarg, &key) < 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);        /* lines in order with the peer's */

	r = demo_open("producer", key, &id, &h);
	if (r < 0)
		return 1;
	if (atomic_load_explicit(&h->seq, memory_order_acquire) != 0) {
		fprintf(stderr, "producer: another producer is using key 0x%x\n", (unsigned)key);
		goto out;
	}
	printf("producer: segment %d (key 0x%x, %d KiB), sending %llu records\n",
	       id, (unsigned)key, DEMO_SEG_SIZE / 1024, count);

	for (uint64_t seq = 1; seq <= count; seq++) {
		struct demo_record *rec = demo_record(h);
		int64_t deadline;

		/* Plain stores: the consumer does not look at the record until
		 * it sees its number in h->seq. */
		rec->len = fill(rec->data, seq);
		rec->seq = seq;
		rec->sum = demo_record_sum(seq, rec->data, rec->len);
		total = demo_sum(total, &rec->sum, sizeof(rec->sum));
		bytes += rec->len;

		/* Release: whoever reads this number with acquire also sees
		 * every byte of the record written above. */
		atomic_store_explicit(&h->seq, seq, memory_order_release);

		/* Acquire: once the consumer acknowledged, it has finished
		 * reading, so the next record may overwrite this one. */
		deadline = demo_now_ms() + DEMO_TIMEOUT_S * 1000;
		while (atomic_load_explicit(&h->ack, memory_order_acquire) != seq) {
			if (demo_wait_step(deadline) == 0)
				continue;
			if (seq == 1)
				fprintf(stderr, "producer: no consumer showed up within %d s\n",
					DEMO_TIMEOUT_S);
			else
				fprintf(stderr, "producer: the consumer stopped answering "
					"after record %llu\n", (unsigned long long)seq - 1);
			goto out;
		}
	}

	/* The totals first, then the flag that says they are there (release). */
	h->count = count;
	h->total_sum = total;
	atomic_store_explicit(&h->done, 1, memory_order_release);
	printf("producer: sent %llu records, %llu bytes, checksum %08x\n",
	       count, bytes, (unsigned)total);
	rc = 0;
out:
	demo_close("producer", id, h);
	return rc;
}
