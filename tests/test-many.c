/* SPDX-License-Identifier: MIT */
/*
 * More segments than the keeper's own open file limit takes: the memfds
 * beyond it are held by vaults, processes the keeper starts
 * (src/keeper/vault.h).  Clients see no difference.  --vault-after, a
 * keeper option for tests, starts vaults early, so most tests here are cheap.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "keeper/vault.h"
#include "proto.h"
#include "util/sock.h"

#define SEGSZ 4096
#define SEED 7u

#define MANY 30000

/* The keeper's vaults: its children started as "shmxd --vault". */
static int find_vaults(pid_t keeper, pid_t *pids, int max)
{
	struct dirent *e;
	DIR *d = opendir("/proc");
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) && n < max) {
		char buf[512], *p;
		pid_t pid = (pid_t)atoi(e->d_name);
		ssize_t len;
		int ppid;

		if (pid <= 0)
			continue;
		if (tc_read_proc(pid, "stat", buf, sizeof(buf)) <= 0)
			continue;
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != keeper)
			continue;
		len = tc_read_proc(pid, "cmdline", buf, sizeof(buf));
		if (len <= 0)
			continue;
		/* argv[1] */
		if (strlen(buf) + 1 < (size_t)len && strcmp(buf + strlen(buf) + 1, "--vault") == 0 &&
		    tc_pid_alive(pid))
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}

/* "Max open files" soft limit of a process. */
static long soft_nofile(pid_t pid)
{
	char path[64], line[256];
	long soft = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Max open files %ld", &soft) == 1)
			break;
	fclose(f);
	return soft;
}

static int create_n(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++)
		TC_CHECK(shmx_get(tc_key(i), SEGSZ, SHMX_CREAT | SHMX_EXCL | 0600) >= 0);
	return 0;
}

/*
 * n segments, created by a child that then exits: a creator keeps the
 * descriptors of the first segments it makes (the descriptor cache), and
 * these tests need segments that nobody but the keeper holds.
 */
static int *create_many(int n)
{
	int64_t t0 = tc_now_ms();
	int *ids = calloc((size_t)n, sizeof(*ids));

	assert_non_null(ids);
	assert_int_equal(tc_fork_call((uid_t)-1, (gid_t)-1, create_n, &n, 30 * TC_REPLY_MS), 0);
	for (int i = 0; i < n; i++) {
		ids[i] = shmx_get(tc_key(i), 0, 0);
		if (ids[i] < 0)
			fail_msg("segment %d of %d: %s", i, n, strerror(-ids[i]));
	}
	print_message("# %d segments created in %lld ms\n", n, (long long)(tc_now_ms() - t0));
	return ids;
}

/* Everything a client does works the same on every one of n segments. */
static void check_many(int n, const int *ids)
{
	struct shmx_info info;
	struct shmx_ds ds, *all;
	struct tc_child *h;
	int64_t t0, took;
	pid_t keeper, vaults[64];
	int r, nv, fds, mid = n / 2;
	char key[32], seed[16];
	void *p;

	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, n);
	keeper = info.keeper_pid;

	all = calloc((size_t)n + 1, sizeof(*all));
	assert_non_null(all);
	t0 = tc_now_ms();
	r = shmx_list(all, (size_t)n + 1);
	took = tc_now_ms() - t0;
	free(all);
	assert_int_equal(r, n);
	print_message("# shmx_list of %d segments (SYNC_ALL): %lld ms\n", n, (long long)took);
	if (took > 1000 * TC_SLOW)
		fail_msg("shmx_list of %d segments took %lld ms", n, (long long)took);

	assert_int_equal(shmx_get(tc_key(0), 0, 0), ids[0]);
	assert_int_equal(shmx_get(tc_key(mid), 0, 0), ids[mid]);
	assert_int_equal(shmx_get(tc_key(n - 1), 0, 0), ids[n - 1]);

	/* the last ones are in a vault: written here, read by another process */
	p = tc_attach(ids[n - 1], 0);
	tc_fill(p, SEGSZ, SEED);
	assert_int_equal(shmx_dt(p), 0);
	tc_stat(ids[n - 1], &ds);
	assert_int_equal(ds.rss, SEGSZ);
	snprintf(key, sizeof(key), "%d", (int)tc_key(n - 1));
	snprintf(seed, sizeof(seed), "%u", SEED);
	h = tc_spawn("check", key, seed, NULL);
	tc_expect(h, "ok");
	tc_child_wait_ok(h);

	/* SHMX_LOCK maps it: the descriptor goes back to the vault */
	r = shmx_ctl(ids[n - 3], SHMX_LOCK, NULL);
	if (r == 0) {
		tc_stat(ids[n - 3], &ds);
		assert_true(ds.status & SHMX_LOCKED);
		assert_int_equal(shmx_ctl(ids[n - 3], SHMX_UNLOCK, NULL), 0);
	} else if (r != -ENOMEM && r != -EPERM) {
		fail_msg("SHMX_LOCK of a vaulted segment: %s", strerror(-r));
	}

	/* removing a vaulted segment frees it */
	assert_int_equal(shmx_ctl(ids[n - 2], SHMX_RMID, NULL), 0);
	assert_int_equal(shmx_ctl(ids[n - 2], SHMX_STAT, &ds), -EIDRM);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, n - 1);

	fds = tc_count_fds(keeper);
	nv = find_vaults(keeper, vaults, 64);
	print_message("# keeper: %d descriptors (soft limit %ld), %d vaults\n", fds,
		      soft_nofile(keeper), nv);
	assert_true(fds > 0 && fds < soft_nofile(keeper));
	assert_true(nv >= 1);
}

