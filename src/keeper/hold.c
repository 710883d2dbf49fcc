/* SPDX-License-Identifier: MIT */
/*
 * Holdings: which peer holds which segment, and how many attachments it has
 * (the kernel counts them in vm_ops open/close; we count them per peer, so a
 * peer's end ends its attachments).  Each holding is mirrored in the
 * registry's holder table (pid, start time, descriptor number, count) for a
 * keeper that must recover after this one dies.
 *
 * Holdings are found by (peer, slot) in a hash, so one process holding
 * thousands of segments costs no more per message than one holding a few.
 */
#include <errno.h>
#include <stdlib.h>

#include "keeper.h"
#include "util/log.h"

#define HHASH_MIN 1024u

static uint32_t hhash(uint64_t serial, uint32_t idx, uint32_t size)
{
	uint64_t v = serial * UINT64_C(0x9e3779b97f4a7c15) ^ ((uint64_t)idx * 2654435761u);

	return (uint32_t)(v ^ (v >> 29)) & (size - 1);
}

int hold_init(struct keeper *k)
{
	k->hhash_size = HHASH_MIN;
	k->hhash = calloc(k->hhash_size, sizeof(*k->hhash));
	return k->hhash ? 0 : -ENOMEM;
}

void hold_fini(struct keeper *k)
{
	/* holdings are freed with their peers */
	free(k->hhash);
	k->hhash = NULL;
}

static void hhash_grow(struct keeper *k)
{
	uint32_t size = k->hhash_size * 2;
	struct hold **t = calloc(size, sizeof(*t));

	if (!t)
		return;         /* longer chains, still correct */
	for (uint32_t i = 0; i < k->hhash_size; i++) {
		struct hold *h = k->hhash[i], *next;

		for (; h; h = next) {
			uint32_t b = hhash(h->peer->serial, h->idx, size);

			next = h->hnext;
			h->hnext = t[b];
			t[b] = h;
		}
	}
	free(k->hhash);
	k->hhash = t;
	k->hhash_size = size;
}

struct hold *hold_find(struct keeper *k, struct peer *p, uint32_t idx)
{
	struct hold *h = k->hhash[hhash(p->serial, idx, k->hhash_size)];

	for (; h; h = h->hnext)
		if (h->peer == p && h->idx == idx)
			return h;
	return NULL;
}

/* Writes the holding's entry in the holder table. */
void hold_sync(struct keeper *k, struct hold *h)
{
	struct shmx_reg_holder *e;

	if (h->entry == NO_SLOT)
		return;
	e = shmx_reg_holder(&k->reg, h->entry);
	e->id = h->id;
	e->pid = (int32_t)h->peer->pid;
	e->fd = h->fd;
	e->starttime = h->peer->starttime;
	e->count = h->count;
}

static void entry_alloc(struct keeper *k, struct hold *h)
{
	struct shmx_reg_holder *e;

	h->entry = NO_SLOT;
	if (k->nfree_entries == 0) {
		if (!k->entries_full_logged)
			log_warn("holder table full: some holdings will not survive a keeper restart");
		k->entries_full_logged = true;
		return;
	}
	h->entry = k->free_entries[--k->nfree_entries];
	e = shmx_reg_holder(&k->reg, h->entry);
	e->record = 0;
	hold_sync(k, h);
	/* last, so a torn entry left by a killed keeper is a free one */
	__atomic_store_n(&e->record, (int32_t)(h->idx + 1), __ATOMIC_RELEASE);
}

static void entry_free(struct keeper *k, struct hold *h)
{
	struct shmx_reg_holder *e;

	if (h->entry == NO_SLOT)
		return;
	e = shmx_reg_holder(&k->reg, h->entry);
	__atomic_store_n(&e->record, 0, __ATOMIC_RELEASE);
	e->id = 0;
	e->pid = 0;
	e->fd = -1;
	e->starttime = 0;
	e->count = 0;
	k->free_entries[k->nfree_entries++] = h->entry;
	h->entry = NO_SLOT;
}

/* The peer's holding of a slot, created (count 0) if it has none. */
struct hold *hold_get(struct keeper *k, struct peer *p, uint32_t idx, int id)
{
	struct hold *h = hold_find(k, p, idx);
	struct kseg *s = &k->segs[idx];
	uint32_t b;

	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_error("out of memory for a holding");
		return NULL;
	}
	h->peer = p;
	h->idx = idx;
	h->id = id;
	h->fd = -1;

	h->pnext = p->holds;
	if (p->holds)
		p->holds->pprev = &h->pnext;
	h->pprev = &p->holds;
	p->holds = h;

	h->snext = s->holds;
	if (s->holds)
		s->holds->sprev = &h->snext;
	h->sprev = &s->holds;
	s->holds = h;

	if (k->nholds >= k->hhash_size)
		hhash_grow(k);
	b = hhash(p->serial, idx, k->hhash_size);
	h->hnext = k->hhash[b];
	k->hhash[b] = h;
	k->nholds++;

	entry_alloc(k, h);
	return h;
}

void hold_free(struct keeper *k, struct hold *h)
{
	struct hold **pp = &k->hhash[hhash(h->peer->serial, h->idx, k->hhash_size)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == h) {
			*pp = h->hnext;
			break;
		}
	}
	*h->pprev = h->pnext;
	if (h->pnext)
		h->pnext->pprev = h->pprev;
	*h->sprev = h->snext;
	if (h->snext)
		h->snext->sprev = h->sprev;
	k->nholds--;
	entry_free(k, h);
	free(h);
}
