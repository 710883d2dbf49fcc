/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures and helpers shared by the tests/test-*.c programs.
 *
 * Every test gets its own namespace directory (tc_setup), so tests of one
 * file and test files run in parallel never meet.  Teardown kills what the
 * test started (helpers, keepers of its directories) and removes the
 * directories.  Every wait has a deadline.
 */
#ifndef SHMX_TESTS_COMMON_H
#define SHMX_TESTS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include <shmx.h>

#include "pattern.h"

/* Sanitized builds start processes several times slower. */
#if defined(__SANITIZE_ADDRESS__)
#define TC_SLOW 3
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_SLOW 3
#endif
#endif
#ifndef TC_SLOW
#define TC_SLOW 1
#endif

/* "within 1 s" of the contract, with room for a sanitized build */
#define TC_1S (1000 * TC_SLOW)
/* how long a helper may take to answer one command */
#define TC_REPLY_MS (5000 * TC_SLOW)

#define TC_NOBODY ((uid_t)65534)
#define TC_NOGROUP ((gid_t)65534)

/* $SHMX_KEEPER and $SHMX_HELPER (set by meson test) */
const char *tc_keeper_path(void);
const char *tc_helper_path(void);

/* Fixtures: a fresh namespace directory in SHMX_NAMESPACE, removed after. */
int tc_setup(void **state);
int tc_teardown(void **state);

#define tc_test(f) cmocka_unit_test_setup_teardown(f, tc_setup, tc_teardown)

/*
 * Runs a group as cmocka_run_group_tests_name() does, in a child whose TAP
 * output is passed on with skips written "ok N # SKIP": CMocka before 1.1.6
 * writes "not ok N # SKIP", which TAP consumers (meson) count as a failure.
 */
int tc_main(const char *group, const struct CMUnitTest *tests, size_t n);
#define tc_run_tests(group, tests) tc_main(group, tests, sizeof(tests) / sizeof((tests)[0]))

/* The test's namespace directory, and a path inside it (static buffer). */
const char *tc_dir(void);
const char *tc_path(const char *name);

/*
 * Another directory, removed (and its keepers killed) at teardown: a
 * mkdtemp under /tmp with this mode and owner.  Not a namespace by itself.
 */
const char *tc_make_dir(mode_t mode, uid_t uid, gid_t gid);

int64_t tc_now_ms(void);
void tc_sleep_ms(int ms);

/* Skips the test unless running as root (setuid, chown, other users). */
#define TC_REQUIRE_ROOT() do {						\
		if (geteuid() != 0) {					\
			print_message("# skip: needs root\n");		\
			skip();						\
		}							\
	} while (0)

/* Whether user nobody may run the keeper binary (the build dir may be private). */
bool tc_nobody_can_run_keeper(void);

/* Skips unless root and nobody can start a keeper of its own. */
#define TC_REQUIRE_NOBODY_KEEPER() do {					\
		TC_REQUIRE_ROOT();					\
		if (!tc_nobody_can_run_keeper()) {			\
			print_message("# skip: nobody cannot run $SHMX_KEEPER\n"); \
			skip();						\
		}							\
	} while (0)

/*
 * Reads /proc/PID/NAME into buf, at most n - 1 bytes and NUL-terminated;
 * returns the bytes read, 0 or less if there were none to read.
 */
ssize_t tc_read_proc(pid_t pid, const char *name, char *buf, size_t n);

/* A process exists and is not a zombie. */
bool tc_pid_alive(pid_t pid);

/* Number of open descriptors of a process, -1 if unknown. */
int tc_count_fds(pid_t pid);

/* keeper_pid of dir/registry's header; 0 if there is none. */
pid_t tc_registry_keeper_pid(const char *dir);

/* Keeper pid by shmx_info() in the current namespace (asserts success). */
pid_t tc_keeper_pid(void);

/* Keeper processes started for dir (found by their command line). */
int tc_find_keepers(const char *dir, pid_t *pids, int max);

/*
 * Starts "$SHMX_KEEPER --namespace DIR --idle-exit 0 ARGS..." (NULL ends
 * ARGS) and waits until it has returned (it daemonizes once ready).
 * Returns its exit status, or -1 if it did not return in time.
 */
int tc_start_keeper(const char *dir, ...) __attribute__((sentinel));

/*
 * Makes the test's directory a shared namespace: mode 0755 and a keeper
 * started by root with --shared.  Skips unless root.  Returns the keeper pid.
 */
pid_t tc_start_shared_keeper(void);

/* SIGKILLs a keeper and asserts it is gone within 2 s. */
void tc_kill_keeper(pid_t pid);

/*
 * Helper programs: "$SHMX_HELPER ARGS..." with stdout read by the test and
 * stdin a socket the test writes commands to (closing it ends the helper).
 */
struct tc_child {
	pid_t pid;                      /* 0 once reaped */
	int in;                         /* its stdin, -1 once closed */
	int out;                        /* its stdout */
	size_t len;                     /* bytes in buf */
	char buf[4096];
};

