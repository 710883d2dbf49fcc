/* SPDX-License-Identifier: MIT */
/*
 * Producer and consumer processes, started together: the producers are
 * forked children, the consumer is the parent.  Every producer sets itself
 * up, says it is ready and waits; the parent starts the clock and lets them
 * go, and stops it when its consumer has taken the last message.  So set-up
 * (opening a ring, fork itself) is never timed.
 *
 * The data is touched as a real program would, the same for every
 * transport: the producer writes every byte of each message into the
 * transport (a send or write copies it from a source buffer in which
 * bench_fill has stamped the message's number; a zero-copy producer copies
 * the source buffer into its slot), and the consumer reads every byte (a
 * recv or read copies it out; a zero-copy consumer sums it in place), then
 * bench_check looks at the stamps: lost, reordered or torn messages fail.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

struct pair_sync {
	_Atomic int ready;
	_Atomic int go;
};

static struct pair_sync *sync_page(void)
{
	static struct pair_sync *s;

	if (!s) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return NULL;
		s = p;
	}
	return s;
}

void bench_pair_ready(void)
{
	struct pair_sync *s = sync_page();

	atomic_fetch_add(&s->ready, 1);
	while (!atomic_load(&s->go))
		sched_yield();
}

/* Waits for every producer to exit (they end on their own once done). */
static int reap(pid_t *pids, int n, bool kill_them)
{
	int r = 0, status;

	for (int i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		if (kill_them)
			kill(pids[i], SIGKILL);
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!kill_them && (!WIFEXITED(status) || WEXITSTATUS(status))) {
			bench_error("producer %d: %s %d", i, WIFEXITED(status) ? "exit" : "signal",
				    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			r = -ECHILD;
		}
	}
	return r;
}

int bench_pair_run(const struct bench_pair *p, double *secs)
{
	struct pair_sync *s = sync_page();
	pid_t pids[8] = { 0 };
	pid_t parent = getpid();
	double t0, t1;
	int r;

	if (!s || p->nprod < 1 || p->nprod > 8)
		return -EINVAL;
	atomic_store(&s->ready, 0);
	atomic_store(&s->go, 0);
	r = p->cons_setup ? p->cons_setup(p->arg) : 0;
	if (r < 0)
		goto done;
	fflush(NULL);
	for (int i = 0; i < p->nprod; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			r = -errno;
			goto fail;
		}
		if (pids[i] == 0) {
			/* never outlive the run */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(p->prod(p->arg, i) < 0 ? 1 : 0);
		}
	}
	while (atomic_load(&s->ready) < p->nprod) {
		int status;

		for (int i = 0; i < p->nprod; i++)
			if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				bench_error("producer %d ended before it was ready", i);
				pids[i] = 0;
				r = -ECHILD;
				goto fail;
			}
		sched_yield();
	}
	r = p->cons_ready ? p->cons_ready(p->arg) : 0;
	if (r < 0)
		goto fail;
	t0 = bench_now();
	atomic_store(&s->go, 1);
	r = p->cons_run(p->arg);
	t1 = bench_now();
	if (r < 0)
		goto fail;
	*secs = t1 - t0;
	r = reap(pids, p->nprod, false);
	goto done;
fail:
	reap(pids, p->nprod, true);
done:
	if (p->cons_done)
		p->cons_done(p->arg);
	return r;
}

/* Message numbers at both ends: a message that is lost, reordered or torn
 * (its end from another message) does not pass bench_check. */
static void stamp(void *p, size_t len, uint64_t seq)
{
	memcpy(p, &seq, 8);
	memcpy((char *)p + len - 8, &seq, 8);
}

void bench_fill(void *p, size_t len, uint64_t seq)
{
	/* --quick checks every byte; the figures then mean nothing anyway */
	if (bench_quick)
		memset(p, bench_msg_byte(seq), len);
	stamp(p, len, seq);
}

static bool check(const void *p, size_t len, uint64_t seq)
{
	const unsigned char *c = p;
	uint64_t head, tail;

	memcpy(&head, c, 8);
	memcpy(&tail, c + len - 8, 8);
	if (head != seq || tail != seq)
		return false;
	for (size_t i = 8; bench_quick && i < len - 8; i++)
		if (c[i] != bench_msg_byte(seq))
			return false;
	return true;
}

bool bench_check(const void *p, size_t len, uint64_t seq)
{
	return len >= 16 && check(p, len, seq);
}

bool bench_check_any(const void *p, size_t len)
{
	uint64_t seq;

	if (len < 16)
		return false;
	memcpy(&seq, p, 8);
	return check(p, len, seq);
}

uint64_t bench_read_all(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t s = 0, w;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, c + i, 8);
		s += w;
	}
	return s;
}
