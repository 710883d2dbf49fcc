/* SPDX-License-Identifier: MIT */
/*
 * shmx(1), the real binary ($SHMX_TOOL): what rm does, looking at a
 * namespace whose keeper is gone, --namespace, and how bad input is refused
 * (exit status 2, usage on stderr, nothing changed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "tool-util.h"

/* ---- tests ---- */
static void rm_removes_or_marks_for_destruction(void **state)
{
	struct shmx_ds ds;
	struct run *r;
	int a, b, st;
	void *p;

	(void)state;
	a = tc_create(tc_key(1), 4096, 0600);
	b = tc_create(tc_key(2), 4096, 0600);
	p = tc_attach(b, 0);

	r = tool_ok("rm", fmt("%d", a));
	assert_string_equal(r->out, fmt("removed segment %d (key 0x%08x)\n", a, (unsigned)tc_key(1)));
	free(r);
	st = shmx_ctl(a, SHMX_STAT, &ds);
	assert_true(st == -EIDRM || st == -EINVAL);

	r = tool_ok("rm", fmt("%d", b));
	assert_string_equal(r->out, fmt("marked segment %d (key 0x%08x) for destruction: "
					 "1 attachment remains\n", b, (unsigned)tc_key(2)));
	free(r);
	tc_stat(b, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.key, SHMX_PRIVATE);
	assert_int_equal(ds.nattch, 1);
	/* the key is free again, as after IPC_RMID */
	assert_int_equal(shmx_get(tc_key(2), 4096, 0600), -ENOENT);
	assert_int_equal(shmx_dt(p), 0);
	assert_true(tc_wait_gone(b, TC_1S) < 0);

	/* removing it again: the reason, and exit status 1 */
	r = tool("rm", fmt("%d", a));
	assert_int_equal(r->code, 1);
	assert_string_equal(r->out, "");
	assert_non_null(strstr(r->err, fmt("segment %d", a)));
	assert_true(strstr(r->err, strerror(EIDRM)) || strstr(r->err, strerror(EINVAL)));
	free(r);
}

static void rm_by_key_and_bad_items(void **state)
{
	struct shmx_ds ds;
	struct run *r;
	int a, b, c;

	(void)state;
	a = tc_create(tc_key(1), 4096, 0600);
	b = tc_create(tc_key(2), 4096, 0600);
	c = tc_create(tc_key(3), 4096, 0600);
	/* the good ones are done, each bad one is named with its reason */
	r = tool("rm", "-k", fmt("0x%x", (unsigned)tc_key(1)), "999", fmt("%d", b), "-k", "0x777");
	assert_int_equal(r->code, 1);
	assert_string_equal(r->out, fmt("removed segment %d (key 0x%08x)\n"
					"removed segment %d (key 0x%08x)\n",
					a, (unsigned)tc_key(1), b, (unsigned)tc_key(2)));
	assert_non_null(strstr(r->err, fmt("segment 999: %s", strerror(EINVAL))));
	assert_non_null(strstr(r->err, fmt("key 0x00000777: %s", strerror(ENOENT))));
	assert_int_equal(count_lines(r->err), 2);
	free(r);
	assert_true(shmx_ctl(a, SHMX_STAT, &ds) < 0);
	assert_true(shmx_ctl(b, SHMX_STAT, &ds) < 0);
	tc_stat(c, &ds);
	assert_false(ds.status & SHMX_DEST);
	r = tool_ok("rm", "--key", fmt("%d", (int)tc_key(3)));
	assert_string_equal(r->out, fmt("removed segment %d (key 0x%08x)\n", c, (unsigned)tc_key(3)));
	free(r);
	assert_true(shmx_ctl(c, SHMX_STAT, &ds) < 0);
}