static void beyond_the_keepers_file_limit(void **state)
{
	struct rlimit rl;
	char after[16];
	int *ids;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < 1024) {
		print_message("# skip: RLIMIT_NOFILE hard limit %llu: too low even for vaults\n",
			      (unsigned long long)rl.rlim_max);
		skip();
	}
	/* a limit that takes them all: vaults after half of them anyway */
	snprintf(after, sizeof(after), "%d", MANY / 2);
	if (rl.rlim_max > MANY + 4096)
		assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "32768",
						 "--vault-after", after, NULL), 0);
	else
		assert_int_equal(tc_start_keeper(tc_dir(), "--max-segments", "32768", NULL), 0);
	ids = create_many(MANY);
	check_many(MANY, ids);
	free(ids);
}

static void vaults_after_a_few(void **state)
{
	int *ids;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--vault-after", "100", NULL), 0);
	ids = create_many(500);
	check_many(500, ids);
	free(ids);
}

static pid_t start_with_vaults(int after, int n, int **idsp)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%d", after);
	assert_int_equal(tc_start_keeper(tc_dir(), "--vault-after", arg, NULL), 0);
	*idsp = create_many(n);
	return tc_keeper_pid();
}

/* A keeper killed takes its vaults along. */
static void vaults_die_with_their_keeper(void **state)
{
	pid_t keeper, vaults[64];
	int64_t end;
	int *ids, n;

	(void)state;
	keeper = start_with_vaults(10, 30, &ids);
	n = find_vaults(keeper, vaults, 64);
	assert_true(n >= 1);
	tc_kill_keeper(keeper);
	end = tc_now_ms() + TC_1S;
	for (int i = 0; i < n; i++) {
		while (tc_pid_alive(vaults[i]) && tc_now_ms() < end)
			tc_sleep_ms(10);
		if (tc_pid_alive(vaults[i]))
			fail_msg("vault %d alive 1 s after its keeper's SIGKILL", (int)vaults[i]);
	}
	free(ids);
}

/*
 * A vault that dies: what nobody else holds is gone, as after a keeper's
 * death; what a client holds is taken back from it.  New segments go on.
 */
