/* SPDX-License-Identifier: MIT */
/*
 * shmxd: options, the namespace directory, the keeper lock, the listening
 * socket, becoming a daemon, and the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "keeper.h"
#include "util/log.h"
#include "util/sys.h"
#include "vault.h"

#define LOCK_WAIT_MS 500                /* for a keeper that is on its way out */
#define MAX_BYTES ((uint64_t)INT64_MAX / 2)

static struct keeper keeper = {
	.dirfd = -1, .lockfd = -1, .lsock = -1, .epfd = -1, .sigfd = -1,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shmxd [OPTION]...\n"
		"The keeper of a libshmx namespace: holds its segments, answers its clients.\n"
		"\n"
		"  --namespace DIR       the namespace directory (default: $SHMX_NAMESPACE,\n"
		"                        else $XDG_RUNTIME_DIR/shmx, else /dev/shm/shmx-UID)\n"
		"  --shared              a namespace for all users (directory 0755, socket 0666)\n"
		"  --foreground          do not become a daemon\n"
		"  --idle-exit SECONDS   exit after this long without clients or segments\n"
		"                        (default 30; 0: never)\n"
		"  --max-segments N      segments at most (1..65536, default 4096)\n"
		"  --max-segsz BYTES     bytes of one segment at most (default: physical memory)\n"
		"  --max-total BYTES     bytes of all segments at most (default: physical memory)\n"
		"  --help                show this and exit\n"
		"  --version             show the version and exit\n"
		"\n"
		"BYTES may end in K, M, G or T (powers of 1024).  Logs go to stderr, as\n"
		"SHMX_LOG (debug, info, warn, error) says.\n");
}

