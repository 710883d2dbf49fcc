/* SPDX-License-Identifier: MIT */
/*
 * Segment cases, each beside the SysV (and POSIX) calls it replaces:
 *
 *   attach+detach of a segment the process holds   vs shmat+shmdt
 *   first attach in a new process (get, at, dt)    vs shmget+shmat+shmdt
 *   create, attach, touch, detach, destroy         vs SysV, shm_open
 *   shmx_get by key among 30,000 segments          vs among 10
 *
 * Cases that need a process of their own (a first attach, another
 * namespace) run this program again as a helper: "--child MODE ARGS".
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmx.h>

#include "bench.h"

#define SEG_SIZE (64u << 10)    /* attach and create cases: 16 pages */
#define LOOKUP_BASE 0x10000     /* keys of the lookup namespaces */

/* ---- attach+detach of a held segment ---- */

struct ad {
	int id;
	uint64_t n;
};

static int shmx_ad(void *arg, struct bench_meas *m)
{
	struct ad *a = arg;
	double t0 = bench_now();

	for (uint64_t i = 0; i < a->n; i++) {
		void *p;
		int r = shmx_at(a->id, NULL, 0, &p);

		if (r == 0)
			r = shmx_dt(p);
		if (r < 0) {
			bench_error("shmx_at/dt: %s", strerror(-r));
			return r;
		}
	}
	m->secs = bench_now() - t0;
	m->ops = a->n;
	return 0;
}

static int sysv_ad(void *arg, struct bench_meas *m)
{
	struct ad *a = arg;
	double t0 = bench_now();

	for (uint64_t i = 0; i < a->n; i++) {
		void *p = shmat(a->id, NULL, 0);

		if (p == (void *)-1 || shmdt(p) < 0) {
			bench_error("shmat/shmdt: %s", strerror(errno));
			return -errno;
		}
	}
	m->secs = bench_now() - t0;
	m->ops = a->n;
	return 0;
}

static void case_attach_detach(void)
{
	struct bench_result *res = bench_new("seg.attach_detach",
					     "attach+detach, segment held before", BENCH_NS_OP);
	static const char *const names[] = { NULL, "shmat+shmdt (SysV)" };
	const bench_fn fns[] = { shmx_ad, sysv_ad };
	struct ad x = { .n = bench_iters(50000, 200) }, s = x;
	void *const args[] = { &x, &s };
	void *p;
	int r;

	if (!res)
		return;
	bench_note(res, "%u KiB segments, %llu pairs per repetition", SEG_SIZE >> 10,
		   (unsigned long long)x.n);
	x.id = shmx_get(SHMX_PRIVATE, SEG_SIZE, SHMX_CREAT | 0600);
	if (x.id < 0) {
		bench_error("shmx_get: %s", strerror(-x.id));
		return;
	}
	/* held: the descriptor is cached from now on */
	r = shmx_at(x.id, NULL, 0, &p);
	if (r == 0)
		shmx_dt(p);
	s.id = shmget(IPC_PRIVATE, SEG_SIZE, IPC_CREAT | 0600);
	if (r < 0 || s.id < 0) {
		bench_error("set-up: %s", strerror(r < 0 ? -r : errno));
		goto out;
	}
	bench_track_sysv(s.id);
	if (bench_interleave(res, names, fns, args, 2) == 0)
		bench_target(res, 1, true, 1.5);
out:
	shmx_ctl(x.id, SHMX_RMID, NULL);
	if (s.id >= 0) {
		shmctl(s.id, IPC_RMID, NULL);
		bench_untrack_sysv(s.id);
	}
}

/* ---- first attach in a new process ---- */

struct first {
	const char *mode;       /* "first-shmx" or "first-sysv" */
	char key[16];
	uint64_t n;             /* processes per repetition */
};

static int first_attach(void *arg, struct bench_meas *m)
{
	struct first *f = arg;
	const char *argv[] = { f->mode, f->key, NULL };
	char out[64];

	m->secs = 0;
	for (uint64_t i = 0; i < f->n; i++) {
		int r = bench_run_child(NULL, out, sizeof(out), argv);

		if (r < 0)
			return r;
		m->secs += strtod(out, NULL) * 1e-9;
	}
	m->ops = f->n;
	return 0;
}

