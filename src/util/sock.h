/* SPDX-License-Identifier: MIT */
/* SOCK_SEQPACKET messages with an optional descriptor (SCM_RIGHTS). */
#ifndef SHMX_UTIL_SOCK_H
#define SHMX_UTIL_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* Sends one message, with descriptor passfd unless it is -1.  flags as
 * send(2) (MSG_DONTWAIT); SIGPIPE never raised.  0 or -errno. */
int shmx_sock_send(int sock, const void *buf, size_t len, int passfd, int flags);

struct shmx_sock_rx {
	size_t len;                     /* bytes of the message */
	int fd;                         /* descriptor received, or -1 */
	pid_t pid;                      /* sender's pid if SO_PASSCRED is on, else 0 */
	int truncated;                  /* message or control data did not fit */
	int fds_dropped;                /* control data only: descriptors the kernel
	                                   could not install (RLIMIT_NOFILE) */
	int extra_fds;                  /* descriptors beyond the first (closed) */
};

/*
 * Receives one message into buf.  Every descriptor but the first is closed
 * at once, so a hostile peer cannot make us leak them.  0 and *rx filled,
 * -ECONNRESET at end of stream, or -errno (-EAGAIN with MSG_DONTWAIT).
 */
int shmx_sock_recv(int sock, void *buf, size_t cap, int flags, struct shmx_sock_rx *rx);

#endif
