/* SPDX-License-Identifier: MIT */
/*
 * libshmx: System V shared memory's model (segments found by key, attached,
 * counted, permission-checked, destroyed when the last user leaves) in user
 * space, on memfd_create(2) and mmap(MAP_SHARED).
 *
 * Every function returns 0 (or a non-negative value) on success and a
 * negative errno value on failure; errno is left unchanged.  All functions are
 * thread-safe.  See shmx(7).
 */
#ifndef SHMX_H
#define SHMX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ipc.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMX_PRIVATE ((key_t)0)

/* shmx_get() flags; the low 9 bits are the permission mode */
#define SHMX_CREAT      01000     /* = IPC_CREAT */
#define SHMX_EXCL       02000     /* = IPC_EXCL */
#define SHMX_HUGETLB    04000     /* = SHM_HUGETLB: back with huge pages */
#define SHMX_NORESERVE 010000     /* = SHM_NORESERVE */

/* shmx_at() flags */
#define SHMX_RDONLY    010000     /* = SHM_RDONLY */
#define SHMX_RND       020000     /* = SHM_RND: round addr down to SHMX_LBA */
#define SHMX_REMAP     040000     /* = SHM_REMAP */
#define SHMX_EXEC     0100000     /* = SHM_EXEC */

/* Attach addresses must be multiples of this (the page size, as SHMLBA). */
#define SHMX_LBA ((size_t)sysconf(_SC_PAGESIZE))

/* shmx_ctl() commands */
#define SHMX_RMID   0             /* = IPC_RMID */
#define SHMX_SET    1             /* = IPC_SET: uid, gid, mode (low 9 bits) */
#define SHMX_STAT   2             /* = IPC_STAT */
#define SHMX_LOCK  11             /* = SHM_LOCK: keep the pages resident */
#define SHMX_UNLOCK 12            /* = SHM_UNLOCK */

/* struct shmx_ds.status bits */
#define SHMX_DEST    01000        /* marked for destruction, as SHM_DEST */
#define SHMX_LOCKED  02000        /* as SHM_LOCKED */

struct shmx_ds {
	key_t    key;
	int      id;
	uid_t    uid, cuid;           /* owner and creator */
	gid_t    gid, cgid;
	mode_t   mode;                /* permission bits (low 9) */
	unsigned status;              /* SHMX_DEST | SHMX_LOCKED | ... */
	size_t   segsz;               /* size in bytes, as asked for */
	uint64_t nattch;              /* current attachments, all processes */
	time_t   atime, dtime, ctime; /* last attach, last detach, last change */
	pid_t    cpid, lpid;          /* creator, last attach/detach */
	uint64_t rss;                 /* bytes of the segment resident in memory */
};

struct shmx_info {                /* limits and usage of the namespace */
	uint64_t max_segments;        /* like shmmni */
	uint64_t max_segsz;           /* like shmmax */
	uint64_t max_total;           /* bytes, like shmall */
	uint64_t segments;            /* in use */
	uint64_t total;               /* bytes of all segments */
	uint64_t rss;                 /* bytes resident */
	pid_t    keeper_pid;          /* the namespace's keeper process */
};

int shmx_get(key_t key, size_t size, int flags);
int shmx_at(int id, const void *addr, int flags, void **addrp);
int shmx_dt(const void *addr);
int shmx_ctl(int id, int cmd, struct shmx_ds *ds);
int shmx_list(struct shmx_ds *buf, size_t n);
int shmx_info(struct shmx_info *info);
int shmx_fd(int id, int flags);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_H */
