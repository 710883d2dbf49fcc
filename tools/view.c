/* SPDX-License-Identifier: MIT */
/*
 * What a namespace holds, as shmx shows it: the registry read directly, as
 * ipcs reads /proc/sysvipc/shm.  Looking never starts a keeper.  A keeper
 * that runs is asked for a SYNC first, so that attachments still on their
 * way to it are counted and every rss is fresh (docs/design.md, "Data
 * flow"); without one, the registry is shown as the last keeper left it.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "tool.h"
#include "util/sock.h"
#include "util/sys.h"

#define SYNC_TIMEOUT_MS 10000           /* a keeper that never answers */
#define OPEN_TRIES 3                    /* registries replaced under us */

/*
 * A SYNC on a connection of our own: the library's would start a keeper
 * when none answers.  -ENOENT or -ECONNREFUSED: no keeper runs.
 */
static int keeper_sync(int dirfd)
{
	struct shmx_sock_rx rx = { .fd = -1 };
	struct shmx_reply rep;
	struct shmx_req req;
	int sock, r;

	sock = shmx_connect_sock(dirfd);
	if (sock < 0)
		return sock;
	shmx_req_init(&req, SHMX_MSG_HELLO);   /* no report ring: count 0 */
	r = shmx_sock_send(sock, &req, sizeof(req), -1, 0);
	if (r == 0) {
		shmx_req_init(&req, SHMX_MSG_SYNC);
		req.id = SHMX_SYNC_ALL;
		r = shmx_sock_send(sock, &req, sizeof(req), -1, 0);
	}
	if (r == 0) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };

		do
			r = poll(&pfd, 1, SYNC_TIMEOUT_MS);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			r = -errno;
		else if (r == 0)
			r = -ETIMEDOUT;
		else
			r = shmx_sock_recv(sock, &rep, sizeof(rep), 0, &rx);
	}
	if (r == 0) {
		if (rx.fd >= 0)
			close(rx.fd);
		if (rx.truncated || shmx_reply_check(&rep, rx.len) < 0)
			r = -EPROTO;
		else if (rep.req_type != SHMX_MSG_SYNC)
			/* the answer to HELLO: the keeper speaks another version */
			r = rep.result < 0 ? rep.result : -EPROTO;
		else
			r = rep.result;
	}
	close(sock);
	return r;
}

static int snapshot(struct view *v)
{
	size_t cap = 0;
	bool unsettled = false;

	for (uint32_t i = 0; i < v->reg.lay.max_segments; i++) {
		struct shmx_reg_record rec;
		struct view_seg *s;

		if (shmx_reg_read_record(&v->reg, i, &rec) < 0) {
			unsettled = true;
			continue;
		}
		/* untrusted: a record must name its own slot */
		if (rec.state != SHMX_REC_USED || rec.id <= 0 || shmx_id_idx(rec.id) != i ||
		    shmx_id_seq(rec.id) == 0)
			continue;
		if (v->nsegs == cap) {
			cap = cap ? 2 * cap : 64;
			s = realloc(v->segs, cap * sizeof(*s));
			if (!s)
				return -ENOMEM;
			v->segs = s;
		}
		s = &v->segs[v->nsegs++];
		s->slot = i;
		s->rec = rec;
		shmx_reg_to_ds(&rec, &s->ds);
	}
	/* a keeper killed in the middle of a write leaves the record so */
	if (unsettled)
		tool_err("warning: some records of %s/registry are being written "
			 "and were left out", v->path);
	return 0;
}

/* Maps the current registry; 0 with have_reg false when there is none. */
static int open_registry(struct view *v)
{
	int r;

	for (int tries = 0; tries < OPEN_TRIES; tries++) {
		r = shmx_reg_open_ro(v->ns.dirfd, &v->reg);
		if (r == -ENOENT)
			return 0;
		if (r < 0) {
			tool_err("cannot read %s/registry: %s%s", v->path, strerror(-r),
				 r == -EBADMSG ? " (not a registry of this version, or damaged)" : "");
			return r;
		}
		/* a new keeper clears the magic of the file it replaced */
		if (shmx_reg_read_usage(&v->reg, &v->hdr) == 0 && v->hdr.magic == SHMX_REG_MAGIC) {
			v->have_reg = true;
			return 0;
		}
		shmx_reg_close(&v->reg);
	}
	tool_err("cannot read %s/registry: it keeps being replaced", v->path);
	return -EAGAIN;
}

