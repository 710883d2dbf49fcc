/* SPDX-License-Identifier: MIT */
/*
 * shmx(1): the ipcs/ipcrm of libshmx.  Looking reads the registry directly
 * (view.c) and never starts a keeper; changing goes through the public API.
 */
#ifndef SHMX_TOOL_TOOL_H
#define SHMX_TOOL_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"
#include "registry.h"

/* Exit codes (shmx(1), EXIT STATUS) */
#define EXIT_OK     0
#define EXIT_FAILED 1           /* an item failed, was not found, or no namespace */
#define EXIT_USAGE  2

struct tool_opts {
	bool json;              /* --json */
	bool human;             /* -h, --human */
	bool lng;               /* -l, --long */
};

/* One live record, as the registry had it when the view was taken. */
struct view_seg {
	uint32_t slot;
	struct shmx_reg_record rec;
	struct shmx_ds ds;
};

/* What a namespace holds, read without starting a keeper. */
struct view {
	char path[PATH_MAX];
	bool exists;            /* the directory; false only for a missing default */
	struct shmx_ns ns;
	bool have_reg;          /* a registry file was found and mapped */
	struct shmx_reg reg;
	struct shmx_reg_header hdr;     /* limits, and usage counters consistent */
	bool synced;            /* a keeper answered SYNC: counts and rss are exact */
	bool keeper_alive;      /* the header's keeper_pid is that keeper, running */
	struct view_seg *segs;  /* slot order */
	size_t nsegs;
};

/* view.c */
int view_open(struct view *v);
void view_close(struct view *v);
const struct view_seg *view_find_id(const struct view *v, int id);
const struct view_seg *view_find_key(const struct view *v, int32_t key);
/* Holder entries of a live record: fills at most n, returns how many there are. */
size_t view_holders(const struct view *v, const struct view_seg *s,
		    struct shmx_reg_holder *out, size_t n);

/* show.c */
int cmd_ls(const struct view *v, const struct tool_opts *o);
int cmd_ipcs(const struct view *v, const struct tool_opts *o);
int cmd_stat(const struct view *v, const struct view_seg *s, const struct tool_opts *o);
int cmd_info(const struct view *v, const struct tool_opts *o);
/* util-linux's size_to_human_string(SIZE_SUFFIX_1LETTER): 4K, 976.6K, 100B */
void human_size(uint64_t bytes, char *buf, size_t n);

/* shmx.c */
__attribute__((format(printf, 1, 2)))
void tool_err(const char *fmt, ...);
/* A short explanation of an error of a segment operation, or "" */
const char *tool_hint(int err);

#endif
