/* SPDX-License-Identifier: MIT */
/*
 * shmx(1), the real binary ($SHMX_TOOL) run against the test's namespace:
 * what ls, stat, ipcs and info print, checked against shmx_ctl(SHMX_STAT)
 * and shmx_info().  JSON output is validated and flattened by python3
 * (json module), independently of the tool's own writer.  What rm does and
 * how bad input is refused: test-tool-rm.c.
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
static void empty_namespace_lists_nothing_and_starts_no_keeper(void **state)
{
	struct run *r;
	char *flat;

	(void)state;
	r = tool_ok("ls");
	assert_int_equal(count_lines(r->out), 1);
	assert_true(!strncmp(r->out, "KEY ", 4));
	free(r);
	r = tool_ok("ls", "--json");
	flat = flatten(r->out);
	jexpect(flat, "segments#", "0");
	jexpect(flat, "keeper_running", "false");
	jexpect(flat, "namespace", fmt("\"%s\"", tc_dir()));
	free(flat);
	free(r);
	r = tool_ok("ipcs");
	assert_string_equal(r->out, "\n------ Shared Memory Segments --------\n"
			    "key        shmid      owner      perms      bytes      nattch     status      \n"
			    "\n");
	free(r);
	r = tool_ok("info", "--json");
	flat = flatten(r->out);
	jexpect(flat, "registry", "false");
	jexpect(flat, "segments", "0");
	jexpect(flat, "max_segments", "null");
	free(flat);
	free(r);
	/* looking started nothing and made nothing */
	assert_false(keeper_running_here());
	assert_int_equal(access(tc_path("registry"), F_OK), -1);
	assert_int_equal(access(tc_path("keeper.sock"), F_OK), -1);
}

/* One segment's ls fields against STAT. */
static void check_ls_line(const char *text, int id, bool human)
{
	char line[1024], *f[32];
	struct shmx_ds ds;
	int n = ls_fields(text, id, line, sizeof(line), f);

	tc_stat(id, &ds);
	assert_int_equal(n, 10);
	assert_string_equal(f[0], fmt("0x%08x", (unsigned)ds.key));
	assert_string_equal(f[2], user_name(ds.uid));
	assert_string_equal(f[3], fmt("%03o", (unsigned)ds.mode));
	if (!human)
		assert_string_equal(f[4], fmt("%zu", ds.segsz));
	assert_string_equal(f[5], fmt("%" PRIu64, ds.nattch));
	assert_string_equal(f[6], (ds.status & SHMX_DEST) && (ds.status & SHMX_LOCKED) ? "dest,locked" :
			    ds.status & SHMX_DEST ? "dest" : ds.status & SHMX_LOCKED ? "locked" : "-");
	assert_string_equal(f[7], fmt("%d", (int)ds.cpid));
	assert_string_equal(f[8], fmt("%d", (int)ds.lpid));
	if (!human)
		assert_string_equal(f[9], fmt("%" PRIu64, ds.rss));
}

static void ls_shows_each_segment_as_stat_does(void **state)
{
	int a, b, c, d, locked;
	void *pc1, *pc2, *pd;
	struct run *r;
	char line[1024], *f[32];

	(void)state;
	a = tc_create(tc_key(1), 4096, 0600);
	b = tc_create(SHMX_PRIVATE, 10000, 0640);
	c = tc_create(tc_key(3), 1000000, 0644);
	d = tc_create(tc_key(4), 8192, 0600);
	/* attached twice just now: the tool must count what is still on its
	 * way to the keeper */
	pc1 = tc_attach(c, 0);
	pc2 = tc_attach(c, SHMX_RDONLY);
	touch_pages(pc1, 3 * 4096);
	pd = tc_attach(d, 0);
	assert_int_equal(shmx_ctl(d, SHMX_RMID, NULL), 0);
	locked = shmx_ctl(a, SHMX_LOCK, NULL) == 0;

	r = tool_ok("ls");
	assert_int_equal(count_lines(r->out), 5);
	assert_true(find_row(r->out, 0, "KEY", line, sizeof(line)));
	assert_int_equal(split(line, f, 32), 10);
	assert_string_equal(f[1], "ID");
	assert_string_equal(f[5], "NATTCH");
	assert_string_equal(f[9], "RSS");
	check_ls_line(r->out, a, false);
	check_ls_line(r->out, b, false);
	check_ls_line(r->out, c, false);
	check_ls_line(r->out, d, false);
	/* what STAT said, restated: the values the test made */
	ls_fields(r->out, c, line, sizeof(line), f);
	assert_string_equal(f[0], fmt("0x%08x", (unsigned)tc_key(3)));
	assert_string_equal(f[3], "644");
	assert_string_equal(f[4], "1000000");
	assert_string_equal(f[5], "2");
	assert_string_equal(f[7], fmt("%d", (int)getpid()));
	assert_true(strtoull(f[9], NULL, 10) >= 3 * 4096);
	ls_fields(r->out, d, line, sizeof(line), f);
	assert_string_equal(f[0], "0x00000000");
	assert_string_equal(f[6], "dest");
	ls_fields(r->out, a, line, sizeof(line), f);
	assert_string_equal(f[6], locked ? "locked" : "-");
	assert_string_equal(f[5], "0");
	free(r);

	assert_int_equal(shmx_dt(pc2), 0);
	assert_int_equal(shmx_dt(pd), 0);
	r = tool_ok("ls");
	assert_int_equal(count_lines(r->out), 4);
	assert_false(find_row(r->out, 1, fmt("%d", d), line, sizeof(line)));
	ls_fields(r->out, c, line, sizeof(line), f);
	assert_string_equal(f[5], "1");
	free(r);
	assert_int_equal(shmx_dt(pc1), 0);
}

