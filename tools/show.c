/* SPDX-License-Identifier: MIT */
/*
 * shmx ls, ipcs, stat and info: printing a view (view.c) as text for people,
 * as ipcs -m prints it for old scripts, and as JSON for new ones.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "json.h"
#include "tool.h"

#define MAX_HOLDERS_SHOWN 64

/* ---- fields ---- */

void human_size(uint64_t bytes, char *buf, size_t n)
{
	static const char letters[] = "BKMGTPE";
	uint64_t dec, frac;
	int exp = 0;

	/* util-linux's size_to_human_string(SIZE_SUFFIX_1LETTER), as ipcs
	 * --human prints it: binary units, one decimal, a ".0" dropped */
	while (exp < 60 && bytes >= (UINT64_C(1) << (exp + 10)))
		exp += 10;
	dec = exp ? bytes >> exp : bytes;
	frac = exp ? bytes & ((UINT64_C(1) << exp) - 1) : 0;
	if (frac) {
		if (frac >= UINT64_MAX / 1000)
			frac = ((frac / 1024) * 1000) / (UINT64_C(1) << (exp - 10));
		else
			frac = (frac * 1000) / (UINT64_C(1) << exp);
		frac = ((frac + 50) / 100) * 10;        /* hundredths, one digit kept */
		if (frac == 100) {
			dec++;
			frac = 0;
		}
	}
	if (frac)
		snprintf(buf, n, "%" PRIu64 ".%" PRIu64 "%c", dec, frac / 10, letters[exp / 10]);
	else
		snprintf(buf, n, "%" PRIu64 "%c", dec, letters[exp / 10]);
}

static void fmt_bytes(uint64_t v, bool human, char *buf, size_t n)
{
	if (human)
		human_size(v, buf, n);
	else
		snprintf(buf, n, "%" PRIu64, v);
}

/* Names of users and groups, looked up once each. */
struct name_cache {
	uint32_t id[16];
	char name[16][64];
	int n;
};

static const char *cached(struct name_cache *c, uint32_t id, bool user)
{
	const char *name = NULL;
	int i;

	for (i = 0; i < c->n; i++)
		if (c->id[i] == id)
			return c->name[i][0] ? c->name[i] : NULL;
	if (user) {
		struct passwd *pw = getpwuid(id);

		name = pw ? pw->pw_name : NULL;
	} else {
		struct group *gr = getgrgid(id);

		name = gr ? gr->gr_name : NULL;
	}
	i = c->n < 16 ? c->n++ : 15;
	c->id[i] = id;
	snprintf(c->name[i], sizeof(c->name[i]), "%s", name ? name : "");
	return c->name[i][0] ? c->name[i] : NULL;
}

/* The user's name, or NULL if the uid has none. */
static const char *user_name(uid_t uid)
{
	static struct name_cache c;

	return cached(&c, uid, true);
}

static const char *group_name(gid_t gid)
{
	static struct name_cache c;

	return cached(&c, gid, false);
}

static void fmt_user(uid_t uid, char *buf, size_t n)
{
	const char *name = user_name(uid);

	if (name)
		snprintf(buf, n, "%s", name);
	else
		snprintf(buf, n, "%u", (unsigned)uid);
}

/* ISO 8601 local time without a space (ls -l columns split on blanks); "-" for never. */
static void fmt_time(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || !localtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(buf, n, "-");
}

static void fmt_status(unsigned status, char *buf, size_t n)
{
	bool dest = status & SHMX_DEST, locked = status & SHMX_LOCKED;

	snprintf(buf, n, "%s%s%s", dest ? "dest" : "", dest && locked ? "," : "",
		 locked ? "locked" : "");
	if (!dest && !locked)
		snprintf(buf, n, "-");
}

static void fmt_key(key_t key, char *buf, size_t n)
{
	snprintf(buf, n, "0x%08x", (unsigned)key);
}

/* ---- ls ---- */