static void case_first_attach(void)
{
	struct bench_result *res = bench_new("seg.first_attach",
					     "first attach in a new process: get+at+dt", BENCH_NS_OP);
	static const char *const names[] = { NULL, "shmget+shmat+shmdt (SysV)" };
	const bench_fn fns[] = { first_attach, first_attach };
	struct first x = { .mode = "first-shmx", .n = bench_iters(40, 2) };
	struct first s = { .mode = "first-sysv", .n = x.n };
	void *const args[] = { &x, &s };
	int id, sid = -1, key = bench_sysv_key();

	if (!res)
		return;
	bench_note(res, "a fresh exec'd process each, no connection yet; %llu per repetition, "
		   "timed inside it", (unsigned long long)x.n);
	id = shmx_get(0x4649, SEG_SIZE, SHMX_CREAT | SHMX_EXCL | 0600);
	if (id < 0) {
		bench_error("shmx_get: %s", strerror(-id));
		return;
	}
	if (key >= 0)
		sid = shmget(key, SEG_SIZE, IPC_CREAT | IPC_EXCL | 0600);
	if (sid < 0) {
		bench_error("shmget: %s", key < 0 ? "no free key" : strerror(errno));
		goto out;
	}
	bench_track_sysv(sid);
	snprintf(x.key, sizeof(x.key), "%d", 0x4649);
	snprintf(s.key, sizeof(s.key), "%d", key);
	if (bench_interleave(res, names, fns, args, 2) == 0)
		bench_target(res, 1, true, 3);
out:
	shmx_ctl(id, SHMX_RMID, NULL);
	if (sid >= 0) {
		shmctl(sid, IPC_RMID, NULL);
		bench_untrack_sysv(sid);
	}
}

/* ---- create, attach, touch, detach, destroy ---- */

struct cycle {
	key_t key;
	uint64_t n;
	char name[64];          /* shm_open */
};

static void touch(void *p)
{
	for (size_t off = 0; off < SEG_SIZE; off += 4096)
		((volatile char *)p)[off] = 1;
}

static int shmx_cycle(void *arg, struct bench_meas *m)
{
	struct cycle *c = arg;
	double t0 = bench_now();

	for (uint64_t i = 0; i < c->n; i++) {
		void *p;
		int id = shmx_get(c->key, SEG_SIZE, SHMX_CREAT | SHMX_EXCL | 0600), r = id;

		if (id >= 0) {
			r = shmx_at(id, NULL, 0, &p);
			if (r == 0) {
				touch(p);
				r = shmx_dt(p);
			}
			if (shmx_ctl(id, SHMX_RMID, NULL) < 0 && r == 0)
				r = -EIO;
		}
		if (r < 0) {
			bench_error("libshmx create cycle: %s", strerror(-r));
			return r;
		}
	}
	m->secs = bench_now() - t0;
	m->ops = c->n;
	return 0;
}

static int sysv_cycle(void *arg, struct bench_meas *m)
{
	struct cycle *c = arg;
	double t0 = bench_now();

	for (uint64_t i = 0; i < c->n; i++) {
		int id = shmget(c->key, SEG_SIZE, IPC_CREAT | IPC_EXCL | 0600), r = 0;
		void *p;

		if (id < 0) {
			bench_error("shmget: %s", strerror(errno));
			return -errno;
		}
		bench_track_sysv(id);
		p = shmat(id, NULL, 0);
		if (p == (void *)-1) {
			r = -errno;
		} else {
			touch(p);
			shmdt(p);
		}
		shmctl(id, IPC_RMID, NULL);
		bench_untrack_sysv(id);
		if (r < 0) {
			bench_error("shmat: %s", strerror(-r));
			return r;
		}
	}
	m->secs = bench_now() - t0;
	m->ops = c->n;
	return 0;
}

