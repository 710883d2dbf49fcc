/* SPDX-License-Identifier: MIT */
/*
 * A registry found on disk is untrusted input: with the keeper dead, the
 * file is scribbled over, and the next keeper must neither crash nor trust
 * it.  Segments that living processes hold and that the damage did not
 * touch must survive; memory must never come from anything but the segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "registry.h"

#define SIZE 8192

/* A helper holding segment tc_key(n), filled with seed n. */
static struct tc_child *holder(int n, int *id)
{
	return tc_holder(n, SIZE, (unsigned)n, id);
}

/* Keepers that started serving this namespace, and whether any crashed (keeper.log). */
static int keeper_starts(bool *crashed)
{
	char line[1024];
	FILE *f = fopen(tc_path("keeper.log"), "r");
	int n = 0;

	*crashed = false;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "info: serving "))
			n++;
		if (strstr(line, "Sanitizer") || strstr(line, "runtime error"))
			*crashed = true;
	}
	fclose(f);
	return n;
}

static int starts_before;

static void kill_keeper(void)
{
	bool crashed;

	tc_kill_keeper(tc_keeper_pid());
	starts_before = keeper_starts(&crashed);
	assert_true(starts_before >= 1);
	assert_false(crashed);
}

static int open_registry(struct shmx_reg_header *h)
{
	int fd = open(tc_path("registry"), O_RDWR | O_CLOEXEC | O_NOFOLLOW);

	assert_true(fd >= 0);
	if (h)
		assert_int_equal(pread(fd, h, sizeof(*h), 0), sizeof(*h));
	return fd;
}

static void write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
}

/* Cuts the registry file down to len bytes. */
static void truncate_registry(off_t len)
{
	int fd = open_registry(NULL);

	assert_int_equal(ftruncate(fd, len), 0);
	close(fd);
}

static void read_header(struct shmx_reg_header *h)
{
	close(open_registry(h));
}

static void write_header(const struct shmx_reg_header *h)
{
	int fd = open_registry(NULL);

	write_at(fd, h, sizeof(*h), 0);
	close(fd);
}

/*
 * After the damage: another process works at once (so a hung keeper or
 * library fails the test, not hangs it), then this one, and the new keeper
 * made a registry that checks out.
 */
static void works_again(void)
{
	struct shmx_reg reg;
	struct tc_child *c;
	char key[32];
	void *p;
	int id, dirfd;

	snprintf(key, sizeof(key), "%d", (int)tc_key(100));
	c = tc_spawn("get", key, "4096", "01600", NULL);
	id = (int)tc_expect_num(c, "id ");
	tc_child_wait_ok(c);
	assert_int_equal(shmx_get(tc_key(100), 0, 0), id);
	p = tc_attach(id, 0);
	tc_fill(p, 4096, 1);
	assert_int_equal(shmx_dt(p), 0);
	id = tc_create(tc_key(101), SIZE, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, SIZE, 2);
	assert_int_equal(tc_verify(p, SIZE, 2), -1);
	assert_int_equal(shmx_dt(p), 0);
	assert_true(tc_pid_alive(tc_keeper_pid()));
	{
		bool crashed;
		int starts = keeper_starts(&crashed);

		/* one new keeper did it: none crashed on the way and was replaced */
		if (crashed)
			fail_msg("a keeper crashed (see %s)", tc_path("keeper.log"));
		assert_int_equal(starts, starts_before + 1);
	}

	dirfd = open(tc_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	assert_int_equal(shmx_reg_open_ro(dirfd, &reg), 0);
	assert_int_equal(shmx_reg_hdr(&reg)->keeper_pid, tc_keeper_pid());
	shmx_reg_close(&reg);
	close(dirfd);
}

/* The holder's segment survived, found by key, with its data. */
static void survived(int n, int id)
{
	struct shmx_ds ds;
	void *p;

	assert_int_equal(shmx_get(tc_key(n), 0, 0), id);
	tc_stat(id, &ds);
	assert_int_equal(ds.nattch, 1);
	assert_int_equal(ds.segsz, SIZE);
	p = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, SIZE, (unsigned)n), -1);
	assert_int_equal(shmx_dt(p), 0);
}

