/* SPDX-License-Identifier: MIT */
/* One wrapper per syscall or kernel interface the libc may lack. */
#ifndef SHMX_UTIL_SYS_H
#define SHMX_UTIL_SYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* memfd_create(2), retried without MFD_NOEXEC_SEAL on kernels before 6.3. */
int shmx_memfd_create(const char *name, unsigned flags);
int shmx_pidfd_open(pid_t pid);
int shmx_pidfd_getfd(int pidfd, int targetfd);

/* State (field 3 of /proc/<pid>/stat) and start time (field 22) of a
 * process; either pointer may be NULL. */
int shmx_proc_stat(pid_t pid, char *statep, uint64_t *startp);
/* Start time of a process, 0 if unknown. */
uint64_t shmx_proc_starttime(pid_t pid);
/* Whether pid is a running (not zombie) process that started at start: a
 * later process that reuses the pid is not the same one.  start 0: any
 * process with that pid.  Where /proc hides it, whether the pid is in use. */
bool shmx_proc_alive(pid_t pid, uint64_t start);

/* Wall clock seconds. */
int64_t shmx_now(void);
/* Monotonic milliseconds. */
int64_t shmx_mono_ms(void);

/* Bytes of a memfd's pages in memory (tmpfs counts them in st_blocks). */
uint64_t shmx_fd_rss(int fd);

#endif
