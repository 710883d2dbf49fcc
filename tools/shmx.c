/* SPDX-License-Identifier: MIT */
/*
 * shmx(1): ls, stat, ipcs and info read the namespace's registry (view.c,
 * show.c), as ipcs reads /proc/sysvipc/shm; rm asks the keeper through the
 * public API, as ipcrm calls shmctl(IPC_RMID).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "tool.h"
#include "util/log.h"

static const char *command = "";        /* for messages */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shmx [--namespace DIR] COMMAND [OPTION]... [ARG]...\n"
		"Show and remove the shared memory segments of a libshmx namespace.\n"
		"\n"
		"Commands:\n"
		"  ls [-l] [-h] [--json]       the segments, one line each\n"
		"  stat [-h] [--json] ID       every field of one segment\n"
		"  stat [-h] [--json] -k KEY\n"
		"  rm ID... [-k KEY]...        remove segments, as ipcrm: each is destroyed\n"
		"  rm --all                    once nothing is attached to it any more\n"
		"  info [-h] [--json]          limits and usage of the namespace, its keeper\n"
		"  ipcs [--human]              the segments as util-linux ipcs -m prints them\n"
		"\n"
		"Options:\n"
		"  --namespace DIR  the namespace directory (default: $SHMX_NAMESPACE,\n"
		"                   else $XDG_RUNTIME_DIR/shmx, else /dev/shm/shmx-UID)\n"
		"  -l, --long       ls: also the times of last attach, detach and change\n"
		"  -h, --human      sizes in powers of 1024: 4K, 976.6K, 2M\n"
		"  --json           one JSON document, for scripts\n"
		"  -k, --key KEY    the segment of KEY (0x hex, 0 octal, or decimal)\n"
		"  -a, --all        rm: every segment not yet removed\n"
		"  --help           show this and exit\n"
		"  --version        show the version and exit\n"
		"\n"
		"Looking never starts a keeper: shmx reads the registry itself.\n"
		"Exit status: 0 done; 1 an item failed or was not found, or the namespace\n"
		"cannot be read; 2 wrong usage.  See shmx(1).\n");
}

void tool_err(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "shmx: %s%s", command, *command ? ": " : "");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fflush(stdout);                 /* keep the order of what was said */
	fprintf(stderr, "%s\n", line);
}

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tool_err("%s", msg);
	fputs("Try 'shmx --help'.\n", stderr);
	exit(EXIT_USAGE);
}

const char *tool_hint(int err)
{
	switch (err) {
	case -EINVAL:
		return " (no such segment)";
	case -EIDRM:
		return " (the segment was removed)";
	case -ENOENT:
		return " (no segment has this key)";
	case -EPERM:
		return " (neither its owner nor its creator)";
	case -EACCES:
		return " (its mode does not allow it)";
	case -ENOTCONN:
	case -ECONNREFUSED:
		return " (no keeper could be reached or started)";
	}
	return "";
}

/* ---- arguments ---- */

/* An id: decimal digits only, at most INT_MAX. */
static int parse_id(const char *s, int *id)
{
	long long v = 0;

	if (!*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -ERANGE;
	}
	*id = (int)v;
	return 0;
}

/* A key as ipcrm -M takes it: hex, octal or decimal, 32 bits, not 0. */
static int32_t parse_key(const char *s)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (!*s || isspace((unsigned char)*s) || *end || errno || v < INT32_MIN || v > UINT32_MAX)
		usage_error("invalid key '%s' (hex 0x..., octal 0... or decimal, 32 bits)", s);
	if (v == 0)
		usage_error("key 0 is SHMX_PRIVATE: name a private segment by its id");
	return (int32_t)(uint32_t)(v & 0xffffffff);
}

static int get_id(const char *s)
{
	int id, r = parse_id(s, &id);

	if (r == -ERANGE)
		usage_error("invalid id '%s' (ids are at most %d)", s, INT_MAX);
	if (r < 0)
		usage_error("invalid id '%s' (ids are positive decimal numbers)", s);
	return id;
}

/* ---- stat ---- */

static int do_stat(const struct view *v, bool by_key, int32_t key, int id,
		   const struct tool_opts *o)
{
	const struct view_seg *s;
	struct view_seg found;
	int r = -EINVAL;

	if (by_key) {
		s = view_find_key(v, key);
		if (!s) {
			tool_err("key 0x%08x: %s%s", (unsigned)key, strerror(ENOENT),
				 tool_hint(-ENOENT));
			return EXIT_FAILED;
		}
		return cmd_stat(v, s, o);
	}
	s = view_find_id(v, id);
	/* not in the view: removed (EIDRM), never was (EINVAL), or new since */
	if (!s && v->have_reg) {
		r = shmx_reg_find_id(&v->reg, id, &found.rec);
		if (r == 0) {
			found.slot = shmx_id_idx(id);
			shmx_reg_to_ds(&found.rec, &found.ds);
			s = &found;
		}
	}
	if (!s) {
		tool_err("segment %d: %s%s", id, strerror(-r), tool_hint(r));
		return EXIT_FAILED;
	}
	return cmd_stat(v, s, o);
}