enum {
	C_KEY, C_ID, C_OWNER, C_PERMS, C_BYTES, C_NATTCH, C_STATUS, C_CPID, C_LPID, C_RSS,
	C_ATIME, C_DTIME, C_CTIME, NCOLS,
};

static const struct {
	const char *head;
	bool right;
} columns[NCOLS] = {
	[C_KEY] = { "KEY", false },
	[C_ID] = { "ID", true },
	[C_OWNER] = { "OWNER", false },
	[C_PERMS] = { "PERMS", false },
	[C_BYTES] = { "BYTES", true },
	[C_NATTCH] = { "NATTCH", true },
	[C_STATUS] = { "STATUS", false },
	[C_CPID] = { "CPID", true },
	[C_LPID] = { "LPID", true },
	[C_RSS] = { "RSS", true },
	[C_ATIME] = { "ATIME", false },
	[C_DTIME] = { "DTIME", false },
	[C_CTIME] = { "CTIME", false },
};

typedef char ls_row[NCOLS][72];

static void ls_fill(const struct shmx_ds *ds, bool human, ls_row row)
{
	fmt_key(ds->key, row[C_KEY], sizeof(row[0]));
	snprintf(row[C_ID], sizeof(row[0]), "%d", ds->id);
	fmt_user(ds->uid, row[C_OWNER], sizeof(row[0]));
	snprintf(row[C_PERMS], sizeof(row[0]), "%03o", (unsigned)ds->mode & 0777);
	fmt_bytes(ds->segsz, human, row[C_BYTES], sizeof(row[0]));
	snprintf(row[C_NATTCH], sizeof(row[0]), "%" PRIu64, ds->nattch);
	fmt_status(ds->status, row[C_STATUS], sizeof(row[0]));
	snprintf(row[C_CPID], sizeof(row[0]), "%d", (int)ds->cpid);
	snprintf(row[C_LPID], sizeof(row[0]), "%d", (int)ds->lpid);
	fmt_bytes(ds->rss, human, row[C_RSS], sizeof(row[0]));
	fmt_time(ds->atime, row[C_ATIME], sizeof(row[0]));
	fmt_time(ds->dtime, row[C_DTIME], sizeof(row[0]));
	fmt_time(ds->ctime, row[C_CTIME], sizeof(row[0]));
}

static void ls_print(const char *const cells[], const int width[], int ncols)
{
	for (int c = 0; c < ncols; c++) {
		bool last = c == ncols - 1;

		if (columns[c].right)
			printf("%*s", width[c], cells[c]);
		else
			printf("%-*s", last ? 0 : width[c], cells[c]);
		fputs(last ? "\n" : "  ", stdout);
	}
}

/* The fields of struct shmx_ds, and owner/group names and flags for people. */
static void json_ds(struct json *j, const struct shmx_ds *ds)
{
	const char *owner = user_name(ds->uid), *group = group_name(ds->gid);
	char buf[32];

	json_int(j, "id", ds->id);
	json_int(j, "key", ds->key);
	fmt_key(ds->key, buf, sizeof(buf));
	json_string(j, "key_hex", buf);
	json_uint(j, "uid", ds->uid);
	if (owner)
		json_string(j, "owner", owner);
	else
		json_null(j, "owner");
	json_uint(j, "gid", ds->gid);
	if (group)
		json_string(j, "group", group);
	else
		json_null(j, "group");
	json_uint(j, "cuid", ds->cuid);
	json_uint(j, "cgid", ds->cgid);
	json_uint(j, "mode", ds->mode & 0777);
	snprintf(buf, sizeof(buf), "%03o", (unsigned)ds->mode & 0777);
	json_string(j, "perms", buf);
	json_uint(j, "status", ds->status);
	json_bool(j, "dest", ds->status & SHMX_DEST);
	json_bool(j, "locked", ds->status & SHMX_LOCKED);
	json_uint(j, "segsz", ds->segsz);
	json_uint(j, "nattch", ds->nattch);
	json_int(j, "atime", ds->atime);
	json_int(j, "dtime", ds->dtime);
	json_int(j, "ctime", ds->ctime);
	json_int(j, "cpid", ds->cpid);
	json_int(j, "lpid", ds->lpid);
	json_uint(j, "rss", ds->rss);
}

