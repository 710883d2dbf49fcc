/* SPDX-License-Identifier: MIT */
/*
 * shmx-bench: main, the private namespace and the cleanup of everything the
 * run made, the interleaved repetitions (the output is in report.c).
 *
 *   shmx-bench [--json] [--quick] [--reps N] [--only SUBSTRING] [--strict]
 *
 * Each case runs in a namespace of its own making (SHMX_NAMESPACE, a mkdtemp
 * directory), with the keeper of $SHMX_KEEPER (else the one built beside
 * this program); the directories, SysV segments and POSIX shm objects it
 * made are removed at the end, also when a case fails or hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmx.h>

#include "bench.h"
#include "registry.h"

#define MAX_RESULTS 24
#define MAX_TRACKED 64

extern char **environ;

bool bench_quick;
int bench_reps = 7;
const char *bench_self;

static struct bench_result results[MAX_RESULTS];
static int nresults;
static struct bench_result *current;    /* the case being measured */
static double started;                  /* when it began */
static const char *only;
static pid_t main_pid;

static int sysv_ids[MAX_TRACKED];
static int nsysv;
static char posix_names[MAX_TRACKED][64];
static char dirs[MAX_TRACKED][PATH_MAX];
static int ndirs;

/* ---- small things ---- */

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t bench_iters(uint64_t full, uint64_t quick)
{
	return bench_quick ? quick : full;
}

void bench_error(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (getpid() != main_pid || !current) {
		fprintf(stderr, "shmx-bench[%d]: %s\n", (int)getpid(), buf);
		return;
	}
	if (!current->error[0])
		snprintf(current->error, sizeof(current->error), "%s", buf);
}

/* ---- cleanup ---- */

void bench_track_sysv(int shmid)
{
	if (nsysv < MAX_TRACKED)
		sysv_ids[nsysv++] = shmid;
}

void bench_untrack_sysv(int shmid)
{
	for (int i = 0; i < nsysv; i++)
		if (sysv_ids[i] == shmid) {
			sysv_ids[i] = sysv_ids[--nsysv];
			return;
		}
}

void bench_track_posix(const char *name)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (!posix_names[i][0]) {
			snprintf(posix_names[i], sizeof(posix_names[i]), "%s", name);
			return;
		}
}

void bench_untrack_posix(const char *name)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (!strcmp(posix_names[i], name))
			posix_names[i][0] = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* The keeper of a namespace, from its registry's header (0: none). */
static pid_t keeper_of(const char *dir)
{
	struct shmx_reg_header h;
	char path[PATH_MAX], comm[32] = "";
	int fd;
	FILE *f;

	snprintf(path, sizeof(path), "%s/registry", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != SHMX_REG_MAGIC)
		h.keeper_pid = 0;
	close(fd);
	if (h.keeper_pid <= 0)
		return 0;
	/* a pid reused since is not ours to wait for */
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)h.keeper_pid);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
	}
	return strncmp(comm, "shmxd", 5) ? 0 : h.keeper_pid;
}