struct tc_child *tc_spawn(const char *arg, ...) __attribute__((sentinel));
/* Any program; argv[0] is the path. */
struct tc_child *tc_spawn_argv(char *const argv[]);

/* One line of its output (without the newline): 0, -ETIMEDOUT, -EPIPE (EOF). */
int tc_readline(struct tc_child *c, char *line, size_t n, int timeout_ms);

/* Reads a line, asserts it starts with prefix; the rest of it (static buffer). */
const char *tc_expect(struct tc_child *c, const char *prefix);
/* The number after prefix. */
long long tc_expect_num(struct tc_child *c, const char *prefix);

/*
 * A helper that creates segment tc_key(n) of size bytes (mode 0600),
 * attaches it, fills it with seed and then sits idle; *id is the segment.
 */
struct tc_child *tc_holder(int n, size_t size, unsigned seed, int *id);

/* Writes one command line to its stdin (no SIGPIPE if it is gone). */
void tc_send(struct tc_child *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes its stdin: a holding helper exits. */
void tc_close_stdin(struct tc_child *c);

/* Waits for it to exit: its wait status, or -1 after timeout_ms (then killed). */
int tc_child_wait(struct tc_child *c, int timeout_ms);
/* kill -9 and reap. */
void tc_child_kill(struct tc_child *c);
/* Asserts it exits with status 0 within the deadline. */
void tc_child_wait_ok(struct tc_child *c);

/* waitpid with a deadline: the wait status, or -1 (then killed and reaped). */
int tc_waitpid(pid_t pid, int timeout_ms);

/* Kills an unrelated process at teardown (e.g. a helper's child). */
void tc_track_pid(pid_t pid);
/* Kills and reaps every helper and tracked process (teardown does it). */
void tc_kill_children(void);

/*
 * Runs fn(arg) in a forked child, as uid/gid unless uid is (uid_t)-1, and
 * returns the child's exit status (fn's return value), 128 + signal if it
 * was killed, or -1 if it did not end within timeout_ms.  Inside fn,
 * TC_CHECK* report a failure (printed by the parent) and exit with 1.
 */
int tc_fork_call(uid_t uid, gid_t gid, int (*fn)(void *), void *arg, int timeout_ms);
#define tc_run_as(uid, gid, fn, arg) tc_fork_call(uid, gid, fn, arg, TC_REPLY_MS)

/* The same in two steps, for a test that acts while the child runs. */
struct tc_fork {
	pid_t pid;
	int msg;                        /* the child's failure messages */
};
void tc_fork_start(struct tc_fork *f, uid_t uid, gid_t gid, int (*fn)(void *), void *arg);
int tc_fork_finish(struct tc_fork *f, int timeout_ms);

__attribute__((noreturn, format(printf, 3, 4)))
void tc_child_fail(const char *file, int line, const char *fmt, ...);

#define TC_CHECK(c) do {						\
		if (!(c))						\
			tc_child_fail(__FILE__, __LINE__, "%s", #c);	\
	} while (0)
#define TC_CHECK_EQ(a, b) do {						\
		long long a_ = (long long)(a), b_ = (long long)(b);	\
		if (a_ != b_)						\
			tc_child_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", \
				      #a, #b, a_, b_);			\
	} while (0)

/* In a child: exit status meaning "the write faulted" (SIGSEGV/SIGBUS). */
#define TC_FAULTED 99
/* Catches SIGSEGV and SIGBUS and exits with TC_FAULTED (works under ASan). */
void tc_exit_on_fault(void);

/*
 * Raw protocol (src/proto.h), bypassing the library: a SOCK_SEQPACKET
 * connection to dir/keeper.sock (-errno on failure) that has sent HELLO.
 */
struct shmx_req;
int tc_raw_connect(const char *dir);
/* Sends req (with passfd unless -1) and, if the type wants one, waits for the
 * reply: its result, 0 for one-way requests, or -errno of the socket. */
int tc_raw_call(int sock, const struct shmx_req *req, int passfd);

/* Convenience around the API, asserting success. */
int tc_create(key_t key, size_t size, int mode);
/*
 * The same, created by a child that exits at once: a creator keeps the new
 * segment's descriptor (libshmx's descriptor cache), so a segment that
 * nobody holds, as recovery tests need, must come from a process now gone.
 */
int tc_create_unheld(key_t key, size_t size, int mode);
void *tc_attach(int id, int flags);
void tc_stat(int id, struct shmx_ds *ds);
/* Whether shmx_list() shows the id (among the first 64; asserts it works). */
bool tc_listed(int id);

/*
 * Polls STAT until nattch == want; returns the last nattch seen (or a
 * negative error of STAT).
 */
long long tc_wait_nattch(int id, uint64_t want, int timeout_ms);
/* Polls STAT until the id no longer resolves: returns STAT's last result. */
int tc_wait_gone(int id, int timeout_ms);

/* A key unlikely to be used by anything else (the namespace is ours anyway). */
key_t tc_key(int n);

#endif
