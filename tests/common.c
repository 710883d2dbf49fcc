/* SPDX-License-Identifier: MIT */
/* Fixtures: namespace directories, keepers, and the API with assertions. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "registry.h"

#define MAX_DIRS 8

static char main_dir[PATH_MAX];
static char extra_dirs[MAX_DIRS][PATH_MAX];

int64_t tc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tc_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *tc_dir(void)
{
	return main_dir;
}

const char *tc_path(const char *name)
{
	static char buf[4][PATH_MAX];
	static int next;
	char *p = buf[next++ % 4];
	int n = snprintf(p, PATH_MAX, "%s/%s", main_dir, name);

	assert_true(n > 0 && n < PATH_MAX);
	return p;
}

key_t tc_key(int n)
{
	return (key_t)(0x5e0000 + n);
}

const char *tc_keeper_path(void)
{
	return getenv("SHMX_KEEPER");
}

const char *tc_helper_path(void)
{
	return getenv("SHMX_HELPER");
}

/* ---- processes ---- */

ssize_t tc_read_proc(pid_t pid, const char *name, char *buf, size_t n)
{
	char path[64];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, n - 1);
	close(fd);
	if (len > 0)
		buf[len] = 0;
	return len;
}

bool tc_pid_alive(pid_t pid)
{
	char buf[512], *p;

	if (pid <= 0)
		return false;
	if (tc_read_proc(pid, "stat", buf, sizeof(buf)) <= 0)
		return false;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return false;
	/* a zombie is gone for our purposes: init reaps it when it gets to it */
	return p[2] != 'Z' && p[2] != 'X' && p[2] != 'x';
}

int tc_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

pid_t tc_registry_keeper_pid(const char *dir)
{
	struct shmx_reg_header h;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/registry", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != SHMX_REG_MAGIC)
		h.keeper_pid = 0;
	close(fd);
	return h.keeper_pid > 0 ? h.keeper_pid : 0;
}

pid_t tc_keeper_pid(void)
{
	struct shmx_info info;
	int r = shmx_info(&info);

	if (r < 0)
		fail_msg("shmx_info: %s", strerror(-r));
	assert_true(info.keeper_pid > 0);
	return info.keeper_pid;
}

/* Whether a command line (NUL-separated) names dir as its namespace. */
static bool cmdline_names(const char *cmd, size_t len, const char *dir)
{
	const char *prev = NULL;

	for (const char *a = cmd; a < cmd + len; a += strlen(a) + 1) {
		if (prev && strcmp(prev, "--namespace") == 0 && strcmp(a, dir) == 0)
			return true;
		if (strncmp(a, "--namespace=", 12) == 0 && strcmp(a + 12, dir) == 0)
			return true;
		prev = a;
	}
	return false;
}

int tc_find_keepers(const char *dir, pid_t *pids, int max)
{
	struct dirent *e;
	DIR *d = opendir("/proc");
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		char cmd[8192];
		pid_t pid = (pid_t)atoi(e->d_name);
		ssize_t len;

		if (pid <= 0 || pid == getpid())
			continue;
		len = tc_read_proc(pid, "cmdline", cmd, sizeof(cmd));
		if (len <= 0)
			continue;
		if (cmdline_names(cmd, (size_t)len, dir) && tc_pid_alive(pid))
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}

static bool wait_gone(pid_t pid, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;

	while (tc_pid_alive(pid)) {
		if (tc_now_ms() > end)
			return false;
		tc_sleep_ms(10);
	}
	return true;
}

void tc_kill_keeper(pid_t pid)
{
	assert_true(pid > 0);
	assert_int_not_equal(pid, getpid());
	kill(pid, SIGKILL);
	/* it may be our child if we started it by hand and it did not daemonize */
	waitpid(pid, NULL, WNOHANG);
	if (!wait_gone(pid, 2000))
		fail_msg("keeper %d still alive 2 s after SIGKILL", (int)pid);
}

