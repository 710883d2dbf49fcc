/* SPDX-License-Identifier: MIT */
/*
 * shmx-helper: a second (third, ...) process for the multi-process tests.
 * It reports on stdout, one line at a time, and takes commands on stdin; when
 * stdin ends, it exits.  Errors are reported as "err -ERRNO".
 *
 *   create KEY SIZE MODE SEED    get(CREAT|MODE), attach, fill, detach -> "id N"
 *   check KEY SEED               get, attach read-only, verify -> "ok" | "bad OFF"
 *   get KEY SIZE FLAGS           -> "id N" | "err E"
 *   hold KEY SIZE FLAGS SEED     get, attach, fill unless SEED < 0 -> "attached ID"
 *   hold-id ID ATFLAGS COUNT     attach COUNT times -> "attached ID"
 *   hold-fd KEY SIZE FLAGS SEED  a descriptor from shmx_fd only -> "holding ID"
 *   hold-fds N SIZE              N new private segments, a descriptor of each from
 *                                shmx_fd, none attached -> "holding N"
 *   wait-get KEY SIZE FLAGS      "ready", wait for a line, get -> "id N" | "err E"
 *   wait-info                    "ready", wait for a line, info -> "keeper PID"
 *   info                         -> "keeper PID segments N"
 *   stat ID                      -> "nattch N status S"
 *   fork-orphan KEY SIZE SEED    see fork_orphan()
 *
 * Commands on stdin while holding: "check SEED", "fill SEED", "dt", "stat",
 * "exit", "at" (one more attachment of the held segment -> "attached N", N
 * attachments now: the descriptor is cached, so nothing waits for the
 * keeper), "dt1" (detach the newest attachment only -> "detached").
 * Between commands it is idle: it does not call the library.
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmx.h>

#include "../pattern.h"

#define MAX_ATT 64

static int held_id = -1;
static size_t held_size;
static void *att[MAX_ATT];
static int natt;

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static long long num(const char *s)
{
	return strtoll(s, NULL, 0);
}

static int fail(int r)
{
	say("err %d", r);
	return 1;
}

static int segsz(int id, size_t *size)
{
	struct shmx_ds ds;
	int r = shmx_ctl(id, SHMX_STAT, &ds);

	if (r >= 0)
		*size = ds.segsz;
	return r;
}

static int attach(int id, int flags, int count)
{
	int r = segsz(id, &held_size);

	if (r < 0)
		return r;
	held_id = id;
	for (int i = 0; i < count && natt < MAX_ATT; i++) {
		void *p = NULL;

		r = shmx_at(id, NULL, flags, &p);
		if (r < 0)
			return r;
		att[natt++] = p;
	}
	return 0;
}

/* shmx_get(), then one attachment: the id, or the first negative error. */
static int get_and_attach(key_t key, size_t size, int getflags, int atflags)
{
	int id = shmx_get(key, size, getflags);
	int r;

	if (id < 0)
		return id;
	r = attach(id, atflags, 1);
	return r < 0 ? r : id;
}

/* Reads one line from stdin; 0 at end of input. */
static int next_command(char *line, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		ssize_t got = read(0, line + len, 1);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = 0;
	return 1;
}

static int command_loop(void)
{
	char line[256];

	while (next_command(line, sizeof(line))) {
		if (strncmp(line, "check ", 6) == 0) {
			long bad = natt ? tc_verify(att[0], held_size, (unsigned)num(line + 6)) : 0;

			if (bad < 0)
				say("ok");
			else
				say("bad %ld", bad);
		} else if (strncmp(line, "fill ", 5) == 0 && natt) {
			tc_fill(att[0], held_size, (unsigned)num(line + 5));
			say("filled");
		} else if (strcmp(line, "at") == 0 && held_id >= 0 && natt < MAX_ATT) {
			void *p = NULL;
			int r = shmx_at(held_id, NULL, 0, &p);

			if (r < 0) {
				say("err %d", r);
			} else {
				att[natt++] = p;
				say("attached %d", natt);
			}
		} else if (strcmp(line, "dt1") == 0 && natt) {
			int r = shmx_dt(att[--natt]);

			if (r < 0)
				say("err %d", r);
			else
				say("detached");
		} else if (strcmp(line, "dt") == 0) {
			int r = 0;

			while (natt && r == 0)
				r = shmx_dt(att[--natt]);
			if (r < 0)
				say("err %d", r);
			else
				say("detached");
		} else if (strcmp(line, "stat") == 0) {
			struct shmx_ds ds;
			int r = shmx_ctl(held_id, SHMX_STAT, &ds);

			if (r < 0)
				say("err %d", r);
			else
				say("nattch %llu status %u", (unsigned long long)ds.nattch, ds.status);
		} else if (strcmp(line, "exit") == 0) {
			break;
		} else {
			say("unknown %s", line);
		}
	}
	return 0;
}

