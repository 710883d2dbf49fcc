/* SPDX-License-Identifier: MIT */
/*
 * The keeper's event loop: one thread, epoll.  Sources are the listening
 * socket, a signalfd, client connections, orphans (holders found by
 * recovery, watched through their pidfd) and vaults' sockets (vault.c).
 *
 * Anything that must see every message already sent - destroying a segment
 * whose nattch reached 0, answering a SYNC or an RMID - waits for a drain:
 * accept every pending connection and handle every ready event, with a zero
 * timeout, until nothing is ready.  A fork's REATTACH on a fresh connection, or an
 * ATTACH on another, may be on its way while a DETACH drops nattch to 0.  A
 * fork's REATTACH that needs its sender's ATTACHes counted first waits for
 * one too (fork.c).  Report rings are read in a drain too, last, once the
 * sockets are quiet (report.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sock.h"
#include "util/sys.h"

#define MAX_EVENTS 64
#define MSGS_PER_EVENT 32               /* then the others get their turn */
#define DRAIN_ROUNDS_MAX 10000          /* a client that never stops sending */
#define FORK_ROUNDS_MAX 64              /* forks that wait on forks that wait... */
#define TICK_MS 1000

int ep_add(struct keeper *k, int fd, struct src *src)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

	return epoll_ctl(k->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void ep_del(struct keeper *k, int fd)
{
	epoll_ctl(k->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int keeper_loop_init(struct keeper *k)
{
	k->listen_src.kind = SRC_LISTEN;
	k->signal_src.kind = SRC_SIGNAL;
	k->epfd = epoll_create1(EPOLL_CLOEXEC);
	return k->epfd < 0 ? -errno : 0;
}

/* Made by the process that serves: epoll watches a signalfd through the wait
 * queue of the process that added it, so one added before fork would never
 * report the child's signals. */
int keeper_loop_start(struct keeper *k)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	k->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (k->sigfd < 0)
		return -errno;
	r = ep_add(k, k->sigfd, &k->signal_src);
	return r < 0 ? r : ep_add(k, k->lsock, &k->listen_src);
}

/* Accepts every pending connection; how many. */
static int accept_all(struct keeper *k)
{
	int n = 0;

	while (!k->listen_paused) {
		int fd;

		/* a memfd may go to a vault: a connection cannot */
		store_headroom(k);
		fd = accept4(k->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(k, fd);
			n++;
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || (errno == EMFILE && store_room(k) == 0))
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* stop polling a socket we cannot take from, until the tick */
			log_warn("cannot accept: %s", strerror(errno));
			ep_del(k, k->lsock);
			k->listen_paused = true;
		} else if (errno != EAGAIN) {
			log_warn("accept: %s", strerror(errno));
		}
		break;
	}
	return n;
}

static int reply(struct peer *p, uint32_t req_type, int32_t result, int fd)
{
	struct shmx_reply rep;
	int r;

	shmx_reply_init(&rep, req_type, result);
	/* never block on a client: one that does not read its replies is dropped */
	r = shmx_sock_send(p->fd, &rep, sizeof(rep), fd, MSG_DONTWAIT);
	if (r < 0)
		log_warn("pid %d: cannot send a reply (%s): disconnecting", (int)p->pid, strerror(-r));
	return r;
}

/* Nothing more is read from p until the next drain is over, so its messages
 * stay in order. */
static void park(struct keeper *k, struct peer *p, uint32_t type)
{
	struct peer **head = type == SHMX_MSG_REATTACH ? &k->fork_waits : &k->wait_head;

	p->waiting = true;
	p->wait_type = type;
	ep_del(k, p->fd);
	p->in_epoll = false;
	p->wait_next = *head;
	*head = p;
}

/* A parked connection (already off its list) is read again. */
void peer_resume(struct keeper *k, struct peer *p)
{
	if (ep_add(k, p->fd, &p->src) < 0) {
		peer_close(k, p);
		return;
	}
	p->in_epoll = true;
}

/*
 * A reply that must wait for the next drain: SYNC (everything sent before it
 * is counted), RMID (the segment is gone when it returns, as shmctl's is).
 */
static void defer_reply(struct keeper *k, struct peer *p, uint32_t type, int32_t result, int id)
{
	p->wait_result = result;
	p->sync_id = id;
	park(k, p, type);
}

/*
 * shmget(), and for a creator that asks for it (SHMX_GET_WITH_FD) the new
 * segment's descriptor, as an FD request would give it (if the mode lets the
 * creator read and write; else the reply comes without one).
 */
static int get(struct keeper *k, struct peer *p, const struct shmx_req *req, pid_t pid)
{
	bool created, close_fd = false;
	struct shmx_req fdreq;
	int id, fd = -1, r;

	id = seg_get(k, p, req, pid, &created);
	if (id < 0 || !created || !(req->cmd & SHMX_GET_WITH_FD))
		return reply(p, req->type, id, -1);
	fdreq = *req;
	fdreq.type = SHMX_MSG_FD;
	fdreq.id = id;
	fdreq.flags = 0;
	if (seg_fd(k, p, &fdreq, &fd, &close_fd) < 0)
		fd = -1;
	r = reply(p, req->type, id, fd);
	if (close_fd)
		close(fd);
	return r;
}

/* One checked request; < 0 closes the connection. */
static int dispatch(struct keeper *k, struct peer *p, const struct shmx_req *req,
		    const struct shmx_sock_rx *rx)
{
	pid_t pid = rx->pid > 0 ? rx->pid : p->pid;
	bool close_fd = false;
	int fd = -1, r;

	switch (req->type) {
	case SHMX_MSG_HELLO:
		return report_hello(p, req, rx->fd);
	case SHMX_MSG_GET:
		return get(k, p, req, pid);
	case SHMX_MSG_FD:
		r = seg_fd(k, p, req, &fd, &close_fd);
		r = reply(p, req->type, r, r == 0 ? fd : -1);
		if (close_fd)
			close(fd);
		return r;
	case SHMX_MSG_ATTACH:
		seg_attach(k, p, req, pid);
		return 0;
	case SHMX_MSG_DETACH:
		seg_detach(k, p, req, pid);
		return 0;
	case SHMX_MSG_CTL:
		r = seg_ctl(k, p, req);
		if (r == 0 && req->cmd == SHMX_RMID) {
			defer_reply(k, p, req->type, r, SHMX_SYNC_NONE);
			return 0;
		}
		return reply(p, req->type, r, -1);
	case SHMX_MSG_SYNC:
		defer_reply(k, p, req->type, 0, req->id);
		return 0;
	case SHMX_MSG_REATTACH:
		if (seg_reattach(k, p, req, rx->fd, pid))
			park(k, p, SHMX_MSG_REATTACH);
		return 0;
	case SHMX_MSG_IDENT:
		seg_ident(k, p, rx->pid);
		return 0;
	case SHMX_MSG_RELEASE:
		seg_release(k, p, req);
		return 0;
	}
	return -EBADMSG;
}

static void conn_readable(struct keeper *k, struct peer *p)
{
	for (int i = 0; i < MSGS_PER_EVENT && !p->dead && !p->waiting; i++) {
		union {
			struct shmx_req req;
			char buf[sizeof(struct shmx_req) + 8];  /* longer ones are seen */
		} u;
		struct shmx_sock_rx rx;
		int r;

		r = shmx_sock_recv(p->fd, u.buf, sizeof(u.buf), MSG_DONTWAIT, &rx);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
			if (r != -ECONNRESET)
				log_info("pid %d: %s", (int)p->pid, strerror(-r));
			/* its last reports, as messages queued before the end would be:
			 * their atime, dtime and lpid */
			else if (report_drain(k, p) < 0)
				return;
			peer_close(k, p);
			return;
		}
		r = shmx_req_check(u.buf, rx.len);
		if (r == 0 && (rx.truncated || rx.extra_fds))
			r = -EBADMSG;
		if (r == 0 && rx.fd >= 0 && u.req.type != SHMX_MSG_REATTACH &&
		    u.req.type != SHMX_MSG_HELLO)
			r = -EBADMSG;
		if (r == -EPROTONOSUPPORT) {
			log_warn("pid %d speaks protocol version %u: disconnecting",
				 (int)p->pid, (unsigned)u.req.version);
			reply(p, u.req.type, -EPROTONOSUPPORT, -1);
		} else if (r < 0) {
			log_warn("pid %d: malformed message (%zu bytes%s): disconnecting",
				 (int)p->pid, rx.len, rx.fd >= 0 ? ", with a descriptor" : "");
		} else if ((r = report_before(k, p, u.req.type)) == 0) {
			log_debug("pid %d: %s id %d", (int)p->pid, shmx_msg_name(u.req.type), u.req.id);
			r = dispatch(k, p, &u.req, &rx);
			rx.fd = -1;     /* dispatch owns it */
		}
		if (r < 0) {
			if (rx.fd >= 0)
				close(rx.fd);
			peer_close(k, p);
			return;
		}
	}
}