static int posix_cycle(void *arg, struct bench_meas *m)
{
	struct cycle *c = arg;
	double t0 = bench_now();

	for (uint64_t i = 0; i < c->n; i++) {
		int fd = shm_open(c->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), r = 0;
		void *p = MAP_FAILED;

		if (fd < 0) {
			bench_error("shm_open: %s", strerror(errno));
			return -errno;
		}
		bench_track_posix(c->name);
		if (ftruncate(fd, SEG_SIZE) == 0)
			p = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			r = -errno;
		} else {
			touch(p);
			munmap(p, SEG_SIZE);
		}
		close(fd);
		shm_unlink(c->name);
		bench_untrack_posix(c->name);
		if (r < 0) {
			bench_error("ftruncate/mmap: %s", strerror(-r));
			return r;
		}
	}
	m->secs = bench_now() - t0;
	m->ops = c->n;
	return 0;
}

static void case_create_cycle(void)
{
	struct bench_result *res = bench_new("seg.create_cycle",
					     "create+attach+touch+detach+destroy", BENCH_NS_OP);
	static const char *const names[] = { NULL, "SysV shmget..IPC_RMID", "shm_open..shm_unlink" };
	const bench_fn fns[] = { shmx_cycle, sysv_cycle, posix_cycle };
	struct cycle x = { .key = 0x4352, .n = bench_iters(2000, 5) }, s = x, p = x;
	void *const args[] = { &x, &s, &p };
	int key = bench_sysv_key();

	if (!res)
		return;
	if (key < 0) {
		bench_error("no free SysV key");
		return;
	}
	s.key = key;
	snprintf(p.name, sizeof(p.name), "/shmx-bench-%d", (int)getpid());
	bench_note(res, "%u KiB, every page written; %llu cycles per repetition", SEG_SIZE >> 10,
		   (unsigned long long)x.n);
	if (bench_interleave(res, names, fns, args, 3) == 0)
		bench_target(res, 1, true, 3);
}

/* ---- shmx_get by key: 30,000 segments against 10 ---- */

struct lookup {
	const char *ns;
	char count[16], nkeys[16], iters[16];
};

static int lookup(void *arg, struct bench_meas *m)
{
	struct lookup *l = arg;
	const char *argv[] = { "lookup", l->count, l->nkeys, l->iters, NULL };
	char out[64];
	int r = bench_run_child(l->ns, out, sizeof(out), argv);

	if (r < 0)
		return r;
	m->secs = strtod(out, NULL) * 1e-9;
	m->ops = strtoull(l->iters, NULL, 10);
	return 0;
}

/* A keeper for dir that takes max segments (the default takes 4096). */
static int start_keeper(const char *dir, const char *max)
{
	const char *argv[] = { getenv("SHMX_KEEPER"), "--namespace", dir, "--idle-exit", "0",
			       "--max-segments", max, NULL };
	posix_spawn_file_actions_t fa;
	int r, status;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	/* never our stdout: a daemon holding it would stall meson */
	for (int fd = 0; fd < 3; fd++)
		posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
	r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, NULL);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	/* its first process exits once the socket takes connections */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

static int fill_namespace(const char *ns, int count)
{
	const char *argv[] = { "create", NULL, NULL };
	char n[16], out[64];
	int r;

	snprintf(n, sizeof(n), "%d", count);
	argv[1] = n;
	r = start_keeper(ns, "32768");
	if (r < 0) {
		bench_error("starting a keeper with --max-segments 32768: %s", strerror(-r));
		return r;
	}
	return bench_run_child(ns, out, sizeof(out), argv);
}

static void case_lookup(const char *id, const char *title, bool all_keys)
{
	struct bench_result *res = bench_new(id, title, BENCH_NS_OP);
	static const char *const names[] = { NULL, "the same, 10 segments" };
	const bench_fn fns[] = { lookup, lookup };
	static const char *small, *big;
	struct lookup x, s;
	void *const args[] = { &x, &s };
	int many = bench_quick ? 300 : 30000;
	uint64_t iters = bench_iters(200000, 1000);

	if (!res)
		return;
	if (!big) {
		small = bench_make_namespace();
		big = bench_make_namespace();
		if (!small || !big) {
			bench_error("mkdtemp: %s", strerror(errno));
			return;
		}
		if (fill_namespace(small, 10) < 0 || fill_namespace(big, many) < 0) {
			big = NULL;
			return;
		}
	}
	x.ns = big;
	s.ns = small;
	snprintf(x.count, sizeof(x.count), "%d", many);
	snprintf(s.count, sizeof(s.count), "%d", 10);
	snprintf(x.nkeys, sizeof(x.nkeys), "%d", all_keys ? many : 10);
	snprintf(s.nkeys, sizeof(s.nkeys), "%d", 10);
	snprintf(x.iters, sizeof(x.iters), "%llu", (unsigned long long)iters);
	snprintf(s.iters, sizeof(s.iters), "%llu", (unsigned long long)iters);
	bench_note(res, "%d segments; %s; keepers with --max-segments 32768; %llu gets",
		   many, all_keys ? "every key in a shuffled order (10 of 10 for the anchor)" :
		   "10 keys spread over the table", (unsigned long long)iters);
	if (bench_interleave(res, names, fns, args, 2) == 0 && !all_keys)
		bench_target(res, 1, true, 1.25);
}