static int cmd_create(char **a)
{
	size_t size = (size_t)num(a[1]);
	int id = shmx_get((key_t)num(a[0]), size, SHMX_CREAT | (int)num(a[2]));
	void *p = NULL;
	int r;

	if (id < 0)
		return fail(id);
	r = shmx_at(id, NULL, 0, &p);
	if (r < 0)
		return fail(r);
	tc_fill(p, size, (unsigned)num(a[3]));
	r = shmx_dt(p);
	if (r < 0)
		return fail(r);
	say("id %d", id);
	return 0;
}

static int cmd_check(char **a)
{
	int id = get_and_attach((key_t)num(a[0]), 0, 0, SHMX_RDONLY);
	long bad;

	if (id < 0)
		return fail(id);
	bad = tc_verify(att[0], held_size, (unsigned)num(a[1]));
	if (bad >= 0) {
		say("bad %ld", bad);
		return 1;
	}
	say("ok");
	return 0;
}

static int cmd_get(char **a)
{
	int id = shmx_get((key_t)num(a[0]), (size_t)num(a[1]), (int)num(a[2]));

	if (id < 0)
		return fail(id);
	say("id %d", id);
	return 0;
}

static int cmd_hold(char **a)
{
	int id = get_and_attach((key_t)num(a[0]), (size_t)num(a[1]), (int)num(a[2]), 0);

	if (id < 0)
		return fail(id);
	if (num(a[3]) >= 0)
		tc_fill(att[0], held_size, (unsigned)num(a[3]));
	say("attached %d", id);
	return command_loop();
}

/* Holds a segment only through a descriptor from shmx_fd (no attachment):
 * the keeper knows it handed one out, but not its number here. */
static int cmd_hold_fd(char **a)
{
	int id = shmx_get((key_t)num(a[0]), (size_t)num(a[1]), (int)num(a[2]));
	void *p;
	int fd;

	if (id < 0)
		return fail(id);
	fd = shmx_fd(id, 0);
	if (fd < 0)
		return fail(fd);
	/* a number far from the library's own, as a program's might be */
	if (dup2(fd, 100) < 0)
		return fail(-errno);
	close(fd);
	p = mmap(NULL, (size_t)num(a[1]), PROT_READ | PROT_WRITE, MAP_SHARED, 100, 0);
	if (p == MAP_FAILED)
		return fail(-errno);
	tc_fill(p, (size_t)num(a[1]), (unsigned)num(a[3]));
	munmap(p, (size_t)num(a[1]));
	say("holding %d", id);
	return command_loop();
}

/*
 * Holds many segments, each only through a descriptor from shmx_fd: a
 * recovering keeper has to find them all among this process's descriptors.
 */
static int cmd_hold_fds(char **a)
{
	long long n = num(a[0]);
	size_t size = (size_t)num(a[1]);
	struct rlimit rl;

	/* two descriptors a segment may be open here: ours and the library's */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (long long i = 0; i < n; i++) {
		int id = shmx_get(SHMX_PRIVATE, size, SHMX_CREAT | 0600);
		int fd;

		if (id < 0)
			return fail(id);
		fd = shmx_fd(id, 0);
		if (fd < 0)
			return fail(fd);
	}
	say("holding %lld", n);
	return command_loop();
}

