/* SPDX-License-Identifier: MIT */
/* shmx_at() and shmx_dt(): mappings, addresses, flags, read-only, counts. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common.h"

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* An address range of len bytes that nothing is mapped at (now). */
static char *free_range(size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	munmap(p, len);
	return p;
}

static uint64_t nattch(int id)
{
	struct shmx_ds ds;

	tc_stat(id, &ds);
	return ds.nattch;
}

static void attach_write_detach(void **state)
{
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 3 * PAGE, 0600);
	p = tc_attach(id, 0);
	assert_int_equal((uintptr_t)p % PAGE, 0);
	/* a new segment is zero-filled */
	for (size_t i = 0; i < 3 * PAGE; i++)
		if (p[i])
			fail_msg("byte %zu of a new segment is %d", i, p[i]);
	tc_fill(p, 3 * PAGE, 1);
	assert_int_equal(tc_verify(p, 3 * PAGE, 1), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void two_attachments_share_memory(void **state)
{
	char *a, *b;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 2 * PAGE, 0600);
	a = tc_attach(id, 0);
	b = tc_attach(id, 0);
	assert_ptr_not_equal(a, b);
	tc_fill(a, 2 * PAGE, 5);
	assert_int_equal(tc_verify(b, 2 * PAGE, 5), -1);
	b[PAGE + 3] = 'x';
	assert_int_equal(a[PAGE + 3], 'x');
	assert_int_equal(shmx_dt(a), 0);
	assert_int_equal(shmx_dt(b), 0);
}

static void another_process_sees_the_data(void **state)
{
	struct tc_child *c;
	char key[32];
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 5 * PAGE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, 5 * PAGE, 9);
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	c = tc_spawn("check", key, "9", NULL);
	tc_expect(c, "ok");
	tc_child_wait_ok(c);

	/* and the other way round, while both are attached */
	c = tc_spawn("hold", key, "0", "0", "-1", NULL);
	assert_int_equal(tc_expect_num(c, "attached "), id);
	tc_send(c, "fill 23");
	tc_expect(c, "filled");
	assert_int_equal(tc_verify(p, 5 * PAGE, 23), -1);
	tc_close_stdin(c);
	tc_child_wait_ok(c);
	assert_int_equal(shmx_dt(p), 0);
}

static void odd_size_segment_is_usable(void **state)
{
	struct shmx_ds ds;
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 5000, 0600);
	tc_stat(id, &ds);
	assert_int_equal(ds.segsz, 5000);
	p = tc_attach(id, 0);
	tc_fill(p, 5000, 3);
	assert_int_equal(tc_verify(p, 5000, 3), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void dt_where_no_attachment_starts_is_einval(void **state)
{
	char *p, *anon;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 4 * PAGE, 0600);
	p = tc_attach(id, 0);
	assert_int_equal(shmx_dt(NULL), -EINVAL);
	assert_int_equal(shmx_dt(p + 1), -EINVAL);
	assert_int_equal(shmx_dt(p + PAGE), -EINVAL);
	assert_int_equal(shmx_dt(p + 2 * PAGE + 17), -EINVAL);
	anon = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	assert_int_equal(shmx_dt(anon), -EINVAL);
	munmap(anon, PAGE);
	/* none of that detached anything */
	assert_int_equal(nattch(id), 1);
	p[4 * PAGE - 1] = 1;
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(shmx_dt(p), -EINVAL);
	assert_int_equal(nattch(id), 0);
}

static int touch(void *arg)
{
	tc_exit_on_fault();
	*(volatile char *)arg = 1;
	return 0;
}

static void dt_unmaps(void **state)
{
	char *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	p = tc_attach(id, 0);
	assert_int_equal(shmx_dt(p), 0);
	/* checked here, not in a child: fork itself maps pages that may land
	 * on the freed range; msync fails with ENOMEM for an unmapped range */
	errno = 0;
	assert_int_equal(msync(p, PAGE, MS_ASYNC), -1);
	assert_int_equal(errno, ENOMEM);
}

static void bad_at_flags_are_einval(void **state)
{
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_at(id, NULL, 01, &p), -EINVAL);
	assert_int_equal(shmx_at(id, NULL, SHMX_CREAT, &p), -EINVAL);
	assert_int_equal(shmx_at(id, NULL, 0x1000000, &p), -EINVAL);
	assert_int_equal(nattch(id), 0);
}