/* ---- rm ---- */

/* IPC_RMID through the keeper, and what became of the segment. */
static bool rm_id(const struct view *v, int id, const char *what)
{
	const struct view_seg *s = view_find_id(v, id);
	struct shmx_ds ds;
	char key[32] = "";
	int r;

	/* no registry, no segments: no keeper is started to say so */
	r = v->have_reg ? shmx_ctl(id, SHMX_RMID, NULL) : -EINVAL;
	if (r < 0) {
		tool_err("%s: %s%s", what, strerror(-r), tool_hint(r));
		return false;
	}
	if (s)
		snprintf(key, sizeof(key), " (key 0x%08x)", (unsigned)s->ds.key);
	r = shmx_ctl(id, SHMX_STAT, &ds);
	if (r == 0 && ds.nattch > 0)
		printf("marked segment %d%s for destruction: %" PRIu64 " attachment%s\n",
		       id, key, ds.nattch, ds.nattch == 1 ? " remains" : "s remain");
	else if (r == 0 || (r != -EIDRM && r != -EINVAL))
		printf("marked segment %d%s for destruction\n", id, key);
	else
		printf("removed segment %d%s\n", id, key);
	return true;
}

/* An ID or a -k KEY, in the order given. */
struct item {
	bool by_key;
	int32_t key;
	int id;
	const char *arg;
};

static int do_rm(const struct view *v, const struct item *items, int n, bool all)
{
	char what[64];
	bool ok = true;
	int done = 0;

	if (all) {
		for (size_t i = 0; i < v->nsegs; i++) {
			const struct shmx_ds *ds = &v->segs[i].ds;

			if (ds->status & SHMX_DEST)
				continue;       /* removed already, waiting for its users */
			snprintf(what, sizeof(what), "segment %d", ds->id);
			ok &= rm_id(v, ds->id, what);
			done++;
		}
		if (!done)
			printf("no segments to remove\n");
		return ok ? EXIT_OK : EXIT_FAILED;
	}
	for (int i = 0; i < n; i++) {
		int id = items[i].id;

		if (items[i].by_key) {
			/* shmget(key, 0, 0) as ipcrm -M does: the keeper has the last word */
			id = v->have_reg ? shmx_get(items[i].key, 0, 0) : -ENOENT;
			snprintf(what, sizeof(what), "key 0x%08x", (unsigned)items[i].key);
			if (id < 0) {
				tool_err("%s: %s%s", what, strerror(-id), tool_hint(id));
				ok = false;
				continue;
			}
		} else {
			snprintf(what, sizeof(what), "segment %d", id);
		}
		ok &= rm_id(v, id, what);
	}
	return ok ? EXIT_OK : EXIT_FAILED;
}

/* ---- main ---- */

enum {
	G_JSON = 1 << 0,
	G_HUMAN = 1 << 1,
	G_LONG = 1 << 2,
	G_KEY = 1 << 3,
	G_ALL = 1 << 4,
	G_IPCS = 1 << 5,        /* ipcs's -m and -b: what it prints anyway */
};

static const struct {
	const char *name;
	unsigned allowed;
} commands[] = {
	{ "ls", G_JSON | G_HUMAN | G_LONG },
	{ "stat", G_JSON | G_HUMAN | G_KEY },
	{ "rm", G_KEY | G_ALL },
	{ "info", G_JSON | G_HUMAN },
	{ "ipcs", G_HUMAN | G_IPCS },
};

static const char *option_name(unsigned g)
{
	switch (g) {
	case G_JSON:
		return "--json";
	case G_HUMAN:
		return "-h/--human";
	case G_LONG:
		return "-l/--long";
	case G_KEY:
		return "-k/--key";
	case G_ALL:
		return "-a/--all";
	}
	return "-m/-b";
}

enum { O_NS = 256, O_JSON, O_HELP, O_VERSION };

static const struct option long_opts[] = {
	{ "namespace", required_argument, NULL, O_NS },
	{ "json", no_argument, NULL, O_JSON },
	{ "long", no_argument, NULL, 'l' },
	{ "human", no_argument, NULL, 'h' },
	{ "key", required_argument, NULL, 'k' },
	{ "all", no_argument, NULL, 'a' },
	{ "help", no_argument, NULL, O_HELP },
	{ "version", no_argument, NULL, O_VERSION },
	{ 0 },
};

static void bad_option(int argc, char **argv, int c)
{
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

	if (optopt >= 0 && optopt <= UCHAR_MAX && isdigit(optopt)) {
		/* "-5": the option is over; "-55": getopt is still inside it */
		if (!(arg[0] == '-' && isdigit((unsigned char)arg[1])) && optind < argc)
			arg = argv[optind];
		usage_error("invalid id '%s' (ids are positive decimal numbers)", arg);
	}
	if (c == ':')
		usage_error("option '%s' needs a value", arg);
	/* a byte of a multibyte character would print as half of it: name
	 * the argument getopt is still inside of */
	if (optopt > 0 && optopt < 0x80)
		usage_error("unknown option '-%c'", optopt);
	if (optopt && optind < argc && argv[optind][0] == '-')
		arg = argv[optind];
	usage_error("unknown option '%s'", arg);
}

