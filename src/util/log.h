/* SPDX-License-Identifier: MIT */
/* Logging through SHMX_LOG (debug, info, warn, error) to stderr; silent by default. */
#ifndef SHMX_UTIL_LOG_H
#define SHMX_UTIL_LOG_H

enum shmx_log_level {
	SHMX_LOG_DEBUG,
	SHMX_LOG_INFO,
	SHMX_LOG_WARN,
	SHMX_LOG_ERROR,
	SHMX_LOG_NONE,
};

/* The threshold from SHMX_LOG, read once; the keeper may set it. */
enum shmx_log_level shmx_log_threshold(void);
void shmx_log_set_threshold(enum shmx_log_level level);
void shmx_log_set_prefix(const char *prefix);

__attribute__((format(printf, 2, 3)))
void shmx_log(enum shmx_log_level level, const char *fmt, ...);

#define log_debug(...) shmx_log(SHMX_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  shmx_log(SHMX_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  shmx_log(SHMX_LOG_WARN, __VA_ARGS__)
#define log_error(...) shmx_log(SHMX_LOG_ERROR, __VA_ARGS__)

#endif
