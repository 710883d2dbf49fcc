/* SPDX-License-Identifier: MIT */
/*
 * Messages between the library and the keeper (docs/protocol.md).
 *
 * AF_UNIX SOCK_SEQPACKET: one datagram is one message, so boundaries are kept
 * and a truncated message is seen as one.  Every request is a struct
 * shmx_req of exactly that size; every reply a struct shmx_reply.  Requests
 * marked one-way get no reply; the others get exactly one, in order.
 * Descriptors travel with SCM_RIGHTS: the keeper sends one with a FD reply,
 * a client may hand one back with REATTACH.
 */
#ifndef SHMX_PROTO_H
#define SHMX_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SHMX_PROTO_MAGIC   0x5853u      /* "SX" */
#define SHMX_PROTO_VERSION 1u

enum shmx_msg_type {
	SHMX_MSG_HELLO = 1,     /* one-way, first on a connection: version */
	SHMX_MSG_GET,           /* key, size, flags -> result = id */
	SHMX_MSG_FD,            /* id, flags (SHMX_RDONLY) -> result, + descriptor */
	SHMX_MSG_ATTACH,        /* one-way: id, fd (its number here), flags */
	SHMX_MSG_DETACH,        /* one-way: id */
	SHMX_MSG_CTL,           /* id, cmd, uid, gid, mode -> result */
	SHMX_MSG_SYNC,          /* id (rss to refresh; -1 all, -2 none) -> result */
	SHMX_MSG_REATTACH,      /* one-way: id, fd, count, flags; maybe + descriptor */
	SHMX_MSG_IDENT,         /* one-way: "I am the sender" (pid from SCM_CREDENTIALS) */
	SHMX_MSG_RELEASE,       /* one-way: id: this process closed its descriptor */
	SHMX_MSG_TYPE_MAX,
	SHMX_MSG_REPLY = 100,
};

/* REATTACH flags */
#define SHMX_REATTACH_FORK 1u   /* for a child to be: add, don't replace */
/* GET's cmd: if this request creates the segment, send its read-write
 * descriptor with the reply (saves the FD round trip of the first attach) */
#define SHMX_GET_WITH_FD 1

#define SHMX_SYNC_ALL  (-1)
#define SHMX_SYNC_NONE (-2)

struct shmx_req {
	uint16_t magic;         /* SHMX_PROTO_MAGIC */
	uint16_t version;       /* SHMX_PROTO_VERSION */
	uint32_t type;          /* enum shmx_msg_type */
	int32_t  id;
	int32_t  key;
	uint64_t size;
	int32_t  flags;
	int32_t  cmd;
	int32_t  fd;
	uint32_t uid;
	uint32_t gid;
	uint32_t mode;
	uint64_t count;
};

struct shmx_reply {
	uint16_t magic;
	uint16_t version;
	uint32_t type;          /* SHMX_MSG_REPLY */
	uint32_t req_type;      /* the request answered */
	int32_t  result;        /* >= 0, or -errno */
};

_Static_assert(sizeof(struct shmx_req) == 56, "request layout");
_Static_assert(offsetof(struct shmx_req, count) == 48, "request layout");
_Static_assert(sizeof(struct shmx_reply) == 16, "reply layout");

/* Largest count a REATTACH may claim (attachments of one process). */
#define SHMX_MAX_ATTACH_COUNT (UINT64_C(1) << 32)

void shmx_req_init(struct shmx_req *req, enum shmx_msg_type type);
void shmx_reply_init(struct shmx_reply *rep, uint32_t req_type, int32_t result);

/*
 * Checks a received request of len bytes: size, magic, version, type and the
 * ranges of the fields that type uses.  0, or -EBADMSG (malformed), or
 * -EPROTONOSUPPORT (another protocol version).
 */
int shmx_req_check(const void *buf, size_t len);
int shmx_reply_check(const void *buf, size_t len);

/* Whether the keeper answers this type of request. */
int shmx_req_wants_reply(uint32_t type);

const char *shmx_msg_name(uint32_t type);

#endif /* SHMX_PROTO_H */