static void a_lost_vault(void **state)
{
	pid_t keeper, vaults[64];
	struct tc_child *h;
	struct shmx_ds ds;
	char key[32];
	int *ids, n, id;
	void *p;

	(void)state;
	keeper = start_with_vaults(10, 40, &ids);
	assert_int_equal(find_vaults(keeper, vaults, 64), 1);
	snprintf(key, sizeof(key), "%d", (int)tc_key(30));
	h = tc_spawn("hold", key, "4096", "0", "5", NULL);
	assert_int_equal(tc_expect_num(h, "attached "), ids[30]);

	kill(vaults[0], SIGKILL);
	assert_int_equal(tc_wait_gone(ids[20], 2 * TC_1S), -EIDRM);
	assert_int_equal(tc_wait_gone(ids[39], 2 * TC_1S), -EIDRM);
	/* the keeper's own and the held one stay */
	tc_stat(ids[0], &ds);
	tc_stat(ids[30], &ds);
	assert_int_equal(ds.nattch, 1);
	p = tc_attach(ids[30], SHMX_RDONLY);
	assert_int_equal(tc_verify(p, SEGSZ, 5), -1);
	assert_int_equal(shmx_dt(p), 0);
	tc_send(h, "check 5");
	tc_expect(h, "ok");

	/* a new vault for new segments */
	id = tc_create(tc_key(1000), SEGSZ, 0600);
	p = tc_attach(id, 0);
	tc_fill(p, SEGSZ, 9);
	assert_int_equal(shmx_dt(p), 0);
	p = tc_attach(id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, SEGSZ, 9), -1);
	assert_int_equal(shmx_dt(p), 0);
	n = find_vaults(keeper, vaults, 64);
	assert_true(n >= 1);
	free(ids);
}

/* A vaulted segment attached, within a few seconds: a vault that was slow
 * answers again once its late replies are read. */
static void *attach_soon(int id, int flags)
{
	int64_t end = tc_now_ms() + 5 * TC_1S;
	void *p;
	int r;

	while ((r = shmx_at(id, NULL, flags, &p)) == -ENOMEM && tc_now_ms() < end)
		tc_sleep_ms(20);
	if (r < 0)
		fail_msg("attaching %d: %s", id, strerror(-r));
	return p;
}

/*
 * A vault that is slow (here: stopped) is not lost: a request that waits for
 * it fails, a destroy does not wait for it, and once it answers again every
 * other segment in it is there, as it was.
 */
static void a_slow_vault(void **state)
{
	struct shmx_ds all[64];
	pid_t keeper, vaults[64];
	int *ids, r, listed;
	void *p;

	(void)state;
	keeper = start_with_vaults(10, 40, &ids);
	assert_int_equal(find_vaults(keeper, vaults, 64), 1);
	p = tc_attach(ids[35], 0);
	tc_fill(p, SEGSZ, 3);
	assert_int_equal(shmx_dt(p), 0);

	assert_int_equal(kill(vaults[0], SIGSTOP), 0);
	/* a DROP is not waited for */
	assert_int_equal(shmx_ctl(ids[20], SHMX_RMID, NULL), 0);
	/* one that waits times out: that request fails, nothing else */
	r = shmx_at(ids[25], NULL, 0, &p);
	if (r == 0)
		fail_msg("attached a segment of a stopped vault");
	assert_int_equal(r, -ENOMEM);
	assert_true(shmx_list(all, 64) >= 39);
	assert_int_equal(kill(vaults[0], SIGCONT), 0);

	assert_int_equal(tc_wait_gone(ids[20], 2 * TC_1S), -EIDRM);
	assert_true(tc_pid_alive(vaults[0]));
	listed = shmx_list(all, 64);
	assert_int_equal(listed, 39);
	for (int i = 0; i < 40; i++) {
		if (i == 20)
			continue;
		p = attach_soon(ids[i], i == 35 ? SHMX_RDONLY : 0);
		if (i == 35)
			assert_int_equal(tc_verify(p, SEGSZ, 3), -1);
		else
			tc_fill(p, SEGSZ, 4);
		assert_int_equal(shmx_dt(p), 0);
	}
	assert_int_equal(find_vaults(keeper, vaults, 64), 1);
	free(ids);
}

/* A recovering keeper past its --vault-after hands what it adopts to vaults. */
static void recovery_adopts_into_vaults(void **state)
{
	struct shmx_info info;
	struct shmx_ds ds[64];
	struct tc_child *h;
	pid_t vaults[64];
	void *p;
	int n;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--vault-after", "10", NULL), 0);
	h = tc_spawn("hold-fds", "50", "4096", NULL);
	assert_int_equal(tc_expect_num(h, "holding "), 50);
	tc_kill_keeper(tc_keeper_pid());

	assert_int_equal(tc_start_keeper(tc_dir(), "--vault-after", "10", NULL), 0);
	assert_int_equal(shmx_info(&info), 0);
	assert_int_equal(info.segments, 50);
	assert_true(find_vaults(info.keeper_pid, vaults, 64) >= 1);
	n = shmx_list(ds, 64);
	assert_int_equal(n, 50);
	for (int i = 0; i < n; i++) {
		p = tc_attach(ds[i].id, 0);
		assert_int_equal(shmx_dt(p), 0);
	}
	tc_close_stdin(h);
	tc_child_wait_ok(h);
}

