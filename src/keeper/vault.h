/* SPDX-License-Identifier: MIT */
/*
 * Vaults: processes the keeper starts to hold segment memfds its own
 * descriptor table has no room for (store.c decides which, vault.c is the
 * keeper's side, vaultd.c the vault's).  Keeper and vault talk over a
 * SOCK_SEQPACKET socketpair: one fixed-size request, one reply, descriptors
 * as SCM_RIGHTS.  Replies come in order and carry their request's number, so
 * a reply the keeper stopped waiting for (or never waits for: DROP) is
 * recognized and discarded when it comes.  Nothing here is a client protocol: both ends are shmxd,
 * the same binary, so no version is needed.
 */
#ifndef SHMXD_VAULT_H
#define SHMXD_VAULT_H

#include <stdint.h>

#define VAULT_ARG "--vault"             /* shmxd --vault FD: be a vault on FD */
#define VAULT_FD 3                      /* where the keeper puts the socket */
#define VAULT_SPARE_FDS 64              /* a vault's descriptors not for memfds */

enum vault_op {
	VAULT_HELLO = 1,        /* vault -> keeper, once: result = how many it takes */
	VAULT_PUT,              /* keep the descriptor sent with it as (slot, id) */
	VAULT_GET,              /* reply: a copy of it (SCM_RIGHTS) */
	VAULT_DROP,             /* close it; VAULT_PUNCH: free its pages first */
	VAULT_RSS,              /* reply: value = its resident bytes */
	VAULT_RSS_ALL,          /* replies: chunks of struct vault_rss, the last VAULT_LAST */
};

#define VAULT_PUNCH 1u          /* DROP: as a destroy does */
#define VAULT_LAST 1u           /* RSS_ALL: the last chunk */

struct vault_msg {
	uint32_t op;
	uint32_t slot;                  /* the segment's record slot */
	int32_t id;                     /* its id: a stale request finds nothing */
	int32_t result;                 /* reply: 0 or -errno; HELLO: capacity;
					 * RSS_ALL: entries that follow */
	uint32_t flags;
	uint32_t seq;                   /* the keeper's request number, echoed in
					 * the reply: a late one is told apart */
	uint64_t value;                 /* RSS: bytes */
};

struct vault_rss {
	uint32_t slot;
	int32_t id;
	uint64_t rss;
};

#define VAULT_RSS_CHUNK 1024u   /* entries per RSS_ALL reply: 16 KiB */

_Static_assert(sizeof(struct vault_msg) == 32, "vault message layout");
_Static_assert(sizeof(struct vault_rss) == 16, "vault rss layout");

/* vaultd.c: the vault process; its exit status. */
int vault_main(const char *fd_arg);

#endif /* SHMXD_VAULT_H */
