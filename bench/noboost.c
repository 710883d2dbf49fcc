/* SPDX-License-Identifier: MIT */
/* Built where Boost.Interprocess is not found: its cases are skipped. */
#include <errno.h>

#include "bench.h"

bool bench_boost_available(void)
{
	return false;
}

int bench_boost_stream(void *arg, struct bench_meas *m)
{
	(void)arg;
	(void)m;
	return -ENOSYS;
}