static void ls_human_sizes_and_long_times(void **state)
{
	static const struct {
		size_t size;
		const char *human;
	} sizes[] = {
		{ 100, "100B" },
		{ 1536, "1.5K" },
		{ 4096, "4K" },
		{ 1000000, "976.6K" },
		{ 3 << 20, "3M" },
	};
	int ids[5];
	struct shmx_ds ds;
	struct run *r;
	char line[1024], *f[32];
	void *p;

	(void)state;
	for (int i = 0; i < 5; i++)
		ids[i] = tc_create(tc_key(10 + i), sizes[i].size, 0600);
	r = tool_ok("ls", "-h");
	for (int i = 0; i < 5; i++) {
		check_ls_line(r->out, ids[i], true);
		ls_fields(r->out, ids[i], line, sizeof(line), f);
		assert_string_equal(f[4], sizes[i].human);
		assert_string_equal(f[9], "0B");       /* nothing touched */
	}
	free(r);

	p = tc_attach(ids[2], 0);
	touch_pages(p, 4096);
	assert_int_equal(shmx_dt(p), 0);
	p = tc_attach(ids[3], 0);
	r = tool_ok("ls", "-l", "--human");
	for (int i = 0; i < 5; i++) {
		int n = ls_fields(r->out, ids[i], line, sizeof(line), f);

		tc_stat(ids[i], &ds);
		assert_int_equal(n, 13);
		assert_string_equal(f[4], sizes[i].human);
		assert_string_equal(f[10], iso_time(ds.atime));
		assert_string_equal(f[11], iso_time(ds.dtime));
		assert_string_equal(f[12], iso_time(ds.ctime));
	}
	ls_fields(r->out, ids[2], line, sizeof(line), f);
	assert_string_equal(f[9], "4K");
	assert_string_not_equal(f[10], "-");            /* attached */
	assert_string_not_equal(f[11], "-");            /* and detached */
	ls_fields(r->out, ids[3], line, sizeof(line), f);
	assert_string_not_equal(f[10], "-");
	assert_string_equal(f[11], "-");
	ls_fields(r->out, ids[0], line, sizeof(line), f);
	assert_string_equal(f[10], "-");
	assert_string_not_equal(f[12], "-");
	free(r);
	assert_int_equal(shmx_dt(p), 0);
}

