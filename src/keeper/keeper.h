/* SPDX-License-Identifier: MIT */
/*
 * shmxd, the keeper: the "kernel" of a namespace.  Internal structures.
 *
 *   main.c     options, namespace directory, lock, socket, daemon, signals
 *   loop.c     the epoll loop: peers (connections, orphans), messages, drain
 *   seg.c      segments: newseg, get, fd, ctl, adopting a memfd, destroy
 *   attach.c   attachments: attach, detach, release, reattach, ident, a peer's end
 *   fork.c     a fork's REATTACH: the child's counts, bounded by its parent's
 *   hold.c     holdings (nattch per peer) and the registry's holder table
 *   report.c   report rings: the ATTACH/DETACH/RELEASE a client writes to memory
 *   regfile.c  creating the registry file, record and hash writes
 *   recover.c  adopting the registry of a keeper that died
 *   store.c    where a segment's memfd is kept: the keeper, or a vault
 *   vault.c    vaults, processes holding memfds beyond the keeper's file limit
 *   vaultd.c   a vault itself (shmxd --vault)
 */
#ifndef SHMXD_KEEPER_H
#define SHMXD_KEEPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "registry.h"
#include "util/perms.h"

#define NO_SLOT UINT32_MAX

/* What an epoll event's data.ptr points at: the first member of its owner. */
enum src_kind {
	SRC_LISTEN,
	SRC_SIGNAL,
	SRC_CONN,               /* a client connection */
	SRC_ORPHAN,             /* a holder found by recovery, watched by pidfd */
	SRC_VAULT,              /* a vault's socket: readable only when it died */
};

struct src {
	enum src_kind kind;
};

struct hold;
struct shmx_report_ring;
struct vault;

/* A connection's report ring (report.c): the client's memory, so untrusted;
 * what the keeper relies on (size, position) it keeps here. */
struct ring {
	struct shmx_report_ring *map;   /* NULL: none, reports come by message */
	size_t len;                     /* of the mapping */
	uint32_t entries;               /* from HELLO; never re-read from the page */
	uint64_t head;                  /* records consumed */
};

/* A peer holds segments: a connection, or an orphan (recovered holder). */
struct peer {
	struct src src;                 /* first: epoll data.ptr */
	int fd;                         /* the socket, or the orphan's pidfd */
	uint64_t serial;                /* unique, keys the holding hash */
	struct shmx_cred cred;          /* SO_PEERCRED + SO_PEERGROUPS at connect */
	pid_t pid;                      /* the process it belongs to (IDENT moves it) */
	uint64_t starttime;             /* that process's start time */
	struct hold *holds;             /* its holdings */
	struct ring ring;               /* a connection's report ring */
	struct peer *prev, *next;       /* all live peers */
	struct peer *wait_next;         /* connections parked until a drain is over */
	uint32_t wait_type;             /* SYNC, CTL (RMID), or REATTACH (fork.c) */
	int32_t wait_result;
	int sync_id;
	struct shmx_req wait_req;       /* a fork's REATTACH judged after the drain */
	pid_t wait_pid;                 /* its sender */
	uint64_t wait_start;
	uint64_t wait_peak;             /* the most its sender held meanwhile */
	bool wait_held;                 /* whether the sender held the segment at all */
	bool fork_pending;              /* a fork's connection, until the child's IDENT */
	bool waiting;
	bool in_epoll;
	bool dead;                      /* closed; freed after the current batch */
};

/* One peer holding one segment: its attachments (nattch share) and the
 * descriptor it holds, mirrored in the registry's holder table. */
struct hold {
	struct peer *peer;
	uint32_t idx;                   /* record slot */
	int id;
	uint64_t count;                 /* attachments */
	int fd;                         /* descriptor number in the holder */
	uint32_t entry;                 /* holder table entry, or NO_SLOT */
	struct hold *pnext, **pprev;    /* the peer's list */
	struct hold *snext, **sprev;    /* the segment's list */
	struct hold *hnext;             /* hash chain */
};

/* The keeper's side of a record slot.  A live segment's memfd is the
 * keeper's (memfd), a vault's (vault), or neither: pending recovery. */
