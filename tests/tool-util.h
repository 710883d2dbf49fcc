/* SPDX-License-Identifier: MIT */
/*
 * Helpers of tests/test-tool.c: running the shmx binary ($SHMX_TOOL) and
 * reading what it printed - its ls lines, its "name: value" lines, and its
 * JSON, which python3's json module validates and flattens into
 * "path=value" lines, so that the tool's writer is checked by another one.
 */
#ifndef SHMX_TESTS_TOOL_UTIL_H
#define SHMX_TESTS_TOOL_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define OUT_MAX (256 * 1024)

struct run {
	int code;                       /* exit status; fails the test otherwise */
	char out[OUT_MAX];
	char err[OUT_MAX];
};

static inline const char *tool_path(void)
{
	const char *p = getenv("SHMX_TOOL");

	if (!p || !*p)
		fail_msg("SHMX_TOOL is not set (run through meson test)");
	return p;
}

/* Reads both pipes to their end, within the deadline. */
static inline void drain(int out, int err, struct run *r, int64_t end)
{
	size_t lens[2] = { 0, 0 };
	int fds[2] = { out, err };
	char *bufs[2] = { r->out, r->err };

	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pfd[2];
		int64_t left = end - tc_now_ms();

		if (left <= 0)
			fail_msg("shmx did not finish its output in time");
		for (int i = 0; i < 2; i++)
			pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		if (poll(pfd, 2, (int)left) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t got;

			if (fds[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (lens[i] >= OUT_MAX - 1)
				fail_msg("shmx wrote more than %d bytes", OUT_MAX);
			got = read(fds[i], bufs[i] + lens[i], OUT_MAX - 1 - lens[i]);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(fds[i]);
				fds[i] = -1;
				continue;
			}
			lens[i] += (size_t)got;
		}
	}
	r->out[lens[0]] = 0;
	r->err[lens[1]] = 0;
}

extern char **environ;

/*
 * Runs argv[0] (searched in PATH) with argv, stdin from the string in (or
 * empty), with SHMX_NAMESPACE set to ns (NULL: unset; "" keeps the test's).
 * posix_spawn, not fork: a forked child of this process would inherit its
 * attachments until exec, and be counted in nattch, lpid and dtime as the
 * kernel counts a forked SysV attacher.  Code 127: it could not be run.
 */
static inline struct run *run_argv(const char *ns, const char *in, char *const argv[])
{
	struct run *r = calloc(1, sizeof(*r));
	int out[2], err[2], inp[2];
	int64_t end = tc_now_ms() + TC_REPLY_MS;
	posix_spawn_file_actions_t fa;
	char *env[512], nsvar[PATH_MAX + 32];
	size_t ne = 0;
	int status, e;
	pid_t pid;

	assert_non_null(r);
	for (char **v = environ; *v && ne < 510; v++)
		if (strncmp(*v, "SHMX_NAMESPACE=", 15) || (ns && !*ns))
			env[ne++] = *v;
	if (ns && *ns) {
		snprintf(nsvar, sizeof(nsvar), "SHMX_NAMESPACE=%s", ns);
		env[ne++] = nsvar;
	}
	env[ne] = NULL;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	assert_int_equal(pipe2(inp, O_CLOEXEC), 0);
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	close(inp[0]);
	if (e) {
		close(out[0]);
		close(err[0]);
		close(inp[1]);
		r->code = 127;
		snprintf(r->err, sizeof(r->err), "%s: %s", argv[0], strerror(e));
		return r;
	}
	/* python reads all of its input before it writes: no deadlock */
	if (in && write(inp[1], in, strlen(in)) != (ssize_t)strlen(in))
		fail_msg("cannot feed %s", argv[0]);
	close(inp[1]);
	drain(out[0], err[0], r, end);
	status = tc_waitpid(pid, (int)(end - tc_now_ms() > 100 ? end - tc_now_ms() : 100));
	if (status == -1)
		fail_msg("%s did not exit in time", argv[0]);
	if (!WIFEXITED(status))
		fail_msg("%s was killed by signal %d; stderr: %s", argv[0], WTERMSIG(status), r->err);
	r->code = WEXITSTATUS(status);
	return r;
}

/* shmx with these arguments (NULL ends them), in namespace ns as run_argv(). */
static inline struct run *tool_ns(const char *ns, const char *arg, ...) __attribute__((sentinel));
static inline struct run *tool_ns(const char *ns, const char *arg, ...)
{
	const char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = tool_path();
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return run_argv(ns, NULL, (char *const *)argv);
}

#define tool(...) tool_ns("", __VA_ARGS__, NULL)

/* Runs shmx and asserts exit status 0 and nothing on stderr. */
#define tool_ok(...) expect_ok(tool(__VA_ARGS__), #__VA_ARGS__)
static inline struct run *expect_ok(struct run *r, const char *what)
{
	if (r->code != 0 || r->err[0])
		fail_msg("shmx %s: exit %d, stderr: %s", what, r->code, r->err);
	return r;
}

/* ---- JSON, through python3 ---- */

static const char flatten_py[] =
	"import json, sys\n"
	"def pairs(p):\n"
	"    d = {}\n"
	"    for k, v in p:\n"
	"        if k in d: raise SystemExit('duplicate name ' + k)\n"
	"        d[k] = v\n"
	"    return d\n"
	"def const(c): raise SystemExit('not JSON: ' + c)\n"
	"doc = json.loads(sys.stdin.buffer.read().decode('utf-8'),\n"
	"                 object_pairs_hook=pairs, parse_constant=const)\n"
	"def walk(p, v):\n"
	"    if isinstance(v, dict):\n"
	"        for k, x in v.items(): walk(p + '/' + k if p else k, x)\n"
	"    elif isinstance(v, list):\n"
	"        print(p + '#=' + str(len(v)))\n"
	"        for i, x in enumerate(v): walk(p + '/' + str(i), x)\n"
	"    else:\n"
	"        print(p + '=' + json.dumps(v))\n"
	"walk('', doc)\n";