static void bad_id_is_einval(void **state)
{
	void *p = NULL;

	(void)state;
	tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_at(-1, NULL, 0, &p), -EINVAL);
	assert_int_equal(shmx_at(0x7fffffff, NULL, 0, &p), -EINVAL);
}

static void removed_id_is_eidrm(void **state)
{
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_at(id, NULL, 0, &p), -EIDRM);
}

static void misaligned_addr_without_rnd_is_einval(void **state)
{
	char *hole;
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	hole = free_range(2 * PAGE);
	assert_int_equal(shmx_at(id, hole + 100, 0, &p), -EINVAL);
	assert_int_equal(shmx_at(id, hole + 1, SHMX_RDONLY, &p), -EINVAL);
	assert_int_equal(nattch(id), 0);
}

static void rnd_rounds_down(void **state)
{
	char *hole;
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	hole = free_range(2 * PAGE);
	assert_int_equal(shmx_at(id, hole + 100, SHMX_RND, &p), 0);
	assert_ptr_equal(p, hole);
	assert_int_equal(shmx_dt(hole), 0);
	/* an aligned address is taken as it is */
	assert_int_equal(shmx_at(id, hole + PAGE, 0, &p), 0);
	assert_ptr_equal(p, hole + PAGE);
	assert_int_equal(shmx_dt(p), 0);
}

static void fixed_addr_over_a_mapping_without_remap_is_einval(void **state)
{
	char *anon;
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 2 * PAGE, 0600);
	anon = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	memset(anon, 'Z', 3 * PAGE);
	assert_int_equal(shmx_at(id, anon, 0, &p), -EINVAL);
	/* partly overlapping, too */
	assert_int_equal(shmx_at(id, anon + 2 * PAGE, 0, &p), -EINVAL);
	for (size_t i = 0; i < 3 * PAGE; i++)
		if (anon[i] != 'Z')
			fail_msg("byte %zu of the existing mapping changed", i);
	assert_int_equal(nattch(id), 0);
	munmap(anon, 3 * PAGE);
}

static void remap_replaces_a_mapping(void **state)
{
	char *anon, *p;
	int id;

	(void)state;
	id = tc_create(tc_key(1), 2 * PAGE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, 2 * PAGE, 4);
	assert_int_equal(shmx_dt(p), 0);
	anon = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	memset(anon, 'Z', 2 * PAGE);
	p = NULL;
	assert_int_equal(shmx_at(id, anon, SHMX_REMAP, (void **)&p), 0);
	assert_ptr_equal(p, anon);
	assert_int_equal(tc_verify(p, 2 * PAGE, 4), -1);
	assert_int_equal(nattch(id), 1);
	assert_int_equal(shmx_dt(p), 0);
}

static void remap_over_an_attachment_ends_it(void **state)
{
	char *a, *p = NULL;
	int ida, idb;

	(void)state;
	ida = tc_create(tc_key(1), 2 * PAGE, 0600);
	idb = tc_create(tc_key(2), 2 * PAGE, 0600);
	a = tc_attach(ida, 0);
	tc_fill(a, 2 * PAGE, 1);
	assert_int_equal(shmx_at(idb, a, SHMX_REMAP, (void **)&p), 0);
	assert_ptr_equal(p, a);
	memset(p, 'B', 2 * PAGE);
	/* as the kernel's: the replaced attachment is gone, the new one counted */
	assert_int_equal(nattch(ida), 0);
	assert_int_equal(nattch(idb), 1);
	/* the address now detaches the new segment, once */
	assert_int_equal(shmx_dt(p), 0);
	assert_int_equal(nattch(idb), 0);
	assert_int_equal(nattch(ida), 0);
	assert_int_equal(shmx_dt(p), -EINVAL);
	/* and segment A's memory was not touched by the writes to B */
	a = tc_attach(ida, 0);
	assert_int_equal(tc_verify(a, 2 * PAGE, 1), -1);
	assert_int_equal(shmx_dt(a), 0);
}

/*
 * The only attachment of a removed segment, replaced by the same segment:
 * the new attachment is counted before the old one ends, so nattch never
 * reaches 0 and the keeper does not destroy memory that stays mapped.
 */
