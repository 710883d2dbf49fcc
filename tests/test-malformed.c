/* SPDX-License-Identifier: MIT */
/*
 * Hostile clients on the keeper's socket: garbage, truncated and oversized
 * messages, bad headers and fields, piles of descriptors, abrupt hang-ups,
 * floods.  After each, the keeper is the same process, a normal client
 * works, and the keeper holds no more descriptors than before.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "proto.h"

struct keeper {
	pid_t pid;
	int fds;                        /* its descriptors with us connected */
};

static void keeper_baseline(struct keeper *k)
{
	k->pid = tc_keeper_pid();
	k->fds = tc_count_fds(k->pid);
	assert_true(k->fds > 0);
}

/* The keeper survived, answers others, and leaked nothing. */
static void keeper_ok(const struct keeper *k)
{
	struct tc_child *c;
	int64_t end;
	int fds, id;

	assert_true(tc_pid_alive(k->pid));
	/* another process first: if the keeper hangs, that one times out, not us */
	c = tc_spawn("info", NULL);
	assert_int_equal(tc_expect_num(c, "keeper "), k->pid);
	tc_child_wait_ok(c);
	assert_int_equal(tc_keeper_pid(), k->pid);
	id = tc_create(SHMX_PRIVATE, 4096, 0600);
	assert_int_equal(shmx_ctl(id, SHMX_RMID, NULL), 0);
	end = tc_now_ms() + TC_1S;
	while ((fds = tc_count_fds(k->pid)) > k->fds && tc_now_ms() < end)
		tc_sleep_ms(10);
	if (fds > k->fds)
		fail_msg("keeper holds %d descriptors, %d before", fds, k->fds);
}

static int raw_socket(void)
{
	int fd = tc_raw_connect(tc_dir());

	if (fd < 0)
		fail_msg("connect to the keeper: %s", strerror(-fd));
	return fd;
}

/* A connection that has not even said HELLO. */
static int bare_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tc_path("keeper.sock"));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Sends without caring whether the keeper took it (it may have hung up). */
static void send_raw(int sock, const void *buf, size_t len)
{
	(void)!send(sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Drains replies for a moment; whether any come or the keeper hangs up is
 * its choice.  strict: every request sent was invalid, so must every reply be.
 */
static void drain(int sock, int ms, bool strict)
{
	char buf[256];
	struct pollfd p = { .fd = sock, .events = POLLIN };

	while (poll(&p, 1, ms) > 0) {
		ssize_t n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);

		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		/* any reply to nonsense must be an error */
		if (strict && (size_t)n == sizeof(struct shmx_reply) &&
		    shmx_reply_check(buf, (size_t)n) == 0) {
			struct shmx_reply rep;

			memcpy(&rep, buf, sizeof(rep));
			if (rep.result >= 0)
				fail_msg("keeper accepted a bad request (type %u): result %d",
					 rep.req_type, rep.result);
		}
	}
}

static void garbage(void **state)
{
	struct keeper k;
	unsigned seed = 1;

	(void)state;
	keeper_baseline(&k);
	for (int round = 0; round < 2; round++) {
		int sock = round ? raw_socket() : bare_socket();

		for (int i = 0; i < 64; i++) {
			unsigned char buf[256];
			size_t len = 1 + (size_t)(rand_r(&seed) % sizeof(buf));

			for (size_t j = 0; j < len; j++)
				buf[j] = (unsigned char)rand_r(&seed);
			send_raw(sock, buf, len);
		}
		/* and exactly a request's size of garbage */
		for (int i = 0; i < 64; i++) {
			unsigned char buf[sizeof(struct shmx_req)];

			for (size_t j = 0; j < sizeof(buf); j++)
				buf[j] = (unsigned char)rand_r(&seed);
			send_raw(sock, buf, sizeof(buf));
		}
		drain(sock, 100, true);
		close(sock);
	}
	keeper_ok(&k);
}

static void truncated_requests(void **state)
{
	const size_t lens[] = { 0, 1, 2, 4, 8, 12, 16, 32, 47, 48, sizeof(struct shmx_req) - 1 };
	struct keeper k;
	struct shmx_req req;
	int sock;

	(void)state;
	keeper_baseline(&k);
	sock = raw_socket();
	for (uint32_t type = SHMX_MSG_HELLO; type < SHMX_MSG_TYPE_MAX; type++) {
		shmx_req_init(&req, type);
		req.id = 0;
		req.key = tc_key(1);
		req.size = 4096;
		req.flags = SHMX_CREAT | 0600;
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			send_raw(sock, &req, lens[i]);
	}
	drain(sock, 100, true);
	close(sock);
	/* none of them created anything */
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	keeper_ok(&k);
}

static void oversized_datagrams(void **state)
{
	const size_t lens[] = { sizeof(struct shmx_req) + 1, 4096, 65536, 200000 };
	struct keeper k;
	struct shmx_req req;
	char *buf;

	(void)state;
	keeper_baseline(&k);
	buf = calloc(1, 200000);
	assert_non_null(buf);
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(1);
	req.size = 4096;
	req.flags = SHMX_CREAT | 0600;
	memcpy(buf, &req, sizeof(req));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		int sock = raw_socket();

		send_raw(sock, buf, lens[i]);
		drain(sock, 50, true);
		close(sock);
	}
	free(buf);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	keeper_ok(&k);
}

