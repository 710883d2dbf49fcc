/* SPDX-License-Identifier: MIT */
/* A reproducible byte pattern, written by one process and checked by another. */
#ifndef SHMX_TESTS_PATTERN_H
#define SHMX_TESTS_PATTERN_H

#include <stddef.h>
#include <stdint.h>

static inline uint8_t tc_pattern_byte(unsigned seed, size_t i)
{
	/* differs between neighbouring bytes, pages and seeds */
	return (uint8_t)(seed * 131u + i * 7u + (i >> 12) * 13u + 1u);
}

static inline void tc_fill(void *p, size_t len, unsigned seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = tc_pattern_byte(seed, i);
}

/* -1 when p holds the pattern, else the offset of the first wrong byte. */
static inline long tc_verify(const void *p, size_t len, unsigned seed)
{
	const volatile uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != tc_pattern_byte(seed, i))
			return (long)i;
	return -1;
}

#endif
