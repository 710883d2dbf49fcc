/* SPDX-License-Identifier: MIT */
/*
 * The keeper's side of its vaults (vault.h): starting them, one synchronous
 * request at a time, and losing one.  The wire itself - numbered requests,
 * deadlines, late replies - is vaultwire.c.
 *
 * A vault is our own child and answers in microseconds, so the keeper waits
 * for each reply, but never longer than VAULT_TIMEOUT_MS.  A vault that does
 * not answer in time is only slow (stopped, swapped out): that request fails,
 * its reply is discarded when it comes (by its number, vault_msg.seq), and
 * nothing that waits is asked of the vault until it has answered.  A DROP is
 * not waited for at all, so that a destroy never waits on a big punch.
 *
 * A vault that hangs up or answers nonsense is lost.  Its segments are then
 * in the state recovery leaves a segment whose memfd it could not take back:
 * pending while some process holds them (we try to take the descriptor back
 * from one, store.c), gone when none does - what a keeper's death does to
 * them anyway.  Its socket is in the epoll set, so a death is seen at once.
 *
 * A vault that cannot be started is not tried again at once: each failure
 * doubles a back-off (VAULT_BACKOFF_MS up to VAULT_BACKOFF_MAX_MS), so that a
 * broken exec does not cost a fork for every create or accept.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keeper.h"
#include "util/log.h"
#include "util/sock.h"
#include "util/sys.h"
#include "vault.h"
#include "vaultwire.h"

#define VAULT_MAX 1024
#define VAULT_BACKOFF_MS 1000
#define VAULT_BACKOFF_MAX_MS 30000


/* The child, between fork and exec: only async-signal-safe calls. */
__attribute__((noreturn))
static void vault_exec(int sock, pid_t keeper, bool logging)
{
	char *argv[] = { "shmxd", VAULT_ARG, "3", NULL };
	sigset_t none;
	int null;

	/* it dies with the keeper: a keeper that follows recovers segments
	 * from their holders, never from a vault */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != keeper)
		_exit(1);
	/* a terminal's ^C is for the keeper, which ends us by closing the socket */
	setpgid(0, 0);
	if (sock == VAULT_FD ? fcntl(sock, F_SETFD, 0) < 0 : dup2(sock, VAULT_FD) < 0)
		_exit(1);
	/* as daemon_ready() does, for a vault started before it: a caller
	 * waiting for the end of a pipe must not wait for ours */
	null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    (!logging && dup2(null, STDERR_FILENO) < 0))
		_exit(1);
	/* every other descriptor is close-on-exec already; this makes sure */
	syscall(SYS_close_range, VAULT_FD + 1, ~0u, 0u);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* a clean image: a forked keeper would keep its mappings (registry,
	 * report rings, locked segments) alive in every vault */
	execv("/proc/self/exe", argv);
	_exit(127);
}

static void unwatch(struct keeper *k, struct vault *v)
{
	epoll_ctl(k->epfd, EPOLL_CTL_DEL, v->sock, NULL);
	close(v->sock);
	v->sock = -1;
	v->count = 0;
}

static void reap(struct vault *v, int options)
{
	if (v->pid > 0 && waitpid(v->pid, NULL, options) != 0)
		v->pid = 0;
}

/* Its segments are pending (held) or gone (not): vault.c's top. */
static void vault_lost(struct keeper *k, struct vault *v, const char *why)
{
	uint32_t lost = 0, held = 0;
	pid_t pid = v->pid;

	unwatch(k, v);
	v->slow = false;
	if (v->pid > 0)
		kill(v->pid, SIGKILL);
	reap(v, WNOHANG);
	for (uint32_t idx = 0; idx < k->reg.lay.max_segments; idx++) {
		struct kseg *s = &k->segs[idx];

		if (s->vault != v->index)
			continue;
		s->vault = -1;
		lost++;
		if (s->holds) {
			s->rescue = true;
			s->rescue_tries = 0;
			k->rescue = true;
			held++;
		}
		seg_check_gone(k, idx);
	}
	log_error("vault %d (pid %d) lost (%s): %u segments, %u of them held by clients",
		  v->index, (int)pid, why, lost, held);
}

/* Why a failed exchange with a vault lost it, for the log. */
static const char *lost_why(int r)
{
	return r == -ECONNRESET || r == -EPIPE ? "it died" : strerror(-r);
}

/* NULL, and no other start for a while. */
static struct vault *start_failed(struct keeper *k, const char *why)
{
	uint32_t b = k->vault_backoff_ms;