static void rm_all_removes_every_segment(void **state)
{
	struct shmx_ds list[8];
	struct run *r;
	int ids[3], n;
	void *p;

	(void)state;
	ids[0] = tc_create(tc_key(1), 4096, 0600);
	ids[1] = tc_create(SHMX_PRIVATE, 4096, 0600);
	ids[2] = tc_create(tc_key(3), 4096, 0600);
	p = tc_attach(ids[2], 0);
	r = tool_ok("rm", "--all");
	assert_int_equal(count_lines(r->out), 3);
	assert_non_null(strstr(r->out, fmt("removed segment %d (key 0x%08x)\n", ids[0],
					   (unsigned)tc_key(1))));
	assert_non_null(strstr(r->out, fmt("removed segment %d (key 0x00000000)\n", ids[1])));
	assert_non_null(strstr(r->out, fmt("marked segment %d (key 0x%08x) for destruction",
					   ids[2], (unsigned)tc_key(3))));
	free(r);
	n = shmx_list(list, 8);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, ids[2]);
	assert_true(list[0].status & SHMX_DEST);
	/* what is marked already is left alone */
	r = tool_ok("rm", "-a");
	assert_string_equal(r->out, "no segments to remove\n");
	free(r);
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(shmx_list(NULL, 0), 0);
}

/* The line util-linux ipcs -m prints for a segment (do_shm, STANDARD). */
static void looks_at_a_registry_whose_keeper_is_gone(void **state)
{
	struct tc_child *c;
	struct run *r;
	char line[1024], *f[32], *flat;
	pid_t keeper;
	int id;

	(void)state;
	c = tc_holder(1, 20000, 7, &id);
	/* the helper's attach is in the registry once a SYNC has drained it */
	assert_int_equal(tc_wait_nattch(id, 1, TC_1S), 1);
	keeper = tc_registry_keeper_pid(tc_dir());
	assert_true(keeper > 0);
	tc_kill_keeper(keeper);

	r = tool_ok("ls");
	ls_fields(r->out, id, line, sizeof(line), f);
	assert_string_equal(f[0], fmt("0x%08x", (unsigned)tc_key(1)));
	assert_string_equal(f[4], "20000");
	assert_string_equal(f[5], "1");
	assert_string_equal(f[7], fmt("%d", (int)c->pid));
	free(r);
	r = tool_ok("info");
	expect_field(r->out, "keeper_pid",
		     fmt("%d (not running: the registry is as it left it)", (int)keeper));
	free(r);
	r = tool_ok("ls", "--json");
	flat = flatten(r->out);
	jexpect(flat, "keeper_running", "false");
	assert_int_equal(jnum(flat, "keeper_pid"), keeper);
	assert_int_equal(jnum(flat, "segments/0/id"), id);
	free(flat);
	free(r);
	r = tool_ok("stat", fmt("%d", id));
	expect_field(r->out, "segsz", "20000");
	free(r);
	/* looking started no keeper */
	assert_false(keeper_running_here());
	assert_int_equal(tc_registry_keeper_pid(tc_dir()), keeper);
	tc_close_stdin(c);
	tc_child_wait_ok(c);
}

static void namespace_option_and_missing_namespaces(void **state)
{
	const char *other = tc_make_dir(0700, geteuid(), getegid());
	char missing[PATH_MAX], line[1024], *f[32];
	struct stat st;
	struct run *r;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 4096, 0600);
	/* --namespace beats SHMX_NAMESPACE, before or after the command */
	r = expect_ok(tool_ns(other, "--namespace", tc_dir(), "ls", NULL), "--namespace DIR ls");
	ls_fields(r->out, id, line, sizeof(line), f);
	free(r);
	r = expect_ok(tool_ns(other, "ls", "--namespace", tc_dir(), NULL), "ls --namespace DIR");
	ls_fields(r->out, id, line, sizeof(line), f);
	free(r);
	r = expect_ok(tool_ns(other, "ls", NULL), "ls in another namespace");
	assert_int_equal(count_lines(r->out), 1);
	free(r);
	/* without SHMX_NAMESPACE: the library's default, not ours */
	r = tool_ns(NULL, "info", "--json", NULL);
	if (r->code == 0) {
		char *flat = flatten(r->out);

		assert_null(strstr(flat, tc_dir()));
		free(flat);
	}
	free(r);

	snprintf(missing, sizeof(missing), "%s/nothing-here", other);
	r = tool("--namespace", missing, "ls");
	assert_int_equal(r->code, 1);
	assert_string_equal(r->out, "");
	assert_non_null(strstr(r->err, missing));
	assert_non_null(strstr(r->err, "no such directory"));
	free(r);
	r = tool_ns(missing, "rm", fmt("%d", id), NULL);
	assert_int_equal(r->code, 1);
	assert_non_null(strstr(r->err, "no such directory"));
	free(r);
	r = tool_ns(missing, "info", NULL);
	assert_int_equal(r->code, 1);
	free(r);
	/* looking made nothing, and rm did not create a namespace */
	assert_int_equal(stat(missing, &st), -1);
	/* a file is no namespace */
	assert_int_equal(close(open(tc_path("afile"), O_CREAT | O_WRONLY, 0600)), 0);
	r = tool("--namespace", tc_path("afile"), "ls");
	assert_int_equal(r->code, 1);
	assert_non_null(strstr(r->err, tc_path("afile")));
	free(r);
	tc_stat(id, &(struct shmx_ds){ 0 });
}

