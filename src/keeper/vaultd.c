/* SPDX-License-Identifier: MIT */
/*
 * A vault: `shmxd --vault 3`, started by a keeper (vault.c) to hold memfds
 * beyond the keeper's own open file limit.  It has a descriptor table of its
 * own and nothing else: it keeps what it is given, by slot, and answers one
 * request at a time.  Its keeper is trusted, but a message that makes no
 * sense gets an error, never a crash.  It ends when its socket does (the
 * keeper closed it or died); PR_SET_PDEATHSIG, set before exec, makes sure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"
#include "util/log.h"
#include "util/sock.h"
#include "util/sys.h"
#include "vault.h"

struct held {
	int fd1;                        /* descriptor + 1, so calloc's 0 is empty */
	int32_t id;
};

struct vault_state {
	int sock;
	struct held *slots;             /* SHMX_MAX_SEGMENTS_LIMIT of them */
	uint32_t count, cap;
};

/* As many descriptors as the hard limit allows, less a few of our own. */
static uint32_t capacity(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur <= 2 * VAULT_SPARE_FDS)
		return 0;
	if (rl.rlim_cur - VAULT_SPARE_FDS > SHMX_MAX_SEGMENTS_LIMIT)
		return SHMX_MAX_SEGMENTS_LIMIT;
	return (uint32_t)(rl.rlim_cur - VAULT_SPARE_FDS);
}

static int answer(struct vault_state *vs, const struct vault_msg *req, int32_t result,
		  uint64_t value, int fd)
{
	struct vault_msg rep = {
		.op = req->op, .slot = req->slot, .id = req->id, .result = result, .value = value,
		.seq = req->seq,
	};

	return shmx_sock_send(vs->sock, &rep, sizeof(rep), fd, 0);
}

/* The slot a request names, if it holds that id. */
static struct held *find(struct vault_state *vs, const struct vault_msg *req)
{
	struct held *h;

	if (req->slot >= SHMX_MAX_SEGMENTS_LIMIT)
		return NULL;
	h = &vs->slots[req->slot];
	return h->fd1 && h->id == req->id ? h : NULL;
}

/* Consumes fd. */
static int put(struct vault_state *vs, const struct vault_msg *req, int fd)
{
	struct held *h;

	if (req->slot >= SHMX_MAX_SEGMENTS_LIMIT) {
		close(fd);
		return -EINVAL;
	}
	h = &vs->slots[req->slot];
	if (h->fd1 && h->id == req->id) {
		close(fd);
		return -EEXIST;
	}
	/* another id in the slot: a segment the keeper destroyed while its DROP
	 * could not reach us; the keeper's word is the newer one */
	if (h->fd1) {
		close(h->fd1 - 1);
		vs->count--;
	}
	h->fd1 = fd + 1;
	h->id = req->id;
	vs->count++;
	return 0;
}

static int drop(struct vault_state *vs, const struct vault_msg *req)
{
	struct held *h = find(vs, req);
	int fd;
	struct stat st;

	if (!h)
		return -ENOENT;
	fd = h->fd1 - 1;
	/* as seg_destroy does: the memory goes now, whoever still has the file */
	if ((req->flags & VAULT_PUNCH) && fstat(fd, &st) == 0 && st.st_size > 0 &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, st.st_size) < 0)
		log_debug("punching slot %u: %s", req->slot, strerror(errno));
	close(fd);
	h->fd1 = 0;
	h->id = 0;
	vs->count--;
	return 0;
}

