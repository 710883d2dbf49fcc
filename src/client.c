/* SPDX-License-Identifier: MIT */
/*
 * The connection to the keeper: requests and one-way messages, replacing a
 * connection (keeper restart, identity change) without dropping counts, the
 * descriptor cache, and fork.  Reaching or starting the keeper is start.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "report.h"
#include "util/log.h"
#include "util/sock.h"
#include "util/sys.h"

#define REPLY_TIMEOUT_MS 30000          /* a keeper that never answers */

struct shmx_client shmx_client = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.ns = { .dirfd = -1 },
	.sock = -1,
	.fork_sock = -1,
};

#define C shmx_client

static void disconnect(void)
{
	if (C.sock >= 0)
		close(C.sock);
	C.sock = -1;
	C.stale = false;
	shmx_report_ring_free(C.ring);
	C.ring = NULL;
	C.ring_tail = 0;
}

/* Forgets everything tied to the current namespace. */
static void reset_namespace(void)
{
	disconnect();
	shmx_reg_close(&C.reg);
	for (size_t i = 0; i < C.nheld; i++) {
		close(C.held[i].fd);
		if (C.held[i].ro_fd >= 0)
			close(C.held[i].ro_fd);
	}
	C.nheld = 0;
	/* the mappings stay (they are the program's), but are no longer counted */
	C.natts = 0;
	shmx_ns_close(&C.ns);
}

void shmx_client_lock(void)
{
	char path[PATH_MAX];

	pthread_mutex_lock(&C.lock);
	/* SHMX_NAMESPACE may change between calls (tests do): follow it */
	if (C.ns.dirfd >= 0 && (shmx_ns_resolve(path, sizeof(path)) < 0 || strcmp(path, C.ns.path)))
		reset_namespace();
}

void shmx_client_unlock(void)
{
	pthread_mutex_unlock(&C.lock);
}

const struct shmx_cred *shmx_client_cred(void)
{
	return &C.cred;
}

static int send_req(int sock, const struct shmx_req *req, int passfd)
{
	return shmx_sock_send(sock, req, sizeof(*req), passfd, 0);
}

/* The first message of a connection; it hands over the report ring, if any. */
static int send_hello(int sock, int ringfd)
{
	struct shmx_req req;

	shmx_req_init(&req, SHMX_MSG_HELLO);
	req.count = ringfd >= 0 ? SHMX_REPORT_ENTRIES : 0;
	return send_req(sock, &req, ringfd);
}

/* A new connection and its report ring (NULL if none could be made). */
static int open_conn(struct shmx_report_ring **ringp)
{
	int sock, ringfd = -1, r;

	*ringp = NULL;
	sock = shmx_keeper_connect_or_start();
	if (sock < 0)
		return sock;
	if (shmx_report_ring_new(ringp, &ringfd) < 0)
		log_info("no report ring: attaches are reported by message");
	r = send_hello(sock, ringfd);
	if (ringfd >= 0)
		close(ringfd);
	if (r < 0) {
		shmx_report_ring_free(*ringp);
		*ringp = NULL;
		close(sock);
		return r;
	}
	return sock;
}

/* Maps the registry the keeper made, unless the one we have is still it. */
static int map_registry(void)
{
	struct shmx_reg reg;
	int r;

	r = shmx_reg_open_ro(C.ns.dirfd, &reg);
	if (r < 0) {
		log_error("cannot use the registry of %s: %s", C.ns.path, strerror(-r));
		return r == -EBADMSG ? -EPROTO : r;
	}
	r = shmx_ns_check_registry(&C.ns, &reg);
	if (r < 0) {
		shmx_reg_close(&reg);
		return r;
	}
	if (C.reg.base && C.reg.ino == reg.ino && C.reg.dev == reg.dev) {
		shmx_reg_close(&reg);
		return 0;
	}
	shmx_reg_close(&C.reg);
	C.reg = reg;
	return 0;
}