struct kseg {
	int memfd;                      /* -1: not in the keeper's table */
	int vault;                      /* index in keeper.vaults, or -1 */
	uint64_t fsize;                 /* file size (rounded up to the page) */
	void *lock_addr;                /* mapping while SHMX_LOCKED */
	struct hold *holds;
	uint32_t next_free;             /* FIFO of free slots */
	uint32_t next_queued;           /* destroy queue */
	bool queued;
	bool hashed;                    /* linked into the key hash */
	bool rescue;                    /* its vault was lost; holders may have it */
	uint8_t rescue_tries;           /* rescues that found no holder's copy */
};

static inline bool seg_pending(const struct kseg *s)
{
	return s->memfd < 0 && s->vault < 0;
}

struct keeper {
	/* options */
	char *dir;                      /* absolute path of the namespace */
	bool shared;
	bool foreground;
	unsigned idle_exit;             /* seconds, 0: never */
	uint32_t max_segments;
	uint64_t max_segsz;
	uint64_t max_total;
	bool limits_given;              /* on the command line */

	/* the namespace */
	int dirfd;
	int lockfd;
	int lsock;
	char sock_path[4096 + 16];
	uint64_t sock_dev, sock_ino;
	bool sock_ours;
	bool listen_paused;             /* out of descriptors: retried on the tick */

	int epfd;
	int sigfd;
	struct src listen_src, signal_src;

	/* the registry, mapped read-write */
	struct shmx_reg reg;
	uint64_t generation;
	struct kseg *segs;              /* reg.lay.max_segments */
	uint32_t free_head, free_tail;
	uint32_t queue_head;            /* destroy queue (LIFO is fine) */
	uint32_t *free_entries;         /* holder table entries free (a stack) */
	uint32_t nfree_entries;
	bool entries_full_logged;

	/* holdings, hashed by (peer serial, slot) */
	struct hold **hhash;
	uint32_t hhash_size;
	uint32_t nholds;

	/* peers */
	struct peer *peers;
	struct peer *wait_head;         /* replies due after the next drain */
	struct peer *fork_waits;        /* fork REATTACHes judged after the next drain */
	struct peer *grave;             /* closed, freed between batches */
	uint32_t nconns, norphans;
	uint64_t next_serial;

	/* where memfds are kept (store.c, vault.c) */
	int64_t vault_after;            /* --vault-after (tests), else -1 */
	uint32_t own_fds;               /* memfds in the keeper's own table */
	uint32_t own_max;               /* beyond: in vaults */
	uint64_t fd_limit;              /* RLIMIT_NOFILE, read on the tick */
	uint32_t room_next;             /* where store_room looks first */
	struct vault **vaults;
	uint32_t nvaults;
	bool rescue;                    /* a lost vault's held segments to take back */
	bool rescue_retry;              /* some not found yet: again on the tick */
	int64_t vault_retry_at;         /* monotonic ms: no vault started before */
	uint32_t vault_backoff_ms;      /* the last back-off; 0 after a start */

	uint64_t page_size, huge_page_size;
	int64_t idle_since;             /* monotonic ms, 0: not idle */
	bool quit;
	bool idle_quit;
};

/* loop.c */
int keeper_loop_init(struct keeper *k);
int keeper_loop_start(struct keeper *k);
int keeper_loop(struct keeper *k);
void peer_resume(struct keeper *k, struct peer *p);
int ep_add(struct keeper *k, int fd, struct src *src);
void ep_del(struct keeper *k, int fd);

/* peer.c */
void conn_new(struct keeper *k, int fd);
void peer_reap(struct keeper *k);
struct peer *peer_new_orphan(struct keeper *k, pid_t pid, uint64_t starttime, int pidfd);
struct peer *peer_find_orphan(struct keeper *k, pid_t pid, uint64_t starttime);
void peer_close(struct keeper *k, struct peer *p);
void peer_orphan_check(struct keeper *k, struct peer *p);
void keeper_free_peers(struct keeper *k);

