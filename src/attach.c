/* SPDX-License-Identifier: MIT */
/*
 * do_shmat and shmdt: shmx_at, shmx_dt and shmx_fd.  The attachment table
 * plays the vmas' role: it knows which address belongs to which segment.
 * Attaching a segment whose descriptor the process holds, and detaching,
 * wait for no reply: a one-way message keeps nattch exact (see SYNC).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include "util/log.h"
#include "util/sys.h"

#define C shmx_client

#define AT_FLAGS (SHMX_RDONLY | SHMX_RND | SHMX_REMAP | SHMX_EXEC)
#define RECOVERY_WAIT_MS 1000   /* a segment a new keeper is still recovering */

static size_t page_size(void)
{
	static size_t page;

	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

static size_t huge_page_size(void)
{
	static size_t huge;
	char line[128];
	FILE *f;

	if (huge)
		return huge;
	huge = 2u << 20;
	f = fopen("/proc/meminfo", "re");
	if (!f)
		return huge;
	while (fgets(line, sizeof(line), f)) {
		unsigned long kb;

		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1 && kb) {
			huge = (size_t)kb << 10;
			break;
		}
	}
	fclose(f);
	return huge;
}

/* Index of the first attachment at or above addr. */
static size_t att_lower_bound(uintptr_t addr)
{
	size_t lo = 0, hi = C.natts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (C.atts[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int att_insert(uintptr_t addr, size_t len, int id)
{
	size_t i;

	if (C.natts == C.atts_cap) {
		size_t cap = C.atts_cap ? 2 * C.atts_cap : 16;
		struct shmx_att *a = realloc(C.atts, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		C.atts = a;
		C.atts_cap = cap;
	}
	i = att_lower_bound(addr);
	memmove(&C.atts[i + 1], &C.atts[i], (C.natts - i) * sizeof(*C.atts));
	C.atts[i] = (struct shmx_att){ .addr = addr, .len = len, .id = id };
	C.natts++;
	return 0;
}

static void att_remove(size_t i)
{
	memmove(&C.atts[i], &C.atts[i + 1], (C.natts - i - 1) * sizeof(*C.atts));
	C.natts--;
}

/* One attachment of id ended (shmdt, or replaced by SHMX_REMAP). */
static void end_attachment(int id)
{
	struct shmx_reg_record rec;
	struct shmx_held *h = shmx_held_find(id);

	/* count first: if the keeper is gone, the reconnection's REATTACH
	 * reports the new count in place of this message */
	if (h && h->count)
		h->count--;
	shmx_client_report(SHMX_MSG_DETACH, id, -1, 0);
	h = shmx_held_find(id);
	if (!h)
		return;
	/* the last local attachment of a removed segment: let its memory go */
	if (h->count == 0 && (shmx_reg_find_id(&C.reg, id, &rec) != 0 || (rec.status & SHMX_DEST)))
		shmx_held_drop(h);
}


static int request_fd(int id, bool rdonly)
{
	int64_t deadline = shmx_mono_ms() + RECOVERY_WAIT_MS;
	struct shmx_req req;
	int fd, r;

	shmx_req_init(&req, SHMX_MSG_FD);
	req.id = id;
	req.flags = rdonly ? SHMX_RDONLY : 0;
	for (;;) {
		r = shmx_client_call(&req, &fd);
		if (r != -EAGAIN)
			break;
		if (shmx_mono_ms() > deadline)
			return -EIDRM;
		usleep(1000);
	}
	return r < 0 ? r : fd;
}

/*
 * The descriptor to map id with: the cached one, or a new one from the keeper.
 * A read-only attachment needs an O_RDONLY descriptor even beside a
 * read-write one, or mprotect() could make it writable.
 */
static int hold_segment(int id, bool rdonly, struct shmx_held **hp, int *fdp)
{
	struct shmx_held *h = shmx_held_find(id);
	int fd;

	if (h && rdonly && (h->rdonly || h->ro_fd >= 0)) {
		*hp = h;
		*fdp = h->rdonly ? h->fd : h->ro_fd;
		return 0;
	}
	if (h && !rdonly && !h->rdonly) {
		*hp = h;
		*fdp = h->fd;
		return 0;
	}
	if (!h)
		shmx_held_sweep();
	fd = request_fd(id, rdonly);
	if (fd < 0)
		return fd;
	if (!h) {
		h = shmx_held_add(id, fd, rdonly);
		if (!h) {
			close(fd);
			return -ENOMEM;
		}
	} else if (rdonly) {
		h->ro_fd = fd;
	} else {
		/* a read-write descriptor joins a read-only one */
		h->ro_fd = h->fd;
		h->fd = fd;
		h->rdonly = false;
	}
	*hp = h;
	*fdp = fd;
	return 0;
}

/*
 * SHMX_REMAP put a new mapping over [addr, addr + len).  An attachment it
 * covers even in part ends as a whole: what is left of it outside the new
 * mapping is unmapped too, so that nothing stays mapped that no one counts.
 * Takes the ended attachments out of the table; their ids go to *idsp, for
 * end_attachment() once the new one is counted.
 */
static size_t take_replaced(uintptr_t addr, size_t len, int **idsp)
{
	size_t i = att_lower_bound(addr), n = 0;
	int *ids = NULL;

	if (i > 0 && C.atts[i - 1].addr + C.atts[i - 1].len > addr)
		i--;
	while (i < C.natts && C.atts[i].addr < addr + len) {
		struct shmx_att a = C.atts[i];
		int *more = realloc(ids, (n + 1) * sizeof(*ids));

		if (!more)
			break;
		ids = more;
		ids[n++] = a.id;
		att_remove(i);
		if (a.addr < addr)
			munmap((void *)a.addr, addr - a.addr);
		if (a.addr + a.len > addr + len)
			munmap((void *)(addr + len), a.addr + a.len - (addr + len));
	}
	*idsp = ids;
	return n;
}

static int do_at(int id, const void *addr, int flags, void **addrp)
{
	uintptr_t want = (uintptr_t)addr;
	struct shmx_reg_record rec;
	struct shmx_held *h;
	int prot, mflags, access, fd, r, *replaced = NULL;
	size_t nreplaced = 0;
	size_t len, align;
	void *p;

	if (!addrp)
		return -EFAULT;
	if ((flags & ~AT_FLAGS) || id < 0)
		return -EINVAL;
	if (want & (page_size() - 1)) {
		if (!(flags & SHMX_RND))
			return -EINVAL;
		want &= ~(uintptr_t)(page_size() - 1);
	}
	if ((flags & SHMX_REMAP) && !want)
		return -EINVAL;
	r = shmx_client_connect();
	if (r < 0)
		return r;
	r = shmx_reg_find_id(&C.reg, id, &rec);
	if (r < 0) {
		/* a miss may come from a registry a new keeper replaced */
		r = shmx_client_check_alive();
		if (r < 0)
			return r;
		r = shmx_reg_find_id(&C.reg, id, &rec);
		if (r < 0)
			return r == -EAGAIN ? -EIDRM : r;
	}
	access = 4 | (flags & SHMX_RDONLY ? 0 : 2) | (flags & SHMX_EXEC ? 1 : 0);
	r = shmx_ipcperms(shmx_client_cred(), &rec, access);
	if (r < 0)
		return r;
	align = rec.flags & SHMX_HUGETLB ? huge_page_size() : page_size();
	if (rec.segsz > SIZE_MAX - align)
		return -EINVAL;
	len = (rec.segsz + align - 1) & ~(align - 1);
	r = hold_segment(id, flags & SHMX_RDONLY, &h, &fd);
	if (r < 0)
		return r;
	prot = PROT_READ | (flags & SHMX_RDONLY ? 0 : PROT_WRITE) | (flags & SHMX_EXEC ? PROT_EXEC : 0);
	mflags = MAP_SHARED;
	if (want)
		mflags |= flags & SHMX_REMAP ? MAP_FIXED : MAP_FIXED_NOREPLACE;
	p = mmap((void *)want, len, prot, mflags, fd, 0);
	if (p == MAP_FAILED)
		return errno == EEXIST ? -EINVAL : -errno;
	if (want && (uintptr_t)p != want) {
		/* a kernel that took MAP_FIXED_NOREPLACE as a hint */
		munmap(p, len);
		return -EINVAL;
	}
	if (flags & SHMX_REMAP)
		nreplaced = take_replaced(want, len, &replaced);
	r = att_insert((uintptr_t)p, len, id);
	if (r < 0) {
		munmap(p, len);
	} else {
		h->count++;
		shmx_client_report(SHMX_MSG_ATTACH, id, h->fd, flags);
		*addrp = p;
	}
	/* after the new attachment is counted, so that replacing the last
	 * attachment of a removed segment does not destroy it */
	for (size_t i = 0; i < nreplaced; i++)
		end_attachment(replaced[i]);
	free(replaced);
	return r;
}

_public_ int shmx_at(int id, const void *addr, int flags, void **addrp)
{
	return SHMX_CALL(do_at(id, addr, flags, addrp));
}

static int do_dt(const void *addr)
{
	size_t i = att_lower_bound((uintptr_t)addr);
	struct shmx_att a;

	if (i >= C.natts || C.atts[i].addr != (uintptr_t)addr)
		return -EINVAL;
	a = C.atts[i];
	if (munmap((void *)a.addr, a.len) < 0)
		return -errno;
	att_remove(i);
	end_attachment(a.id);
	return 0;
}

_public_ int shmx_dt(const void *addr)
{
	return SHMX_CALL(do_dt(addr));
}

static int do_fd(int id, int flags)
{
	int r;

	if ((flags & ~SHMX_RDONLY) || id < 0)
		return -EINVAL;
	r = shmx_client_connect();
	if (r < 0)
		return r;
	return request_fd(id, flags & SHMX_RDONLY);
}

_public_ int shmx_fd(int id, int flags)
{
	return SHMX_CALL(do_fd(id, flags));
}
