/* SPDX-License-Identifier: MIT */
/*
 * shmx-table KEY [--rounds N]
 *
 * A shared table that two processes update: the program creates a segment
 * with key KEY, forks, and parent and child each find it by key, attach it
 * and add N hits (default 1000000) to its counters, both at the same time.
 * The parent then checks that every counter holds exactly what the two
 * added: no update lost.  Then it removes the segment.
 *
 * What it shows: a segment found by key (shmx_get), attached (shmx_at) by
 * two processes, counted (nattch), updated with C11 atomics, and removed
 * (SHMX_RMID).  Exit status: 0 the totals are right, 1 an error or wrong
 * totals, 2 usage.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmx.h>

#define SLOTS 16

/*
 * Atomics in shared memory work across processes only if they are
 * lock-free: a lock-based one would take a lock private to each process.
 */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	       "64-bit atomics must be lock-free");

struct table {                          /* the segment; a memfd starts zeroed */
	_Atomic uint32_t stage;         /* 1: the child is attached, 2: go */
	uint32_t pad;
	_Atomic uint64_t hits[SLOTS];
};

/* Which counter process p (0 or 1) hits in round i: each its own order. */
static unsigned slot_of(unsigned p, uint64_t i)
{
	return (unsigned)((i * (p ? 7 : 5) + (i >> 4)) % SLOTS);
}

/* One process's part: find the table by key, attach it, add its hits. */
static int work(const char *who, unsigned p, key_t key, uint64_t rounds)
{
	struct timespec pause = { 0, 1000000 };
	struct table *t;
	void *addr;
	int id, rc;

	/* As an unrelated program would, with the key they agree on.  (The
	 * child could also use an attachment made before fork(): it inherits
	 * it, as with shmat().) */
	id = shmx_get(key, sizeof(*t), 0600);
	if (id < 0 || (rc = shmx_at(id, NULL, 0, &addr)) < 0) {
		fprintf(stderr, "%s: attaching key 0x%x: %s\n", who, (unsigned)key,
			strerror(id < 0 ? -id : -rc));
		return 1;
	}
	t = addr;

	/* The child says it is attached; the parent, once nattch counts them
	 * both, says go: then the two update the table at the same time.
	 * (The default order, seq_cst, for these few: the simplest.) */
	if (p == 1)
		atomic_store(&t->stage, 1);
	for (int ms = 0; atomic_load(&t->stage) < (p == 1 ? 2u : 1u); ms++) {
		if (ms == 10000) {
			fprintf(stderr, "%s: the other process did not come\n", who);
			shmx_dt(addr);
			return 1;
		}
		nanosleep(&pause, NULL);
	}
	if (p == 0) {
		struct shmx_ds ds;

		/* nattch counts the attachments of every process */
		if (shmx_ctl(id, SHMX_STAT, &ds) == 0)
			printf("%s: the child is attached too: nattch %llu\n", who,
			       (unsigned long long)ds.nattch);
		atomic_store(&t->stage, 2);
	}

	/* A plain t->hits[s]++ from two processes would lose updates: load,
	 * add and store are three steps, and the other process can store in
	 * between.  fetch_add is one.  Relaxed order is enough: the counters
	 * are the only data, and nobody reads them before both are done. */
	for (uint64_t i = 0; i < rounds; i++)
		atomic_fetch_add_explicit(&t->hits[slot_of(p, i)], 1, memory_order_relaxed);

	shmx_dt(addr);          /* exit would detach too, as with shmdt() */
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t rounds = 1000000, want[SLOTS] = { 0 }, total = 0;
	const char *keyarg = NULL;
	int id, rc = 1, status;
	struct table *t;
	void *addr;
	pid_t child;
	key_t key;
	char *end;
	long k;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = strtoull(argv[++i], &end, 10);
			if (*end || rounds < 1 || rounds > 1000000000)
				goto usage;
		} else if (!keyarg && argv[i][0] != '-') {
			keyarg = argv[i];
		} else {
			goto usage;
		}
	}
	if (!keyarg)
		goto usage;
	k = strtol(keyarg, &end, 0);      /* 1234, 0x4d2 or 02322, like ipcs */
	if (*end || k == 0 || k < INT32_MIN || k > (long)UINT32_MAX)
		goto usage;
	key = (key_t)(int32_t)(uint32_t)k;
	setvbuf(stdout, NULL, _IOLBF, 0);        /* lines in order with the child's */

	/* A fresh segment: SHMX_EXCL fails if the key is taken. */
	id = shmx_get(key, sizeof(*t), SHMX_CREAT | SHMX_EXCL | 0600);
	if (id < 0) {
		fprintf(stderr, "table: creating key 0x%x: %s\n", (unsigned)key, strerror(-id));
		return 1;
	}
	printf("table: segment %d (key 0x%x), %d counters, 2 processes x %llu hits\n",
	       id, (unsigned)key, SLOTS, (unsigned long long)rounds);

	child = fork();
	if (child == 0)
		_exit(work("child", 1, key, rounds));
	if (child < 0) {
		perror("table: fork");
		goto out;
	}
	rc = work("parent", 0, key, rounds);
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		rc = 1;
	if (rc)
		goto out;

	/* What the two added, counted again here without sharing anything. */
	for (unsigned p = 0; p < 2; p++)
		for (uint64_t i = 0; i < rounds; i++)
			want[slot_of(p, i)]++;
	if ((rc = shmx_at(id, NULL, 0, &addr)) < 0) {
		fprintf(stderr, "table: attaching to check: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	t = addr;
	for (unsigned s = 0; s < SLOTS; s++) {
		uint64_t got = atomic_load(&t->hits[s]);

		total += got;
		if (got != want[s]) {
			fprintf(stderr, "table: counter %u holds %llu, expected %llu\n", s,
				(unsigned long long)got, (unsigned long long)want[s]);
			rc = 1;
		}
	}
	shmx_dt(addr);
	if (rc == 0)
		printf("table: %llu hits in all, every counter as expected\n",
		       (unsigned long long)total);
out:
	/* shmctl(IPC_RMID): gone now that nobody is attached. */
	shmx_ctl(id, SHMX_RMID, NULL);
	return rc;
usage:
	fprintf(stderr, "usage: shmx-table KEY [--rounds N]\n"
		"  KEY  the segment's key: 1234, 0x4d2 or 02322 (not 0)\n"
		"  N    hits each process adds, 1 to 1000000000 (default 1000000)\n");
	return 2;
}