__attribute__((format(printf, 2, 3), noreturn))
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("shmxd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static int parse_u64(const char *s, bool suffix, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (suffix && *end) {
		const char *units = "KMGT";
		char ch = (char)(*end & ~0x20);
		const char *u = ch ? strchr(units, ch) : NULL;

		if (!u)
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
	}
	if (*end || v > (max >> shift) || (v << shift) < min)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static void parse_args(struct keeper *k, int argc, char **argv, const char **dir)
{
	enum {
		O_NS = 256, O_SHARED, O_FG, O_IDLE, O_MAXSEG, O_SEGSZ, O_TOTAL, O_HELP, O_VERSION,
		O_VAULT_AFTER,
	};
	static const struct option opts[] = {
		{ "namespace", required_argument, NULL, O_NS },
		{ "shared", no_argument, NULL, O_SHARED },
		{ "foreground", no_argument, NULL, O_FG },
		{ "idle-exit", required_argument, NULL, O_IDLE },
		{ "max-segments", required_argument, NULL, O_MAXSEG },
		{ "max-segsz", required_argument, NULL, O_SEGSZ },
		{ "max-total", required_argument, NULL, O_TOTAL },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		/* not in --help: for tests, vaults after this many memfds (store.c) */
		{ "vault-after", required_argument, NULL, O_VAULT_AFTER },
		{ 0 },
	};
	struct sysinfo si;
	uint64_t v, phys;
	int c;

	phys = sysinfo(&si) == 0 ? (uint64_t)si.totalram * si.mem_unit : UINT64_C(1) << 30;
	if (phys > MAX_BYTES)
		phys = MAX_BYTES;
	k->idle_exit = 30;
	k->max_segments = 4096;
	k->max_segsz = phys;
	k->max_total = phys;
	k->vault_after = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_NS:
			if (!*optarg)
				die(2, "--namespace: an empty path");
			*dir = optarg;
			break;
		case O_SHARED:
			k->shared = true;
			break;
		case O_FG:
			k->foreground = true;
			break;
		case O_IDLE:
			if (parse_u64(optarg, false, 0, INT_MAX / 1000, &v) < 0)
				die(2, "--idle-exit: '%s' is not a number of seconds (0..%d)",
				    optarg, INT_MAX / 1000);
			k->idle_exit = (unsigned)v;
			break;
		case O_MAXSEG:
			if (parse_u64(optarg, false, 1, SHMX_MAX_SEGMENTS_LIMIT, &v) < 0)
				die(2, "--max-segments: '%s' is not in 1..%u", optarg,
				    SHMX_MAX_SEGMENTS_LIMIT);
			k->max_segments = (uint32_t)v;
			k->limits_given = true;
			break;
		case O_SEGSZ:
		case O_TOTAL:
			if (parse_u64(optarg, true, 1, MAX_BYTES, &v) < 0)
				die(2, "%s: '%s' is not a size in bytes (1..%llu, K/M/G/T allowed)",
				    c == O_SEGSZ ? "--max-segsz" : "--max-total", optarg,
				    (unsigned long long)MAX_BYTES);
			*(c == O_SEGSZ ? &k->max_segsz : &k->max_total) = v;
			k->limits_given = true;
			break;
		case O_VAULT_AFTER:
			if (parse_u64(optarg, false, 0, SHMX_MAX_SEGMENTS_LIMIT, &v) < 0)
				die(2, "--vault-after: '%s' is not in 0..%u", optarg,
				    SHMX_MAX_SEGMENTS_LIMIT);
			k->vault_after = (int64_t)v;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("shmxd %s\n", SHMX_VERSION);
			exit(0);
		default:
			if (optopt)
				fprintf(stderr, "shmxd: option '%s' needs a value or takes none\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "shmxd: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		die(2, "unexpected argument '%s' (see --help)", argv[optind]);
}

/* The default namespace, as the library finds it. */
static const char *default_dir(char *buf, size_t len)
{
	const char *v = getenv("SHMX_NAMESPACE");

	if (v && *v)
		return v;
	v = getenv("XDG_RUNTIME_DIR");
	if (v && *v)
		snprintf(buf, len, "%s/shmx", v);
	else
		snprintf(buf, len, "/dev/shm/shmx-%u", (unsigned)geteuid());
	return buf;
}

/* Creates or checks the directory: ours, a directory, not a symlink. */
static void open_dir(struct keeper *k, const char *path)
{
	mode_t mode = k->shared ? 0755 : 0700;
	struct stat lst, st;
	bool created = false;

	if (mkdir(path, mode) == 0)
		created = true;
	else if (errno != EEXIST)
		die(1, "cannot create %s: %s", path, strerror(errno));
	if (lstat(path, &lst) < 0)
		die(1, "%s: %s", path, strerror(errno));
	if (S_ISLNK(lst.st_mode))
		die(1, "%s is a symbolic link: refused", path);
	if (!S_ISDIR(lst.st_mode))
		die(1, "%s is not a directory", path);
	k->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (k->dirfd < 0 || fstat(k->dirfd, &st) < 0)
		die(1, "%s: %s", path, strerror(errno));
	if (st.st_dev != lst.st_dev || st.st_ino != lst.st_ino)
		die(1, "%s changed while it was checked: refused", path);
	if (st.st_uid != geteuid())
		die(1, "%s belongs to uid %u, not to us (uid %u): refused", path,
		    (unsigned)st.st_uid, (unsigned)geteuid());
	if (created && fchmod(k->dirfd, mode) < 0)
		die(1, "%s: %s", path, strerror(errno));
	if (!created && (st.st_mode & 022))
		die(1, "%s is writable by others (mode %04o): refused", path,
		    (unsigned)(st.st_mode & 07777));
	k->dir = realpath(path, NULL);
	if (!k->dir)
		die(1, "%s: %s", path, strerror(errno));
}

/* One keeper per namespace, for its whole life. */
static void take_lock(struct keeper *k)
{
	int64_t deadline = shmx_mono_ms() + LOCK_WAIT_MS;
	struct stat st;

	k->lockfd = openat(k->dirfd, "keeper.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (k->lockfd < 0)
		die(1, "%s/keeper.lock: %s", k->dir, strerror(errno));
	while (flock(k->lockfd, LOCK_EX | LOCK_NB) < 0) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (errno != EWOULDBLOCK && errno != EINTR)
			die(1, "%s/keeper.lock: %s", k->dir, strerror(errno));
		/* a keeper that has already taken its socket away is leaving */
		if (fstatat(k->dirfd, "keeper.sock", &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    shmx_mono_ms() > deadline)
			die(1, "another keeper serves %s", k->dir);
		nanosleep(&ts, NULL);
	}
}

static void open_socket(struct keeper *k)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t mode = k->shared ? 0666 : 0600, old;
	struct stat st;
	int one = 1, r;

	snprintf(k->sock_path, sizeof(k->sock_path), "%s/keeper.sock", k->dir);
	if (strlen(k->sock_path) < sizeof(sa.sun_path))
		memcpy(sa.sun_path, k->sock_path, strlen(k->sock_path) + 1);
	else
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/keeper.sock", k->dirfd);
	/* we hold the lock: a socket left there is a dead keeper's */
	if (unlinkat(k->dirfd, "keeper.sock", 0) < 0 && errno != ENOENT)
		die(1, "%s: %s", k->sock_path, strerror(errno));
	k->lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->lsock < 0)
		die(1, "socket: %s", strerror(errno));
	/* accepted sockets inherit it: messages sent before accept carry a pid too */
	setsockopt(k->lsock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	old = umask(0777 & ~mode);
	r = bind(k->lsock, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		die(1, "cannot bind %s: %s", k->sock_path, strerror(errno));
	if (fchmodat(k->dirfd, "keeper.sock", mode, 0) < 0 ||
	    fstatat(k->dirfd, "keeper.sock", &st, AT_SYMLINK_NOFOLLOW) < 0)
		die(1, "%s: %s", k->sock_path, strerror(errno));
	k->sock_dev = st.st_dev;
	k->sock_ino = st.st_ino;
	k->sock_ours = true;
	if (listen(k->lsock, SOMAXCONN) < 0)
		die(1, "listen: %s", strerror(errno));
}

static uint64_t huge_page_size(void)
{
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Hugepagesize: %llu kB", &kb) == 1)
				break;
		fclose(f);
	}
	return kb ? kb * 1024 : UINT64_C(2) << 20;
}

/*
 * One descriptor per segment and per client.  A privileged keeper raises
 * the hard limit too (up to fs.nr_open) so that the largest table fits;
 * otherwise the soft limit goes up to the hard one, and vaults hold the
 * memfds beyond it (store.c).
 */
static void raise_nofile(void)
{
	rlim_t want = (rlim_t)SHMX_MAX_SEGMENTS_LIMIT + 4096;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < want) {
		struct rlimit more = { want, want };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Descriptors the caller left open are none of a daemon's business (a pipe
 * kept open would make a caller waiting for its end wait for ours). */
static void close_inherited(void)
{
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

/*
 * The parent exits only once the child serves (0), or has failed (1), so
 * whoever ran `shmxd` can connect as soon as it returns.  Returns in the
 * child, with the descriptor to report readiness on.
 */
static int daemon_fork(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		die(1, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid > 0) {
		ssize_t n;

		close(pfd[1]);
		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		fprintf(stderr, "shmxd: the keeper failed to start\n");
		_exit(1);
	}
	close(pfd[0]);
	if (setsid() < 0 || chdir("/") < 0)
		die(1, "cannot become a daemon: %s", strerror(errno));
	return pfd[1];
}

static void daemon_ready(int fd)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	char c = 'R';

	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		/* stderr stays where logs were asked to go */
		if (shmx_log_threshold() == SHMX_LOG_NONE)
			dup2(devnull, STDERR_FILENO);
		if (devnull > STDERR_FILENO)
			close(devnull);
	}
	if (write(fd, &c, 1) != 1)
		exit(1);
	close(fd);
}

