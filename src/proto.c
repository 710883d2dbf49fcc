/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "proto.h"
#include "shmx.h"
#include "registry.h"
#include "report.h"

void shmx_req_init(struct shmx_req *req, enum shmx_msg_type type)
{
	memset(req, 0, sizeof(*req));
	req->magic = SHMX_PROTO_MAGIC;
	req->version = SHMX_PROTO_VERSION;
	req->type = type;
	req->fd = -1;
}

void shmx_reply_init(struct shmx_reply *rep, uint32_t req_type, int32_t result)
{
	memset(rep, 0, sizeof(*rep));
	rep->magic = SHMX_PROTO_MAGIC;
	rep->version = SHMX_PROTO_VERSION;
	rep->type = SHMX_MSG_REPLY;
	rep->req_type = req_type;
	rep->result = result;
}

#define GET_FLAGS (0777 | SHMX_CREAT | SHMX_EXCL | SHMX_HUGETLB | SHMX_NORESERVE)

/* Ranges each type's fields must be in; the semantic checks are the keeper's. */
static int check_fields(const struct shmx_req *r)
{
	switch (r->type) {
	case SHMX_MSG_HELLO:
		/* count: the report ring's entries, 0 without one */
		return (r->count != 0 && (r->count < SHMX_REPORT_MIN || r->count > SHMX_REPORT_MAX ||
					  (r->count & (r->count - 1)))) ? -EBADMSG : 0;
	case SHMX_MSG_IDENT:
		return 0;
	case SHMX_MSG_GET:
		return ((r->flags & ~GET_FLAGS) || (r->cmd & ~SHMX_GET_WITH_FD)) ? -EBADMSG : 0;
	case SHMX_MSG_FD:
		return (r->id < 0 || (r->flags & ~SHMX_RDONLY)) ? -EBADMSG : 0;
	case SHMX_MSG_ATTACH:
		return (r->id < 0 || r->fd < 0 ||
			(r->flags & ~(SHMX_RDONLY | SHMX_RND | SHMX_REMAP | SHMX_EXEC))) ? -EBADMSG : 0;
	case SHMX_MSG_DETACH:
	case SHMX_MSG_RELEASE:
		return r->id < 0 ? -EBADMSG : 0;
	case SHMX_MSG_CTL:
		return r->id < 0 ? -EBADMSG : 0;
	case SHMX_MSG_SYNC:
		return r->id < SHMX_SYNC_NONE ? -EBADMSG : 0;
	case SHMX_MSG_REATTACH:
		return (r->id < 0 || r->fd < 0 || r->count > SHMX_MAX_ATTACH_COUNT ||
			(r->flags & ~SHMX_REATTACH_FORK)) ? -EBADMSG : 0;
	default:
		return -EBADMSG;
	}
}

int shmx_req_check(const void *buf, size_t len)
{
	struct shmx_req r;

	if (len != sizeof(r))
		return -EBADMSG;
	memcpy(&r, buf, sizeof(r));
	if (r.magic != SHMX_PROTO_MAGIC)
		return -EBADMSG;
	if (r.version != SHMX_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	return check_fields(&r);
}

int shmx_reply_check(const void *buf, size_t len)
{
	struct shmx_reply r;

	if (len != sizeof(r))
		return -EBADMSG;
	memcpy(&r, buf, sizeof(r));
	if (r.magic != SHMX_PROTO_MAGIC || r.type != SHMX_MSG_REPLY)
		return -EBADMSG;
	if (r.version != SHMX_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	/* a result is an id (>= 0) or a plausible -errno */
	return r.result < -4095 ? -EBADMSG : 0;
}

int shmx_req_wants_reply(uint32_t type)
{
	return type == SHMX_MSG_GET || type == SHMX_MSG_FD ||
	       type == SHMX_MSG_CTL || type == SHMX_MSG_SYNC;
}

const char *shmx_msg_name(uint32_t type)
{
	static const char *const names[] = {
		[SHMX_MSG_HELLO] = "HELLO", [SHMX_MSG_GET] = "GET", [SHMX_MSG_FD] = "FD",
		[SHMX_MSG_ATTACH] = "ATTACH", [SHMX_MSG_DETACH] = "DETACH",
		[SHMX_MSG_CTL] = "CTL", [SHMX_MSG_SYNC] = "SYNC",
		[SHMX_MSG_REATTACH] = "REATTACH", [SHMX_MSG_IDENT] = "IDENT",
		[SHMX_MSG_RELEASE] = "RELEASE",
	};

	if (type == SHMX_MSG_REPLY)
		return "REPLY";
	if (type < SHMX_MSG_TYPE_MAX && names[type])
		return names[type];
	return "?";
}