	b = !b ? VAULT_BACKOFF_MS : b >= VAULT_BACKOFF_MAX_MS / 2 ? VAULT_BACKOFF_MAX_MS : 2 * b;
	k->vault_backoff_ms = b;
	k->vault_retry_at = shmx_mono_ms() + b;
	log_error("cannot start a vault (%s): none tried for %u ms", why, b);
	return NULL;
}

/* A started vault says how much it takes; NULL if it does not. */
static struct vault *vault_start(struct keeper *k, struct vault *v)
{
	int64_t deadline = shmx_mono_ms() + VAULT_TIMEOUT_MS;
	struct epoll_event ev = { .events = EPOLLIN };
	struct vault_msg hello;
	struct shmx_sock_rx rx;
	bool logging = shmx_log_threshold() != SHMX_LOG_NONE;
	pid_t keeper = getpid();
	int sv[2], r;

	if (deadline - VAULT_TIMEOUT_MS < k->vault_retry_at)
		return NULL;            /* backing off: see the top */
	if (!v) {
		struct vault **t;

		if (k->nvaults == VAULT_MAX)
			return start_failed(k, "too many vaults");
		t = realloc(k->vaults, (k->nvaults + 1) * sizeof(*t));
		if (!t)
			return start_failed(k, strerror(ENOMEM));
		k->vaults = t;
		v = calloc(1, sizeof(*v));
		if (!v)
			return start_failed(k, strerror(ENOMEM));
		v->src.kind = SRC_VAULT;
		v->sock = -1;
		v->index = (int)k->nvaults;
		k->vaults[k->nvaults++] = v;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return start_failed(k, strerror(errno));
	v->pid = fork();
	if (v->pid == 0)
		vault_exec(sv[1], keeper, logging);
	close(sv[1]);
	v->sock = sv[0];
	v->seq = 0;
	v->slow = false;
	if (v->pid < 0) {
		r = errno;
		v->pid = 0;
		unwatch(k, v);
		return start_failed(k, strerror(r));
	}
	fcntl(v->sock, F_SETFL, O_NONBLOCK);
	r = vwire_recv(v, &hello, sizeof(hello), &rx, deadline);
	if (r == 0 && rx.fd >= 0)
		close(rx.fd);
	if (r == 0 && (rx.len != sizeof(hello) || rx.truncated || hello.op != VAULT_HELLO ||
		       hello.result <= 0))
		r = -EPROTO;
	ev.data.ptr = &v->src;
	if (r == 0 && epoll_ctl(k->epfd, EPOLL_CTL_ADD, v->sock, &ev) < 0)
		r = -errno;
	if (r < 0) {
		log_error("vault pid %d did not start: %s", (int)v->pid, strerror(-r));
		unwatch(k, v);
		kill(v->pid, SIGKILL);
		/* not waited for: the tick reaps it (vault_reap) */
		reap(v, WNOHANG);
		return start_failed(k, "no answer");
	}
	k->vault_backoff_ms = 0;
	v->cap = (uint32_t)hello.result;
	v->count = 0;
	log_info("vault %d (pid %d) started: it holds up to %u segments", v->index, (int)v->pid,
		 v->cap);
	return v;
}

/* A vault with room, started if none has; NULL if none can be. */
static struct vault *vault_pick(struct keeper *k)
{
	struct vault *spare = NULL;