/* Tells a keeper what this process holds: after it restarted, or for a child. */
static int send_holdings(int sock, uint32_t flags)
{
	for (size_t i = 0; i < C.nheld; i++) {
		struct shmx_req req;
		int r;

		shmx_req_init(&req, SHMX_MSG_REATTACH);
		req.id = C.held[i].id;
		req.fd = C.held[i].fd;
		req.count = C.held[i].count;
		req.flags = (int32_t)flags;
		r = send_req(sock, &req, flags & SHMX_REATTACH_FORK ? -1 : C.held[i].fd);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool conn_lost(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN;
}

static bool conn_usable(void)
{
	/* a new keeper clears the magic of the registry it replaced; a changed
	 * identity must not be served with the old connection's credentials */
	return C.sock >= 0 && !C.stale && shmx_reg_hdr(&C.reg)->magic == SHMX_REG_MAGIC &&
	       C.cred.uid == geteuid() && C.cred.gid == getegid();
}

/*
 * A new connection replaces the old one only once it carries this process's
 * holdings: closing first would let the keeper see nattch 0 and destroy a
 * removed segment that is still mapped here.  If no new connection can be
 * made, the old one stays open, so that the attachments stay counted.
 */
int shmx_client_connect(void)
{
	struct shmx_report_ring *ring;
	int sock, r;

	if (conn_usable())
		return 0;
	if (C.ns.dirfd < 0) {
		char path[PATH_MAX];

		r = shmx_ns_resolve(path, sizeof(path));
		if (r < 0)
			return r;
		r = shmx_ns_open(path, &C.ns);
		if (r < 0)
			return r;
	}
	/* a directory others may enter is used only as the shared namespace
	 * its registry says it is: check that before touching anything */
	if (C.ns.open_to_others) {
		r = map_registry();
		if (r < 0)
			return r == -ENOENT ? -EACCES : r;
	}
	sock = open_conn(&ring);
	if (sock < 0)
		return conn_lost(sock) ? -ENOTCONN : sock;
	r = map_registry();
	if (r == 0)
		r = send_holdings(sock, 0);
	if (r < 0) {
		shmx_report_ring_free(ring);
		close(sock);
		return conn_lost(r) ? -ENOTCONN : r;
	}
	disconnect();
	C.sock = sock;
	C.ring = ring;
	C.conn_gen++;
	shmx_cred_self(&C.cred);
	log_debug("connected to the keeper of %s", C.ns.path);
	return 0;
}

static int wait_reply(int sock, struct shmx_reply *rep, int *fdp)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct shmx_sock_rx rx;
	int r;

	do
		r = poll(&pfd, 1, REPLY_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		log_error("the keeper did not answer in %d ms", REPLY_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	r = shmx_sock_recv(sock, rep, sizeof(*rep), 0, &rx);
	if (r < 0)
		return r;
	if (rx.fd >= 0 && (!fdp || rx.truncated)) {
		close(rx.fd);
		rx.fd = -1;
	}
	if (rx.fds_dropped && rx.fd < 0 && shmx_reply_check(rep, rx.len) == 0 && rep->result >= 0) {
		/* the whole reply came, but the kernel could not give us its
		 * descriptor: this process is at its RLIMIT_NOFILE */
		log_warn("no room for the keeper's descriptor: too many open files");
		return -EMFILE;
	}
	if (rx.truncated || shmx_reply_check(rep, rx.len) < 0) {
		if (rx.fd >= 0)
			close(rx.fd);
		log_error("malformed reply from the keeper");
		return -EPROTO;
	}
	if (fdp)
		*fdp = rx.fd;
	return 0;
}

/* fd_required: a successful reply without a descriptor is a protocol error */
static int call(struct shmx_req *req, int *fdp, bool fd_required)
{
	struct shmx_reply rep;
	int r = 0;

	if (fdp)
		*fdp = -1;
	/* one retry: the keeper may have gone since the last call */
	for (int attempt = 0; attempt < 2; attempt++) {
		r = shmx_client_connect();
		if (r < 0)
			return r;
		r = send_req(C.sock, req, -1);
		if (r == 0)
			r = wait_reply(C.sock, &rep, fdp);
		if (r == 0)
			break;
		if (r == -EMFILE)
			return r;       /* the reply was read whole: still in step */
		if (!conn_lost(r)) {
			/* a reply may still come: this connection can no longer be
			 * asked anything, but it keeps counting our attachments
			 * until a new one has taken them over */
			C.stale = true;
			return r;
		}
		/* the keeper is gone: closing ends nothing it still counts */
		disconnect();
	}
	if (r < 0)
		return -ENOTCONN;
	if (fdp && *fdp >= 0 && (rep.result < 0 || rep.req_type != req->type)) {
		close(*fdp);
		*fdp = -1;
	}
	if (rep.req_type == SHMX_MSG_HELLO) {
		log_error("the keeper speaks another protocol version");
		return rep.result < 0 ? rep.result : -EPROTO;
	}
	if (rep.req_type != req->type) {
		log_error("reply to %s where %s was asked", shmx_msg_name(rep.req_type),
			  shmx_msg_name(req->type));
		C.stale = true;
		return -EPROTO;
	}
	if (fd_required && fdp && *fdp < 0 && rep.result >= 0) {
		log_error("the keeper sent no descriptor");
		return -EPROTO;
	}
	return rep.result;
}

int shmx_client_call(struct shmx_req *req, int *fdp)
{
	return call(req, fdp, true);
}

int shmx_client_call_maybe_fd(struct shmx_req *req, int *fdp)
{
	return call(req, fdp, false);
}

int shmx_client_post(const struct shmx_req *req, int passfd)
{
	uint64_t gen = C.conn_gen;
	int r = shmx_client_connect();

	/* a new connection's REATTACH carried this change already */
	if (C.conn_gen != gen)
		return 0;
	/* failing that, the old connection still counts for this process */
	if (r < 0 && C.sock < 0)
		return r;
	r = send_req(C.sock, req, passfd);
	if (conn_lost(r)) {
		/* the new connection's REATTACH carries this change already */
		disconnect();
		return shmx_client_connect();
	}
	return r;
}

/*
 * Answers taken from the registry alone must not come from a dead keeper's
 * table: a keeper that died closed our connection.
 */
int shmx_client_check_alive(void)
{
	struct pollfd pfd = { .fd = C.sock, .events = POLLRDHUP };

	if (C.sock >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR)))
		disconnect();
	return shmx_client_connect();
}

int shmx_client_sync(int id)
{
	struct shmx_req req;

	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = id;
	return shmx_client_call(&req, NULL);
}

struct shmx_held *shmx_held_find(int id)
{
	for (size_t i = 0; i < C.nheld; i++)
		if (C.held[i].id == id)
			return &C.held[i];
	return NULL;
}

struct shmx_held *shmx_held_add(int id, int fd, bool rdonly)
{
	struct shmx_held *h;

	if (C.nheld == C.held_cap) {
		size_t cap = C.held_cap ? 2 * C.held_cap : 16;

		h = realloc(C.held, cap * sizeof(*h));
		if (!h)
			return NULL;
		C.held = h;
		C.held_cap = cap;
	}
	h = &C.held[C.nheld++];
	*h = (struct shmx_held){ .id = id, .fd = fd, .rdonly = rdonly, .ro_fd = -1 };
	return h;
}

void shmx_held_sweep(void)
{
	struct shmx_reg_record rec;

	for (size_t i = 0; i < C.nheld;) {
		struct shmx_held *h = &C.held[i];

		if (h->count == 0 && shmx_reg_find_id(&C.reg, h->id, &rec) != 0)
			shmx_held_drop(h);
		else
			i++;
	}
}

void shmx_held_drop(struct shmx_held *h)
{
	int id = h->id;
	size_t i = (size_t)(h - C.held);

	/* a replaced keeper must hear of this descriptor before it goes, or it
	 * would keep counting the holding that the RELEASE below ends */
	shmx_client_check_alive();
	h = &C.held[i];
	close(h->fd);
	if (h->ro_fd >= 0)
		close(h->ro_fd);
	*h = C.held[--C.nheld];
	shmx_client_report(SHMX_MSG_RELEASE, id, -1, 0);
}

static int sync_sock(int sock)
{
	struct shmx_reply rep;
	struct shmx_req req;
	int r;

	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = SHMX_SYNC_NONE;
	r = send_req(sock, &req, -1);
	if (r == 0)
		r = wait_reply(sock, &rep, NULL);
	if (r == 0 && rep.req_type != SHMX_MSG_SYNC)
		r = -EPROTO;
	return r;
}

/*
 * fork: the child must be counted before either process runs on (the parent
 * may leave at once), so the connection the child will use is opened, and
 * the holdings announced on it, before fork() returns.
 */
static void atfork_prepare(void)
{
	int saved = errno;
	int sock;

	pthread_mutex_lock(&C.lock);
	if (C.sock >= 0 && C.nheld > 0) {
		int ringfd = -1;

		sock = shmx_connect_sock(C.ns.dirfd);
		if (sock >= 0 && shmx_report_ring_new(&C.fork_ring, &ringfd) < 0)
			C.fork_ring = NULL;
		/* the round trip makes the keeper judge the child's counts now,
		 * while the mutex keeps this process from detaching anything */
		if (sock >= 0 && (send_hello(sock, ringfd) < 0 ||
				  send_holdings(sock, SHMX_REATTACH_FORK) < 0 || sync_sock(sock) < 0)) {
			close(sock);
			sock = -1;
			shmx_report_ring_free(C.fork_ring);
			C.fork_ring = NULL;
		}
		if (ringfd >= 0)
			close(ringfd);
		C.fork_sock = sock;
	}
	errno = saved;
}

static void atfork_parent(void)
{
	int saved = errno;

	if (C.fork_sock >= 0)
		close(C.fork_sock);
	C.fork_sock = -1;
	shmx_report_ring_free(C.fork_ring);
	C.fork_ring = NULL;
	pthread_mutex_unlock(&C.lock);
	errno = saved;
}

static void atfork_child(void)
{
	int saved = errno;

	/* the parent's connection and ring are the parent's alone */
	disconnect();
	C.sock = C.fork_sock;
	C.ring = C.fork_ring;
	C.fork_sock = -1;
	C.fork_ring = NULL;
	if (C.sock >= 0) {
		struct shmx_req req;

		/* the keeper takes our pid from this message's credentials */
		shmx_req_init(&req, SHMX_MSG_IDENT);
		if (send_req(C.sock, &req, -1) < 0)
			disconnect();
	}
	pthread_mutex_unlock(&C.lock);
	errno = saved;
}

__attribute__((constructor))
static void client_init(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