int tc_start_keeper(const char *dir, ...)
{
	const char *argv[64];
	int argc = 0, status;
	va_list ap;
	pid_t pid;

	assert_non_null(tc_keeper_path());
	argv[argc++] = tc_keeper_path();
	argv[argc++] = "--namespace";
	argv[argc++] = dir;
	argv[argc++] = "--idle-exit";
	argv[argc++] = "0";
	va_start(ap, dir);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 63;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *log = getenv("SHMX_TEST_KEEPER_LOG");
		int null = open("/dev/null", O_RDWR);
		int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;

		/* never our stdout/stderr: a daemon holding them would stall meson */
		dup2(null, 0);
		dup2(null, 1);
		dup2(err >= 0 ? err : null, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	status = tc_waitpid(pid, 5000 * TC_SLOW);
	if (status == -1)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

pid_t tc_start_shared_keeper(void)
{
	pid_t pid;

	TC_REQUIRE_ROOT();
	assert_int_equal(chmod(main_dir, 0755), 0);
	assert_int_equal(tc_start_keeper(main_dir, "--shared", NULL), 0);
	pid = tc_registry_keeper_pid(main_dir);
	assert_true(pid > 0);
	assert_true(tc_pid_alive(pid));
	return pid;
}

/* ---- the API, asserted ---- */

int tc_create(key_t key, size_t size, int mode)
{
	int id = shmx_get(key, size, SHMX_CREAT | SHMX_EXCL | mode);

	if (id < 0)
		fail_msg("shmx_get(%d, %zu, CREAT|EXCL|0%o): %s", (int)key, size, mode,
			 strerror(-id));
	return id;
}

struct create_args {
	key_t key;
	size_t size;
	int mode;
};

static int create_in_child(void *arg)
{
	const struct create_args *a = arg;

	TC_CHECK(shmx_get(a->key, a->size, SHMX_CREAT | SHMX_EXCL | a->mode) >= 0);
	return 0;
}

int tc_create_unheld(key_t key, size_t size, int mode)
{
	struct create_args a = { key, size, mode };
	int id;

	if (tc_fork_call((uid_t)-1, (gid_t)-1, create_in_child, &a, TC_REPLY_MS) != 0)
		fail_msg("creating key %d in a child failed", (int)key);
	id = shmx_get(key, 0, 0);
	if (id < 0)
		fail_msg("shmx_get(%d) after the child created it: %s", (int)key, strerror(-id));
	return id;
}

void *tc_attach(int id, int flags)
{
	void *p = NULL;
	int r = shmx_at(id, NULL, flags, &p);

	if (r < 0)
		fail_msg("shmx_at(%d, NULL, 0%o): %s", id, flags, strerror(-r));
	assert_non_null(p);
	return p;
}

void tc_stat(int id, struct shmx_ds *ds)
{
	int r = shmx_ctl(id, SHMX_STAT, ds);

	if (r < 0)
		fail_msg("shmx_ctl(%d, STAT): %s", id, strerror(-r));
}

bool tc_listed(int id)
{
	struct shmx_ds ds[64];
	int n = shmx_list(ds, 64);

	assert_true(n >= 0 && n <= 64);
	for (int i = 0; i < n; i++)
		if (ds[i].id == id)
			return true;
	return false;
}

long long tc_wait_nattch(int id, uint64_t want, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;
	struct shmx_ds ds;

	for (;;) {
		int r = shmx_ctl(id, SHMX_STAT, &ds);

		if (r < 0)
			return r;
		if (ds.nattch == want || tc_now_ms() > end)
			return (long long)ds.nattch;
		tc_sleep_ms(10);
	}
}

int tc_wait_gone(int id, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;
	struct shmx_ds ds;

	for (;;) {
		int r = shmx_ctl(id, SHMX_STAT, &ds);

		if (r < 0 || tc_now_ms() > end)
			return r;
		tc_sleep_ms(10);
	}
}

/* ---- fixtures ---- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void kill_keepers(const char *dir)
{
	pid_t pids[16];
	int n = tc_find_keepers(dir, pids, 16);
	pid_t reg = tc_registry_keeper_pid(dir);

	/* the registry's pid only if it is a keeper of this very directory */
	for (int i = 0; i < n; i++)
		if (pids[i] == reg)
			reg = 0;
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++) {
		waitpid(pids[i], NULL, WNOHANG);
		if (!wait_gone(pids[i], 2000))
			fprintf(stderr, "teardown: keeper %d of %s survives SIGKILL\n",
				(int)pids[i], dir);
	}
	if (reg && tc_pid_alive(reg))
		fprintf(stderr, "teardown: registry of %s names live pid %d, not a keeper of it\n",
			dir, (int)reg);
}

static void remove_dir(char *dir)
{
	if (!dir[0])
		return;
	kill_keepers(dir);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0;
}

const char *tc_make_dir(mode_t mode, uid_t uid, gid_t gid)
{
	for (int i = 0; i < MAX_DIRS; i++) {
		char *d = extra_dirs[i];

		if (d[0])
			continue;
		snprintf(d, PATH_MAX, "/tmp/shmx-test-XXXXXX");
		assert_non_null(mkdtemp(d));
		assert_int_equal(chmod(d, mode), 0);
		if (uid != geteuid() || gid != getegid())
			assert_int_equal(chown(d, uid, gid), 0);
		return d;
	}
	fail_msg("too many directories");
	return NULL;
}

int tc_setup(void **state)
{
	(void)state;
	if (!tc_keeper_path() || !tc_helper_path()) {
		print_error("SHMX_KEEPER and SHMX_HELPER must be set (run through meson test)\n");
		return -1;
	}
	snprintf(main_dir, sizeof(main_dir), "/tmp/shmx-test-XXXXXX");
	if (!mkdtemp(main_dir)) {
		print_error("mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	setenv("SHMX_NAMESPACE", main_dir, 1);
	return 0;
}

int tc_teardown(void **state)
{
	(void)state;
	tc_kill_children();
	remove_dir(main_dir);
	for (int i = 0; i < MAX_DIRS; i++)
		remove_dir(extra_dirs[i]);
	return 0;
}