static bool keeper_running(const struct view *v)
{
	return v->synced || v->keeper_alive;
}

int cmd_ls(const struct view *v, const struct tool_opts *o)
{
	int ncols = o->lng ? NCOLS : C_ATIME;
	int width[NCOLS];
	const char *cells[NCOLS];
	ls_row *rows;

	if (o->json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL);
		json_string(&j, "namespace", v->path);
		json_int(&j, "keeper_pid", v->have_reg ? v->hdr.keeper_pid : 0);
		json_bool(&j, "keeper_running", keeper_running(v));
		json_array_begin(&j, "segments");
		for (size_t i = 0; i < v->nsegs; i++) {
			json_object_begin(&j, NULL);
			json_ds(&j, &v->segs[i].ds);
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
		return EXIT_OK;
	}
	rows = calloc(v->nsegs ? v->nsegs : 1, sizeof(*rows));
	if (!rows) {
		tool_err("%s", strerror(ENOMEM));
		return EXIT_FAILED;
	}
	for (int c = 0; c < ncols; c++)
		width[c] = (int)strlen(columns[c].head);
	for (size_t i = 0; i < v->nsegs; i++) {
		ls_fill(&v->segs[i].ds, o->human, rows[i]);
		for (int c = 0; c < ncols; c++)
			if ((int)strlen(rows[i][c]) > width[c])
				width[c] = (int)strlen(rows[i][c]);
	}
	for (int c = 0; c < ncols; c++)
		cells[c] = columns[c].head;
	ls_print(cells, width, ncols);
	for (size_t i = 0; i < v->nsegs; i++) {
		for (int c = 0; c < ncols; c++)
			cells[c] = rows[i][c];
		ls_print(cells, width, ncols);
	}
	free(rows);
	return EXIT_OK;
}

/* ---- ipcs ---- */

/* util-linux ipcs -m (do_shm, STANDARD), byte for byte. */
int cmd_ipcs(const struct view *v, const struct tool_opts *o)
{
	printf("\n------ Shared Memory Segments --------\n");
	printf("%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n",
	       "key", "shmid", "owner", "perms", o->human ? "size" : "bytes", "nattch", "status");
	for (size_t i = 0; i < v->nsegs; i++) {
		const struct shmx_ds *ds = &v->segs[i].ds;
		const char *owner = user_name(ds->uid);

		printf("0x%08x ", (unsigned)ds->key);
		if (owner)
			printf("%-10d %-10.10s", ds->id, owner);
		else
			printf("%-10d %-10u", ds->id, (unsigned)ds->uid);
		printf(" %-10o ", (unsigned)ds->mode & 0777);
		if (o->human) {
			char buf[32];

			human_size(ds->segsz, buf, sizeof(buf));
			printf("%6s    ", buf);
		} else {
			printf("%-10zu", ds->segsz);
		}
		printf(" %-10" PRIu64 " %-6s %-6s\n", ds->nattch,
		       ds->status & SHMX_DEST ? "dest" : " ",
		       ds->status & SHMX_LOCKED ? "locked" : " ");
	}
	printf("\n");
	return EXIT_OK;
}

/* ---- stat ---- */

static void fmt_flags(uint32_t flags, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", flags & SHMX_HUGETLB ? "hugetlb" : "",
		 (flags & SHMX_HUGETLB) && (flags & SHMX_NORESERVE) ? "," : "",
		 flags & SHMX_NORESERVE ? "noreserve" : "");
	if (!(flags & (SHMX_HUGETLB | SHMX_NORESERVE)))
		snprintf(buf, n, "-");
}