static void signal_readable(struct keeper *k)
{
	struct signalfd_siginfo si;

	while (read(k->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		log_info("signal %u: exiting", si.ssi_signo);
		k->quit = true;
	}
}

static void handle_events(struct keeper *k, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		struct src *src = evs[i].data.ptr;
		struct peer *p = (struct peer *)src;

		switch (src->kind) {
		case SRC_LISTEN:
			accept_all(k);
			break;
		case SRC_SIGNAL:
			signal_readable(k);
			break;
		case SRC_CONN:
			if (!p->dead && p->in_epoll)
				conn_readable(k, p);
			break;
		case SRC_ORPHAN:
			if (!p->dead) {
				log_info("holder pid %d exited", (int)p->pid);
				peer_close(k, p);
			}
			break;
		case SRC_VAULT:
			vault_event(k, (struct vault *)src);
			break;
		}
	}
}

/* Until nothing is pending: every connection accepted, every message read,
 * then every report ring. */
static void drain(struct keeper *k)
{
	struct epoll_event evs[MAX_EVENTS];

	for (int round = 0; round < DRAIN_ROUNDS_MAX && !k->quit; round++) {
		int accepted = accept_all(k);
		int n;

		peer_reap(k);
		n = epoll_wait(k->epfd, evs, MAX_EVENTS, 0);
		if (n < 0 && errno != EINTR)
			return;
		if (n > 0)
			handle_events(k, evs, n);
		else if (!accepted && !report_drain_all(k))
			return;
	}
	log_warn("connections never quiet down: not waiting any longer");
}