static void wrong_magic_and_version(void **state)
{
	struct keeper k;
	struct shmx_req req;
	int sock;

	(void)state;
	keeper_baseline(&k);
	sock = bare_socket();
	shmx_req_init(&req, SHMX_MSG_HELLO);
	req.magic = 0x1234;
	send_raw(sock, &req, sizeof(req));
	shmx_req_init(&req, SHMX_MSG_HELLO);
	req.version = SHMX_PROTO_VERSION + 1;
	send_raw(sock, &req, sizeof(req));
	drain(sock, 50, true);
	close(sock);

	sock = raw_socket();
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(1);
	req.size = 4096;
	req.flags = SHMX_CREAT | 0600;
	req.magic = (uint16_t)~SHMX_PROTO_MAGIC;
	send_raw(sock, &req, sizeof(req));
	req.magic = SHMX_PROTO_MAGIC;
	req.version = 0;
	send_raw(sock, &req, sizeof(req));
	req.version = 0xffff;
	send_raw(sock, &req, sizeof(req));
	drain(sock, 100, true);
	close(sock);
	assert_int_equal(shmx_get(tc_key(1), 0, 0), -ENOENT);
	keeper_ok(&k);
}

static void bad_fields(void **state)
{
	struct keeper k;
	struct shmx_req req;
	struct shmx_ds ds;
	int sock, id;

	(void)state;
	keeper_baseline(&k);
	id = tc_create(tc_key(1), 4096, 0600);
	k.fds = tc_count_fds(k.pid);            /* with the segment's memfd */
	sock = raw_socket();
#define BAD(type_, field_assignments) do {				\
		shmx_req_init(&req, type_);				\
		field_assignments;					\
		send_raw(sock, &req, sizeof(req));			\
	} while (0)
	BAD(SHMX_MSG_GET, (req.key = tc_key(2), req.size = 4096, req.flags = SHMX_CREAT | 0x100000));
	BAD(SHMX_MSG_GET, (req.key = tc_key(2), req.size = 0, req.flags = SHMX_CREAT | 0600));
	BAD(SHMX_MSG_GET, (req.key = tc_key(2), req.size = UINT64_MAX, req.flags = SHMX_CREAT | 0600));
	BAD(SHMX_MSG_FD, (req.id = -5));
	BAD(SHMX_MSG_FD, (req.id = id, req.flags = 0x7));
	BAD(SHMX_MSG_FD, (req.id = id ^ 0x7fff0000));
	BAD(SHMX_MSG_ATTACH, (req.id = -1, req.fd = -1));
	BAD(SHMX_MSG_ATTACH, (req.id = id, req.fd = -1));
	BAD(SHMX_MSG_DETACH, (req.id = -1));
	BAD(SHMX_MSG_RELEASE, (req.id = INT32_MIN));
	BAD(SHMX_MSG_CTL, (req.id = id, req.cmd = 99));
	BAD(SHMX_MSG_CTL, (req.id = id, req.cmd = -1));
	BAD(SHMX_MSG_CTL, (req.id = -1, req.cmd = SHMX_RMID));
	BAD(SHMX_MSG_SYNC, (req.id = -100));
	BAD(SHMX_MSG_REATTACH, (req.id = id, req.fd = 3, req.count = UINT64_C(1) << 40));
	BAD(SHMX_MSG_REATTACH, (req.id = id, req.fd = -7, req.count = 1));
	BAD(SHMX_MSG_REATTACH, (req.id = id, req.fd = 3, req.count = 1, req.flags = 0x40));
	BAD(0, (req.id = id));
	BAD(SHMX_MSG_TYPE_MAX, (req.id = id));
	BAD(SHMX_MSG_REPLY, (req.id = id));
	BAD(0xffffffffu, (req.id = id));