static void bad_magic(void **state)
{
	uint64_t zero = 0;
	int fd;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	fd = open_registry(NULL);
	write_at(fd, &zero, sizeof(zero), 0);
	close(fd);
	works_again();
}

static void truncated_to_100_bytes(void **state)
{
	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	truncate_registry(100);
	works_again();
}

static void truncated_to_nothing(void **state)
{
	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	truncate_registry(0);
	works_again();
}

static void truncated_tables(void **state)
{
	struct tc_child *h;
	int id;

	(void)state;
	h = holder(1, &id);
	kill_keeper();
	/* a sound header over a file too short for its tables */
	truncate_registry(SHMX_REG_HEADER_SIZE + 4096);
	works_again();
	(void)h;
}

static void absurd_max_segments(void **state)
{
	struct shmx_reg_header h;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	read_header(&h);
	h.max_segments = 0xffffffffu;
	write_header(&h);
	works_again();
}

static void absurd_sizes_in_header(void **state)
{
	struct shmx_reg_header h;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	read_header(&h);
	h.max_segments = SHMX_MAX_SEGMENTS_LIMIT;
	h.hash_size = 0x80000000u;
	h.max_holders = 0xffffffffu;
	h.file_size = UINT64_C(1) << 62;
	h.header_size = 16;
	write_header(&h);
	works_again();
}

static void zero_limits_in_header(void **state)
{
	struct shmx_reg_header h;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	read_header(&h);
	h.max_segsz = 0;
	h.max_total = 0;
	h.segments = UINT64_MAX;
	h.total = UINT64_MAX;
	write_header(&h);
	works_again();
}

static void random_bytes_over_the_tables(void **state)
{
	struct shmx_reg_header h;
	struct tc_child *a, *b;
	unsigned seed = 42;
	char *junk;
	int fd, ida, idb;

	(void)state;
	a = holder(1, &ida);
	b = holder(2, &idb);
	kill_keeper();
	fd = open_registry(&h);
	junk = malloc(h.file_size - SHMX_REG_HEADER_SIZE);
	assert_non_null(junk);
	for (uint64_t i = 0; i < h.file_size - SHMX_REG_HEADER_SIZE; i++)
		junk[i] = (char)rand_r(&seed);
	write_at(fd, junk, h.file_size - SHMX_REG_HEADER_SIZE, SHMX_REG_HEADER_SIZE);
	free(junk);
	close(fd);
	works_again();
	(void)a;
	(void)b;
}

static void random_bytes_over_records_in_use(void **state)
{
	struct shmx_reg_layout lay;
	struct shmx_reg_header h;
	struct shmx_reg_record rec;
	struct tc_child *a;
	unsigned seed = 7;
	int fd, id;

	(void)state;
	a = holder(1, &id);
	kill_keeper();
	fd = open_registry(&h);
	assert_int_equal(shmx_reg_layout(h.max_segments, &lay), 0);
	/* the record keeps its seqlock even, everything else is noise */
	for (size_t i = 0; i < sizeof(rec); i++)
		((unsigned char *)&rec)[i] = (unsigned char)rand_r(&seed);
	rec.seq = 2;
	write_at(fd, &rec, sizeof(rec), lay.rec_off + sizeof(rec) * shmx_id_idx(id));
	close(fd);
	works_again();
	(void)a;
}

