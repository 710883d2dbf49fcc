/* SPDX-License-Identifier: MIT */
/* ipcperms() of ipc/util.c: the one place where segment access is decided. */
#ifndef SHMX_UTIL_PERMS_H
#define SHMX_UTIL_PERMS_H

#include <stdbool.h>
#include <sys/types.h>

struct shmx_reg_record;

struct shmx_cred {
	pid_t pid;
	uid_t uid;                      /* effective */
	gid_t gid;                      /* effective */
	int ngroups;                    /* supplementary groups */
	gid_t groups[64];
};

/* The calling process's effective credentials. */
void shmx_cred_self(struct shmx_cred *cred);

/* Privileged: may do anything to any segment (as CAP_IPC_OWNER / CAP_SYS_ADMIN). */
bool shmx_cred_privileged(const struct shmx_cred *cred);

/* access: a mask of 4 (read), 2 (write), 1 (exec).  0 or -EACCES. */
int shmx_ipcperms(const struct shmx_cred *cred, const struct shmx_reg_record *rec, int access);

/* Owner, creator or privileged: may SHMX_SET and SHMX_RMID.  0 or -EPERM. */
int shmx_may_own(const struct shmx_cred *cred, const struct shmx_reg_record *rec);

/* The access mask that shmget()'s flags ask for (the mode bits of flags). */
int shmx_flags_access(int flags);

#endif
