/* SPDX-License-Identifier: MIT */
/*
 * shmx-consumer KEY [--out PATH]
 *
 * Receives what shmx-producer sends through the ring (<shmx/ring.h>) found
 * by KEY, checks each message (its sequence number and checksum) and, at the
 * producer's end message, that none is missing; then prints what it got and
 * how fast.  With --out, it writes the messages' data to PATH: the producer's
 * file, when it sent one (`cmp` will agree).
 *
 * Start the two in either order: the consumer waits for the ring to appear.
 * Ctrl-C (or SIGTERM) stops it cleanly; the producer is then told that the
 * consumer went away.  Message format: ring-demo.h.
 *
 * Exit status: 0 everything the producer sent arrived intact (also when the
 * producer was interrupted), 1 an error, a failed check or the producer went
 * away without its end message, 2 usage, 128 + the signal's number when
 * stopped by one (130 for Ctrl-C).
 */
#include <stdbool.h>

#include "ring-demo.h"

static void usage(void)
{
	fprintf(stderr, "usage: shmx-consumer KEY [--out PATH]\n"
		"  KEY   the ring's key: 1234, 0x4d2 or 02322 (not 0)\n"
		"  PATH  write the data received to this file\n");
	exit(2);
}

/*
 * Opens the ring as a consumer, waiting for the producer to create it:
 * -ENOENT means that no segment has the key yet.
 */
static int open_ring(key_t key, struct shmx_ring **rp)
{
	double deadline = demo_now() + DEMO_TIMEOUT_S;
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	bool said = false;
	int rc;

	while ((rc = shmx_ring_open(key, SHMX_RING_CONSUMER, rp)) == -ENOENT) {
		if (!said)
			printf("consumer: waiting for a ring with key 0x%x\n", (unsigned)key);
		said = true;
		if (demo_stop)
			return -EINTR;
		if (demo_now() > deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
	return rc;
}

/*
 * Whether the first thing a ring gives is the trace of a run that died: its
 * producer gone (-EPIPE, or 0: closed with no end message), or a message in
 * the middle of another run's stream.
 */
static bool stale(ssize_t n, const struct demo_msg *m)
{
	if (n == -EPIPE || n == 0)
		return true;
	return n >= (ssize_t)sizeof(*m) && m->kind == DEMO_DATA && m->seq != 1;
}

int main(int argc, char **argv)
{
	uint64_t got = 0, bytes = 0, total = DEMO_SUM_SEED;    /* as the producer's */
	const char *keyarg = NULL, *path = NULL;
	struct demo_msg *m = NULL;
	struct shmx_ring *r;
	FILE *out = NULL;
	size_t cap;
	ssize_t n;
	double t0 = 0;
	int sig = 0, status = 1;
	key_t key;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (!keyarg && argv[i][0] != '-')
			keyarg = argv[i];
		else
			usage();
	}
	if (!keyarg || demo_parse_key(keyarg, &key) < 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);        /* lines in order with the peer's */
	demo_catch_signals();
	if (path && !(out = fopen(path, "w"))) {
		fprintf(stderr, "consumer: %s: %s\n", path, strerror(errno));
		return 1;
	}

	n = open_ring(key, &r);
	if (n < 0) {
		fprintf(stderr, "consumer: %s\n", n == -ETIMEDOUT ? "no producer showed up" :
			n == -EINTR ? "interrupted" : strerror((int)-n));
		if (out)
			fclose(out);
		return n == -EINTR ? 128 + demo_stop : 1;
	}
	/* A buffer for the longest message the ring takes: recv never says
	 * -EMSGSIZE then. */
	cap = shmx_ring_max_msg(r);
	m = malloc(cap);
	if (!m) {
		fprintf(stderr, "consumer: out of memory\n");
		goto out;
	}
	printf("consumer: ring %d (key 0x%x, %zu KiB), receiving\n",
	       shmx_ring_id(r), (unsigned)key, shmx_ring_capacity(r) / 1024);

	for (;;) {
		size_t len;

		/* Waits for a message; 0 once the producer closed and the ring
		 * is empty.  A signal outside the wait is seen here, next time. */
		n = demo_stop ? -EINTR : shmx_ring_recv(r, m, cap, 0);
		if (n <= 0 && !(got == 0 && stale(n, m)))
			break;
		if (got == 0 && stale(n, m)) {
			/* A ring left by a run that died: remove it and wait for
			 * the next producer to make a new one. */
			printf("consumer: ring %d was left by a producer that is gone; waiting "
			       "for a new one\n", shmx_ring_id(r));
			demo_remove("consumer", r);
			shmx_ring_close(r);
			r = NULL;
			n = open_ring(key, &r);
			if (n < 0)
				break;
			continue;
		}
		if (got == 0)
			t0 = demo_now();
		/* Everything in a message came from another process: check it. */
		if ((size_t)n < sizeof(*m) || (m->kind != DEMO_DATA && m->kind != DEMO_END)) {
			fprintf(stderr, "consumer: a message of %zd bytes that is not the "
				"producer's\n", n);
			goto out;
		}
		if (m->kind == DEMO_END)
			break;
		len = (size_t)n - sizeof(*m);
		if (m->seq != got + 1 || demo_msg_sum(m->seq, m->data, len) != m->sum) {
			fprintf(stderr, "consumer: message %llu is %s\n", (unsigned long long)got + 1,
				m->seq != got + 1 ? "out of order" : "corrupt (checksum)");
			goto out;
		}
		if (out && fwrite(m->data, 1, len, out) != len) {
			fprintf(stderr, "consumer: writing %s: %s\n", path, strerror(errno));
			sig = demo_stop;        /* -EINTR: stopped while writing to a pipe */
			goto out;
		}
		got++;
		bytes += len;
		total = demo_sum(total, &m->sum, sizeof(m->sum));
	}

	if (n <= 0) {
		sig = demo_stop;
		fprintf(stderr, "consumer: %s after %llu messages\n",
			n == -ETIMEDOUT ? "no new producer showed up" :
			n == -EINTR ? "interrupted" :
			n == -EPIPE ? "the producer died" :
			n == 0 ? "the producer closed the ring without an end message" :
			strerror((int)-n), (unsigned long long)got);
		goto out;
	}
	/* The end message: does what the producer sent match what we got? */
	if (m->seq != got || m->sum != total) {
		fprintf(stderr, "consumer: the producer sent %llu messages (checksum %016llx), "
			"we got %llu (checksum %016llx)\n", (unsigned long long)m->seq,
			(unsigned long long)m->sum, (unsigned long long)got,
			(unsigned long long)total);
		goto out;
	}
	if (out && fflush(out) != 0) {
		fprintf(stderr, "consumer: writing %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (m->flags & DEMO_INTERRUPTED)
		printf("consumer: the producer was interrupted; all %llu messages it sent arrived\n",
		       (unsigned long long)got);
	printf("consumer: received %llu messages, %llu bytes, checksum %016llx%s%s, "
	       "all in order and intact\n", (unsigned long long)got, (unsigned long long)bytes,
	       (unsigned long long)total, out ? ", written to " : "", out ? path : "");
	demo_print_rate("consumer", got, bytes, got ? demo_now() - t0 : 0);
	status = 0;
out:
	/* Both sides remove the ring when done (ring-demo.h).  Our close is
	 * what the producer notices: its next send gets -EPIPE. */
	demo_remove("consumer", r);
	shmx_ring_close(r);
	free(m);
	if (out && fclose(out) != 0 && status == 0) {
		fprintf(stderr, "consumer: writing %s: %s\n", path, strerror(errno));
		status = 1;
	}
	return sig ? 128 + sig : status;
}
