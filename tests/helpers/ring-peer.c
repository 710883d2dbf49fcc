/* SPDX-License-Identifier: MIT */
/*
 * ring-peer: a ring consumer in a process of its own, exec'd by the ring
 * tests where the process must be a fresh one (started with a chosen pid
 * through clone3, where fork's handlers do not run).
 *
 *   recv KEY    opens the ring of KEY as a consumer -> "pid PID", then one
 *               blocking recv -> "recv RESULT MS" (MS: how long it waited)
 *
 * Exits 0 after its report, 1 if it could not open the ring ("err -ERRNO").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmx/ring.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct shmx_ring *r = NULL;
	long long t0;
	ssize_t got;
	int e;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 3 || strcmp(argv[1], "recv") != 0) {
		fprintf(stderr, "usage: ring-peer recv KEY\n");
		return 2;
	}
	e = shmx_ring_open((key_t)strtol(argv[2], NULL, 0), SHMX_RING_CONSUMER, &r);
	if (e < 0) {
		printf("err %d\n", e);
		return 1;
	}
	printf("pid %d\n", (int)getpid());
	t0 = now_ms();
	got = shmx_ring_recv(r, NULL, 0, 0);
	printf("recv %zd %lld\n", got, now_ms() - t0);
	shmx_ring_close(r);
	return 0;
}