static void hash_loop(void **state)
{
	struct shmx_reg_layout lay;
	struct shmx_reg_header h;
	struct tc_child *a, *b;
	int32_t link;
	uint32_t ia, ib, one;
	int fd, ida, idb;

	(void)state;
	a = holder(1, &ida);
	b = holder(2, &idb);
	kill_keeper();
	fd = open_registry(&h);
	assert_int_equal(shmx_reg_layout(h.max_segments, &lay), 0);
	ia = shmx_id_idx(ida);
	ib = shmx_id_idx(idb);
	/* a -> b -> a -> ..., and every bucket leads into the loop */
	link = (int32_t)ib + 1;
	write_at(fd, &link, sizeof(link),
		 lay.rec_off + sizeof(struct shmx_reg_record) * ia +
		 offsetof(struct shmx_reg_record, hash_next));
	link = (int32_t)ia + 1;
	write_at(fd, &link, sizeof(link),
		 lay.rec_off + sizeof(struct shmx_reg_record) * ib +
		 offsetof(struct shmx_reg_record, hash_next));
	one = ia + 1;
	for (uint32_t i = 0; i < lay.hash_size; i++)
		write_at(fd, &one, sizeof(one), lay.hash_off + sizeof(one) * i);
	close(fd);
	works_again();
	/* the hash is rebuilt: the records themselves were sound */
	survived(1, ida);
	survived(2, idb);
	assert_int_equal(shmx_get(tc_key(3), 0, 0), -ENOENT);
	(void)a;
	(void)b;
}

static void lying_records_and_holders(void **state)
{
	struct shmx_reg_layout lay;
	struct shmx_reg_header h;
	struct shmx_reg_record rec, fake;
	struct shmx_reg_holder hold;
	struct tc_child *a;
	uint32_t idx;
	int fd, id;

	(void)state;
	a = holder(1, &id);
	kill_keeper();
	fd = open_registry(&h);
	assert_int_equal(shmx_reg_layout(h.max_segments, &lay), 0);
	idx = shmx_id_idx(id);
	assert_int_equal(pread(fd, &rec, sizeof(rec), (off_t)(lay.rec_off + sizeof(rec) * idx)),
			 sizeof(rec));
	/* records elsewhere that claim the same key, absurd sizes, wrong ids */
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t slot = (idx + 1 + i) % lay.max_segments;

		fake = rec;
		fake.id = (i == 0) ? rec.id : shmx_make_id(slot + 7, 3);
		fake.segsz = (i == 1) ? UINT64_MAX : rec.segsz;
		fake.nattch = UINT64_MAX;
		fake.mode = 07777;
		fake.state = (i == 2) ? 7 : SHMX_REC_USED;
		fake.hash_next = (i == 3) ? -5 : 0;
		write_at(fd, &fake, sizeof(fake), lay.rec_off + sizeof(fake) * slot);
		/* each with a "living holder": init's stdin, and ourselves */
		memset(&hold, 0, sizeof(hold));
		hold.record = (int32_t)slot + 1;
		hold.id = fake.id;
		hold.pid = (i & 1) ? 1 : getpid();
		hold.fd = 0;
		hold.count = 1;
		write_at(fd, &hold, sizeof(hold), lay.hold_off + sizeof(hold) * (lay.max_holders - 1 - i));
	}
	/* holders pointing outside the table */
	memset(&hold, 0, sizeof(hold));
	hold.record = INT32_MAX;
	hold.pid = getpid();
	write_at(fd, &hold, sizeof(hold), lay.hold_off + sizeof(hold) * (lay.max_holders - 5));
	hold.record = -3;
	write_at(fd, &hold, sizeof(hold), lay.hold_off + sizeof(hold) * (lay.max_holders - 6));
	close(fd);
	works_again();
	/* the key leads to the real segment, with the real memory */
	survived(1, id);
	(void)a;
}

/* Our process's start time, as the registry records holders. */
static uint64_t my_starttime(void)
{
	char buf[1024], *p;
	unsigned long long t = 0;
	FILE *f = fopen("/proc/self/stat", "r");

	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	assert_non_null(p);
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	assert_non_null(p);
	sscanf(p, "%llu", &t);
	return t;
}

