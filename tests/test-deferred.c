/* SPDX-License-Identifier: MIT */
/* Deferred destroy: a removed segment lives until its last user is gone. */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "proto.h"

/* Two helpers hold the segment; returns its id. */
static int two_holders(struct tc_child **a, struct tc_child **b)
{
	char ids[32];
	int id;

	id = tc_create(tc_key(1), 16384, 0600);
	snprintf(ids, sizeof(ids), "%d", id);
	*a = tc_spawn("hold-id", ids, "0", "1", NULL);
	*b = tc_spawn("hold-id", ids, "0", "1", NULL);
	assert_int_equal(tc_expect_num(*a, "attached "), id);
	assert_int_equal(tc_expect_num(*b, "attached "), id);
	return id;
}

static void survives_until_both_detach(void **state)
{
	struct tc_child *a, *b;
	struct shmx_ds ds;
	int id;

	(void)state;
	id = two_holders(&a, &b);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 2);
	assert_true(tc_listed(id));

	/* still shared memory between them */
	tc_send(a, "fill 5");
	tc_expect(a, "filled");
	tc_send(b, "check 5");
	tc_expect(b, "ok");

	tc_send(a, "dt");
	tc_expect(a, "detached");
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_true(ds.status & SHMX_DEST);
	tc_send(b, "check 5");
	tc_expect(b, "ok");

	tc_send(b, "dt");
	tc_expect(b, "detached");
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
	assert_false(tc_listed(id));
}

static void survives_until_both_die(void **state)
{
	struct tc_child *a, *b;
	struct shmx_info info;
	struct shmx_ds ds;
	int id;

	(void)state;
	id = two_holders(&a, &b);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_child_kill(a);
	assert_int_equal(tc_wait_nattch(id, 1, TC_1S), 1);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	tc_send(b, "fill 9");
	tc_expect(b, "filled");
	tc_child_kill(b);
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
	assert_false(tc_listed(id));
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 0);
	assert_int_equal(info.total, 0);
}

static void exit_without_detach_counts_as_detach(void **state)
{
	struct tc_child *a, *b;
	int id;

	(void)state;
	id = two_holders(&a, &b);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	/* a clean exit, attachments still mapped */
	tc_send(a, "exit");
	tc_child_wait_ok(a);
	assert_int_equal(tc_wait_nattch(id, 1, TC_1S), 1);
	tc_close_stdin(b);
	tc_child_wait_ok(b);
	assert_int_equal(tc_wait_gone(id, TC_1S), -EIDRM);
}

static void removed_segment_is_not_found_by_key(void **state)
{
	struct tc_child *a, *b, *c;
	char key[32];
	int id;

	(void)state;
	id = two_holders(&a, &b);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("get", key, "0", "0", NULL);
	assert_int_equal(tc_expect_num(c, "err "), -ENOENT);
	tc_child_wait(c, TC_REPLY_MS);
	/* a new one under that key is another segment */
	c = tc_spawn("get", key, "4096", "01600", NULL);
	assert_int_not_equal(tc_expect_num(c, "id "), id);
	tc_child_wait_ok(c);
}

/*
 * Pins this process and the keeper to one CPU, the keeper real-time: whatever
 * this process sends the keeper acts on before this process runs on.  Before
 * the fix, a reconnection closed the old connection before the new one
 * reported what the process holds; the keeper then saw nattch 0 and destroyed
 * a removed segment unless that report happened to come in time.  This makes
 * sure it never does.
 */
static void keeper_goes_first(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	struct shmx_info info;
	cpu_set_t one;
	int cpu = sched_getcpu();

	TC_CHECK_EQ(shmx_info(&info), 0);
	TC_CHECK(cpu >= 0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0 ||
	    sched_setaffinity(info.keeper_pid, sizeof(one), &one) < 0 ||
	    sched_setscheduler(info.keeper_pid, SCHED_FIFO, &sp) < 0)
		fprintf(stderr, "# cannot run the keeper first (%s): the order is not forced\n",
			strerror(errno));
}

/*
 * A change of identity makes the library connect again (requests are checked
 * with the current credentials); the attachments must stay counted across it,
 * or the keeper destroys the removed segment under the mapping.
 */
