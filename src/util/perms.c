/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <unistd.h>

#include "perms.h"
#include "registry.h"

void shmx_cred_self(struct shmx_cred *cred)
{
	int n;

	cred->pid = getpid();
	cred->uid = geteuid();
	cred->gid = getegid();
	n = getgroups((int)(sizeof(cred->groups) / sizeof(cred->groups[0])), cred->groups);
	cred->ngroups = n < 0 ? 0 : n;
}

bool shmx_cred_privileged(const struct shmx_cred *cred)
{
	return cred->uid == 0;
}

static bool in_group(const struct shmx_cred *cred, gid_t gid)
{
	if (cred->gid == gid)
		return true;
	for (int i = 0; i < cred->ngroups; i++)
		if (cred->groups[i] == gid)
			return true;
	return false;
}

int shmx_ipcperms(const struct shmx_cred *cred, const struct shmx_reg_record *rec, int access)
{
	unsigned granted = rec->mode & 0777;

	if (cred->uid == rec->uid || cred->uid == rec->cuid)
		granted >>= 6;
	else if (in_group(cred, rec->gid) || in_group(cred, rec->cgid))
		granted >>= 3;
	if ((unsigned)access & ~granted & 07) {
		if (shmx_cred_privileged(cred))
			return 0;
		return -EACCES;
	}
	return 0;
}

int shmx_may_own(const struct shmx_cred *cred, const struct shmx_reg_record *rec)
{
	if (cred->uid == rec->uid || cred->uid == rec->cuid || shmx_cred_privileged(cred))
		return 0;
	return -EPERM;
}

int shmx_flags_access(int flags)
{
	/* as ipcperms: each of the owner/group/other triplets asks for its bits */
	return ((flags >> 6) | (flags >> 3) | flags) & 07;
}