/*
 * Fork REATTACHes, now that what their senders sent before them is counted.
 * The connections judged are read again, and what they send next (another
 * REATTACH, a child's IDENT that another fork's REATTACH waits on) must be
 * read before anything is destroyed: drain again until none waits.
 */
static void judge_forks(struct keeper *k)
{
	for (int round = 0; k->fork_waits; round++) {
		if (round == FORK_ROUNDS_MAX) {
			log_warn("forks never quiet down: judging them without waiting any longer");
			fork_judge(k, true);
			return;
		}
		if (!fork_judge(k, false))
			fork_judge(k, true);    /* nothing more will come: as they stand */
		drain(k);
	}
}

/* What waits for a drain: fork REATTACHes, a lost vault's segments, destroys,
 * then the deferred replies. */
static void settle(struct keeper *k)
{
	bool all_fresh = false;

	if (k->queue_head == NO_SLOT && !k->wait_head && !k->fork_waits && !k->rescue)
		return;
	drain(k);
	judge_forks(k);
	/* a lost vault's segments: taken back from a holder whose ATTACH, read
	 * now, named its descriptor, or queued */
	if (k->rescue)
		store_rescue(k);
	seg_settle(k);
	while (k->wait_head) {
		struct peer *p = k->wait_head;

		k->wait_head = p->wait_next;
		p->wait_next = NULL;
		p->waiting = false;
		if (p->wait_type == SHMX_MSG_SYNC && (p->sync_id != SHMX_SYNC_ALL || !all_fresh))
			seg_refresh_rss(k, p->sync_id);
		all_fresh |= p->wait_type == SHMX_MSG_SYNC && p->sync_id == SHMX_SYNC_ALL;
		if (reply(p, p->wait_type, p->wait_result, -1) < 0) {
			peer_close(k, p);
			continue;
		}
		peer_resume(k, p);
	}
}

/* Orphans without a pidfd (none on this kernel) are looked at once a tick. */
static void poll_orphans(struct keeper *k)
{
	struct peer *p, *next;

	for (p = k->peers; p && k->norphans; p = next) {
		next = p->next;
		if (p->src.kind == SRC_ORPHAN && p->fd < 0 &&
		    shmx_proc_starttime(p->pid) != p->starttime) {
			log_info("holder pid %d exited", (int)p->pid);
			peer_close(k, p);
		}
	}
}

static void tick(struct keeper *k)
{
	int64_t now = shmx_mono_ms();
	struct stat st;

	if (stat(k->sock_path, &st) < 0 || (uint64_t)st.st_ino != k->sock_ino ||
	    (uint64_t)st.st_dev != k->sock_dev) {
		log_warn("%s is gone or replaced: exiting", k->sock_path);
		k->sock_ours = false;
		k->quit = true;
		return;
	}
	if (k->listen_paused && ep_add(k, k->lsock, &k->listen_src) == 0)
		k->listen_paused = false;
	poll_orphans(k);
	store_tick(k);
	/* nattch and atime stay fresh for readers that never SYNC */
	report_drain_all(k);
	if (!k->idle_exit || k->nconns || k->norphans || shmx_reg_hdr(&k->reg)->segments) {
		k->idle_since = 0;
		return;
	}
	if (!k->idle_since)
		k->idle_since = now;
	else if (accept_all(k))
		k->idle_since = 0;      /* someone came just now */
	else if (now - k->idle_since >= (int64_t)k->idle_exit * 1000) {
		log_info("idle for %u s: exiting", k->idle_exit);
		k->quit = true;
		k->idle_quit = true;
	}
}

int keeper_loop(struct keeper *k)
{
	struct epoll_event evs[MAX_EVENTS];
	int64_t next_tick;
	int r;

	next_tick = shmx_mono_ms() + TICK_MS;
	/* what recovery queued (holders that died meanwhile) */
	settle(k);
	while (!k->quit) {
		int64_t timeout = next_tick - shmx_mono_ms();
		int n;

		peer_reap(k);
		if (timeout < 0)
			timeout = 0;
		n = epoll_wait(k->epfd, evs, MAX_EVENTS, (int)timeout);
		if (n < 0 && errno != EINTR) {
			r = -errno;
			log_error("epoll_wait: %s", strerror(errno));
			return r;
		}
		if (n > 0)
			handle_events(k, evs, n);
		if (shmx_mono_ms() >= next_tick) {
			tick(k);
			next_tick = shmx_mono_ms() + TICK_MS;
		}
		/* after the tick too: what its rings queued is destroyed now */
		settle(k);
	}
	peer_reap(k);
	return 0;
}
