/* SPDX-License-Identifier: MIT */
/*
 * What a living process holds of libshmx's segments, as /proc shows it: the
 * descriptor numbers of its segment memfds and how many mappings of each it
 * has.  A recovering keeper trusts this over the registry's holder table,
 * which only says what the dead keeper had heard of (attaches still in a
 * report ring, a descriptor whose number was never named, a number reused
 * since).  Each process is read once, so recovery stays linear.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "keeper.h"
#include "procview.h"
#include "util/sys.h"

/* How the keeper names its memfds (seg.c): "shmx:<key>". */
#define MEMFD_PREFIX "/memfd:shmx:"

/* Whether a /proc/<pid>/fd/<n> is a segment memfd.  readlink opens
 * nothing: never a FIFO, a tty or a file on a hung mount. */
static bool segment_link(const char *path)
{
	char link[sizeof(MEMFD_PREFIX) + 64];
	ssize_t n = readlink(path, link, sizeof(link) - 1);

	return n >= (ssize_t)strlen(MEMFD_PREFIX) &&
	       strncmp(link, MEMFD_PREFIX, strlen(MEMFD_PREFIX)) == 0;
}

static struct proc_seg *find_or_add(struct proc_view *v, uint64_t dev, uint64_t ino)
{
	struct proc_seg *s;

	for (size_t i = 0; i < v->n; i++)
		if (v->segs[i].dev == dev && v->segs[i].ino == ino)
			return &v->segs[i];
	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 16;

		s = realloc(v->segs, cap * sizeof(*s));
		if (!s)
			return NULL;
		v->segs = s;
		v->cap = cap;
	}
	s = &v->segs[v->n++];
	*s = (struct proc_seg){ .dev = dev, .ino = ino, .fd = -1 };
	return s;
}

static void read_fds(struct proc_view *v, pid_t pid)
{
	char dir[64], path[64 + 256];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct proc_seg *s;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		/* only a segment memfd is ever stat'ed */
		if (!segment_link(path))
			continue;
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		s = find_or_add(v, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
		if (s && s->fd < 0)
			s->fd = atoi(de->d_name);
	}
	closedir(d);
}

static void read_maps(struct proc_view *v, pid_t pid)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long ino;
		struct proc_seg *s;
		int name = 0;

		if (sscanf(line, "%*x-%*x %*s %*x %x:%x %llu %n", &maj, &min, &ino, &name) != 3 ||
		    !name || strncmp(line + name, MEMFD_PREFIX, strlen(MEMFD_PREFIX)) != 0)
			continue;
		s = find_or_add(v, (uint64_t)makedev(maj, min), ino);
		if (s)
			s->maps++;
	}
	fclose(f);
}

void proc_view_read(struct proc_view *v, pid_t pid)
{
	memset(v, 0, sizeof(*v));
	read_fds(v, pid);
	read_maps(v, pid);
}

const struct proc_seg *proc_view_find(const struct proc_view *v, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->segs[i].dev == dev && v->segs[i].ino == ino)
			return &v->segs[i];
	return NULL;
}

/*
 * A copy of pid's descriptor fd, a segment memfd when we looked:
 * pidfd_getfd() where we may (it opens nothing), else an open of
 * /proc/<pid>/fd/<fd> if its link still says so - a keeper running as root
 * must not open a FIFO or a FUSE file some client put at that number.  The
 * caller checks the inode (seg_adopt_fd).  pidfd: the process's, or -1.
 * < 0 if neither works.
 */
int proc_take_fd(pid_t pid, int pidfd, int fd)
{
	char path[64];
	int own = -1, r = -1;

	if (pidfd < 0)
		pidfd = own = shmx_pidfd_open(pid);
	if (pidfd >= 0)
		r = shmx_pidfd_getfd(pidfd, fd);
	if (own >= 0)
		close(own);
	if (r >= 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	if (!segment_link(path))
		return -1;
	return open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

void proc_view_free(struct proc_view *v)
{
	free(v->segs);
	memset(v, 0, sizeof(*v));
}
