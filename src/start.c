/* SPDX-License-Identifier: MIT */
/*
 * Reaching the keeper: connecting to its socket, and starting it on demand
 * under start.lock so that racing processes start one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "util/log.h"
#include "util/sys.h"

#define KEEPER_START_MS 10000           /* waiting for a keeper to start */

extern char **environ;

#define C shmx_client

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int shmx_connect_sock(int dirfd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	/* through the checked directory's descriptor: no path can be swapped in */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/keeper.sock", dirfd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}
/* Runs the keeper; it returns once it serves, so waiting for it is enough. */
static int spawn_keeper(void)
{
	const char *keeper = getenv("SHMX_KEEPER");
	char nspath[2 * PATH_MAX];
	char *argv[] = { "shmxd", "--namespace", nspath, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int64_t deadline;
	int status, r;
	pid_t pid;

	if (!keeper || !*keeper)
		keeper = SHMX_KEEPER_PATH;
	/* the keeper does not run in our working directory */
	if (C.ns.path[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -ECONNREFUSED;
		snprintf(nspath, sizeof(nspath), "%s/%s", cwd, C.ns.path);
	} else {
		snprintf(nspath, sizeof(nspath), "%s", C.ns.path);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (shmx_log_threshold() < SHMX_LOG_NONE) {
		char logpath[PATH_MAX + 16];

		snprintf(logpath, sizeof(logpath), "%s/keeper.log", C.ns.path);
		posix_spawn_file_actions_addopen(&fa, 2, logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	} else {
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
#ifdef __GLIBC_PREREQ
#if __GLIBC_PREREQ(2, 34)
	/* the program's own descriptors are none of the keeper's business */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
#endif
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	{
		sigset_t none, all;

		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_setsigmask(&attr, &none);
		posix_spawnattr_setsigdefault(&attr, &all);
	}
	r = posix_spawn(&pid, keeper, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r) {
		log_error("cannot start keeper %s: %s", keeper, strerror(r));
		return -ECONNREFUSED;
	}
	log_info("started keeper %s for %s", keeper, C.ns.path);
	deadline = shmx_mono_ms() + KEEPER_START_MS;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0) {
			/* SIGCHLD ignored by the program: the child is reaped for us */
			return 0;
		}
		if (shmx_mono_ms() > deadline) {
			log_error("keeper %s did not get ready in time", keeper);
			return -ECONNREFUSED;
		}
		sleep_ms(2);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("keeper %s failed (status %d); see its log", keeper, status);
		return -ECONNREFUSED;
	}
	return 0;
}

/* Connects, starting a keeper under start.lock if none answers. */
int shmx_keeper_connect_or_start(void)
{
	int64_t deadline;
	int sock, lock, r;

	sock = shmx_connect_sock(C.ns.dirfd);
	if (sock >= 0)
		return sock;
	if (sock != -ENOENT && sock != -ECONNREFUSED) {
		log_error("cannot connect to the keeper of %s: %s", C.ns.path, strerror(-sock));
		return -ECONNREFUSED;
	}
	if (!C.ns.owned || C.ns.open_to_others) {
		log_error("no keeper serves %s, and it is not ours to start one", C.ns.path);
		return -ECONNREFUSED;
	}
	lock = openat(C.ns.dirfd, "start.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0) {
		log_error("cannot open %s/start.lock: %s", C.ns.path, strerror(errno));
		return -ECONNREFUSED;
	}
	deadline = shmx_mono_ms() + KEEPER_START_MS;
	while (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		if (shmx_mono_ms() > deadline) {
			close(lock);
			log_error("timed out waiting for another process to start the keeper");
			return -ECONNREFUSED;
		}
		sleep_ms(2);
	}
	/* someone may have started it while we waited for the lock */
	sock = shmx_connect_sock(C.ns.dirfd);
	if (sock < 0) {
		r = spawn_keeper();
		sock = r < 0 ? r : shmx_connect_sock(C.ns.dirfd);
		/* a keeper whose waitpid we could not see needs a moment */
		while (sock < 0 && r == 0 && shmx_mono_ms() < deadline) {
			sleep_ms(5);
			sock = shmx_connect_sock(C.ns.dirfd);
		}
		if (sock < 0 && r == 0)
			log_error("cannot connect to the new keeper of %s: %s", C.ns.path, strerror(-sock));
		if (sock < 0)
			sock = -ECONNREFUSED;
	}
	close(lock);
	return sock;
}