/* "path=value" lines of a JSON document: a/b/0/c=1, a/b#=2 (array length). */
static inline char *flatten(const char *json)
{
	char *argv[] = { "python3", "-c", (char *)flatten_py, NULL };
	struct run *r = run_argv("", json, argv);
	char *flat;

	if (r->code == 127) {
		print_message("# skip: no python3 to check the JSON with\n");
		skip();
	}
	if (r->code != 0)
		fail_msg("not a valid JSON document (%s):\n%s", r->err, json);
	flat = strdup(r->out);
	assert_non_null(flat);
	free(r);
	return flat;
}

/* The value at path (JSON text: numbers bare, strings quoted), or NULL. */
static inline const char *jget(const char *flat, const char *pathfmt, ...) __attribute__((format(printf, 2, 3)));
static inline const char *jget(const char *flat, const char *pathfmt, ...)
{
	static char val[4096];
	char path[256];
	size_t plen;
	va_list ap;

	va_start(ap, pathfmt);
	vsnprintf(path, sizeof(path), pathfmt, ap);
	va_end(ap);
	plen = strlen(path);
	for (const char *l = flat; *l; ) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);

		if (len > plen && !strncmp(l, path, plen) && l[plen] == '=') {
			snprintf(val, sizeof(val), "%.*s", (int)(len - plen - 1), l + plen + 1);
			return val;
		}
		l += len + (nl ? 1 : 0);
	}
	return NULL;
}

/* A number at path; fails when absent or not a number. */
static inline long long jnum(const char *flat, const char *path)
{
	const char *v = jget(flat, "%s", path);
	char *end;
	long long n;

	if (!v)
		fail_msg("JSON has no %s", path);
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || end == v)
		fail_msg("JSON %s is %s, not an integer", path, v);
	return n;
}

static inline void jexpect(const char *flat, const char *path, const char *want)
{
	const char *v = jget(flat, "%s", path);

	if (!v)
		fail_msg("JSON has no %s", path);
	if (strcmp(v, want))
		fail_msg("JSON %s is %s, expected %s", path, v, want);
}

/* ---- text output ---- */

/* Splits line into at most max blank-separated fields (in place). */
static inline int split(char *line, char **f, int max)
{
	int n = 0;

	for (char *t = strtok(line, " \t"); t && n < max; t = strtok(NULL, " \t"))
		f[n++] = t;
	return n;
}

/* Copies the line of text whose field col is want; false if none. */
static inline bool find_row(const char *text, int col, const char *want, char *line, size_t n)
{
	for (const char *l = text; *l; ) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		char copy[1024], *f[32];

		snprintf(copy, sizeof(copy), "%.*s", (int)len, l);
		if (split(copy, f, 32) > col && !strcmp(f[col], want)) {
			snprintf(line, n, "%.*s", (int)len, l);
			return true;
		}
		l += len + (nl ? 1 : 0);
	}
	return false;
}

/* The fields of the ls line of segment id. */
static inline int ls_fields(const char *text, int id, char *line, size_t n, char **f)
{
	char want[32];

	snprintf(want, sizeof(want), "%d", id);
	if (!find_row(text, 1, want, line, n))
		fail_msg("segment %d is not listed:\n%s", id, text);
	return split(line, f, 32);
}

static inline int count_lines(const char *text)
{
	int n = 0;

	for (const char *p = text; *p; p++)
		n += *p == '\n';
	return n;
}

/* The value of a "name: value" line (stat, info), or NULL. */
static inline const char *field(const char *text, const char *name)
{
	static char val[1024];
	size_t len = strlen(name);

	for (const char *l = text; *l; ) {
		const char *nl = strchr(l, '\n');
		size_t ll = nl ? (size_t)(nl - l) : strlen(l);

		if (ll > len && !strncmp(l, name, len) && l[len] == ':') {
			const char *v = l + len + 1;

			while (*v == ' ')
				v++;
			snprintf(val, sizeof(val), "%.*s", (int)(ll - (size_t)(v - l)), v);
			return val;
		}
		l += ll + (nl ? 1 : 0);
	}
	return NULL;
}

static inline void expect_field(const char *text, const char *name, const char *want)
{
	const char *v = field(text, name);

	if (!v)
		fail_msg("no '%s:' line in:\n%s", name, text);
	if (strcmp(v, want))
		fail_msg("%s: '%s', expected '%s'", name, v, want);
}

static inline const char *user_name(uid_t uid)
{
	static char buf[64];
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, sizeof(buf), "%s", pw->pw_name);
	else
		snprintf(buf, sizeof(buf), "%u", (unsigned)uid);
	return buf;
}

static inline const char *iso_time(time_t t)
{
	static char buf[64];
	struct tm tm;

	if (!t)
		return "-";
	assert_non_null(localtime_r(&t, &tm));
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return buf;
}

static inline const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static inline const char *fmt(const char *f, ...)
{
	static char buf[8][256];
	static int next;
	char *b = buf[next++ % 8];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, 256, f, ap);
	va_end(ap);
	return b;
}

static inline void touch_pages(void *p, size_t len)
{
	memset(p, 0x5a, len);
}

static inline bool keeper_running_here(void)
{
	pid_t pids[4];

	return tc_find_keepers(tc_dir(), pids, 4) > 0;
}

#endif