/* Every field of one JSON segment object at prefix against STAT. */
static void check_json_seg(const char *flat, const char *prefix, int id)
{
	struct shmx_ds ds;
	char p[128];

#define J(name) (snprintf(p, sizeof(p), "%s%s", prefix, name), p)
	tc_stat(id, &ds);
	assert_int_equal(jnum(flat, J("id")), ds.id);
	assert_int_equal(jnum(flat, J("key")), ds.key);
	jexpect(flat, J("key_hex"), fmt("\"0x%08x\"", (unsigned)ds.key));
	assert_int_equal(jnum(flat, J("uid")), ds.uid);
	assert_int_equal(jnum(flat, J("gid")), ds.gid);
	assert_int_equal(jnum(flat, J("cuid")), ds.cuid);
	assert_int_equal(jnum(flat, J("cgid")), ds.cgid);
	jexpect(flat, J("owner"), fmt("\"%s\"", user_name(ds.uid)));
	assert_int_equal(jnum(flat, J("mode")), ds.mode);
	jexpect(flat, J("perms"), fmt("\"%03o\"", (unsigned)ds.mode));
	assert_int_equal(jnum(flat, J("status")), ds.status);
	jexpect(flat, J("dest"), ds.status & SHMX_DEST ? "true" : "false");
	jexpect(flat, J("locked"), ds.status & SHMX_LOCKED ? "true" : "false");
	assert_int_equal(jnum(flat, J("segsz")), ds.segsz);
	assert_int_equal(jnum(flat, J("nattch")), ds.nattch);
	assert_int_equal(jnum(flat, J("atime")), ds.atime);
	assert_int_equal(jnum(flat, J("dtime")), ds.dtime);
	assert_int_equal(jnum(flat, J("ctime")), ds.ctime);
	assert_int_equal(jnum(flat, J("cpid")), ds.cpid);
	assert_int_equal(jnum(flat, J("lpid")), ds.lpid);
	assert_int_equal(jnum(flat, J("rss")), ds.rss);
#undef J
}

static void ls_json_matches_stat(void **state)
{
	int ids[3], seen[3] = { 0 };
	struct run *r;
	char *flat;
	void *p;

	(void)state;
	ids[0] = tc_create(tc_key(1), 4096, 0600);
	ids[1] = tc_create(SHMX_PRIVATE, 20000, 0640);
	ids[2] = tc_create((key_t)0xfedcba98, 8192, 0604);       /* a negative key_t */
	p = tc_attach(ids[1], 0);
	touch_pages(p, 8192);
	assert_int_equal(shmx_ctl(ids[1], SHMX_RMID, NULL), 0);
	r = tool_ok("ls", "--json");
	flat = flatten(r->out);
	jexpect(flat, "namespace", fmt("\"%s\"", tc_dir()));
	jexpect(flat, "keeper_running", "true");
	assert_int_equal(jnum(flat, "keeper_pid"), tc_keeper_pid());
	assert_int_equal(jnum(flat, "segments#"), 3);
	for (int i = 0; i < 3; i++) {
		int id = (int)jnum(flat, fmt("segments/%d/id", i));
		int j;

		for (j = 0; j < 3 && ids[j] != id; j++)
			;
		if (j == 3)
			fail_msg("JSON lists segment %d, which the test did not make", id);
		seen[j]++;
		check_json_seg(flat, fmt("segments/%d/", i), id);
		if (j == 2)
			jexpect(flat, fmt("segments/%d/key_hex", i), "\"0xfedcba98\"");
		if (j == 1) {
			jexpect(flat, fmt("segments/%d/dest", i), "true");
			assert_int_equal(jnum(flat, fmt("segments/%d/nattch", i)), 1);
		}
	}
	assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	free(flat);
	free(r);
	assert_int_equal(shmx_dt(p), 0);
}

