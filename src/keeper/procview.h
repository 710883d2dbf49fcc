/* SPDX-License-Identifier: MIT */
#ifndef SHMXD_PROCVIEW_H
#define SHMXD_PROCVIEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_seg {
	uint64_t dev, ino;              /* the segment memfd's inode */
	int fd;                         /* a descriptor number of it there, or -1 */
	uint32_t maps;                  /* mappings of it there: its attachments */
};

struct proc_view {
	struct proc_seg *segs;
	size_t n, cap;
};

void proc_view_read(struct proc_view *v, pid_t pid);
const struct proc_seg *proc_view_find(const struct proc_view *v, uint64_t dev, uint64_t ino);
void proc_view_free(struct proc_view *v);
int proc_take_fd(pid_t pid, int pidfd, int fd);

#endif
