/* SPDX-License-Identifier: MIT */
/* The README's example: System V shared memory's life cycle with libshmx. */
#include <shmx.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	struct shmx_ds ds;
	void *p;
	int id, r;

	/* shmget(): find the segment with key 0x1234, or create it */
	id = shmx_get(0x1234, 4096, SHMX_CREAT | 0600);
	if (id < 0) {
		fprintf(stderr, "shmx_get: %s\n", strerror(-id));
		return 1;
	}

	/* shmat(): map it; every process that attaches it sees the same bytes */
	r = shmx_at(id, NULL, 0, &p);
	if (r < 0) {
		fprintf(stderr, "shmx_at: %s\n", strerror(-r));
		return 1;
	}
	strcpy(p, "hello, shared memory");

	/* shmctl(IPC_STAT): nattch counts the attachments of every process */
	r = shmx_ctl(id, SHMX_STAT, &ds);
	if (r < 0) {
		fprintf(stderr, "shmx_ctl: %s\n", strerror(-r));
		return 1;
	}
	printf("segment %d, key %#x, %zu bytes, nattch %llu: %s\n", id,
	       (unsigned)ds.key, ds.segsz, (unsigned long long)ds.nattch, (char *)p);

	/* shmdt(), then shmctl(IPC_RMID): the last detach frees the memory */
	shmx_dt(p);
	shmx_ctl(id, SHMX_RMID, NULL);
	return ds.nattch == 1 ? 0 : 1;
}