static int removes_then_changes_group(void *arg)
{
	struct shmx_info info;
	struct shmx_ds ds;
	void *p = NULL;
	int id, r;

	(void)arg;
	keeper_goes_first();
	/* euid stays 0: only the group changes, there and back */
	for (int i = 0; i < 4; i++) {
		id = shmx_get(tc_key(1), 65536, SHMX_CREAT | SHMX_EXCL | 0600);
		TC_CHECK(id >= 0);
		TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
		tc_fill(p, 65536, 31 + (unsigned)i);
		TC_CHECK_EQ(shmx_ctl(id, SHMX_RMID, NULL), 0);
		TC_CHECK_EQ(setegid(i % 2 ? 0 : TC_NOGROUP), 0);
		/* a call on a new connection, with the new identity */
		TC_CHECK_EQ(shmx_info(&info), 0);
		TC_CHECK_EQ(tc_verify(p, 65536, 31 + (unsigned)i), -1);
		TC_CHECK_EQ(shmx_ctl(id, SHMX_STAT, &ds), 0);
		TC_CHECK_EQ(ds.nattch, 1);
		TC_CHECK(ds.status & SHMX_DEST);
		/* still shared memory that the keeper keeps: writes stay */
		tc_fill(p, 65536, 7);
		TC_CHECK_EQ(tc_verify(p, 65536, 7), -1);
		TC_CHECK_EQ(shmx_dt(p), 0);
		r = shmx_ctl(id, SHMX_STAT, &ds);
		TC_CHECK(r == -EIDRM || r == -EINVAL);
	}
	return 0;
}

static void survives_a_change_of_identity(void **state)
{
	(void)state;
	TC_REQUIRE_ROOT();
	/* in a child, so that this process keeps its identity */
	assert_int_equal(tc_run_as((uid_t)-1, 0, removes_then_changes_group, NULL), 0);
}

/* This process's connection to the keeper: the library's, the only one. */
static int library_connection(void)
{
	static const char name[] = "/keeper.sock";
	struct dirent *e;
	int found = -1, n = 0;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while ((e = readdir(d))) {
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa), tlen;
		int fd = atoi(e->d_name), type;
		size_t plen;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		tlen = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_SEQPACKET)
			continue;
		/* the keeper's address is the path it bound (the socket was made
		 * before it became a daemon, so SO_PEERCRED has another pid) */
		memset(&sa, 0, sizeof(sa));
		if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX)
			continue;
		plen = strnlen(sa.sun_path, sizeof(sa.sun_path));
		if (plen < sizeof(name) - 1 || strcmp(sa.sun_path + plen - (sizeof(name) - 1), name) != 0)
			continue;
		found = fd;
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
	return found;
}

/*
 * The library gets a reply to a request it did not make (as after a reply
 * timeout: the late reply comes to the next call).  That call fails, but the
 * connection, which counts this process's attachments, must stay until a new
 * one has taken them over.  Before the fix the library closed it at once:
 * the keeper saw nattch 0 and destroyed the removed segment under the mapping.
 * (The timeout itself is 30 s, too long to wait for here.)
 */
static void survives_a_stray_reply(void **state)
{
	struct tc_child *c;
	struct shmx_req req;
	struct shmx_ds ds;
	char ids[32];
	void *p;
	int id, sock;

	(void)state;
	id = tc_create(tc_key(1), 65536, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, 65536, 53);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);

	/* a GET on the library's connection, behind its back: the reply waits there */
	sock = library_connection();
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(2);
	assert_int_equal(send(sock, &req, sizeof(req), MSG_NOSIGNAL), (ssize_t)sizeof(req));
	/* STAT's SYNC reads the GET's reply */
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EPROTO);

	/* another process: the keeper has handled whatever we did meanwhile */
	snprintf(ids, sizeof(ids), "%d", id);
	c = tc_spawn("stat", ids, NULL);
	assert_int_equal(tc_expect_num(c, "nattch "), 1);
	tc_child_wait_ok(c);
	/* we go on with a new connection */
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(tc_verify(p, 65536, 53), -1);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(shmx_ctl(id, SHMX_STAT, &ds), -EIDRM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(survives_until_both_detach),
		tc_test(survives_until_both_die),
		tc_test(exit_without_detach_counts_as_detach),
		tc_test(removed_segment_is_not_found_by_key),
		tc_test(survives_a_change_of_identity),
		tc_test(survives_a_stray_reply),
	};

	return tc_run_tests("deferred", tests);
}