static void fmt_seals(uint32_t seals, char *buf, size_t n)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ 0x0001, "seal" },     /* F_SEAL_SEAL */
		{ 0x0002, "shrink" },   /* F_SEAL_SHRINK */
		{ 0x0004, "grow" },     /* F_SEAL_GROW */
		{ 0x0008, "write" },    /* F_SEAL_WRITE */
		{ 0x0010, "future_write" },
		{ 0x0020, "exec" },     /* F_SEAL_EXEC, from MFD_NOEXEC_SEAL */
	};
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (seals & names[i].bit && len < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : "",
						names[i].name);
		seals &= ~names[i].bit;
	}
	if (seals && len < n)
		snprintf(buf + len, n - len, "%s0x%x", len ? "," : "", (unsigned)seals);
	if (!buf[0])
		snprintf(buf, n, "-");
}

static void field(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void field(const char *name, const char *fmt, ...)
{
	char label[32];
	va_list ap;

	snprintf(label, sizeof(label), "%s:", name);
	printf("%-13s ", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void field_id(const char *name, uint32_t id, const char *nm)
{
	if (nm)
		field(name, "%u (%s)", (unsigned)id, nm);
	else
		field(name, "%u", (unsigned)id);
}

static void field_time(const char *name, int64_t t)
{
	char buf[64];

	fmt_time(t, buf, sizeof(buf));
	if (t)
		field(name, "%s (%" PRId64 ")", buf, t);
	else
		field(name, "-");
}

static void stat_text(const struct view_seg *s, const struct shmx_reg_holder *h, size_t nh,
		      size_t total, bool human)
{
	const struct shmx_ds *ds = &s->ds;
	char buf[128];

	field("id", "%d", ds->id);
	fmt_key(ds->key, buf, sizeof(buf));
	field("key", "%s", buf);
	field_id("uid", ds->uid, user_name(ds->uid));
	field_id("gid", ds->gid, group_name(ds->gid));
	field_id("cuid", ds->cuid, user_name(ds->cuid));
	field_id("cgid", ds->cgid, group_name(ds->cgid));
	field("mode", "%03o", (unsigned)ds->mode & 0777);
	fmt_status(ds->status, buf, sizeof(buf));
	field("status", "%s", buf);
	fmt_bytes(ds->segsz, human, buf, sizeof(buf));
	field("segsz", "%s", buf);
	field("nattch", "%" PRIu64, ds->nattch);
	field_time("atime", ds->atime);
	field_time("dtime", ds->dtime);
	field_time("ctime", ds->ctime);
	field("cpid", "%d", (int)ds->cpid);
	field("lpid", "%d", (int)ds->lpid);
	fmt_bytes(ds->rss, human, buf, sizeof(buf));
	field("rss", "%s", buf);
	fmt_flags(s->rec.flags, buf, sizeof(buf));
	field("flags", "%s", buf);
	fmt_seals(s->rec.seals, buf, sizeof(buf));
	field("seals", "%s", buf);
	field("ino", "%" PRIu64, s->rec.ino);
	field("dev", "%u:%u", major((dev_t)s->rec.dev), minor((dev_t)s->rec.dev));
	field("slot", "%u", (unsigned)s->slot);
	field("seq", "%u", (unsigned)shmx_id_seq(ds->id));
	if (nh == 0)
		field("holders", "-");
	for (size_t i = 0; i < nh; i++)
		field("holder", "pid %d fd %d attachments %" PRIu64, (int)h[i].pid, (int)h[i].fd,
		      h[i].count);
	if (total > nh)
		field("holder", "... %zu more", total - nh);
}

static void stat_json(const struct view *v, const struct view_seg *s,
		      const struct shmx_reg_holder *h, size_t nh)
{
	struct json j;
	char buf[64];

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_string(&j, "namespace", v->path);
	json_ds(&j, &s->ds);
	json_bool(&j, "hugetlb", s->rec.flags & SHMX_HUGETLB);
	json_bool(&j, "noreserve", s->rec.flags & SHMX_NORESERVE);
	json_uint(&j, "seals", s->rec.seals);
	fmt_seals(s->rec.seals, buf, sizeof(buf));
	json_string(&j, "seal_names", buf);
	json_uint(&j, "ino", s->rec.ino);
	json_uint(&j, "dev", s->rec.dev);
	json_uint(&j, "slot", s->slot);
	json_uint(&j, "seq", shmx_id_seq(s->ds.id));
	json_array_begin(&j, "holders");
	for (size_t i = 0; i < nh; i++) {
		json_object_begin(&j, NULL);
		json_int(&j, "pid", h[i].pid);
		json_int(&j, "fd", h[i].fd);
		json_uint(&j, "count", h[i].count);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
}

int cmd_stat(const struct view *v, const struct view_seg *s, const struct tool_opts *o)
{
	struct shmx_reg_holder h[MAX_HOLDERS_SHOWN];
	size_t total = view_holders(v, s, h, MAX_HOLDERS_SHOWN);
	size_t nh = total < MAX_HOLDERS_SHOWN ? total : MAX_HOLDERS_SHOWN;

	if (o->json)
		stat_json(v, s, h, nh);
	else
		stat_text(s, h, nh, total, o->human);
	return EXIT_OK;
}

/* ---- info ---- */

static void info_json(const struct view *v)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_string(&j, "namespace", v->path);
	json_bool(&j, "registry", v->have_reg);
	json_int(&j, "keeper_pid", v->have_reg ? v->hdr.keeper_pid : 0);
	json_bool(&j, "keeper_running", keeper_running(v));
	if (v->have_reg) {
		json_bool(&j, "shared", v->hdr.flags & SHMX_REG_SHARED);
		json_uint(&j, "generation", v->hdr.generation);
		json_uint(&j, "max_segments", v->hdr.max_segments);
		json_uint(&j, "max_segsz", v->hdr.max_segsz);
		json_uint(&j, "max_total", v->hdr.max_total);
	} else {
		/* the limits are the next keeper's to choose */
		json_null(&j, "shared");
		json_null(&j, "generation");
		json_null(&j, "max_segments");
		json_null(&j, "max_segsz");
		json_null(&j, "max_total");
	}
	json_uint(&j, "segments", v->have_reg ? v->hdr.segments : 0);
	json_uint(&j, "total", v->have_reg ? v->hdr.total : 0);
	json_uint(&j, "rss", v->have_reg ? v->hdr.rss : 0);
	json_object_end(&j);
	json_finish(&j);
}

int cmd_info(const struct view *v, const struct tool_opts *o)
{
	char buf[32];

	if (o->json) {
		info_json(v);
		return EXIT_OK;
	}
	field("namespace", "%s", v->path);
	if (!v->have_reg) {
		field("registry", "%s", v->exists ?
		      "none (no keeper has served this namespace since the last one exited)" :
		      "none (the directory does not exist: nothing has used this namespace)");
		field("keeper_pid", "-");
		field("segments", "0");
		return EXIT_OK;
	}
	field("registry", "%s/registry (generation %" PRIu64 ", %s)", v->path, v->hdr.generation,
	      v->hdr.flags & SHMX_REG_SHARED ? "shared" : "per-user");
	field("keeper_pid", "%d (%s)", (int)v->hdr.keeper_pid,
	      keeper_running(v) ? "running" : "not running: the registry is as it left it");
	field("max_segments", "%u", (unsigned)v->hdr.max_segments);
	fmt_bytes(v->hdr.max_segsz, o->human, buf, sizeof(buf));
	field("max_segsz", "%s", buf);
	fmt_bytes(v->hdr.max_total, o->human, buf, sizeof(buf));
	field("max_total", "%s", buf);
	field("segments", "%" PRIu64, v->hdr.segments);
	fmt_bytes(v->hdr.total, o->human, buf, sizeof(buf));
	field("total", "%s", buf);
	fmt_bytes(v->hdr.rss, o->human, buf, sizeof(buf));
	field("rss", "%s", buf);
	return EXIT_OK;
}
