/* SPDX-License-Identifier: MIT */
/* Processes of a test: helper programs, forked functions, the TAP runner. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "util/sys.h"

#define MAX_CHILDREN 64
#define MAX_PIDS 64

static struct tc_child children[MAX_CHILDREN];
static bool child_used[MAX_CHILDREN];
static struct {
	pid_t pid;
	uint64_t start;                 /* so a reused pid is never killed */
} tracked[MAX_PIDS];
static int msg_fd = -1;                 /* in a tc_fork_call child: to the parent */

int tc_waitpid(pid_t pid, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (tc_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		tc_sleep_ms(5);
	}
}

/* ---- helper programs ---- */

void tc_track_pid(pid_t pid)
{
	for (int i = 0; i < MAX_PIDS; i++)
		if (!tracked[i].pid) {
			tracked[i].pid = pid;
			tracked[i].start = shmx_proc_starttime(pid);
			return;
		}
}

struct tc_child *tc_spawn_argv(char *const argv[])
{
	struct tc_child *c = NULL;
	int in[2], out[2];

	for (int i = 0; i < MAX_CHILDREN && !c; i++)
		if (!child_used[i]) {
			child_used[i] = true;
			c = &children[i];
		}
	assert_non_null(c);
	memset(c, 0, sizeof(*c));
	/* close-on-exec, so no helper keeps another one's stdin open */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(in[1], 0);
		dup2(out[1], 1);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[1]);
	close(out[1]);
	c->in = in[0];
	c->out = out[0];
	return c;
}

struct tc_child *tc_spawn(const char *arg, ...)
{
	const char *argv[32];
	int argc = 0;
	va_list ap;

	assert_non_null(tc_helper_path());
	argv[argc++] = tc_helper_path();
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return tc_spawn_argv((char *const *)argv);
}

int tc_readline(struct tc_child *c, char *line, size_t n, int timeout_ms)
{
	int64_t end = tc_now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = { .fd = c->out, .events = POLLIN };
		int64_t left;
		ssize_t got;

		if (nl) {
			size_t l = (size_t)(nl - c->buf);

			snprintf(line, n, "%.*s", (int)l, c->buf);
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return 0;
		}
		if (c->len == sizeof(c->buf))
			c->len = 0;             /* a line that long is garbage */
		left = end - tc_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		got = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -EPIPE;
		c->len += (size_t)got;
	}
}

const char *tc_expect(struct tc_child *c, const char *prefix)
{
	static char line[4096];
	int r = tc_readline(c, line, sizeof(line), TC_REPLY_MS);

	if (r == -ETIMEDOUT)
		fail_msg("helper %d: no line \"%s...\" within %d ms", (int)c->pid, prefix,
			 TC_REPLY_MS);
	if (r < 0)
		fail_msg("helper %d: output ended, expected \"%s...\"", (int)c->pid, prefix);
	if (strncmp(line, prefix, strlen(prefix)) != 0)
		fail_msg("helper %d: expected \"%s...\", got \"%s\"", (int)c->pid, prefix, line);
	return line + strlen(prefix);
}

long long tc_expect_num(struct tc_child *c, const char *prefix)
{
	return strtoll(tc_expect(c, prefix), NULL, 0);
}

void tc_send(struct tc_child *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(line) - 1);
	line[n++] = '\n';
	assert_true(c->in >= 0);
	if (send(c->in, line, (size_t)n, MSG_NOSIGNAL) != n)
		fail_msg("helper %d: cannot send \"%.*s\": %s", (int)c->pid, n - 1, line,
			 strerror(errno));
}

void tc_close_stdin(struct tc_child *c)
{
	if (c->in >= 0)
		close(c->in);
	c->in = -1;
}

int tc_child_wait(struct tc_child *c, int timeout_ms)
{
	int status;

	if (!c->pid)
		return -1;
	status = tc_waitpid(c->pid, timeout_ms);
	c->pid = 0;
	return status;
}

void tc_child_kill(struct tc_child *c)
{
	if (!c->pid)
		return;
	kill(c->pid, SIGKILL);
	tc_waitpid(c->pid, 2000);
	c->pid = 0;
}

struct tc_child *tc_holder(int n, size_t size, unsigned seed, int *id)
{
	struct tc_child *c;
	char key[32], sz[32], s[16];

	snprintf(key, sizeof(key), "%d", (int)tc_key(n));
	snprintf(sz, sizeof(sz), "%zu", size);
	snprintf(s, sizeof(s), "%u", seed);
	c = tc_spawn("hold", key, sz, "01600", s, NULL);
	*id = (int)tc_expect_num(c, "attached ");
	return c;
}

