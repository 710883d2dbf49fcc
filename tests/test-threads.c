/* SPDX-License-Identifier: MIT */
/* Threads of one process using the library at once: results and counts stay exact. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define THREADS 8
#define ROUNDS 200
#define HOLD 4

struct worker {
	int n;
	pthread_barrier_t *barrier;
	int shared_id[2];               /* what each thread got for the shared keys */
	int own_id;
	void *held[HOLD];
	char err[256];
};

#define WFAIL(w, ...) do {						\
		if (!(w)->err[0])					\
			snprintf((w)->err, sizeof((w)->err), __VA_ARGS__); \
		return;							\
	} while (0)

static void work(struct worker *w)
{
	for (int i = 0; i < 2; i++) {
		w->shared_id[i] = shmx_get(tc_key(1 + i), 65536, SHMX_CREAT | 0600);
		if (w->shared_id[i] < 0)
			WFAIL(w, "get shared %d: %d", i, w->shared_id[i]);
	}
	w->own_id = shmx_get(tc_key(100 + w->n), 4096, SHMX_CREAT | SHMX_EXCL | 0600);
	if (w->own_id < 0)
		WFAIL(w, "get own: %d", w->own_id);
	for (int r = 0; r < ROUNDS; r++) {
		int id = (r % 3 == 2) ? w->own_id : w->shared_id[r % 2];
		struct shmx_ds ds;
		char *p = NULL;
		int e;

		e = shmx_at(id, NULL, (r & 4) ? SHMX_RDONLY : 0, (void **)&p);
		if (e < 0)
			WFAIL(w, "round %d: at: %d", r, e);
		if (!(r & 4))
			p[w->n * 64 + r % 64] = (char)r;       /* each thread its own bytes */
		e = shmx_ctl(id, SHMX_STAT, &ds);
		if (e < 0)
			WFAIL(w, "round %d: stat: %d", r, e);
		if (ds.nattch < 1)
			WFAIL(w, "round %d: nattch %llu while attached", r,
			      (unsigned long long)ds.nattch);
		e = shmx_dt(p);
		if (e < 0)
			WFAIL(w, "round %d: dt: %d", r, e);
	}
	/* hold a few, so the main thread can count them */
	for (int i = 0; i < HOLD; i++) {
		int e = shmx_at(w->shared_id[0], NULL, 0, &w->held[i]);

		if (e < 0)
			WFAIL(w, "hold %d: %d", i, e);
	}
}

static void release(struct worker *w)
{
	for (int i = 0; i < HOLD && w->held[i]; i++) {
		int e = shmx_dt(w->held[i]);

		if (e < 0)
			WFAIL(w, "release %d: %d", i, e);
	}
}

static void *churn(void *arg)
{
	struct worker *w = arg;

	/* every thread meets every barrier, failed or not */
	pthread_barrier_wait(w->barrier);       /* go */
	work(w);
	pthread_barrier_wait(w->barrier);       /* held */
	pthread_barrier_wait(w->barrier);       /* counted */
	release(w);
	return NULL;
}

static void threads_get_attach_stat_detach(void **state)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];
	pthread_barrier_t barrier;
	struct shmx_ds ds;

	(void)state;
	assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS + 1), 0);
	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].n = i;
		w[i].barrier = &barrier;
		assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
	}
	pthread_barrier_wait(&barrier);         /* go */
	pthread_barrier_wait(&barrier);         /* all hold */
	{
		struct shmx_ds d0, d1;
		int r0 = shmx_ctl(w[0].shared_id[0], SHMX_STAT, &d0);
		int r1 = shmx_ctl(w[0].shared_id[1], SHMX_STAT, &d1);

		pthread_barrier_wait(&barrier); /* let go, before any assert */
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&barrier);
		for (int i = 0; i < THREADS; i++)
			if (w[i].err[0])
				fail_msg("thread %d: %s", i, w[i].err);
		for (int i = 1; i < THREADS; i++) {
			assert_int_equal(w[i].shared_id[0], w[0].shared_id[0]);
			assert_int_equal(w[i].shared_id[1], w[0].shared_id[1]);
		}
		assert_int_equal(r0, 0);
		assert_int_equal(r1, 0);
		assert_int_equal(d0.nattch, THREADS * HOLD);
		assert_int_equal(d1.nattch, 0);
	}
	/* two shared segments and one per thread; nobody attached */
	assert_int_equal(shmx_list(NULL, 0), 2 + THREADS);
	for (int i = 0; i < THREADS; i++) {
		tc_stat(w[i].own_id, &ds);
		assert_int_equal(ds.nattch, 0);
	}
	tc_stat(w[0].shared_id[0], &ds);
	assert_int_equal(ds.nattch, 0);
	{
		char *p = tc_attach(w[0].shared_id[0], SHMX_RDONLY);

		/* the last write of each thread to its own bytes landed */
		for (int i = 0; i < THREADS; i++) {
			int last = -1;

			for (int r = 0; r < ROUNDS; r++)
				if (r % 3 != 2 && r % 2 == 0 && !(r & 4) && r % 64 == 0)
					last = r;
			if (last >= 0)
				assert_int_equal(p[i * 64], (char)last);
		}
		assert_int_equal(shmx_dt(p), 0);
	}
}

struct creator {
	int n;
	int ids[32];
	int err;
};

static void *create_remove(void *arg)
{
	struct creator *c = arg;

	for (int i = 0; i < 32; i++) {
		c->ids[i] = shmx_get(SHMX_PRIVATE, 4096, SHMX_CREAT | 0600);
		if (c->ids[i] < 0) {
			c->err = c->ids[i];
			return NULL;
		}
	}
	for (int i = 0; i < 32; i += 2) {
		int e = shmx_ctl(c->ids[i], SHMX_RMID, NULL);

		if (e < 0) {
			c->err = e;
			return NULL;
		}
	}
	return NULL;
}

static void threads_create_and_remove(void **state)
{
	struct creator c[THREADS];
	pthread_t t[THREADS];
	struct shmx_info info;
	struct shmx_ds ds;

	(void)state;
	for (int i = 0; i < THREADS; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].n = i;
		assert_int_equal(pthread_create(&t[i], NULL, create_remove, &c[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS; i++)
		if (c[i].err)
			fail_msg("thread %d: %s", i, strerror(-c[i].err));
	/* every id distinct; the removed ones removed, the others there */
	for (int i = 0; i < THREADS; i++)
		for (int k = 0; k < 32; k++) {
			for (int j = 0; j < THREADS; j++)
				for (int l = 0; l < 32; l++)
					if ((i != j || k != l) && c[i].ids[k] == c[j].ids[l])
						fail_msg("id %d given twice", c[i].ids[k]);
			assert_int_equal(shmx_ctl(c[i].ids[k], SHMX_STAT, &ds), (k % 2) ? 0 : -EIDRM);
		}
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, THREADS * 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(threads_get_attach_stat_detach),
		tc_test(threads_create_and_remove),
	};

	return tc_run_tests("threads", tests);
}
