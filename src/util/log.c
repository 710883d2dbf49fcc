/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static enum shmx_log_level threshold = SHMX_LOG_NONE;
static const char *prefix = "libshmx";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	const char *v = getenv("SHMX_LOG");

	if (!v)
		return;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i]))
			threshold = (enum shmx_log_level)i;
}

enum shmx_log_level shmx_log_threshold(void)
{
	pthread_once(&once, read_env);
	return threshold;
}

void shmx_log_set_threshold(enum shmx_log_level level)
{
	pthread_once(&once, read_env);
	threshold = level;
}

void shmx_log_set_prefix(const char *p)
{
	prefix = p;
}

void shmx_log(enum shmx_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "debug", "info", "warn", "error" };
	char line[512];
	int saved = errno;
	va_list ap;
	int n;

	if (level < shmx_log_threshold() || level >= SHMX_LOG_NONE)
		return;
	n = snprintf(line, sizeof(line), "%s[%d] %s: ", prefix, (int)getpid(), tags[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* one write, so lines of several processes don't interleave */
	if (write(STDERR_FILENO, line, strlen(line)) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}
