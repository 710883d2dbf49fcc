/* SPDX-License-Identifier: MIT */
/*
 * The library's per-process state: namespace, connection to the keeper,
 * registry mapping, descriptor cache and attachment table.  One mutex guards
 * all of it; every public function takes it for its whole run.
 */
#ifndef SHMX_CLIENT_H
#define SHMX_CLIENT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "registry.h"
#include "util/perms.h"

#define _public_ __attribute__((visibility("default")))

/* A segment whose memfd this process holds (do_shmat's file reference). */
struct shmx_held {
	int id;
	int fd;
	bool rdonly;                    /* fd is O_RDONLY */
	int ro_fd;                      /* O_RDONLY one beside a read-write fd, or -1 */
	uint64_t count;                 /* attachments in this process */
};

/* One attachment (a vma of the kernel's). */
struct shmx_att {
	uintptr_t addr;
	size_t len;
	int id;
};

struct shmx_ns {
	char path[PATH_MAX];
	int dirfd;
	bool owned;                     /* by our euid: we may start a keeper */
	bool open_to_others;            /* mode & 077: must be a shared namespace */
};

struct shmx_client {
	pthread_mutex_t lock;
	struct shmx_ns ns;              /* dirfd -1 until resolved */
	int sock;                       /* -1 when not connected */
	bool stale;                     /* a reply went astray: replace before asking */
	uint64_t conn_gen;              /* bumped by every new connection */
	struct shmx_report_ring *ring;  /* the connection's report ring, or NULL */
	uint64_t ring_tail;             /* records written to it */
	int fork_sock;                  /* connection prepared for a child */
	struct shmx_report_ring *fork_ring;
	struct shmx_cred cred;          /* at connect; a change means reconnect */
	struct shmx_reg reg;            /* base NULL when not mapped */
	struct shmx_held *held;
	size_t nheld, held_cap;
	struct shmx_att *atts;          /* sorted by addr */
	size_t natts, atts_cap;
};

extern struct shmx_client shmx_client;

/* report.c */
struct shmx_report_ring;
int shmx_report_ring_new(struct shmx_report_ring **ringp, int *fdp);
void shmx_report_ring_free(struct shmx_report_ring *ring);
int shmx_client_report(enum shmx_msg_type type, int id, int fd, int flags);

/* namespace.c */
int shmx_ns_resolve(char *buf, size_t cap);
int shmx_ns_open(const char *path, struct shmx_ns *ns);
void shmx_ns_close(struct shmx_ns *ns);
int shmx_ns_check_registry(const struct shmx_ns *ns, const struct shmx_reg *reg);

/* start.c */
int shmx_connect_sock(int dirfd);
int shmx_keeper_connect_or_start(void);

/* client.c */
void shmx_client_lock(void);
void shmx_client_unlock(void);
int shmx_client_connect(void);
int shmx_client_call(struct shmx_req *req, int *fdp);
/* The same, where the reply may come with a descriptor or without. */
int shmx_client_call_maybe_fd(struct shmx_req *req, int *fdp);
int shmx_client_post(const struct shmx_req *req, int passfd);
int shmx_client_sync(int id);
int shmx_client_check_alive(void);
const struct shmx_cred *shmx_client_cred(void);

struct shmx_held *shmx_held_find(int id);
struct shmx_held *shmx_held_add(int id, int fd, bool rdonly);
void shmx_held_drop(struct shmx_held *h);
/* Closes the descriptors of segments that are gone, held by no attachment. */
void shmx_held_sweep(void);

/* Runs a public function's body with the lock held and errno preserved. */
#define SHMX_CALL(expr)                         \
	({                                      \
		int saved_errno_ = errno;       \
		int r_;                         \
		shmx_client_lock();             \
		r_ = (expr);                    \
		shmx_client_unlock();           \
		errno = saved_errno_;           \
		r_;                             \
	})

#endif /* SHMX_CLIENT_H */