#define CONNS 200

/*
 * A keeper at its open file limit makes room for connections by moving its
 * own memfds to a vault (the limit is lowered from outside, and read again
 * on the keeper's tick).
 */
static void connections_at_the_file_limit(void **state)
{
	struct rlimit rl = { 256, 256 };
	struct tc_child *h;
	struct shmx_req req;
	pid_t keeper, vaults[64];
	int socks[CONNS], *ids, fds;
	char key[32];
	void *p;

	(void)state;
	assert_int_equal(tc_start_keeper(tc_dir(), "--vault-after", "65536", NULL), 0);
	ids = create_many(150);
	keeper = tc_keeper_pid();
	assert_int_equal(find_vaults(keeper, vaults, 64), 0);
	if (prlimit(keeper, RLIMIT_NOFILE, &rl, NULL) < 0) {
		print_message("# skip: cannot lower the keeper's limit: %s\n", strerror(errno));
		skip();
	}
	tc_sleep_ms(1500);
	for (int i = 0; i < CONNS; i++) {
		socks[i] = tc_raw_connect(tc_dir());
		assert_true(socks[i] >= 0);
	}
	/* each one is served */
	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = SHMX_SYNC_NONE;
	for (int i = 0; i < CONNS; i++)
		assert_int_equal(tc_raw_call(socks[i], &req, -1), 0);
	fds = tc_count_fds(keeper);
	print_message("# keeper: %d descriptors, limit 256\n", fds);
	assert_true(fds > CONNS && fds <= 256);
	assert_true(find_vaults(keeper, vaults, 64) >= 1);

	/* segments moved, and new ones, work as before */
	for (int i = 150; i < 200; i++)
		tc_create(tc_key(i), SEGSZ, 0600);
	p = tc_attach(ids[0], 0);
	tc_fill(p, SEGSZ, SEED);
	assert_int_equal(shmx_dt(p), 0);
	snprintf(key, sizeof(key), "%d", (int)tc_key(0));
	h = tc_spawn("check", key, "7", NULL);
	tc_expect(h, "ok");
	tc_child_wait_ok(h);
	assert_int_equal(shmx_list(NULL, 0), 200);
	for (int i = 0; i < CONNS; i++)
		close(socks[i]);
	free(ids);
}

/* "shmxd --vault 3" on our end of a socketpair, as a keeper starts one. */
static pid_t start_vault(int *sockp)
{
	int sv[2];
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (sv[1] == VAULT_FD ? fcntl(sv[1], F_SETFD, 0) < 0 : dup2(sv[1], VAULT_FD) < 0)
			_exit(126);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execl(tc_keeper_path(), "shmxd", VAULT_ARG, "3", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	tc_track_pid(pid);
	*sockp = sv[0];
	return pid;
}

/* One message from the vault (within the deadline); its length. */
static size_t vault_recv(int sock, void *buf, size_t cap, int *fdp)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct shmx_sock_rx rx;

	assert_int_equal(poll(&pfd, 1, TC_REPLY_MS), 1);
	assert_int_equal(shmx_sock_recv(sock, buf, cap, 0, &rx), 0);
	if (fdp)
		*fdp = rx.fd;
	else
		assert_int_equal(rx.fd, -1);
	return rx.len;
}

/* Sends len bytes of m with fds (up to two), returns the reply's result. */
static int vault_ask(int sock, const struct vault_msg *m, size_t len, int fd1, int fd2,
		     struct vault_msg *rep, int *fdp)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	int fds[2] = { fd1, fd2 }, n = (fd1 >= 0) + (fd2 >= 0);
	struct iovec iov = { .iov_base = (void *)m, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct vault_msg r;

	if (n) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
	assert_int_equal(vault_recv(sock, &r, sizeof(r), fdp), sizeof(r));
	if (rep)
		*rep = r;
	return r.result;
}

#define ASK(sock, op_, slot_, id_, fd) \
	vault_ask(sock, &(struct vault_msg){ .op = (op_), .slot = (slot_), .id = (id_) }, \
		  sizeof(struct vault_msg), fd, -1, NULL, NULL)

