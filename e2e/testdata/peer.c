/*
 * peer: a glibc program that shares one robust mutex with Go processes.
 *
 * Written for the e2e tests from the public contract only: POSIX
 * pthread_mutex_* with the robust and process-shared attributes, and the
 * segment header as segment/robustlock_segment.h ships it. It never looks
 * at the mutex's bytes except to print them (dump) for the tests to
 * compare.
 *
 *   peer raw PATH OFF    map the file PATH; the mutex is at OFF, a 64-bit
 *                        counter at OFF+64
 *   peer seg PATH [I]    open the segment file PATH, check its header, use
 *                        mutex I (default 0) and a counter at the data
 *   peer shm NAME [I]    the same, found with shm_open(NAME)
 *
 * It then prints "ready TID" and runs commands read from stdin, one per
 * line, answering each with one line: "ok", an errno name (EOWNERDEAD,
 * ENOTRECOVERABLE, EBUSY, EDEADLK, EPERM, EINVAL, ETIMEDOUT, ...) or a
 * value. The Go peer in peer_test.go speaks the same protocol.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The segment header, version 1: the one the segment package ships. */
#include "robustlock_segment.h"

static char *base;
static size_t size;
static struct robustlock_segment *hdr; /* NULL in raw mode */
static pthread_mutex_t *mu;
static volatile int64_t *counter;
static int seg_index;

static void die(const char *what)
{
	printf("fatal %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(2);
}

static const char *ename(int e)
{
	switch (e) {
	case 0: return "ok";
	case EOWNERDEAD: return "EOWNERDEAD";
	case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
	case EBUSY: return "EBUSY";
	case EDEADLK: return "EDEADLK";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EAGAIN: return "EAGAIN";
	}
	static char buf[32];
	snprintf(buf, sizeof buf, "errno%d", e);
	return buf;
}

static void map_fd(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0) die("fstat");
	size = st.st_size;
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) die("mmap");
	close(fd);
}

static void open_target(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: peer raw PATH OFF | seg PATH [I] | shm NAME [I]\n");
		exit(2);
	}
	int fd;
	if (!strcmp(argv[1], "shm"))
		fd = shm_open(argv[2], O_RDWR, 0);
	else
		fd = open(argv[2], O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) die("open");
	map_fd(fd);
	if (!strcmp(argv[1], "raw")) {
		size_t off = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
		if (off + 72 > size) die("offset");
		mu = (pthread_mutex_t *)(base + off);
		counter = (int64_t *)(base + off + 64);
		return;
	}
	hdr = (struct robustlock_segment *)base;
	const char *bad = robustlock_segment_check(hdr, size);
	if (bad) {
		printf("fatal header: %s\n", bad);
		fflush(stdout);
		exit(2);
	}
	seg_index = argc > 3 ? atoi(argv[3]) : 0;
	if (seg_index < 0 || (uint32_t)seg_index >= hdr->mutex_count) die("mutex index");
	mu = robustlock_segment_mutex(hdr, seg_index);
	if (hdr->data_size < 8) die("data too small for the counter");
	counter = robustlock_segment_data(hdr);
}

static int init_mutex(const char *kind)
{
	pthread_mutexattr_t a;
	int type = -1, robust = 1, pi = 0;
	if (!strcmp(kind, "normal")) type = PTHREAD_MUTEX_NORMAL; /* glibc adds NO_ELISION to __kind */
	else if (!strcmp(kind, "errorcheck")) type = PTHREAD_MUTEX_ERRORCHECK;
	else if (!strcmp(kind, "recursive")) type = PTHREAD_MUTEX_RECURSIVE;
	else if (!strcmp(kind, "plain")) robust = 0;
	else if (!strcmp(kind, "pi")) pi = 1;
	else if (strcmp(kind, "robust")) return EINVAL;
	int e;
	if ((e = pthread_mutexattr_init(&a))) return e;
	if ((e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED))) return e;
	if (type >= 0 && (e = pthread_mutexattr_settype(&a, type))) return e;
	if (robust && (e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST))) return e;
	if (pi && (e = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT))) return e;
	e = pthread_mutex_init(mu, &a);
	pthread_mutexattr_destroy(&a);
	return e;
}

/* lock_any takes the mutex, repairing (here: nothing to repair, the
 * counter is written in one store) and marking it consistent after an
 * owner death. Returns 0 or the error. */
static int lock_any(void)
{
	int e = pthread_mutex_lock(mu);
	if (e == EOWNERDEAD)
		e = pthread_mutex_consistent(mu);
	return e;
}