int view_open(struct view *v)
{
	const char *env = getenv("SHMX_NAMESPACE");
	struct stat st;
	int r;

	memset(v, 0, sizeof(*v));
	v->ns.dirfd = -1;
	r = shmx_ns_resolve(v->path, sizeof(v->path));
	if (r < 0) {
		tool_err("the namespace path is too long");
		return r;
	}
	if (lstat(v->path, &st) < 0) {
		r = -errno;
		/* the default namespace of a user who never used libshmx: empty */
		if (r == -ENOENT && !(env && *env))
			return 0;
		tool_err("namespace %s: %s", v->path,
			 r == -ENOENT ? "no such directory" : strerror(-r));
		return r;
	}
	v->exists = true;
	/* the library's checks: owner, mode, no symlink (its log says which) */
	r = shmx_ns_open(v->path, &v->ns);
	if (r < 0) {
		tool_err("cannot use namespace %s: %s", v->path, strerror(-r));
		return r;
	}
	r = keeper_sync(v->ns.dirfd);
	v->synced = r == 0;
	if (r < 0 && r != -ENOENT && r != -ECONNREFUSED)
		tool_err("warning: the keeper of %s did not answer (%s): counts may be out of date",
			 v->path, strerror(-r));
	r = open_registry(v);
	if (r < 0 || !v->have_reg)
		return r;
	r = shmx_ns_check_registry(&v->ns, &v->reg);
	if (r < 0) {
		tool_err("cannot use namespace %s: %s", v->path, strerror(-r));
		return r;
	}
	v->keeper_alive = shmx_proc_alive(v->hdr.keeper_pid, v->hdr.keeper_start);
	r = snapshot(v);
	if (r < 0)
		tool_err("%s", strerror(-r));
	return r;
}

void view_close(struct view *v)
{
	shmx_reg_close(&v->reg);
	if (v->ns.dirfd >= 0)
		shmx_ns_close(&v->ns);
	free(v->segs);
	v->segs = NULL;
	v->nsegs = 0;
}

const struct view_seg *view_find_id(const struct view *v, int id)
{
	for (size_t i = 0; i < v->nsegs; i++)
		if (v->segs[i].rec.id == id)
			return &v->segs[i];
	return NULL;
}

/* As shmget finds keys: never a private or removed segment. */
const struct view_seg *view_find_key(const struct view *v, int32_t key)
{
	for (size_t i = 0; i < v->nsegs; i++) {
		const struct shmx_reg_record *rec = &v->segs[i].rec;

		if (key != SHMX_PRIVATE && rec->key == key && !(rec->status & SHMX_DEST))
			return &v->segs[i];
	}
	return NULL;
}

size_t view_holders(const struct view *v, const struct view_seg *s,
		    struct shmx_reg_holder *out, size_t n)
{
	size_t count = 0;

	for (uint32_t i = 0; i < v->reg.lay.max_holders; i++) {
		struct shmx_reg_holder *h = shmx_reg_holder(&v->reg, i);
		struct shmx_reg_holder copy;

		/* the keeper stores record last, with release: acquire pairs */
		if (atomic_load_explicit((_Atomic int32_t *)&h->record, memory_order_acquire) !=
		    (int32_t)s->slot + 1)
			continue;
		memcpy(&copy, h, sizeof(copy));
		if (copy.record != (int32_t)s->slot + 1 || copy.id != s->rec.id || copy.pid <= 0)
			continue;
		if (count < n)
			out[count] = copy;
		count++;
	}
	return count;
}
