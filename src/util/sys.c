/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

int shmx_memfd_create(const char *name, unsigned flags)
{
	int fd = (int)syscall(SYS_memfd_create, name, flags);

	if (fd < 0 && errno == EINVAL && (flags & MFD_NOEXEC_SEAL))
		fd = (int)syscall(SYS_memfd_create, name, flags & ~MFD_NOEXEC_SEAL);
	return fd < 0 ? -errno : fd;
}

int shmx_pidfd_open(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

int shmx_pidfd_getfd(int pidfd, int targetfd)
{
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, 0);

	return fd < 0 ? -errno : fd;
}

int shmx_proc_stat(pid_t pid, char *statep, uint64_t *startp)
{
	char path[64], buf[1024], state;
	unsigned long long start;
	ssize_t n;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	/* after ") " come fields 3 (state) .. 22 (starttime) */
	if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &state, &start) != 2)
		return -EIO;
	if (statep)
		*statep = state;
	if (startp)
		*startp = start;
	return 0;
}

uint64_t shmx_proc_starttime(pid_t pid)
{
	uint64_t start;

	return shmx_proc_stat(pid, NULL, &start) < 0 ? 0 : start;
}

bool shmx_proc_alive(pid_t pid, uint64_t start)
{
	uint64_t now_start;
	char state;

	if (pid <= 0)
		return false;
	if (shmx_proc_stat(pid, &state, &now_start) < 0) {
		/* /proc may hide other users' processes (hidepid): then all we
		 * can tell is whether the pid is in use */
		return kill(pid, 0) == 0 || errno == EPERM;
	}
	/* a zombie has ended: only its parent has yet to collect it */
	return state != 'Z' && state != 'X' && (start == 0 || now_start == start);
}

int64_t shmx_now(void)
{
	struct timespec ts;

	/* the clock time(2) reads, as the kernel stamps shm_atime & co: a
	 * caller's time() taken after a call never reads before our stamp */
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ts.tv_sec;
}

int64_t shmx_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t shmx_fd_rss(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}