/* incr does n read-pause-write increments, each under the lock: any lost
 * update shows in the final count. */
static int incr(long n)
{
	for (long i = 0; i < n; i++) {
		int e = lock_any();
		if (e) return e;
		int64_t v = *counter;
		if (i % 64 == 0) sched_yield(); /* widen the window a broken lock would show */
		*counter = v + 1;
		if ((e = pthread_mutex_unlock(mu))) return e;
	}
	return 0;
}

static void *thread_die(void *arg)
{
	/* Lock and return: the thread exits holding the mutex. */
	*(int *)arg = pthread_mutex_lock(mu);
	return NULL;
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void *thread_exec(void *arg)
{
	/* Lock on a thread other than the main one, then exec from it. */
	int e = pthread_mutex_lock(mu);
	printf("%s %d\n", ename(e), (int)gettid_());
	fflush(stdout);
	execl("/bin/true", "true", (char *)NULL);
	die("exec");
	return arg;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	open_target(argc, argv);
	printf("ready %d\n", (int)gettid_());
	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		char cmd[64] = "", arg[128] = "";
		if (sscanf(line, "%63s %127s", cmd, arg) < 1) continue;
		if (!strcmp(cmd, "lock")) {
			puts(ename(pthread_mutex_lock(mu)));
		} else if (!strcmp(cmd, "trylock")) {
			puts(ename(pthread_mutex_trylock(mu)));
		} else if (!strcmp(cmd, "timedlock")) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			long ms = atol(arg);
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
			puts(ename(pthread_mutex_timedlock(mu, &ts)));
		} else if (!strcmp(cmd, "unlock")) {
			puts(ename(pthread_mutex_unlock(mu)));
		} else if (!strcmp(cmd, "consistent")) {
			puts(ename(pthread_mutex_consistent(mu)));
		} else if (!strcmp(cmd, "init")) {
			puts(ename(init_mutex(arg[0] ? arg : "robust")));
		} else if (!strcmp(cmd, "incr")) {
			puts(ename(incr(atol(arg))));
		} else if (!strcmp(cmd, "get")) {
			printf("%" PRId64 "\n", *counter);
		} else if (!strcmp(cmd, "set")) {
			*counter = strtoll(arg, NULL, 0);
			puts("ok");
		} else if (!strcmp(cmd, "tid")) {
			printf("%d\n", (int)gettid_());
		} else if (!strcmp(cmd, "die")) {
			fflush(stdout);
			raise(SIGKILL);
		} else if (!strcmp(cmd, "exec")) {
			/* exec runs the kernel's robust-list walk, as exit does. */
			fflush(stdout);
			execl("/bin/true", "true", (char *)NULL);
			die("exec");
		} else if (!strcmp(cmd, "threadexec")) {
			pthread_t th;
			if (pthread_create(&th, NULL, thread_exec, NULL)) die("pthread_create");
			pthread_join(th, NULL);
			die("threadexec returned");
		} else if (!strcmp(cmd, "threaddie")) {
			pthread_t th;
			int r = -1;
			if (pthread_create(&th, NULL, thread_die, &r)) die("pthread_create");
			pthread_join(th, NULL);
			puts(ename(r));
		} else if (!strcmp(cmd, "dump")) {
			/* the mutex as 32-bit words, for layout comparisons */
			const uint32_t *w = (const uint32_t *)mu;
			for (size_t i = 0; i < sizeof(pthread_mutex_t) / 4; i++)
				printf("%s%08x", i ? " " : "", w[i]);
			printf("\n");
		} else if (!strcmp(cmd, "header")) {
			if (!hdr) {
				puts("EINVAL");
				continue;
			}
			printf("version=%u word_size=%u mutex_size=%u header_size=%u mutex_count=%u mutex_stride=%u "
			       "mutex_offset=%" PRIu64 " data_offset=%" PRIu64 " data_size=%" PRIu64
			       " total_size=%" PRIu64 " creator_pid=%d created_ns=%" PRId64 " pidns_ino=%" PRIu64
			       " sizeof_mutex=%zu mutex_at=%td\n",
			       hdr->version, hdr->word_size, hdr->mutex_size, hdr->header_size, hdr->mutex_count,
			       hdr->mutex_stride, hdr->mutex_offset, hdr->data_offset, hdr->data_size,
			       hdr->total_size, hdr->creator_pid, hdr->created_ns, hdr->pidns_ino,
			       sizeof(pthread_mutex_t), (char *)mu - base);
		} else if (!strcmp(cmd, "exit")) {
			return 0;
		} else {
			printf("unknown %s\n", cmd);
		}
	}
	return 0;
}