static void stat_prints_every_field(void **state)
{
	struct tc_child *c;
	struct shmx_ds ds;
	struct run *r, *rk;
	char *flat;
	int id;
	void *p;

	(void)state;
	/* made by another process, attached last by this one: cpid is not
	 * lpid (and no fork after this attach, which would set dtime) */
	c = tc_holder(5, 12345, 3, &id);
	/* its attach counted before ours: lpid is ours */
	assert_int_equal(tc_wait_nattch(id, 1, TC_1S), 1);
	assert_int_equal(shmx_get(tc_key(5), 0, 0), id);
	p = tc_attach(id, 0);
	touch_pages(p, 4096);
	tc_stat(id, &ds);
	r = tool_ok("stat", fmt("%d", id));
	expect_field(r->out, "id", fmt("%d", id));
	expect_field(r->out, "key", fmt("0x%08x", (unsigned)tc_key(5)));
	expect_field(r->out, "uid", fmt("%u (%s)", (unsigned)ds.uid, user_name(ds.uid)));
	assert_int_equal(strtol(field(r->out, "gid"), NULL, 10), ds.gid);
	assert_int_equal(strtol(field(r->out, "cuid"), NULL, 10), ds.cuid);
	assert_int_equal(strtol(field(r->out, "cgid"), NULL, 10), ds.cgid);
	expect_field(r->out, "mode", "600");
	expect_field(r->out, "status", "-");
	expect_field(r->out, "segsz", "12345");
	expect_field(r->out, "nattch", "2");
	expect_field(r->out, "atime", fmt("%s (%lld)", iso_time(ds.atime), (long long)ds.atime));
	expect_field(r->out, "dtime", "-");
	expect_field(r->out, "ctime", fmt("%s (%lld)", iso_time(ds.ctime), (long long)ds.ctime));
	expect_field(r->out, "cpid", fmt("%d", (int)c->pid));
	expect_field(r->out, "lpid", fmt("%d", (int)getpid()));
	expect_field(r->out, "rss", fmt("%" PRIu64, ds.rss));
	assert_true(ds.rss >= 4096);
	expect_field(r->out, "flags", "-");
	assert_non_null(strstr(field(r->out, "seals"), "shrink,grow"));
	assert_non_null(field(r->out, "ino"));
	expect_field(r->out, "slot", fmt("%u", (unsigned)id & 0xffff));
	expect_field(r->out, "seq", fmt("%u", (unsigned)id >> 16));
	/* each process holds the memfd, with one attachment */
	assert_non_null(strstr(r->out, fmt("holder:       pid %d fd ", (int)getpid())));
	assert_non_null(strstr(r->out, fmt("holder:       pid %d fd ", (int)c->pid)));

	/* by key: the same segment */
	rk = tool_ok("stat", "-k", fmt("0x%x", (unsigned)tc_key(5)));
	assert_string_equal(rk->out, r->out);
	free(rk);
	rk = tool_ok("stat", "--key", fmt("%d", (int)tc_key(5)), "-h");
	expect_field(rk->out, "id", fmt("%d", id));
	expect_field(rk->out, "segsz", "12.1K");
	free(rk);
	free(r);

	r = tool_ok("stat", "--json", fmt("%d", id));
	flat = flatten(r->out);
	check_json_seg(flat, "", id);
	jexpect(flat, "hugetlb", "false");
	jexpect(flat, "noreserve", "false");
	assert_true(jnum(flat, "seals") & 0x6);        /* F_SEAL_SHRINK | F_SEAL_GROW */
	assert_true(jnum(flat, "ino") > 0);
	assert_int_equal(jnum(flat, "slot"), id & 0xffff);
	assert_int_equal(jnum(flat, "holders#"), 2);
	for (int i = 0; i < 2; i++) {
		pid_t pid = (pid_t)jnum(flat, fmt("holders/%d/pid", i));

		assert_true(pid == getpid() || pid == c->pid);
		assert_int_equal(jnum(flat, fmt("holders/%d/count", i)), 1);
	}
	assert_int_not_equal(jnum(flat, "holders/0/pid"), jnum(flat, "holders/1/pid"));
	free(flat);
	free(r);
	assert_int_equal(shmx_dt(p), 0);
	tc_close_stdin(c);
	tc_child_wait_ok(c);
}

static void stat_of_missing_segments_fails(void **state)
{
	struct run *r;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 4096, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	r = tool("stat", fmt("%d", id));
	assert_int_equal(r->code, 1);
	assert_string_equal(r->out, "");
	assert_non_null(strstr(r->err, strerror(EIDRM)));
	free(r);
	/* an id no segment ever had */
	r = tool("stat", fmt("%d", id + 7));
	assert_int_equal(r->code, 1);
	assert_non_null(strstr(r->err, strerror(EINVAL)));
	free(r);
	r = tool("stat", "-k", "0x12345");
	assert_int_equal(r->code, 1);
	assert_non_null(strstr(r->err, "0x00012345"));
	assert_non_null(strstr(r->err, strerror(ENOENT)));
	free(r);
}

static const char *ipcs_line(const struct shmx_ds *ds, const char *human)
{
	static char line[256];
	int n;

	n = snprintf(line, sizeof(line), "0x%08x %-10d %-10.10s %-10o ", (unsigned)ds->key, ds->id,
		     user_name(ds->uid), (unsigned)ds->mode);
	if (human)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%6s    ", human);
	else
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%-10zu", ds->segsz);
	snprintf(line + n, sizeof(line) - (size_t)n, " %-10" PRIu64 " %-6s %-6s\n", ds->nattch,
		 ds->status & SHMX_DEST ? "dest" : " ", ds->status & SHMX_LOCKED ? "locked" : " ");
	return line;
}