/* A vault answers what makes no sense with an error, and goes on. */
static void a_vault_survives_nonsense(void **state)
{
	struct {
		struct vault_msg hdr;
		struct vault_rss e[VAULT_RSS_CHUNK];
	} all;
	struct vault_msg m = { .op = VAULT_GET, .slot = 1, .id = 5 }, rep;
	int sock, mfd, got;
	char buf[8] = { 0 };
	pid_t pid;

	(void)state;
	pid = start_vault(&sock);
	assert_int_equal(vault_recv(sock, &rep, sizeof(rep), NULL), sizeof(rep));
	assert_int_equal(rep.op, VAULT_HELLO);
	assert_true(rep.result > 0);

	mfd = memfd_create("vault-test", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, SEGSZ), 0);
	assert_int_equal(pwrite(mfd, "hello", 5, 0), 5);

	assert_int_equal(vault_ask(sock, &m, 5, -1, -1, NULL, NULL), -EBADMSG);
	assert_int_equal(ASK(sock, VAULT_GET, 1, 5, -1), -ENOENT);
	assert_int_equal(ASK(sock, VAULT_PUT, 1, 5, -1), -EBADMSG);
	assert_int_equal(ASK(sock, VAULT_PUT, 70000, 5, mfd), -EINVAL);
	assert_int_equal(ASK(sock, VAULT_GET, 1, 5, mfd), -EBADMSG);
	assert_int_equal(ASK(sock, 99, 1, 5, -1), -EINVAL);
	assert_int_equal(ASK(sock, VAULT_HELLO, 1, 5, -1), -EINVAL);
	assert_int_equal(vault_ask(sock, &(struct vault_msg){ .op = VAULT_PUT, .slot = 1, .id = 5 },
				   sizeof(m), mfd, mfd, NULL, NULL), -EBADMSG);

	/* and what does, as it should */
	assert_int_equal(ASK(sock, VAULT_PUT, 1, 5, mfd), 0);
	assert_int_equal(ASK(sock, VAULT_PUT, 1, 5, mfd), -EEXIST);
	assert_int_equal(ASK(sock, VAULT_GET, 1, 6, -1), -ENOENT);
	assert_int_equal(vault_ask(sock, &m, sizeof(m), -1, -1, NULL, &got), 0);
	assert_true(got >= 0);
	assert_int_equal(pread(got, buf, 5, 0), 5);
	assert_string_equal(buf, "hello");
	close(got);
	m.op = VAULT_RSS;
	assert_int_equal(vault_ask(sock, &m, sizeof(m), -1, -1, &rep, NULL), 0);
	assert_int_equal(rep.value, SEGSZ);
	m.op = VAULT_RSS_ALL;
	assert_int_equal(send(sock, &m, sizeof(m), 0), sizeof(m));
	assert_int_equal(vault_recv(sock, &all, sizeof(all), NULL), sizeof(all.hdr) + sizeof(all.e[0]));
	assert_int_equal(all.hdr.result, 1);
	assert_true(all.hdr.flags & VAULT_LAST);
	assert_int_equal(all.e[0].slot, 1);
	assert_int_equal(all.e[0].id, 5);
	assert_int_equal(all.e[0].rss, SEGSZ);
	m = (struct vault_msg){ .op = VAULT_DROP, .slot = 1, .id = 5, .flags = VAULT_PUNCH };
	assert_int_equal(vault_ask(sock, &m, sizeof(m), -1, -1, NULL, NULL), 0);
	/* punched: gone from our descriptor too */
	assert_int_equal(pread(mfd, buf, 5, 0), 5);
	assert_memory_equal(buf, "\0\0\0\0\0", 5);
	assert_int_equal(ASK(sock, VAULT_GET, 1, 5, -1), -ENOENT);
	close(mfd);

	/* it ends with its socket */
	close(sock);
	assert_int_equal(tc_waitpid(pid, TC_1S), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(vaults_after_a_few),
		tc_test(vaults_die_with_their_keeper),
		tc_test(a_lost_vault),
		tc_test(a_slow_vault),
		tc_test(recovery_adopts_into_vaults),
		tc_test(connections_at_the_file_limit),
		tc_test(a_vault_survives_nonsense),
		tc_test(beyond_the_keepers_file_limit),
	};

	return tc_run_tests("many", tests);
}