#undef BAD
	drain(sock, 200, true);
	close(sock);
	/* nothing happened to the segment or the key */
	tc_stat(id, &ds);
	assert_int_equal(ds.status, 0);
	assert_int_equal(ds.nattch, 0);
	assert_int_equal(ds.mode, 0600);
	assert_int_equal(shmx_get(tc_key(2), 0, 0), -ENOENT);
	keeper_ok(&k);
}

/* One message carrying n descriptors. */
static void send_fds(int sock, const void *buf, size_t len, int n)
{
	int fds[253];
	char *ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	assert_true(n <= 253);
	for (int i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	ctl = calloc(1, CMSG_SPACE(sizeof(int) * (size_t)n));
	assert_non_null(ctl);
	msg.msg_control = ctl;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	(void)!sendmsg(sock, &msg, MSG_NOSIGNAL);
	free(ctl);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void many_descriptors(void **state)
{
	struct keeper k;
	struct shmx_req req;
	int sock;

	(void)state;
	keeper_baseline(&k);
	sock = raw_socket();
	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = SHMX_SYNC_NONE;
	for (int i = 0; i < 8; i++)
		send_fds(sock, &req, sizeof(req), 250);
	shmx_req_init(&req, SHMX_MSG_HELLO);
	send_fds(sock, &req, sizeof(req), 1);
	send_fds(sock, &req, sizeof(req), 100);
	shmx_req_init(&req, SHMX_MSG_GET);
	req.key = tc_key(1);
	send_fds(sock, &req, sizeof(req), 3);
	send_fds(sock, "junk", 4, 200);
	drain(sock, 200, false);
	close(sock);
	/* the same on a connection that never said HELLO */
	sock = bare_socket();
	send_fds(sock, &req, sizeof(req), 250);
	drain(sock, 100, false);
	close(sock);
	keeper_ok(&k);
}

static void hang_up_mid_request(void **state)
{
	struct keeper k;
	struct shmx_req req;

	(void)state;
	keeper_baseline(&k);
	tc_create(tc_key(1), 4096, 0600);
	k.fds = tc_count_fds(k.pid);
	for (int i = 0; i < 20; i++) {
		int sock = raw_socket();

		/* the reply, and its descriptor, go to a closed socket */
		shmx_req_init(&req, (i % 3) == 0 ? SHMX_MSG_FD : (i % 3) == 1 ? SHMX_MSG_GET : SHMX_MSG_SYNC);
		req.id = (i % 3) == 2 ? SHMX_SYNC_ALL : shmx_get(tc_key(1), 0, 0);
		req.key = tc_key(1);
		send_raw(sock, &req, sizeof(req));
		if (i & 1)
			shutdown(sock, SHUT_RDWR);
		close(sock);
	}
	/* a partial message cannot exist on SOCK_SEQPACKET; a connect and nothing can */
	for (int i = 0; i < 20; i++)
		close(bare_socket());
	keeper_ok(&k);
}

static void request_flood(void **state)
{
	struct keeper k;
	struct shmx_req req;
	int sock, sent = 0;
	int64_t end;

	(void)state;
	keeper_baseline(&k);
	sock = raw_socket();
	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = SHMX_SYNC_ALL;
	/* never read a reply: the keeper must not block on our full queue */
	end = tc_now_ms() + 2000;
	while (sent < 200000 && tc_now_ms() < end) {
		if (send(sock, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				break;
			tc_sleep_ms(1);
			continue;
		}
		sent++;
	}
	print_message("# sent %d requests without reading\n", sent);
	/* while the flood sits there, others are served */
	{
		struct tc_child *c = tc_spawn("info", NULL);

		assert_int_equal(tc_expect_num(c, "keeper "), k.pid);
		tc_child_wait_ok(c);
	}
	close(sock);
	keeper_ok(&k);
}

static void connection_flood(void **state)
{
	struct rlimit rl;
	struct keeper k;
	int socks[1500];
	int n = 0;

	(void)state;
	keeper_baseline(&k);
	/* more connections than a keeper with the default limit can hold */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 1600 && rl.rlim_max >= 1600) {
		rl.rlim_cur = 1600;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	while (n < 1500) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int r, tries = 0;

		if (fd < 0)
			break;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tc_path("keeper.sock"));
		/* a full backlog says EAGAIN: give the keeper a moment, not forever */
		while ((r = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 &&
		       errno == EAGAIN && tries++ < 100)
			tc_sleep_ms(10);
		if (r < 0) {
			close(fd);
			break;
		}
		socks[n++] = fd;
	}
	print_message("# %d connections open\n", n);
	assert_true(n >= 1000);
	tc_sleep_ms(300);
	assert_true(tc_pid_alive(k.pid));
	for (int i = 0; i < n; i++)
		close(socks[i]);
	/* once they are gone, all is as before */
	tc_sleep_ms(200);
	keeper_ok(&k);
}

/* A helper holds a segment the test process never attached; a raw connection. */
struct forged {
	struct keeper k;
	struct tc_child *h;
	int id;
	int sock;
};

static void forged_start(struct forged *f)
{
	char key[32];

	keeper_baseline(&f->k);
	snprintf(key, sizeof(key), "%d", (int)tc_key(1));
	f->h = tc_spawn("hold", key, "4096", "01600", "-1", NULL);
	f->id = (int)tc_expect_num(f->h, "attached ");
	assert_int_equal(tc_wait_nattch(f->id, 1, 0), 1);
	f->k.fds = tc_count_fds(f->k.pid);
	f->sock = raw_socket();
}

/* The count is still the holder's one, and its memory the segment's. */
static void forged_end(struct forged *f)
{
	struct shmx_req req;
	void *p;

	shmx_req_init(&req, SHMX_MSG_SYNC);
	req.id = f->id;
	assert_int_equal(tc_raw_call(f->sock, &req, -1), 0);
	assert_int_equal(tc_wait_nattch(f->id, 1, 0), 1);
	close(f->sock);
	assert_int_equal(tc_wait_nattch(f->id, 1, 0), 1);
	tc_send(f->h, "fill 4");
	tc_expect(f->h, "filled");
	p = tc_attach(f->id, SHMX_RDONLY);
	assert_int_equal(tc_verify(p, 4096, 4), -1);
	assert_int_equal(shmx_dt(p), 0);
	tc_child_kill(f->h);
	assert_int_equal(tc_wait_nattch(f->id, 0, TC_1S), 0);
	keeper_ok(&f->k);
}

static void forged_detach_changes_no_count(void **state)
{
	struct shmx_req req;
	struct forged f;

	(void)state;
	forged_start(&f);
	/* not ours to detach or release */
	for (int i = 0; i < 5; i++) {
		shmx_req_init(&req, SHMX_MSG_DETACH);
		req.id = f.id;
		send_raw(f.sock, &req, sizeof(req));
	}
	shmx_req_init(&req, SHMX_MSG_RELEASE);
	req.id = f.id;
	send_raw(f.sock, &req, sizeof(req));
	forged_end(&f);
}

static void attach_without_descriptor_changes_no_count(void **state)
{
	struct shmx_req req;
	struct forged f;

	(void)state;
	forged_start(&f);
	/* this connection never received a descriptor of the segment */
	shmx_req_init(&req, SHMX_MSG_ATTACH);
	req.id = f.id;
	req.fd = 3;
	assert_int_equal(tc_raw_call(f.sock, &req, -1), 0);
	forged_end(&f);
}

static void reattach_with_decoy_changes_no_count(void **state)
{
	struct shmx_req req;
	struct forged f;
	int memfd;

	(void)state;
	forged_start(&f);
	/* a thousand attachments claimed, another file as "the descriptor" */
	memfd = memfd_create("decoy", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, 4096), 0);
	shmx_req_init(&req, SHMX_MSG_REATTACH);
	req.id = f.id;
	req.fd = memfd;
	req.count = 1000;
	assert_int_equal(tc_raw_call(f.sock, &req, memfd), 0);
	close(memfd);
	forged_end(&f);
}

static void reattach_as_fork_child_changes_no_count(void **state)
{
	struct shmx_req req;
	struct forged f;

	(void)state;
	forged_start(&f);
	/* a "fork" of a process that holds nothing, no descriptor at all */
	shmx_req_init(&req, SHMX_MSG_REATTACH);
	req.id = f.id;
	req.fd = 5;
	req.count = 1000;
	req.flags = SHMX_REATTACH_FORK;
	assert_int_equal(tc_raw_call(f.sock, &req, -1), 0);
	forged_end(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tc_test(garbage),
		tc_test(truncated_requests),
		tc_test(oversized_datagrams),
		tc_test(wrong_magic_and_version),
		tc_test(bad_fields),
		tc_test(many_descriptors),
		tc_test(hang_up_mid_request),
		tc_test(request_flood),
		tc_test(connection_flood),
		tc_test(forged_detach_changes_no_count),
		tc_test(attach_without_descriptor_changes_no_count),
		tc_test(reattach_with_decoy_changes_no_count),
		tc_test(reattach_as_fork_child_changes_no_count),
	};

	return tc_run_tests("malformed", tests);
}
