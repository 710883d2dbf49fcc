/* SPDX-License-Identifier: MIT */
/*
 * Talking to a vault (keeper side, private to vault.c and vaultwire.c):
 * numbered requests sent against a deadline, replies matched by number, and
 * the late replies of requests the keeper stopped waiting for, discarded.
 */
#ifndef SHMXD_VAULTWIRE_H
#define SHMXD_VAULTWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keeper.h"
#include "util/sock.h"
#include "vault.h"

#define VAULT_TIMEOUT_MS 3000

struct vault {
	struct src src;                 /* first: epoll data.ptr (SRC_VAULT) */
	int sock;                       /* -1: lost (the struct stays, for reuse) */
	pid_t pid;                      /* 0 once reaped */
	int index;                      /* in k->vaults, what kseg.vault names */
	uint32_t count;                 /* descriptors it holds */
	uint32_t cap;                   /* descriptors it may hold */
	uint32_t seq;                   /* the last request's number */
	uint32_t late;                  /* the number of one it did not answer in time */
	bool slow;                      /* until it answers that: ask nothing that waits */
};

int vwire_wait(struct vault *v, short events, int64_t deadline);
int vwire_recv(struct vault *v, void *buf, size_t cap, struct shmx_sock_rx *rx, int64_t deadline);
bool vwire_discard_late(struct vault *v, const void *buf, struct shmx_sock_rx *rx, uint32_t want);
int vwire_drain_late(struct vault *v);
int vwire_send(struct vault *v, struct vault_msg *m, int fd, int64_t deadline);
void vwire_timed_out(struct vault *v, uint32_t seq, const char *what);

#endif