	for (uint32_t i = 0; i < k->nvaults; i++) {
		struct vault *v = k->vaults[i];

		if (v->sock >= 0 && !v->slow && v->count < v->cap)
			return v;
		if (v->sock < 0 && v->pid == 0 && !spare)
			spare = v;
	}
	return vault_start(k, spare);
}

/* Whether vault_pick() could give a vault now, without waiting out a
 * back-off: store_headroom() moves nothing otherwise. */
bool vault_room(struct keeper *k)
{
	for (uint32_t i = 0; i < k->nvaults; i++) {
		struct vault *v = k->vaults[i];

		if (v->sock >= 0 && !v->slow && v->count < v->cap)
			return true;
	}
	return shmx_mono_ms() >= k->vault_retry_at;
}

/*
 * One request and its reply (*m), with a descriptor each way if passfd or
 * fdp.  -ETIMEDOUT: no reply in time (the vault is slow now); other < 0:
 * the vault is lost, and its segments with it.
 */
static int call(struct keeper *k, struct vault *v, struct vault_msg *m, int passfd, int *fdp)
{
	int64_t deadline = shmx_mono_ms() + VAULT_TIMEOUT_MS;
	union {
		struct vault_msg rep;
		char buf[sizeof(struct vault_msg) + 8];       /* longer ones are seen */
	} u;
	struct shmx_sock_rx rx;
	int r;

	r = vwire_send(v, m, passfd, deadline);
	while (r == 0) {
		r = vwire_recv(v, u.buf, sizeof(u.buf), &rx, deadline);
		if (r < 0 || !vwire_discard_late(v, u.buf, &rx, m->seq))
			break;
	}
	if (r == -ETIMEDOUT) {
		vwire_timed_out(v, m->seq, "a request");
		return r;
	}
	if (r < 0) {
		vault_lost(k, v, lost_why(r));
		return -EIO;
	}
	if (rx.len != sizeof(u.rep) || rx.extra_fds || u.rep.op != m->op ||
	    u.rep.slot != m->slot || u.rep.seq != m->seq || (rx.fd >= 0 && !fdp)) {
		if (rx.fd >= 0)
			close(rx.fd);
		vault_lost(k, v, "a reply that makes no sense");
		return -EIO;
	}
	*m = u.rep;
	if (fdp)
		*fdp = rx.fd;
	return 0;
}

static struct vault *vault_of(struct keeper *k, uint32_t idx)
{
	int i = k->segs[idx].vault;