static void ipcs_prints_the_layout_of_ipcs(void **state)
{
	static const char head[] = "\n------ Shared Memory Segments --------\n";
	char want[4096], want_h[4096];
	struct shmx_ds ds[8];
	struct run *r;
	int n;
	void *p;

	(void)state;
	tc_create(tc_key(1), 4096, 0600);
	tc_create(SHMX_PRIVATE, 1000000, 0640);
	n = tc_create(tc_key(3), 8192, 0604);
	p = tc_attach(n, 0);
	assert_int_equal(shmx_ctl(n, SHMX_RMID, NULL), 0);

	n = shmx_list(ds, 8);
	assert_int_equal(n, 3);
	snprintf(want, sizeof(want), "%s%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n", head,
		 "key", "shmid", "owner", "perms", "bytes", "nattch", "status");
	snprintf(want_h, sizeof(want_h), "%s%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n", head,
		 "key", "shmid", "owner", "perms", "size", "nattch", "status");
	/* shmx_list and the registry go in slot order, as ipcs goes by index */
	for (int i = 0; i < n; i++) {
		const char *human = ds[i].segsz == 4096 ? "4K" : ds[i].segsz == 8192 ? "8K" : "976.6K";

		strcat(want, ipcs_line(&ds[i], NULL));
		strcat(want_h, ipcs_line(&ds[i], human));
	}
	strcat(want, "\n");
	strcat(want_h, "\n");
	r = tool_ok("ipcs");
	assert_string_equal(r->out, want);
	free(r);
	r = tool_ok("ipcs", "--human");
	assert_string_equal(r->out, want_h);
	free(r);
	r = tool_ok("ipcs", "-m");
	assert_string_equal(r->out, want);
	free(r);

	/* and the heading is the one the real ipcs prints, if it is here */
	{
		char *argv[] = { "ipcs", "-m", NULL };
		struct run *real = run_argv("", NULL, argv);
		/* the first three lines: blank, title, column names */
		size_t len = (size_t)(strchr(want + strlen(head), '\n') + 1 - want);

		if (real->code == 0 && strncmp(real->out, want, len))
			fail_msg("ipcs -m begins\n%.*s\nshmx ipcs begins\n%.*s", (int)len,
				 real->out, (int)len, want);
		if (real->code != 0)
			print_message("# no ipcs -m here: the layout is checked by its format only\n");
		free(real);
	}
	assert_int_equal(shmx_dt(p), 0);
}

static void info_reports_limits_and_usage(void **state)
{
	struct shmx_info info;
	struct run *r;
	char *flat;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "7", "--max-segsz", "1048576",
					 "--max-total", "4194304", NULL), 0);
	tc_create(tc_key(1), 4096, 0600);
	tc_create(tc_key(2), 10000, 0600);
	assert_int_equal(shmx_info(&info), 0);

	r = tool_ok("info");
	expect_field(r->out, "namespace", tc_dir());
	expect_field(r->out, "keeper_pid", fmt("%d (running)", (int)info.keeper_pid));
	expect_field(r->out, "max_segments", "7");
	expect_field(r->out, "max_segsz", "1048576");
	expect_field(r->out, "max_total", "4194304");
	expect_field(r->out, "segments", "2");
	expect_field(r->out, "total", fmt("%" PRIu64, info.total));
	expect_field(r->out, "rss", fmt("%" PRIu64, info.rss));
	free(r);
	r = tool_ok("info", "-h");
	expect_field(r->out, "max_segsz", "1M");
	expect_field(r->out, "max_total", "4M");
	free(r);

	r = tool_ok("info", "--json");
	flat = flatten(r->out);
	jexpect(flat, "namespace", fmt("\"%s\"", tc_dir()));
	jexpect(flat, "registry", "true");
	jexpect(flat, "keeper_running", "true");
	jexpect(flat, "shared", "false");
	assert_int_equal(jnum(flat, "keeper_pid"), info.keeper_pid);
	assert_int_equal(jnum(flat, "max_segments"), info.max_segments);
	assert_int_equal(jnum(flat, "max_segsz"), info.max_segsz);
	assert_int_equal(jnum(flat, "max_total"), info.max_total);
	assert_int_equal(jnum(flat, "segments"), info.segments);
	assert_int_equal(jnum(flat, "total"), info.total);
	assert_int_equal(jnum(flat, "rss"), info.rss);
	assert_true(jnum(flat, "generation") >= 1);
	free(flat);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(empty_namespace_lists_nothing_and_starts_no_keeper),
		tc_test(ls_shows_each_segment_as_stat_does),
		tc_test(ls_human_sizes_and_long_times),
		tc_test(ls_json_matches_stat),
		tc_test(stat_prints_every_field),
		tc_test(stat_of_missing_segments_fails),
		tc_test(ipcs_prints_the_layout_of_ipcs),
		tc_test(info_reports_limits_and_usage),
	};

	return tc_run_tests("tool", tests);
}