/* Whether dir/name is still the file we made. */
static bool still_ours(struct keeper *k, const char *name, uint64_t dev, uint64_t ino)
{
	struct stat st;

	return fstatat(k->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

static void cleanup(struct keeper *k)
{
	if (k->sock_ours && still_ours(k, "keeper.sock", k->sock_dev, k->sock_ino))
		unlinkat(k->dirfd, "keeper.sock", 0);
	/* idle: nothing left to recover.  Otherwise the registry stays, so a
	 * later keeper can recover what clients still hold. */
	if (k->idle_quit && still_ours(k, "registry", k->reg.dev, k->reg.ino))
		unlinkat(k->dirfd, "registry", 0);
	keeper_free_peers(k);
	seg_close_all(k);
	vault_close_all(k);
	reg_free(k);
	if (k->lsock >= 0)
		close(k->lsock);
	if (k->sigfd >= 0)
		close(k->sigfd);
	if (k->epfd >= 0)
		close(k->epfd);
	if (k->dirfd >= 0)
		close(k->dirfd);
	/* last: the lock lets the next keeper in */
	if (k->lockfd >= 0)
		close(k->lockfd);
	free(k->dir);
}

int main(int argc, char **argv)
{
	struct keeper *k = &keeper;
	const char *dir = NULL;
	char buf[PATH_MAX];
	int ready_fd = -1;
	sigset_t set;
	int r;

	/* started by a keeper to hold memfds for it (vault.c) */
	if (argc == 3 && strcmp(argv[1], VAULT_ARG) == 0)
		return vault_main(argv[2]);
	shmx_log_set_prefix("shmxd");
	parse_args(k, argc, argv, &dir);
	if (!k->foreground)
		close_inherited();
	if (!dir)
		dir = default_dir(buf, sizeof(buf));
	k->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	k->huge_page_size = huge_page_size();
	raise_nofile();
	store_init(k);

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	open_dir(k, dir);
	take_lock(k);
	/* before recovery: a vault it starts must be the serving process's
	 * child, as it dies with its parent */
	if (!k->foreground)
		ready_fd = daemon_fork();
	r = keeper_loop_init(k);
	if (r < 0)
		die(1, "cannot set up the event loop: %s", strerror(-r));
	r = keeper_recover(k);
	if (r < 0)
		die(1, "cannot create the registry in %s: %s", k->dir, strerror(-r));
	r = reg_publish(k);
	if (r < 0)
		die(1, "cannot publish the registry in %s: %s", k->dir, strerror(-r));
	open_socket(k);
	reg_set_keeper(k);
	r = keeper_loop_start(k);
	if (r < 0)
		die(1, "cannot set up the event loop: %s", strerror(-r));
	if (ready_fd >= 0)
		daemon_ready(ready_fd);
	log_info("serving %s (pid %d, generation %llu)", k->dir, (int)getpid(),
		 (unsigned long long)k->generation);
	r = keeper_loop(k);
	cleanup(k);
	return r < 0 ? 1 : 0;
}