static int run(const char *cmd, const struct tool_opts *o, const struct item *items, int n,
	       bool all)
{
	struct view v;
	int r;

	if (view_open(&v) < 0) {
		view_close(&v);
		return EXIT_FAILED;
	}
	if (!strcmp(cmd, "ls"))
		r = cmd_ls(&v, o);
	else if (!strcmp(cmd, "ipcs"))
		r = cmd_ipcs(&v, o);
	else if (!strcmp(cmd, "info"))
		r = cmd_info(&v, o);
	else if (!strcmp(cmd, "stat"))
		r = do_stat(&v, items[0].by_key, items[0].key, items[0].id, o);
	else
		r = do_rm(&v, items, n, all);
	view_close(&v);
	return r;
}

/* The operands, for the whole run (usage_error() exits with them). */
static struct item *operands;

int main(int argc, char **argv)
{
	struct tool_opts o = { 0 };
	const char *cmd = NULL;
	unsigned given = 0, allowed;
	int n = 0, c, r;

	/* the library's errors carry the reasons (a refused namespace, a
	 * keeper that cannot start): show them unless SHMX_LOG says otherwise */
	shmx_log_set_prefix("shmx");
	if (!getenv("SHMX_LOG"))
		shmx_log_set_threshold(SHMX_LOG_ERROR);
	operands = calloc((size_t)argc, sizeof(*operands));
	if (!operands) {
		tool_err("%s", strerror(ENOMEM));
		return EXIT_FAILED;
	}
	opterr = 0;
	/* "-": operands come back in place (as 1), so rm keeps their order */
	while ((c = getopt_long(argc, argv, "-:lhk:amb", long_opts, NULL)) != -1) {
		switch (c) {
		case 1:
			if (!cmd)
				cmd = optarg;
			else
				operands[n++] = (struct item){ .arg = optarg };
			break;
		case O_NS:
			if (!*optarg)
				usage_error("--namespace: an empty path");
			/* the library, and shmx_ns_resolve, take it from there */
			setenv("SHMX_NAMESPACE", optarg, 1);
			break;
		case O_JSON:
			given |= G_JSON;
			break;
		case 'l':
			given |= G_LONG;
			break;
		case 'h':
			given |= G_HUMAN;
			break;
		case 'k':
			given |= G_KEY;
			operands[n++] = (struct item){ .by_key = true, .arg = optarg };
			break;
		case 'a':
			given |= G_ALL;
			break;
		case 'm':
		case 'b':
			given |= G_IPCS;
			break;
		case O_HELP:
			usage(stdout);
			free(operands);
			return EXIT_OK;
		case O_VERSION:
			printf("shmx %s\n", SHMX_VERSION);
			free(operands);
			return EXIT_OK;
		default:
			bad_option(argc, argv, c);
		}
	}
	/* after "--" */
	for (; optind < argc; optind++) {
		if (!cmd)
			cmd = argv[optind];
		else
			operands[n++] = (struct item){ .arg = argv[optind] };
	}
	if (!cmd) {
		tool_err("no command given");
		usage(stderr);
		free(operands);
		return EXIT_USAGE;
	}
	allowed = 0;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name)) {
			command = commands[i].name;
			allowed = commands[i].allowed;
		}
	if (!*command) {
		tool_err("unknown command '%s'", cmd);
		usage(stderr);
		free(operands);
		return EXIT_USAGE;
	}
	for (unsigned g = 1; g <= G_IPCS; g <<= 1)
		if ((given & g) && !(allowed & g))
			usage_error("option %s does not apply", option_name(g));
	o.json = given & G_JSON;
	o.human = given & G_HUMAN;
	o.lng = given & G_LONG;

	/* every operand is checked before anything is done */
	for (int i = 0; i < n; i++)
		if (!operands[i].by_key && strcmp(command, "stat") && strcmp(command, "rm"))
			usage_error("unexpected argument '%s'", operands[i].arg);
	for (int i = 0; i < n; i++) {
		if (operands[i].by_key)
			operands[i].key = parse_key(operands[i].arg);
		else
			operands[i].id = get_id(operands[i].arg);
	}
	if (!strcmp(command, "stat") && n != 1)
		usage_error("one segment: stat ID, or stat -k KEY");
	if (!strcmp(command, "rm")) {
		if ((given & G_ALL) && n)
			usage_error("--all removes every segment: no ID or KEY goes with it");
		if (!(given & G_ALL) && !n)
			usage_error("which segments? rm ID..., rm -k KEY..., or rm --all");
	}

	r = run(command, &o, operands, n, given & G_ALL);
	free(operands);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		tool_err("cannot write the output: %s", strerror(errno));
		return EXIT_FAILED;
	}
	return r;
}
