/* SPDX-License-Identifier: MIT */
/*
 * The wire to a vault (vaultwire.h).  A vault is our own child and answers
 * in microseconds, but one that is stopped or swapped out must not stall the
 * keeper for ever: every wait has a deadline, and a reply that comes after
 * its request was given up on is recognized by its number and dropped.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/sys.h"
#include "vaultwire.h"

int vwire_wait(struct vault *v, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = v->sock, .events = events };

	for (;;) {
		int64_t left = deadline - shmx_mono_ms();
		int n;

		n = poll(&pfd, 1, left < 0 ? 0 : (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int vwire_recv(struct vault *v, void *buf, size_t cap, struct shmx_sock_rx *rx,
		    int64_t deadline)
{
	for (;;) {
		int r = shmx_sock_recv(v->sock, buf, cap, MSG_DONTWAIT, rx);

		if (r != -EAGAIN)
			return r;
		r = vwire_wait(v, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/*
 * A reply to a request other than want that we no longer wait for: closed
 * and forgotten (true).  A reply to the one that timed out, or a later one,
 * shows that the vault answers again.
 */
bool vwire_discard_late(struct vault *v, const void *buf, struct shmx_sock_rx *rx, uint32_t want)
{
	struct vault_msg m;

	if (rx->len < sizeof(m))
		return false;
	memcpy(&m, buf, sizeof(m));
	/* only a number already sent: a reply to nothing is nonsense */
	if (m.seq == want || (int32_t)(v->seq - m.seq) < 0)
		return false;
	if (rx->fd >= 0)
		close(rx->fd);
	rx->fd = -1;
	if (m.op == VAULT_DROP && m.result < 0)
		log_warn("vault %d: dropping segment %d: %s", v->index, m.id, strerror(-m.result));
	if (v->slow && (int32_t)(m.seq - v->late) >= 0) {
		v->slow = false;
		log_info("vault %d (pid %d) answers again", v->index, (int)v->pid);
	}
	return true;
}

/* Every late reply there is, discarded; < 0 on a hang-up or nonsense. */
int vwire_drain_late(struct vault *v)
{
	char buf[sizeof(struct vault_msg) + 8];
	struct shmx_sock_rx rx;

	for (;;) {
		int r = shmx_sock_recv(v->sock, buf, sizeof(buf), MSG_DONTWAIT, &rx);

		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		/* want: a number not sent yet, so that every reply is late */
		if (!vwire_discard_late(v, buf, &rx, v->seq + 1)) {
			if (rx.fd >= 0)
				close(rx.fd);
			return -EPROTO;
		}
	}
}

/* Sends m as the next request (numbered in m->seq). */
int vwire_send(struct vault *v, struct vault_msg *m, int fd, int64_t deadline)
{
	m->seq = ++v->seq;
	for (;;) {
		int r = shmx_sock_send(v->sock, m, sizeof(*m), fd, MSG_DONTWAIT);

		if (r != -EAGAIN)
			return r;
		/* the vault may be blocked sending replies nobody reads yet
		 * (DROPs'): read them, or it never reads our request */
		r = vwire_drain_late(v);
		if (r < 0)
			return r;
		r = vwire_wait(v, POLLOUT | POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* The request numbered seq is given up on: its reply will be discarded. */
void vwire_timed_out(struct vault *v, uint32_t seq, const char *what)
{
	if (!v->slow)
		log_warn("vault %d (pid %d) did not answer %s within %d ms: it is slow, not lost",
			 v->index, (int)v->pid, what, VAULT_TIMEOUT_MS);
	v->slow = true;
	v->late = seq;
}