static void cleanup(void)
{
	pid_t keepers[MAX_TRACKED];
	int nkeepers = 0;

	if (getpid() != main_pid)
		return;
	for (int i = 0; i < nsysv; i++)
		shmctl(sysv_ids[i], IPC_RMID, NULL);
	nsysv = 0;
	for (int i = 0; i < MAX_TRACKED; i++)
		if (posix_names[i][0]) {
			shm_unlink(posix_names[i]);
			posix_names[i][0] = 0;
		}
	for (int i = 0; i < ndirs; i++) {
		pid_t k = keeper_of(dirs[i]);

		if (k > 0)
			keepers[nkeepers++] = k;
		nftw(dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	ndirs = 0;
	/* a keeper leaves within a second of its socket file's removal */
	for (int t = 0; t < 30 && nkeepers; t++) {
		int alive = 0;

		for (int i = 0; i < nkeepers; i++)
			if (keepers[i] > 0 && kill(keepers[i], 0) == 0)
				alive++;
		if (!alive)
			return;
		usleep(100 * 1000);
	}
	for (int i = 0; i < nkeepers; i++)
		if (keepers[i] > 0 && kill(keepers[i], SIGTERM) == 0)
			fprintf(stderr, "shmx-bench: keeper %d still running: killed\n",
				(int)keepers[i]);
}

static void on_signal(int sig)
{
	static const char msg[] = "shmx-bench: interrupted or hung; cleaning up\n";

	if (getpid() == main_pid) {
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing to do */
		}
		cleanup();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

void bench_watchdog(int secs)
{
	alarm((unsigned)secs);
}

const char *bench_make_namespace(void)
{
	char *d;

	if (ndirs == MAX_TRACKED)
		return NULL;
	snprintf(dirs[ndirs], sizeof(dirs[ndirs]), "/tmp/shmx-bench.XXXXXX");
	d = mkdtemp(dirs[ndirs]);       /* mode 0700 */
	if (!d)
		return NULL;
	return dirs[ndirs++];
}

int bench_sysv_key(void)
{
	static unsigned seed;

	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	for (int i = 0; i < 1000; i++) {
		key_t key = (key_t)(0x5b000000u | (rand_r(&seed) & 0xffffff));

		if (shmget(key, 0, 0) < 0 && errno == ENOENT)
			return key;
	}
	return -EEXIST;
}

/* ---- helper processes ---- */

int bench_run_child(const char *ns, char *out, size_t outsz, const char *const *argv)
{
	const char *args[16];
	char **envp, nsvar[PATH_MAX + 32];
	posix_spawn_file_actions_t fa;
	int n = 0, p[2], status, r;
	size_t got = 0, envc = 0;
	pid_t pid;

	args[n++] = "shmx-bench";
	args[n++] = "--child";
	for (int i = 0; argv[i] && n < 15; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	while (environ[envc])
		envc++;
	envp = calloc(envc + 2, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	envc = 0;
	for (char **e = environ; *e; e++)
		if (!ns || strncmp(*e, "SHMX_NAMESPACE=", 15))
			envp[envc++] = *e;
	if (ns) {
		snprintf(nsvar, sizeof(nsvar), "SHMX_NAMESPACE=%s", ns);
		envp[envc++] = nsvar;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		free(envp);
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	/* posix_spawn runs no atfork handlers: the library's state stays ours */
	r = posix_spawn(&pid, bench_self, &fa, NULL, (char *const *)args, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	close(p[1]);
	if (r) {
		close(p[0]);
		return -r;
	}
	for (;;) {
		ssize_t k = read(p[0], out + got, outsz - 1 - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || (got += (size_t)k) == outsz - 1)
			break;
	}
	out[got] = 0;
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		bench_error("helper %s %s: %s %d", argv[0], argv[1] ? argv[1] : "",
			    WIFEXITED(status) ? "exit" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -ECHILD;
	}
	return 0;
}

/* ---- results ---- */

struct bench_result *bench_new(const char *id, const char *title, enum bench_unit unit)
{
	struct bench_result *res;

	if (only && !strstr(id, only))
		return NULL;
	if (nresults == MAX_RESULTS) {
		fprintf(stderr, "shmx-bench: too many cases\n");
		exit(1);
	}
	if (current && !bench_quick && !getenv("BENCH_SILENT"))
		fprintf(stderr, "shmx-bench: %s took %.1f s\n", current->id, bench_now() - started);
	started = bench_now();
	res = &results[nresults++];
	memset(res, 0, sizeof(*res));
	res->id = id;
	res->title = title;
	res->unit = unit;
	current = res;
	if (!bench_quick && !getenv("BENCH_SILENT"))
		fprintf(stderr, "shmx-bench: %s ...\n", id);
	return res;
}

void bench_note(struct bench_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->note, sizeof(res->note), fmt, ap);
	va_end(ap);
}

void bench_skip(struct bench_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->skipped, sizeof(res->skipped), fmt, ap);
	va_end(ap);
}

static double figure(enum bench_unit unit, const struct bench_meas *m)
{
	switch (unit) {
	case BENCH_NS_OP:
		return m->ops ? m->secs * 1e9 / (double)m->ops : 0;
	case BENCH_US_RT:
		return m->ops ? m->secs * 1e6 / (double)m->ops : 0;
	case BENCH_MSGS:
		return m->secs > 0 ? (double)m->ops / m->secs : 0;
	case BENCH_GBS:
		return m->secs > 0 ? (double)m->bytes / m->secs / 1e9 : 0;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Tasks that want a CPU now, this process included (/proc/stat). */
static int runnable(void)
{
	char line[128];
	int n = -1;
	FILE *f = fopen("/proc/stat", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "procs_running %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/*
 * A shared machine runs others' work in bursts: a measurement waits up to
 * half a second for a moment in which nothing else wants a CPU.  Returns
 * whether it found one.
 */
static bool wait_quiet(void)
{
	double until = bench_now() + 0.5;

	if (bench_quick)
		return true;
	while (runnable() > 1) {
		if (bench_now() > until)
			return false;
		usleep(10000);
	}
	return true;
}

static double median(const double *v, int n)
{
	double s[BENCH_MAX_REPS];

	if (n <= 0)
		return 0;
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

int bench_interleave(struct bench_result *res, const char *const *names,
		     const bench_fn *fns, void *const *args, int n)
{
	current = res;
	res->nfig = n;
	for (int i = 0; i < n; i++) {
		res->fig[i].name = i ? names[i] : res->title;
		res->fig[i].n = 0;
	}
	for (int rep = 0; rep < bench_reps; rep++) {
		for (int k = 0; k < n; k++) {
			int i = (k + rep) % n, r;
			struct bench_meas m = { 0 };

			if (!wait_quiet())
				res->busy_starts++;
			bench_watchdog(bench_quick ? 60 : 300);
			r = fns[i](args[i], &m);
			bench_watchdog(0);
			if (r < 0) {
				if (!res->error[0])
					snprintf(res->error, sizeof(res->error), "%s: %s",
						 res->fig[i].name, strerror(-r));
				return r;
			}
			res->fig[i].samples[res->fig[i].n++] = figure(res->unit, &m);
		}
	}
	for (int i = 0; i < n; i++)
		res->fig[i].median = median(res->fig[i].samples, res->fig[i].n);
	return 0;
}

void bench_target(struct bench_result *res, int anchor, bool at_most, double value)
{
	struct bench_target *t;

	if (res->ntgt == BENCH_MAX_TARGETS || anchor <= 0 || anchor >= res->nfig)
		return;
	t = &res->tgt[res->ntgt++];
	t->anchor = anchor;
	t->at_most = at_most;
	t->value = value;
	t->ratio = res->fig[anchor].median > 0 ? res->fig[0].median / res->fig[anchor].median : 0;
	t->met = at_most ? t->ratio <= value : t->ratio >= value;
	if (res->fig[0].median <= 0 || res->fig[anchor].median <= 0)
		t->met = false;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f, "Usage: shmx-bench [--json] [--quick] [--reps N] [--only SUBSTRING] [--strict]\n"
		"  --json      one JSON object on stdout instead of the table\n"
		"  --quick     tiny iterations: checks that every case runs (figures mean nothing)\n"
		"  --reps N    repetitions of each case and anchor (default 7, at most %d)\n"
		"  --only S    only the cases whose id contains S\n"
		"  --strict    exit 2 when a target is missed\n", BENCH_MAX_REPS);
}

static int find_keeper(void)
{
	static char path[PATH_MAX];
	char *slash;

	if (getenv("SHMX_KEEPER"))
		return 0;
	/* run from the build directory: bench/shmx-bench, src/keeper/shmxd */
	snprintf(path, sizeof(path), "%s", bench_self);
	slash = strrchr(path, '/');
	if (!slash)
		return -ENOENT;
	snprintf(slash, sizeof(path) - (size_t)(slash - path), "/../src/keeper/shmxd");
	if (access(path, X_OK) < 0)
		return -ENOENT;
	setenv("SHMX_KEEPER", path, 1);
	return 0;
}

int main(int argc, char **argv)
{
	static char self[PATH_MAX];
	bool json = false, strict = false;
	struct sigaction sa;
	const char *ns;
	ssize_t n;
	int missed = 0, failed = 0;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		perror("shmx-bench: /proc/self/exe");
		return 1;
	}
	self[n] = 0;
	bench_self = self;
	main_pid = getpid();
	if (argc > 1 && !strcmp(argv[1], "--child"))
		return bench_child_main(argc - 2, argv + 2);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--quick")) {
			bench_quick = true;
		} else if (!strcmp(argv[i], "--strict")) {
			strict = true;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			bench_reps = atoi(argv[++i]);
			if (bench_reps < 1 || bench_reps > BENCH_MAX_REPS) {
				usage(stderr);
				return 2;
			}
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (bench_quick)
		bench_reps = bench_reps > 2 ? 2 : bench_reps;
	if (find_keeper() < 0) {
		fprintf(stderr, "shmx-bench: set SHMX_KEEPER to the shmxd to use\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	atexit(cleanup);
	ns = bench_make_namespace();
	if (!ns) {
		perror("shmx-bench: mkdtemp");
		return 1;
	}
	setenv("SHMX_NAMESPACE", ns, 1);

	bench_seg_cases();
	bench_ring_cases();
	if (current && !bench_quick && !getenv("BENCH_SILENT"))
		fprintf(stderr, "shmx-bench: %s took %.1f s\n", current->id, bench_now() - started);
	current = NULL;

	if (json)
		bench_print_json(results, nresults);
	else
		bench_print_table(results, nresults);
	fflush(stdout);
	for (int i = 0; i < nresults; i++) {
		failed += !!results[i].error[0];
		for (int j = 0; j < results[i].ntgt; j++)
			missed += !results[i].tgt[j].met;
	}
	cleanup();
	if (failed)
		return 1;
	return strict && missed ? 2 : 0;
}