void tc_child_wait_ok(struct tc_child *c)
{
	pid_t pid = c->pid;
	int status = tc_child_wait(c, TC_REPLY_MS);

	if (status == -1)
		fail_msg("helper %d did not exit in time", (int)pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("helper %d ended with status 0x%x", (int)pid, status);
}

/* ---- forked functions ---- */

void tc_child_fail(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "%s:%d: ", file, line);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (msg_fd >= 0)
		dprintf(msg_fd, "child %d: %s\n", (int)getpid(), msg);
	else
		fprintf(stderr, "child %d: %s\n", (int)getpid(), msg);
	_exit(1);
}

void tc_fork_start(struct tc_fork *f, uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		close(p[0]);
		msg_fd = p[1];
		if (uid != (uid_t)-1) {
			if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
				tc_child_fail(__FILE__, __LINE__, "cannot become %d:%d: %s",
					      (int)uid, (int)gid, strerror(errno));
		}
		_exit(fn(arg));
	}
	close(p[1]);
	f->msg = p[0];
	tc_track_pid(f->pid);
}

int tc_fork_finish(struct tc_fork *f, int timeout_ms)
{
	char msg[2048];
	int status;
	ssize_t n;

	status = tc_waitpid(f->pid, timeout_ms);
	fcntl(f->msg, F_SETFL, O_NONBLOCK);
	n = read(f->msg, msg, sizeof(msg) - 1);
	close(f->msg);
	if (n > 0) {
		msg[n] = 0;
		print_error("%s", msg);
	}
	if (status == -1) {
		print_error("child %d: no exit within %d ms (killed)\n", (int)f->pid, timeout_ms);
		return -1;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int tc_fork_call(uid_t uid, gid_t gid, int (*fn)(void *), void *arg, int timeout_ms)
{
	struct tc_fork f;

	tc_fork_start(&f, uid, gid, fn, arg);
	return tc_fork_finish(&f, timeout_ms);
}

static void on_fault(int sig)
{
	(void)sig;
	_exit(TC_FAULTED);
}

void tc_exit_on_fault(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static int keeper_executable(void *arg)
{
	(void)arg;
	return access(tc_keeper_path(), X_OK) == 0 ? 0 : 1;
}

bool tc_nobody_can_run_keeper(void)
{
	return tc_fork_call(TC_NOBODY, TC_NOGROUP, keeper_executable, NULL, 2000) == 0;
}

/* Kills and reaps what the test started (teardown). */
void tc_kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		struct tc_child *c = &children[i];

		if (!child_used[i])
			continue;
		tc_child_kill(c);
		tc_close_stdin(c);
		close(c->out);
		child_used[i] = false;
	}
	for (int i = 0; i < MAX_PIDS; i++) {
		if (tracked[i].pid > 0 && tracked[i].start &&
		    shmx_proc_starttime(tracked[i].pid) == tracked[i].start && tc_pid_alive(tracked[i].pid)) {
			kill(tracked[i].pid, SIGKILL);
			waitpid(tracked[i].pid, NULL, WNOHANG);
		}
		tracked[i].pid = 0;
	}
}

/* ---- running a group ---- */

/* Passes one line on, fixing the skip directive. */
static void tap_line(const char *line)
{
	unsigned num;
	int off = -1;

	if (sscanf(line, "not ok %u # SKIP%n", &num, &off) == 1 && off > 0)
		printf("ok %u # SKIP%s", num, line + off);
	else
		fputs(line, stdout);
	fflush(stdout);
}

int tc_main(const char *group, const struct CMUnitTest *tests, size_t n)
{
	char buf[8192];
	size_t len = 0;
	int p[2], status = 0;
	bool done = false;
	pid_t pid;

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) < 0)
		return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	pid = fork();
	if (pid < 0)
		return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	if (pid == 0) {
		dup2(p[1], 1);
		_exit(_cmocka_run_group_tests(group, tests, n, NULL, NULL));
	}
	close(p[1]);
	/* until the runner has exited and the pipe is drained (a straggler
	 * holding the pipe open must not keep us here) */
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		ssize_t got;
		char *nl;

		if (!done && waitpid(pid, &status, WNOHANG) == pid)
			done = true;
		if (poll(&pfd, 1, done ? 0 : 100) <= 0) {
			if (done)
				break;
			continue;
		}
		got = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (got <= 0) {
			if (got < 0 && errno == EINTR)
				continue;
			if (!done)
				waitpid(pid, &status, 0);
			break;
		}
		len += (size_t)got;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			char c = nl[1];

			nl[1] = 0;
			tap_line(buf);
			nl[1] = c;
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1) {
			tap_line(buf);
			len = 0;
		}
	}
	if (len) {
		buf[len] = 0;
		tap_line(buf);
	}
	close(p[0]);
	if (WIFSIGNALED(status)) {
		printf("Bail out! the test program died of signal %d\n", WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}