static void remap_over_the_last_attachment_of_a_removed_segment_keeps_it(void **state)
{
	struct shmx_ds ds;
	char *p, *q = NULL;
	int id, r;

	(void)state;
	id = tc_create(tc_key(1), 2 * PAGE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, 2 * PAGE, 6);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_at(id, p, SHMX_REMAP, (void **)&q), 0);
	assert_ptr_equal(q, p);
	tc_stat(id, &ds);
	assert_true(ds.status & SHMX_DEST);
	assert_int_equal(ds.nattch, 1);
	/* the same memory, not a punched-out file */
	assert_int_equal(tc_verify(q, 2 * PAGE, 6), -1);
	tc_fill(q, 2 * PAGE, 7);
	assert_int_equal(tc_verify(q, 2 * PAGE, 7), -1);
	/* one attachment at that address, and it is the last */
	assert_int_equal(shmx_dt(q), 0);
	r = shmx_ctl(id, SHMX_STAT, &ds);
	if (r != -EIDRM && r != -EINVAL)
		fail_msg("STAT after the last detach of a removed segment: %d", r);
	assert_int_equal(shmx_dt(q), -EINVAL);
}

/*
 * SHMX_REMAP into the middle of an attachment: the attachment it covers in
 * part ends as a whole (what is left of it is unmapped), so that its address
 * no longer detaches anything, least of all the new attachment.
 */
static void remap_into_the_middle_of_an_attachment_ends_it_as_a_whole(void **state)
{
	char *x, *other, *b = NULL;
	int ida, idb;

	(void)state;
	ida = tc_create(tc_key(1), 3 * PAGE, 0600);
	idb = tc_create(tc_key(2), PAGE, 0600);
	x = tc_attach(ida, 0);
	/* a second attachment of A, to see its memory and count after */
	other = tc_attach(ida, 0);
	tc_fill(x, 3 * PAGE, 1);
	assert_int_equal(nattch(ida), 2);
	assert_int_equal(shmx_at(idb, x + PAGE, SHMX_REMAP, (void **)&b), 0);
	assert_ptr_equal(b, x + PAGE);
	assert_int_equal(nattch(ida), 1);
	assert_int_equal(nattch(idb), 1);
	memset(b, 'B', PAGE);
	/* A's memory was not written through B's mapping */
	assert_int_equal(tc_verify(other, 3 * PAGE, 1), -1);
	/* A at x has ended: its address detaches nothing */
	assert_int_equal(shmx_dt(x), -EINVAL);
	assert_int_equal(nattch(ida), 1);
	assert_int_equal(nattch(idb), 1);
	/* what was left of it on either side of B is unmapped */
	assert_int_equal(tc_fork_call((uid_t)-1, 0, touch, x, TC_REPLY_MS), TC_FAULTED);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, touch, x + 2 * PAGE, TC_REPLY_MS), TC_FAULTED);
	/* B is still mapped and usable */
	for (size_t i = 0; i < PAGE; i++)
		if (b[i] != 'B')
			fail_msg("byte %zu of the new attachment is %d", i, b[i]);
	tc_fill(b, PAGE, 2);
	assert_int_equal(tc_verify(b, PAGE, 2), -1);
	assert_int_equal(shmx_dt(b), 0);
	assert_int_equal(nattch(idb), 0);
	assert_int_equal(shmx_dt(b), -EINVAL);
	assert_int_equal(shmx_dt(other), 0);
	assert_int_equal(nattch(ida), 0);
}

static void remap_without_addr_is_einval(void **state)
{
	void *p = NULL;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(shmx_at(id, NULL, SHMX_REMAP, &p), -EINVAL);
	assert_int_equal(nattch(id), 0);
}

static void rdonly_attachment_faults_on_write(void **state)
{
	char *rw, *ro;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	rw = tc_attach(id, 0);
	tc_fill(rw, PAGE, 8);
	ro = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(ro, PAGE, 8), -1);
	assert_int_equal(tc_fork_call((uid_t)-1, 0, touch, ro, TC_REPLY_MS), TC_FAULTED);
	/* the child's write did not land either */
	assert_int_equal(tc_verify(rw, PAGE, 8), -1);
	assert_int_equal(shmx_dt(ro), 0);
	assert_int_equal(shmx_dt(rw), 0);
}

