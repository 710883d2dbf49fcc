/* SPDX-License-Identifier: MIT */
/*
 * The benchmark suite: each case is measured side by side with its anchors
 * (the kernel's or another library's way of doing the same), repetition by
 * repetition in turn, and the medians are compared with a target ratio.
 *
 * bench.c   main, options, the private namespace, cleanup, repetitions
 * report.c  the table and the JSON
 * seg.c     segments: attach/detach, first attach, create cycle, lookups
 * ring.c    rings: streams, zero copy, ping-pong, two producers
 * anchors.c pipe, AF_UNIX SOCK_SEQPACKET, the limit ring, raw futex
 * pair.c    producer/consumer processes started together, data touching
 * boost.cc  Boost.Interprocess message_queue (built where Boost is found)
 */
#ifndef SHMX_BENCH_H
#define SHMX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_MAX_REPS 15
#define BENCH_MAX_FIGS 4
#define BENCH_MAX_TARGETS 4

/* What one run of a case or an anchor measured. */
struct bench_meas {
	double secs;
	uint64_t ops;           /* messages, round trips, calls */
	uint64_t bytes;         /* payload moved (GB/s) */
};

/* How a row's figure is derived from its measurements. */
enum bench_unit {
	BENCH_NS_OP,            /* ns per operation, lower is better */
	BENCH_US_RT,            /* µs per round trip, lower is better */
	BENCH_MSGS,             /* messages per second, higher is better */
	BENCH_GBS,              /* payload GB/s (1e9 bytes), higher is better */
};

/* Measures once; returns 0, or a negative errno with bench_error() called. */
typedef int (*bench_fn)(void *arg, struct bench_meas *m);

struct bench_fig {
	const char *name;
	double samples[BENCH_MAX_REPS];
	int n;
	double median;
};

struct bench_target {
	int anchor;             /* index into fig[] */
	bool at_most;           /* ratio <= value (times), else ratio >= value */
	double value;
	double ratio;           /* fig[0] / fig[anchor] */
	bool met;
};

struct bench_result {
	const char *id;         /* JSON key: "seg.attach_detach" */
	const char *title;      /* table text */
	enum bench_unit unit;
	char note[160];         /* capacities, sizes: said in the output */
	struct bench_fig fig[BENCH_MAX_FIGS];   /* [0] the case, then anchors */
	int nfig;
	struct bench_target tgt[BENCH_MAX_TARGETS];
	int ntgt;
	int busy_starts;        /* measurements begun while others wanted a CPU */
	char skipped[160];      /* why, when the case could not run here */
	char error[256];        /* what failed */
};

/* ---- options (bench.c) ---- */
extern bool bench_quick;        /* tiny iterations: the smoke test */
extern int bench_reps;          /* repetitions of each case and anchor */

/* Iterations scaled for --quick (at least min). */
uint64_t bench_iters(uint64_t full, uint64_t quick);

/* ---- results (bench.c) ---- */
struct bench_result *bench_new(const char *id, const char *title, enum bench_unit unit);
void bench_note(struct bench_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bench_skip(struct bench_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Records the first error of the case being measured (any process may call
 * it before it reports failure; the parent's copy is what counts). */
void bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Runs fns[0] (the case, named res->title) and fns[1..n-1] (anchors named
 * names[1..]) bench_reps times each, interleaved (the order rotates every
 * repetition), and stores each one's median.  Returns 0 or a negative errno
 * (res->error says what).
 */
int bench_interleave(struct bench_result *res, const char *const *names,
		     const bench_fn *fns, void *const *args, int n);
/* Adds a target on the ratio fig[0] / fig[anchor]. */
void bench_target(struct bench_result *res, int anchor, bool at_most, double value);

/* ---- output (report.c) ---- */
void bench_print_table(const struct bench_result *results, int nresults);
void bench_print_json(const struct bench_result *results, int nresults);

/* ---- cleanup of what a benchmark made outside its namespace (bench.c) ---- */
void bench_track_sysv(int shmid);       /* IPC_RMID at the end */
void bench_untrack_sysv(int shmid);
void bench_track_posix(const char *name);       /* shm_unlink at the end */
void bench_untrack_posix(const char *name);

/* A new directory for a namespace (mode 0700), removed at the end. */
const char *bench_make_namespace(void);
/* SysV keys this run may use: random, each checked free (IPC_CREAT|IPC_EXCL). */
int bench_sysv_key(void);

/* ---- helper processes (bench.c) ---- */
extern const char *bench_self;          /* /proc/self/exe, resolved */
/* fork+exec this binary with "--child" argv..., env SHMX_NAMESPACE=ns when
 * ns is not NULL; returns the child's stdout (one line) in out. */
int bench_run_child(const char *ns, char *out, size_t outsz, const char *const *argv);
int bench_child_main(int argc, char **argv);    /* seg.c: the --child modes */

/* ---- time ---- */
double bench_now(void);                 /* CLOCK_MONOTONIC, seconds */
void bench_watchdog(int secs);          /* kill the run if a measurement hangs */

/* ---- producer/consumer processes (pair.c) ---- */
struct bench_pair {
	int nprod;
	/* in each child: set up, bench_pair_ready(), then produce */
	int (*prod)(void *arg, int idx);
	/* in the parent, before the children start, after they are ready
	 * (untimed), the timed part, and after (always called) */
	int (*cons_setup)(void *arg);
	int (*cons_ready)(void *arg);
	int (*cons_run)(void *arg);
	void (*cons_done)(void *arg);
	void *arg;
};
int bench_pair_run(const struct bench_pair *p, double *secs);
/* Producers call it once set up: counts them ready and waits for the start. */
void bench_pair_ready(void);

/* Message contents: the message's number in its first and last 8 bytes
 * (len >= 16); with --quick every other byte is bench_msg_byte(number) and
 * checked too. */
static inline uint8_t bench_msg_byte(uint64_t seq)
{
	return (uint8_t)(seq * 131 + 7);
}
void bench_fill(void *p, size_t len, uint64_t seq);
/* false if p is not message seq (any message, for bench_check_any) */
bool bench_check(const void *p, size_t len, uint64_t seq);
bool bench_check_any(const void *p, size_t len);
/* Reads every byte in place (zero-copy consumers); the sum is a sink. */
uint64_t bench_read_all(const void *p, size_t len);

/* ---- the cases ---- */
void bench_seg_cases(void);
void bench_ring_cases(void);

/* anchors.c: each measures n messages of len bytes from a producer process
 * to the parent; cap is the buffer to match (pipe size, ring capacity) */
struct bench_stream {
	size_t len;
	uint64_t n;
	size_t cap;
	int nprod;              /* producers (anchors: 1) */
	key_t key;              /* rings: the key to use */
	void *priv;             /* the transport's state */
};
int bench_pipe_stream(void *arg, struct bench_meas *m);
int bench_seqpacket_stream(void *arg, struct bench_meas *m);
int bench_limit_stream(void *arg, struct bench_meas *m);
/* round trips of len bytes: n in arg->n */
int bench_pipe_pingpong(void *arg, struct bench_meas *m);
int bench_futex_pingpong(void *arg, struct bench_meas *m);

/* boost.cc (or its absence) */
bool bench_boost_available(void);
int bench_boost_stream(void *arg, struct bench_meas *m);

#ifdef __cplusplus
}
#endif

#endif /* SHMX_BENCH_H */