/* Every held descriptor's rss, in chunks. */
static int rss_all(struct vault_state *vs, const struct vault_msg *req)
{
	static struct {
		struct vault_msg hdr;
		struct vault_rss e[VAULT_RSS_CHUNK];
	} out;
	uint32_t n = 0;
	int r;

	for (uint32_t slot = 0;; slot++) {
		bool end = slot == SHMX_MAX_SEGMENTS_LIMIT;

		if (!end && vs->slots[slot].fd1) {
			out.e[n].slot = slot;
			out.e[n].id = vs->slots[slot].id;
			out.e[n].rss = shmx_fd_rss(vs->slots[slot].fd1 - 1);
			n++;
		}
		if (n < VAULT_RSS_CHUNK && !end)
			continue;
		memset(&out.hdr, 0, sizeof(out.hdr));
		out.hdr.op = req->op;
		out.hdr.result = (int32_t)n;
		out.hdr.flags = end ? VAULT_LAST : 0;
		out.hdr.seq = req->seq;
		r = shmx_sock_send(vs->sock, &out, sizeof(out.hdr) + n * sizeof(out.e[0]), -1, 0);
		if (r < 0 || end)
			return r;
		n = 0;
	}
}

/* One request; < 0: the socket failed, the vault ends. */
static int handle(struct vault_state *vs, const struct vault_msg *req, size_t len,
		  const struct shmx_sock_rx *rx)
{
	struct held *h;
	int fd = rx->fd;

	if (len != sizeof(*req) || rx->extra_fds || (fd >= 0) != (req->op == VAULT_PUT)) {
		/* a PUT whose descriptor did not fit here: our table is full */
		int r = req->op == VAULT_PUT && rx->truncated ? -EMFILE : -EBADMSG;

		if (fd >= 0)
			close(fd);
		log_warn("bad request (op %u, %zu bytes)", req->op, len);
		return answer(vs, req, r, 0, -1);
	}
	switch (req->op) {
	case VAULT_PUT:
		return answer(vs, req, put(vs, req, fd), 0, -1);
	case VAULT_GET:
		h = find(vs, req);
		return answer(vs, req, h ? 0 : -ENOENT, 0, h ? h->fd1 - 1 : -1);
	case VAULT_DROP:
		return answer(vs, req, drop(vs, req), 0, -1);
	case VAULT_RSS:
		h = find(vs, req);
		return answer(vs, req, h ? 0 : -ENOENT, h ? shmx_fd_rss(h->fd1 - 1) : 0, -1);
	case VAULT_RSS_ALL:
		return rss_all(vs, req);
	}
	return answer(vs, req, -EINVAL, 0, -1);
}

static int serve(struct vault_state *vs)
{
	struct vault_msg hello = { .op = VAULT_HELLO, .result = (int32_t)vs->cap };
	int r = shmx_sock_send(vs->sock, &hello, sizeof(hello), -1, 0);

	while (r == 0) {
		union {
			struct vault_msg req;
			char buf[sizeof(struct vault_msg) + 8];   /* longer ones are seen */
		} u;
		struct shmx_sock_rx rx;

		memset(&u, 0, sizeof(u));
		r = shmx_sock_recv(vs->sock, u.buf, sizeof(u.buf), 0, &rx);
		if (r == -ECONNRESET)
			return 0;       /* the keeper is done with us */
		if (r == 0)
			r = handle(vs, &u.req, rx.truncated ? sizeof(u.buf) : rx.len, &rx);
	}
	log_error("socket: %s", strerror(-r));
	return r;
}

int vault_main(const char *fd_arg)
{
	struct vault_state vs = { .sock = -1 };
	int type = 0, r;
	socklen_t len = sizeof(type);
	char *end;
	long fd;

	shmx_log_set_prefix("shmxd-vault");
	errno = 0;
	fd = strtol(fd_arg, &end, 10);
	if (errno || *end || fd < 0 || fd > 65535 ||
	    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
		log_error("%s is not a keeper's socket: a vault is started by shmxd itself", fd_arg);
		return 2;
	}
	vs.sock = (int)fd;
	vs.cap = capacity();
	vs.slots = calloc(SHMX_MAX_SEGMENTS_LIMIT, sizeof(*vs.slots));
	if (!vs.slots) {
		log_error("out of memory");
		return 1;
	}
	r = serve(&vs);
	for (uint32_t i = 0; i < SHMX_MAX_SEGMENTS_LIMIT; i++)
		if (vs.slots[i].fd1)
			close(vs.slots[i].fd1 - 1);
	free(vs.slots);
	close(vs.sock);
	return r < 0 ? 1 : 0;
}