static void rdonly_attachment_cannot_be_made_writable(void **state)
{
	char *ro;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	/* the only descriptor this process gets is a read-only one */
	ro = tc_attach(id, SHMX_RDONLY);
	errno = 0;
	assert_int_equal(mprotect(ro, PAGE, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(shmx_dt(ro), 0);
}

static void rdonly_beside_rw_attachment_cannot_be_made_writable(void **state)
{
	char *rw, *ro;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	rw = tc_attach(id, 0);
	ro = tc_attach(id, SHMX_RDONLY);
	/* as shmat(SHM_RDONLY): the mapping is of a read-only open file */
	errno = 0;
	assert_int_equal(mprotect(ro, PAGE, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(shmx_dt(ro), 0);
	assert_int_equal(shmx_dt(rw), 0);
}

static void nattch_counts_attachments(void **state)
{
	char *a, *b, *c;
	int id;

	(void)state;
	id = tc_create(tc_key(1), PAGE, 0600);
	assert_int_equal(nattch(id), 0);
	a = tc_attach(id, 0);
	assert_int_equal(nattch(id), 1);
	b = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(nattch(id), 2);
	c = tc_attach(id, 0);
	assert_int_equal(nattch(id), 3);
	assert_int_equal(shmx_dt(b), 0);
	assert_int_equal(nattch(id), 2);
	assert_int_equal(shmx_dt(a), 0);
	assert_int_equal(shmx_dt(c), 0);
	assert_int_equal(nattch(id), 0);
}

/* In a child: attach at RLIMIT_NOFILE, then again with a descriptor free. */
static int attach_with_no_descriptor_left(void *arg)
{
	int id = *(int *)arg, fd, last = -1;
	struct rlimit rl;
	void *p;

	/* connected (and the registry mapped) first, with room to spare */
	TC_CHECK_EQ(shmx_get(tc_key(2), PAGE, SHMX_CREAT | 0600) >= 0, 1);
	TC_CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 64;
	TC_CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while ((fd = dup(0)) >= 0)
		last = fd;
	TC_CHECK(last >= 0);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), -EMFILE);
	TC_CHECK_EQ(shmx_fd(id, 0), -EMFILE);
	/* the connection is still in step: with a descriptor free, it works */
	close(last);
	TC_CHECK_EQ(shmx_at(id, NULL, 0, &p), 0);
	TC_CHECK_EQ(shmx_dt(p), 0);
	return 0;
}

static void at_with_no_descriptor_left_is_emfile(void **state)
{
	int id;

	(void)state;
	id = tc_create_unheld(tc_key(1), PAGE, 0600);
	assert_int_equal(tc_fork_call((uid_t)-1, (gid_t)-1, attach_with_no_descriptor_left, &id,
				      TC_REPLY_MS), 0);
	/* and the keeper counted nothing for the failed attempts */
	assert_int_equal(nattch(id), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(attach_write_detach),
		tc_test(two_attachments_share_memory),
		tc_test(another_process_sees_the_data),
		tc_test(odd_size_segment_is_usable),
		tc_test(dt_where_no_attachment_starts_is_einval),
		tc_test(dt_unmaps),
		tc_test(bad_at_flags_are_einval),
		tc_test(bad_id_is_einval),
		tc_test(removed_id_is_eidrm),
		tc_test(misaligned_addr_without_rnd_is_einval),
		tc_test(rnd_rounds_down),
		tc_test(fixed_addr_over_a_mapping_without_remap_is_einval),
		tc_test(remap_replaces_a_mapping),
		tc_test(remap_over_an_attachment_ends_it),
		tc_test(remap_over_the_last_attachment_of_a_removed_segment_keeps_it),
		tc_test(remap_into_the_middle_of_an_attachment_ends_it_as_a_whole),
		tc_test(remap_without_addr_is_einval),
		tc_test(rdonly_attachment_faults_on_write),
		tc_test(rdonly_attachment_cannot_be_made_writable),
		tc_test(rdonly_beside_rw_attachment_cannot_be_made_writable),
		tc_test(nattch_counts_attachments),
		tc_test(at_with_no_descriptor_left_is_emfile),
	};

	return tc_run_tests("at", tests);
}