	return i >= 0 && (uint32_t)i < k->nvaults && k->vaults[i]->sock >= 0 ? k->vaults[i] : NULL;
}

/*
 * Has the vault close (slot, id), without waiting for its reply (discarded
 * when it comes): a punch of a big segment takes time, and a destroy must
 * not wait for it.  A DROP that cannot be sent leaves the vault's copy until
 * the vault ends (or a PUT of another id takes the slot).
 */
static void send_drop(struct keeper *k, struct vault *v, uint32_t idx, int id, bool punch)
{
	struct vault_msg m = {
		.op = VAULT_DROP, .slot = idx, .id = id, .flags = punch ? VAULT_PUNCH : 0,
	};
	/* a slow vault gets no wait: one that does not read would cost each */
	int64_t deadline = shmx_mono_ms() + (v->slow ? 0 : VAULT_TIMEOUT_MS);
	int r = vwire_send(v, &m, -1, deadline);

	if (r == -ETIMEDOUT) {
		log_warn("vault %d: segment %d cannot be dropped now: its memory stays until the vault ends",
			 v->index, id);
		vwire_timed_out(v, m.seq, "a drop");
	} else if (r < 0) {
		vault_lost(k, v, lost_why(r));
	}
}

/* Hands a copy of fd over to a vault as slot idx (the caller closes its
 * own).  -ENOSPC if no vault takes it. */
int vault_put(struct keeper *k, uint32_t idx, int id, int fd)
{
	struct vault_msg m = { .op = VAULT_PUT, .slot = idx, .id = id };
	int r;

	/* a few tries: a vault lost or full is replaced by another */
	for (int tries = 0; tries < 4; tries++) {
		struct vault *v = vault_pick(k);

		if (!v)
			return -ENOSPC;
		r = call(k, v, &m, fd, NULL);
		if (r == -ETIMEDOUT) {
			/* it may take it yet: the DROP, after it in order, undoes that */
			send_drop(k, v, idx, id, false);
			m = (struct vault_msg){ .op = VAULT_PUT, .slot = idx, .id = id };
		}
		if (r < 0)
			continue;       /* lost, or slow: another one */
		if (m.result == 0) {
			v->count++;
			k->segs[idx].vault = v->index;
			return 0;
		}
		log_warn("vault %d refused a segment: %s", v->index, strerror(-m.result));
		if (m.result != -EMFILE)
			return -ENOSPC;
		v->cap = v->count;      /* full sooner than it said: the next one */
		m = (struct vault_msg){ .op = VAULT_PUT, .slot = idx, .id = id };
	}
	return -ENOSPC;
}

/* A copy of the memfd a vault holds: -EAGAIN if the vault was lost (the
 * segment is pending now), -EMFILE if we have no room for it, -ETIMEDOUT
 * if the vault is slow (the segment is there, this request fails). */
int vault_get(struct keeper *k, uint32_t idx)
{
	struct vault_msg m = { .op = VAULT_GET, .slot = idx, .id = rec_of(k, idx)->id };
	struct vault *v = vault_of(k, idx);
	int fd = -1, r;

	if (!v)
		return -EAGAIN;
	if (v->slow)
		return -ETIMEDOUT;
	r = call(k, v, &m, -1, &fd);
	if (r < 0)
		return r == -ETIMEDOUT ? r : -EAGAIN;
	if (m.result == 0 && fd < 0)
		return -EMFILE;         /* it came, with no room for it here */
	if (m.result == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	log_error("vault %d lost segment %d: %s", v->index, m.id, strerror(-m.result));
	return -EAGAIN;
}

/* The vault closes its memfd (punch: freeing its pages first), in its
 * own time. */
void vault_drop(struct keeper *k, uint32_t idx, bool punch)
{
	struct vault *v = vault_of(k, idx);

	k->segs[idx].vault = -1;
	if (!v)
		return;
	v->count--;
	send_drop(k, v, idx, rec_of(k, idx)->id, punch);
}

int vault_rss(struct keeper *k, uint32_t idx, uint64_t *rss)
{
	struct vault_msg m = { .op = VAULT_RSS, .slot = idx, .id = rec_of(k, idx)->id };
	struct vault *v = vault_of(k, idx);

	if (!v || v->slow || call(k, v, &m, -1, NULL) < 0)
		return -EAGAIN;
	*rss = m.value;
	return m.result;
}

/* One vault's RSS_ALL: each entry that names one of its segments is written
 * to the record.  The sum. */
static uint64_t rss_all(struct keeper *k, struct vault *v)
{
	static struct {
		struct vault_msg hdr;
		struct vault_rss e[VAULT_RSS_CHUNK];
		char more[8];                           /* longer ones are seen */
	} in;
	int64_t deadline = shmx_mono_ms() + VAULT_TIMEOUT_MS;
	struct vault_msg m = { .op = VAULT_RSS_ALL };
	struct shmx_sock_rx rx;
	uint64_t sum = 0;
	int r;

	r = vwire_send(v, &m, -1, deadline);
	while (r == 0) {
		uint32_t n;

		r = vwire_recv(v, &in, sizeof(in), &rx, deadline);
		if (r < 0)
			break;
		if (vwire_discard_late(v, &in, &rx, m.seq))
			continue;
		if (rx.fd >= 0)
			close(rx.fd);
		n = (uint32_t)in.hdr.result;
		if (rx.fd >= 0 || rx.len < sizeof(in.hdr) || in.hdr.op != VAULT_RSS_ALL ||
		    in.hdr.seq != m.seq ||
		    in.hdr.result < 0 || n > VAULT_RSS_CHUNK ||
		    rx.len != sizeof(in.hdr) + n * sizeof(in.e[0])) {
			r = -EPROTO;
			break;
		}
		for (uint32_t i = 0; i < n; i++) {
			uint32_t idx = in.e[i].slot;

			if (idx < k->reg.lay.max_segments && k->segs[idx].vault == v->index &&
			    rec_of(k, idx)->id == in.e[i].id)
				sum += seg_set_rss(k, idx, in.e[i].rss);
		}
		if (in.hdr.flags & VAULT_LAST)
			return sum;
	}
	if (r == -ETIMEDOUT)
		/* the rest of its chunks are discarded as they come */
		vwire_timed_out(v, m.seq, "a SYNC");
	else
		vault_lost(k, v, lost_why(r));
	return sum;
}

/* The rss of every vaulted segment, written to its record; the sum. */
uint64_t vault_rss_all(struct keeper *k)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < k->nvaults; i++)
		if (k->vaults[i]->sock >= 0 && !k->vaults[i]->slow && k->vaults[i]->count)
			sum += rss_all(k, k->vaults[i]);
	return sum;
}

/* Its socket is readable outside a request: late replies (a DROP's, or
 * one we stopped waiting for), or it died, or it is broken. */
void vault_event(struct keeper *k, struct vault *v)
{
	int r;

	if (v->sock < 0)
		return;         /* lost earlier in this batch */
	r = vwire_drain_late(v);
	if (r < 0)
		vault_lost(k, v, r == -EPROTO ? "a message unasked" : lost_why(r));
}

/* Lost vaults that were still dying: reaped on the tick. */
void vault_reap(struct keeper *k)
{
	for (uint32_t i = 0; i < k->nvaults; i++)
		if (k->vaults[i]->sock < 0)
			reap(k->vaults[i], WNOHANG);
}

/* At exit: a vault ends when its socket does, and what it held with it. */
void vault_close_all(struct keeper *k)
{
	for (uint32_t i = 0; i < k->nvaults; i++) {
		struct vault *v = k->vaults[i];

		if (v->sock >= 0)
			close(v->sock);
		free(v);
	}
	free(k->vaults);
	k->vaults = NULL;
	k->nvaults = 0;
}