/* regfile.c */
int reg_create(struct keeper *k, uint64_t generation);
int reg_publish(struct keeper *k);
void reg_set_keeper(struct keeper *k);
void reg_free(struct keeper *k);
struct shmx_reg_record *rec_begin(struct keeper *k, uint32_t idx);
void rec_end(struct shmx_reg_record *rec);
static inline struct shmx_reg_record *rec_of(struct keeper *k, uint32_t idx)
{
	return shmx_reg_rec(&k->reg, idx);
}
void usage_add(struct keeper *k, int64_t segments, int64_t total);
void hash_insert(struct keeper *k, uint32_t idx);
void hash_unlink(struct keeper *k, uint32_t idx);
int32_t hash_lookup(struct keeper *k, int32_t key);
uint32_t slot_alloc(struct keeper *k);
void slot_free(struct keeper *k, uint32_t idx);

/* hold.c */
int hold_init(struct keeper *k);
void hold_fini(struct keeper *k);
struct hold *hold_find(struct keeper *k, struct peer *p, uint32_t idx);
struct hold *hold_get(struct keeper *k, struct peer *p, uint32_t idx, int id);
void hold_sync(struct keeper *k, struct hold *h);
void hold_free(struct keeper *k, struct hold *h);

/* seg.c */
int seg_lookup(struct keeper *k, int id, uint32_t *idxp);
void seg_check_gone(struct keeper *k, uint32_t idx);
int seg_get(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid,
	    bool *createdp);
int seg_fd(struct keeper *k, struct peer *p, const struct shmx_req *req, int *fdp, bool *closep);
int seg_ctl(struct keeper *k, struct peer *p, const struct shmx_req *req);
int seg_adopt_fd(struct keeper *k, uint32_t idx, int fd);
int seg_lock(struct keeper *k, uint32_t idx);
void seg_queue(struct keeper *k, uint32_t idx);
void seg_settle(struct keeper *k);
void seg_destroy(struct keeper *k, uint32_t idx);
void seg_close_all(struct keeper *k);

/* store.c */
void store_init(struct keeper *k);
int seg_store_fd(struct keeper *k, uint32_t idx, int id, int fd);
int store_room(struct keeper *k);
void store_headroom(struct keeper *k);
void store_tick(struct keeper *k);
int seg_fd_borrow(struct keeper *k, uint32_t idx);
void seg_fd_return(struct keeper *k, uint32_t idx, int fd);
void seg_fd_drop(struct keeper *k, uint32_t idx, bool punch);
void seg_fd_close_all(struct keeper *k);
void store_rescue(struct keeper *k);
uint64_t seg_set_rss(struct keeper *k, uint32_t idx, uint64_t rss);
void seg_refresh_rss(struct keeper *k, int id);

/* vault.c */
int vault_put(struct keeper *k, uint32_t idx, int id, int fd);
int vault_get(struct keeper *k, uint32_t idx);
bool vault_room(struct keeper *k);
void vault_drop(struct keeper *k, uint32_t idx, bool punch);
int vault_rss(struct keeper *k, uint32_t idx, uint64_t *rss);
uint64_t vault_rss_all(struct keeper *k);
void vault_event(struct keeper *k, struct vault *v);
void vault_reap(struct keeper *k);
void vault_close_all(struct keeper *k);

/* attach.c */
void seg_attach(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid);
void seg_detach(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid);
void seg_release(struct keeper *k, struct peer *p, const struct shmx_req *req);
bool seg_reattach(struct keeper *k, struct peer *p, const struct shmx_req *req, int fd, pid_t pid);
void seg_hold_add(struct keeper *k, struct hold *h, uint64_t add, int fd);
void seg_ident(struct keeper *k, struct peer *p, pid_t pid);
void seg_peer_gone(struct keeper *k, struct peer *p);

/* report.c */
int report_hello(struct peer *p, const struct shmx_req *req, int fd);
void report_close(struct peer *p);
int report_drain(struct keeper *k, struct peer *p);
int report_before(struct keeper *k, struct peer *p, uint32_t type);
int report_drain_all(struct keeper *k);
void report_drain_sender(struct keeper *k, struct peer *self, pid_t pid, uint64_t start);

/* fork.c */
bool fork_reattach(struct keeper *k, struct peer *p, const struct shmx_req *req, uint32_t idx,
		   pid_t pid);
int fork_judge(struct keeper *k, bool final);
void fork_note(struct keeper *k, struct peer *p, uint32_t idx);

/* recover.c */
int keeper_recover(struct keeper *k);

#endif /* SHMXD_KEEPER_H */
