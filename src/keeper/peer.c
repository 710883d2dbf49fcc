/* SPDX-License-Identifier: MIT */
/*
 * Peers: the processes the keeper counts attachments for.  A connection's
 * credentials come from the socket (SO_PEERCRED, SO_PEERGROUPS), never from
 * a message; an orphan is a holder found by recovery, watched through its
 * pidfd until it reconnects or dies.  A closed peer's holdings end at once;
 * its memory waits in the grave until the event batch that saw it is done.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"

static struct peer *peer_alloc(struct keeper *k, enum src_kind kind, int fd)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->src.kind = kind;
	p->fd = fd;
	p->serial = ++k->next_serial;
	if (fd >= 0) {
		if (ep_add(k, fd, &p->src) < 0) {
			free(p);
			return NULL;
		}
		p->in_epoll = true;
	}
	p->next = k->peers;
	if (k->peers)
		k->peers->prev = p;
	k->peers = p;
	if (kind == SRC_CONN)
		k->nconns++;
	else
		k->norphans++;
	return p;
}

struct peer *peer_new_orphan(struct keeper *k, pid_t pid, uint64_t starttime, int pidfd)
{
	struct peer *p = peer_alloc(k, SRC_ORPHAN, pidfd);

	if (!p)
		return NULL;
	p->pid = pid;
	p->starttime = starttime;
	p->cred.pid = pid;
	return p;
}

struct peer *peer_find_orphan(struct keeper *k, pid_t pid, uint64_t starttime)
{
	if (!k->norphans)
		return NULL;
	for (struct peer *p = k->peers; p; p = p->next)
		if (p->src.kind == SRC_ORPHAN && p->pid == pid && p->starttime == starttime)
			return p;
	return NULL;
}

/* Ends a peer: its holdings go, it is freed after the current batch. */
void peer_close(struct keeper *k, struct peer *p)
{
	if (p->dead)
		return;
	p->dead = true;
	if (p->waiting) {
		struct peer **pp = p->wait_type == SHMX_MSG_REATTACH ? &k->fork_waits : &k->wait_head;

		for (; *pp; pp = &(*pp)->wait_next) {
			if (*pp == p) {
				*pp = p->wait_next;
				break;
			}
		}
		p->waiting = false;
	}
	if (p->in_epoll)
		ep_del(k, p->fd);
	p->in_epoll = false;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	/* records left unread go with the holdings they would have moved */
	report_close(p);
	seg_peer_gone(k, p);
	if (p->prev)
		p->prev->next = p->next;
	else
		k->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->src.kind == SRC_CONN)
		k->nconns--;
	else
		k->norphans--;
	p->next = k->grave;
	k->grave = p;
}

/* An orphan that holds nothing any more has nothing left to watch. */
void peer_orphan_check(struct keeper *k, struct peer *p)
{
	if (p->src.kind == SRC_ORPHAN && !p->holds && !p->dead)
		peer_close(k, p);
}

void peer_reap(struct keeper *k)
{
	while (k->grave) {
		struct peer *p = k->grave;

		k->grave = p->next;
		free(p);
	}
}

/* At exit: the holder table stays as it is, for the next keeper. */
void keeper_free_peers(struct keeper *k)
{
	while (k->peers) {
		struct peer *p = k->peers;

		k->peers = p->next;
		while (p->holds) {
			struct hold *h = p->holds;

			p->holds = h->pnext;
			free(h);
		}
		report_close(p);
		if (p->fd >= 0)
			close(p->fd);
		free(p);
	}
	peer_reap(k);
}

static void peer_groups(int fd, struct shmx_cred *cred)
{
	socklen_t len = sizeof(cred->groups);
	gid_t *all;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, cred->groups, &len) == 0) {
		cred->ngroups = (int)(len / sizeof(gid_t));
		return;
	}
	cred->ngroups = 0;
	if (errno != ERANGE || !(all = malloc(len)))
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len) == 0) {
		/* more groups than we keep: the first ones decide */
		memcpy(cred->groups, all, sizeof(cred->groups));
		cred->ngroups = (int)(sizeof(cred->groups) / sizeof(gid_t));
	}
	free(all);
}

void conn_new(struct keeper *k, int fd)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	int one = 1;
	struct peer *p;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		log_warn("new connection: %s", strerror(errno));
		close(fd);
		return;
	}
	p = peer_alloc(k, SRC_CONN, fd);
	if (!p) {
		log_error("cannot take a connection: out of memory");
		close(fd);
		return;
	}
	p->cred.pid = uc.pid;
	p->cred.uid = uc.uid;
	p->cred.gid = uc.gid;
	peer_groups(fd, &p->cred);
	p->pid = uc.pid;
	p->starttime = shmx_proc_starttime(uc.pid);
	log_debug("connection from pid %d (uid %u)", (int)uc.pid, (unsigned)uc.uid);
}