static int cmd_hold_id(char **a)
{
	int r = attach((int)num(a[0]), (int)num(a[1]), (int)num(a[2]));

	if (r < 0)
		return fail(r);
	say("attached %d", held_id);
	return command_loop();
}

static int cmd_wait_get(char **a)
{
	char line[64];
	int id;

	say("ready");
	next_command(line, sizeof(line));
	id = shmx_get((key_t)num(a[0]), (size_t)num(a[1]), (int)num(a[2]));
	if (id < 0)
		return fail(id);
	say("id %d", id);
	return command_loop();
}

static int cmd_info(int wait)
{
	struct shmx_info info;
	char line[64];
	int r;

	if (wait) {
		say("ready");
		next_command(line, sizeof(line));
	}
	r = shmx_info(&info);
	if (r < 0)
		return fail(r);
	say("keeper %d segments %llu", (int)info.keeper_pid, (unsigned long long)info.segments);
	return 0;
}

static int cmd_stat(char **a)
{
	struct shmx_ds ds;
	int r = shmx_ctl((int)num(a[0]), SHMX_STAT, &ds);

	if (r < 0)
		return fail(r);
	say("nattch %llu status %u", (unsigned long long)ds.nattch, ds.status);
	return 0;
}

/*
 * Creates and attaches a segment, forks, marks it removed and exits at once,
 * printing "child PID".  The child, once its parent is gone, checks that the
 * memory is intact and the segment still there, prints "child ok nattch N
 * status S" (or "child bad ..."), and then holds it until its stdin ends.
 */
static int fork_orphan(char **a)
{
	size_t size = (size_t)num(a[1]);
	unsigned seed = (unsigned)num(a[2]);
	int id = get_and_attach((key_t)num(a[0]), size, SHMX_CREAT | 0600, 0);
	pid_t parent = getpid(), child;
	int r;

	if (id < 0)
		return fail(id);
	tc_fill(att[0], size, seed);
	child = fork();
	if (child < 0)
		return fail(-errno);
	if (child > 0) {
		r = shmx_ctl(id, SHMX_RMID, NULL);
		if (r < 0)
			return fail(r);
		say("child %d", (int)child);
		_exit(0);               /* no detach: the exit ends the attachment */
	} else {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		struct shmx_ds ds;
		long bad;

		for (int i = 0; i < 1000 && getppid() == parent; i++)
			nanosleep(&ts, NULL);
		if (getppid() == parent) {
			say("child bad parent still alive");
			return 1;
		}
		bad = tc_verify(att[0], size, seed);
		if (bad >= 0) {
			say("child bad offset %ld", bad);
			return 1;
		}
		r = shmx_ctl(id, SHMX_STAT, &ds);
		if (r < 0) {
			say("child bad stat %d", r);
			return 1;
		}
		say("child ok nattch %llu status %u", (unsigned long long)ds.nattch, ds.status);
		return command_loop();
	}
}

static const struct {
	const char *name;
	int args;
	int (*fn)(char **a);
} cmds[] = {
	{ "create", 4, cmd_create },
	{ "check", 2, cmd_check },
	{ "get", 3, cmd_get },
	{ "hold", 4, cmd_hold },
	{ "hold-id", 3, cmd_hold_id },
	{ "hold-fd", 4, cmd_hold_fd },
	{ "hold-fds", 2, cmd_hold_fds },
	{ "wait-get", 3, cmd_wait_get },
	{ "stat", 1, cmd_stat },
	{ "fork-orphan", 3, fork_orphan },
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_DFL);
	if (argc >= 2 && strcmp(argv[1], "info") == 0)
		return cmd_info(0);
	if (argc >= 2 && strcmp(argv[1], "wait-info") == 0)
		return cmd_info(1);
	for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			if (argc != cmds[i].args + 2)
				break;
			return cmds[i].fn(argv + 2);
		}
	fprintf(stderr, "usage: see tests/helpers/shmx-helper.c\n");
	return 2;
}