void bench_seg_cases(void)
{
	case_attach_detach();
	case_first_attach();
	case_create_cycle();
	case_lookup("seg.get_by_key", "shmx_get by key, 30,000 segments", false);
	case_lookup("seg.get_by_key_all", "shmx_get, all 30,000 keys in turn", true);
}

/* ---- the helper modes: "--child MODE ARGS" ---- */

static int child_first(bool sysv, key_t key)
{
	double t0, t1;
	void *p;
	int id, r;

	t0 = bench_now();
	if (sysv) {
		id = shmget(key, 0, 0);
		p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
		r = p == (void *)-1 ? -errno : (shmdt(p) < 0 ? -errno : 0);
	} else {
		id = shmx_get(key, 0, 0);
		r = id < 0 ? id : shmx_at(id, NULL, 0, &p);
		if (r == 0)
			r = shmx_dt(p);
	}
	t1 = bench_now();
	if (r < 0) {
		fprintf(stderr, "shmx-bench: first attach: %s\n", strerror(-r));
		return 1;
	}
	printf("%.0f\n", (t1 - t0) * 1e9);
	return 0;
}

static int child_create(int count)
{
	for (int i = 0; i < count; i++) {
		int id = shmx_get(LOOKUP_BASE + i, 4096, SHMX_CREAT | SHMX_EXCL | 0600);

		if (id < 0) {
			fprintf(stderr, "shmx-bench: creating segment %d: %s\n", i, strerror(-id));
			return 1;
		}
	}
	printf("%d\n", count);
	return 0;
}

static int child_lookup(int count, int nkeys, uint64_t iters)
{
	key_t *keys = malloc((size_t)nkeys * sizeof(*keys));
	unsigned seed = 12345;
	double t0;

	if (!keys || nkeys < 1 || count < nkeys)
		return 1;
	/* nkeys keys spread evenly over the count, in a shuffled order */
	for (int i = 0; i < nkeys; i++)
		keys[i] = LOOKUP_BASE + (key_t)((int64_t)i * count / nkeys);
	for (int i = nkeys - 1; i > 0; i--) {
		int j = rand_r(&seed) % (i + 1);
		key_t t = keys[i];

		keys[i] = keys[j];
		keys[j] = t;
	}
	/* connected, registry mapped, every key seen once */
	for (int i = 0; i < nkeys; i++)
		if (shmx_get(keys[i], 0, 0) < 0) {
			fprintf(stderr, "shmx-bench: key %#x not found\n", (unsigned)keys[i]);
			return 1;
		}
	t0 = bench_now();
	for (uint64_t i = 0, k = 0; i < iters; i++) {
		if (shmx_get(keys[k], 0, 0) < 0)
			return 1;
		if (++k == (uint64_t)nkeys)
			k = 0;
	}
	printf("%.0f\n", (bench_now() - t0) * 1e9);
	free(keys);
	return 0;
}

int bench_child_main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[0], "first-shmx"))
		return child_first(false, (key_t)atoi(argv[1]));
	if (argc == 2 && !strcmp(argv[0], "first-sysv"))
		return child_first(true, (key_t)atoi(argv[1]));
	if (argc == 2 && !strcmp(argv[0], "create"))
		return child_create(atoi(argv[1]));
	if (argc == 4 && !strcmp(argv[0], "lookup"))
		return child_lookup(atoi(argv[1]), atoi(argv[2]), strtoull(argv[3], NULL, 10));
	fprintf(stderr, "shmx-bench: unknown helper mode\n");
	return 2;
}