static void bad_usage_exits_2_and_does_nothing(void **state)
{
	static const char *const bad[][5] = {
		{ NULL },
		{ "frobnicate" },
		{ "stat" },
		{ "stat", "abc" },
		{ "stat", "-5" },
		{ "stat", "--", "-5" },
		{ "stat", "99999999999" },
		{ "stat", "1", "2" },
		{ "stat", "1x" },
		{ "stat", "-k" },
		{ "stat", "-k", "0" },
		{ "stat", "-k", "0xzz" },
		{ "stat", "-k", "0x100000000" },
		{ "rm" },
		{ "rm", "abc" },
		{ "rm", "-5" },
		{ "rm", "99999999999" },
		{ "rm", "--all", "1" },
		{ "rm", "--json", "1" },
		{ "ls", "1" },
		{ "ls", "--bogus" },
		{ "ls", "-k", "1" },
		{ "info", "-l" },
		{ "ipcs", "--json" },
		{ "ls", "--namespace" },
		{ "ls", "--namespace", "" },
	};
	struct shmx_ds ds;
	struct run *r;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 4096, 0600);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = tool_ns("", bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
		if (r->code != 2 || !r->err[0] || r->out[0])
			fail_msg("shmx %s %s %s: exit %d (expected 2), stdout '%s', stderr '%s'",
				 bad[i][0] ? bad[i][0] : "", bad[i][1] ? bad[i][1] : "",
				 bad[i][2] ? bad[i][2] : "", r->code, r->out, r->err);
		free(r);
	}
	/* a bad operand anywhere: nothing is removed */
	r = tool("rm", fmt("%d", id), "abc");
	assert_int_equal(r->code, 2);
	assert_non_null(strstr(r->err, "abc"));
	free(r);
	tc_stat(id, &ds);
	assert_false(ds.status & SHMX_DEST);
	/* no command or an unknown one: the usage */
	r = tool_ns("", NULL, NULL);
	assert_int_equal(r->code, 2);
	assert_non_null(strstr(r->err, "Usage: shmx"));
	free(r);
	r = tool("frobnicate");
	assert_non_null(strstr(r->err, "frobnicate"));
	assert_non_null(strstr(r->err, "Usage: shmx"));
	free(r);
	/* an option that is not ASCII is named whole, not a byte of it */
	r = tool("ls", "-\xc3\xa9");
	assert_int_equal(r->code, 2);
	assert_non_null(strstr(r->err, "'-\xc3\xa9'"));
	free(r);

	r = tool_ok("--help");
	assert_non_null(strstr(r->out, "Usage: shmx"));
	free(r);
	r = tool_ok("ls", "--help");
	assert_non_null(strstr(r->out, "Usage: shmx"));
	free(r);
	r = tool_ok("--version");
	assert_non_null(getenv("SHMX_VERSION"));
	assert_string_equal(r->out, fmt("shmx %s\n", getenv("SHMX_VERSION")));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(rm_removes_or_marks_for_destruction),
		tc_test(rm_by_key_and_bad_items),
		tc_test(rm_all_removes_every_segment),
		tc_test(looks_at_a_registry_whose_keeper_is_gone),
		tc_test(namespace_option_and_missing_namespaces),
		tc_test(bad_usage_exits_2_and_does_nothing),
	};

	return tc_run_tests("tool-rm", tests);
}
