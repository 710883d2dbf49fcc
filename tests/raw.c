/* SPDX-License-Identifier: MIT */
/* Speaking the keeper's protocol directly, as a hostile or lying client would. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "proto.h"
#include "util/sock.h"

int tc_raw_connect(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 * TC_SLOW };
	struct shmx_req hello;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/keeper.sock", dir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a keeper that never answers must not hang the test */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	shmx_req_init(&hello, SHMX_MSG_HELLO);
	tc_raw_call(fd, &hello, -1);
	return fd;
}

int tc_raw_call(int sock, const struct shmx_req *req, int passfd)
{
	struct shmx_sock_rx rx;
	struct shmx_reply rep;
	int r;

	r = shmx_sock_send(sock, req, sizeof(*req), passfd, 0);
	if (r < 0)
		return r;
	if (!shmx_req_wants_reply(req->type))
		return 0;
	/* SO_RCVTIMEO bounds the wait; any descriptor that comes is closed */
	r = shmx_sock_recv(sock, &rep, sizeof(rep), 0, &rx);
	if (r < 0)
		return r;
	if (rx.fd >= 0)
		close(rx.fd);
	if (rx.truncated || shmx_reply_check(&rep, rx.len) < 0)
		return -EBADMSG;
	return rep.result;
}