static void decoy_descriptor_is_never_adopted(void **state)
{
	struct shmx_reg_layout lay;
	struct shmx_reg_header h;
	struct shmx_reg_holder hold;
	struct tc_child *a;
	int fd, id, decoy, r;
	bool replaced = false;
	void *p = NULL;

	(void)state;
	a = holder(1, &id);
	/* another memfd, ours, full of 0xee */
	decoy = memfd_create("decoy", 0);
	assert_true(decoy >= 0);
	assert_int_equal(ftruncate(decoy, SIZE), 0);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, decoy, 0);
	assert_true(p != MAP_FAILED);
	memset(p, 0xee, SIZE);
	munmap(p, SIZE);
	kill_keeper();
	fd = open_registry(&h);
	assert_int_equal(shmx_reg_layout(h.max_segments, &lay), 0);
	/* the holder entry of the segment now names our decoy */
	for (uint32_t i = 0; i < lay.max_holders; i++) {
		assert_int_equal(pread(fd, &hold, sizeof(hold), (off_t)(lay.hold_off + sizeof(hold) * i)),
				 sizeof(hold));
		if (hold.record == (int32_t)shmx_id_idx(id) + 1 && hold.id == id) {
			hold.pid = getpid();
			hold.fd = decoy;
			hold.starttime = my_starttime();
			write_at(fd, &hold, sizeof(hold), lay.hold_off + sizeof(hold) * i);
			replaced = true;
		}
	}
	close(fd);
	if (!replaced)
		fail_msg("no holder entry for segment %d in the registry", id);
	works_again();
	/* attaching may fail (no adoptable descriptor); it must never show the decoy */
	p = NULL;
	r = shmx_get(tc_key(1), 0, 0);
	if (r >= 0 && shmx_at(r, NULL, SHMX_RDONLY, &p) == 0) {
		if (((unsigned char *)p)[0] == 0xee)
			fail_msg("the keeper adopted a descriptor of another file");
		assert_int_equal(tc_verify(p, SIZE, 1), -1);
		assert_int_equal(shmx_dt(p), 0);
	}
	close(decoy);
	(void)a;
}

static void keeper_pid_names_another_process(void **state)
{
	struct shmx_reg_header h;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	read_header(&h);
	h.keeper_pid = getpid();                /* alive, and not a keeper */
	write_header(&h);
	works_again();
	assert_int_not_equal(tc_keeper_pid(), getpid());
}

static void registry_is_a_fifo(void **state)
{
	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	assert_int_equal(unlink(tc_path("registry")), 0);
	assert_int_equal(mkfifo(tc_path("registry"), 0600), 0);
	works_again();
}

static void registry_is_a_directory(void **state)
{
	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	assert_int_equal(unlink(tc_path("registry")), 0);
	assert_int_equal(mkdir(tc_path("registry"), 0700), 0);
	works_again();
}

static void registry_symlink_is_not_followed(void **state)
{
	char victim[4096], buf[64];
	const char *dir;
	int fd;

	(void)state;
	tc_create(tc_key(1), SIZE, 0600);
	kill_keeper();
	dir = tc_make_dir(0700, geteuid(), getegid());
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	assert_int_equal(unlink(tc_path("registry")), 0);
	assert_int_equal(symlink(victim, tc_path("registry")), 0);
	works_again();
	fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(fd, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "precious\n");
	close(fd);
}

int main(void)
{
	/* keepers then log to DIR/keeper.log, where their starts are counted */
	setenv("SHMX_LOG", "info", 1);
	const struct CMUnitTest tests[] = {
		tc_test(bad_magic),
		tc_test(truncated_to_100_bytes),
		tc_test(truncated_to_nothing),
		tc_test(truncated_tables),
		tc_test(absurd_max_segments),
		tc_test(absurd_sizes_in_header),
		tc_test(zero_limits_in_header),
		tc_test(random_bytes_over_the_tables),
		tc_test(random_bytes_over_records_in_use),
		tc_test(hash_loop),
		tc_test(lying_records_and_holders),
		tc_test(decoy_descriptor_is_never_adopted),
		tc_test(keeper_pid_names_another_process),
		tc_test(registry_is_a_fifo),
		tc_test(registry_is_a_directory),
		tc_test(registry_symlink_is_not_followed),
	};

	return tc_run_tests("corrupt", tests);
}
