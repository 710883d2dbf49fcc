/* SPDX-License-Identifier: MIT */
/*
 * shmget, shmctl and the namespace's view (/proc/sysvipc/shm): shmx_get,
 * shmx_ctl, shmx_list, shmx_info.  Changes are requests to the keeper; reads
 * come from the registry after a SYNC has made it exact.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "util/perms.h"

#define C shmx_client

#define GET_FLAGS (0777 | SHMX_CREAT | SHMX_EXCL | SHMX_HUGETLB | SHMX_NORESERVE)

/*
 * A process that creates a segment usually attaches it next: the keeper
 * sends the new segment's descriptor with the reply, and the descriptor
 * cache keeps it.  Not beyond this many cached descriptors: a process that
 * creates segments for others should not fill its descriptor table.
 */
#define PREFETCH_HELD_MAX 64

/* The existing-key case of ipcget: the same checks the keeper makes. */
static int get_local(key_t key, size_t size, int flags)
{
	struct shmx_reg_record rec;
	int r;

	if (key == SHMX_PRIVATE || (flags & SHMX_EXCL))
		return -ENOENT;
	if (shmx_reg_find_key(&C.reg, key, &rec) < 0)
		return -ENOENT;
	/* shmget's order: size, then permission */
	if (size > rec.segsz)
		return -EINVAL;
	/* the credentials of the connection, renewed when the ids change */
	r = shmx_ipcperms(shmx_client_cred(), &rec, shmx_flags_access(flags));
	return r < 0 ? r : rec.id;
}

static int do_get(key_t key, size_t size, int flags)
{
	struct shmx_req req;
	int r, fd = -1;

	if (flags & ~GET_FLAGS)
		return -EINVAL;
	r = shmx_client_check_alive();
	if (r < 0)
		return r;
	r = get_local(key, size, flags);
	if (r != -ENOENT)
		return r;
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = key;
	req.size = size;
	req.flags = flags;
	if ((flags & SHMX_CREAT) && C.nheld >= PREFETCH_HELD_MAX)
		shmx_held_sweep();
	if ((flags & SHMX_CREAT) && C.nheld < PREFETCH_HELD_MAX)
		req.cmd = SHMX_GET_WITH_FD;
	r = shmx_client_call_maybe_fd(&req, req.cmd ? &fd : NULL);
	if (fd >= 0 && (r < 0 || shmx_held_find(r) || !shmx_held_add(r, fd, false)))
		close(fd);
	return r;
}

_public_ int shmx_get(key_t key, size_t size, int flags)
{
	return SHMX_CALL(do_get(key, size, flags));
}

/* A consistent copy of the record for id, retrying while the keeper writes. */
static int read_id(int id, struct shmx_reg_record *rec)
{
	int r;

	for (int i = 0; i < 100; i++) {
		r = shmx_reg_find_id(&C.reg, id, rec);
		if (r != -EAGAIN)
			return r;
		usleep(100);
	}
	return -EIDRM;
}

static int do_stat(int id, struct shmx_ds *ds)
{
	struct shmx_reg_record rec;
	int r;

	if (!ds)
		return -EFAULT;
	if (id < 0)
		return -EINVAL;
	r = shmx_client_sync(id);
	if (r < 0)
		return r;
	r = read_id(id, &rec);
	if (r < 0)
		return r;
	r = shmx_ipcperms(shmx_client_cred(), &rec, 4);
	if (r < 0)
		return r;
	shmx_reg_to_ds(&rec, ds);
	return 0;
}

static int do_ctl(int id, int cmd, struct shmx_ds *ds)
{
	struct shmx_req req;
	int r;

	switch (cmd) {
	case SHMX_STAT:
		return do_stat(id, ds);
	case SHMX_SET:
		if (!ds)
			return -EFAULT;
		break;
	case SHMX_RMID:
	case SHMX_LOCK:
	case SHMX_UNLOCK:
		break;
	default:
		return -EINVAL;
	}
	if (id < 0)
		return -EINVAL;
	shmx_req_init(&req, SHMX_MSG_CTL);
	req.id = id;
	req.cmd = cmd;
	if (cmd == SHMX_SET) {
		req.uid = ds->uid;
		req.gid = ds->gid;
		req.mode = ds->mode & 0777;
	}
	r = shmx_client_call(&req, NULL);
	if (r == 0 && cmd == SHMX_RMID) {
		/* removed and not attached here: its descriptor may go now
		 * (the memory goes with the last holder) */
		struct shmx_held *h = shmx_held_find(id);

		if (h && h->count == 0)
			shmx_held_drop(h);
	}
	return r;
}

_public_ int shmx_ctl(int id, int cmd, struct shmx_ds *ds)
{
	return SHMX_CALL(do_ctl(id, cmd, ds));
}

static int do_list(struct shmx_ds *buf, size_t n)
{
	struct shmx_reg_record rec;
	size_t count = 0;
	int r;

	if (!buf && n)
		return -EFAULT;
	r = shmx_client_sync(SHMX_SYNC_ALL);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < C.reg.lay.max_segments; i++) {
		if (shmx_reg_read_record(&C.reg, i, &rec) < 0 || rec.state != SHMX_REC_USED)
			continue;
		if (count < n)
			shmx_reg_to_ds(&rec, &buf[count]);
		count++;
	}
	return count > INT_MAX ? INT_MAX : (int)count;
}

_public_ int shmx_list(struct shmx_ds *buf, size_t n)
{
	return SHMX_CALL(do_list(buf, n));
}

static int do_info(struct shmx_info *info)
{
	struct shmx_reg_header h;
	int r;

	if (!info)
		return -EFAULT;
	r = shmx_client_sync(SHMX_SYNC_ALL);
	if (r < 0)
		return r;
	if (shmx_reg_read_usage(&C.reg, &h) < 0)
		return -EAGAIN;
	memset(info, 0, sizeof(*info));
	info->max_segments = h.max_segments;
	info->max_segsz = h.max_segsz;
	info->max_total = h.max_total;
	info->segments = h.segments;
	info->total = h.total;
	info->rss = h.rss;
	info->keeper_pid = h.keeper_pid;
	return 0;
}

_public_ int shmx_info(struct shmx_info *info)
{
	return SHMX_CALL(do_info(info));
}
