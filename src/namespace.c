/* SPDX-License-Identifier: MIT */
/*
 * The namespace directory: libshmx's IPC namespace.  Nothing in it is trusted
 * before the directory itself has been checked: someone else may have
 * planted it to collect our data or hand us theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "util/log.h"

int shmx_ns_resolve(char *buf, size_t cap)
{
	const char *ns = getenv("SHMX_NAMESPACE");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (ns && *ns)
		n = snprintf(buf, cap, "%s", ns);
	else if (xdg && *xdg)
		n = snprintf(buf, cap, "%s/shmx", xdg);
	else
		n = snprintf(buf, cap, "/dev/shm/shmx-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= cap) {
		log_error("namespace path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

static int refuse(const char *path, const char *why)
{
	log_error("namespace %s refused: %s", path, why);
	return -EACCES;
}

int shmx_ns_open(const char *path, struct shmx_ns *ns)
{
	uid_t euid = geteuid();
	struct stat lst, st;
	int fd;

	if (lstat(path, &lst) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int r = -errno;

			log_error("cannot create namespace %s: %s", path, strerror(errno));
			return r;
		}
		if (lstat(path, &lst) < 0)
			return -errno;
	}
	if (S_ISLNK(lst.st_mode))
		return refuse(path, "it is a symbolic link");
	if (!S_ISDIR(lst.st_mode))
		return refuse(path, "it is not a directory");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* check what we opened, not what the name pointed at a moment ago */
	if (fstat(fd, &st) < 0 || st.st_dev != lst.st_dev || st.st_ino != lst.st_ino) {
		close(fd);
		return refuse(path, "it changed while being opened");
	}
	if (st.st_uid != euid && st.st_uid != 0) {
		close(fd);
		return refuse(path, "it is owned by another user");
	}
	if (st.st_mode & 022) {
		close(fd);
		return refuse(path, "it is writable by group or others");
	}
	ns->dirfd = fd;
	ns->owned = st.st_uid == euid;
	ns->open_to_others = (st.st_mode & 077) != 0;
	snprintf(ns->path, sizeof(ns->path), "%s", path);
	return 0;
}

void shmx_ns_close(struct shmx_ns *ns)
{
	if (ns->dirfd >= 0)
		close(ns->dirfd);
	ns->dirfd = -1;
	ns->path[0] = '\0';
}

/* A directory others may enter is only acceptable as a shared namespace. */
int shmx_ns_check_registry(const struct shmx_ns *ns, const struct shmx_reg *reg)
{
	if (ns->open_to_others && !(shmx_reg_hdr(reg)->flags & SHMX_REG_SHARED))
		return refuse(ns->path, "group or others may enter it, and it is not a shared namespace");
	return 0;
}
