/*
 * chaos: the soak test's C worker (see chaos_test.go for the design).
 *
 *   chaos layout                 print the shared layout, for the test to
 *                                compare with its own
 *   chaos PATH SLOT SEED PEXEC PTDIE
 *                                work on the segment file PATH as worker
 *                                SLOT; PEXEC and PTDIE are per-million
 *                                chances, per critical section, of exec'ing
 *                                /bin/true or ending the locking thread
 *                                while holding the lock
 *
 * Every critical section: lock (on EOWNERDEAD: log the dead holder's epoch,
 * roll its transfer back from the journal, consistent), check the
 * accounts, take the next epoch, move money with an undo journal, unlock.
 * Bookkeeping that the supervisor reads is written with atomic stores, in
 * the order chaos_test.go relies on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "robustlock_segment.h" /* the segment header, as segment/ ships it */

/* The shared layout: int64 words of the segment's data. Keep in step with
 * chaos_test.go (TestChaosLayout compares them). */
#define W_MAGIC 0
#define W_EPOCH 1   /* last epoch handed out */
#define W_OWNER 2   /* epoch of the holder inside the critical section, 0 if none */
#define W_OPS 3     /* completed critical sections */
#define W_LOGN 4    /* recovery log entries committed */
#define W_ANON 5    /* recoveries that could not name an epoch */
#define W_JACTIVE 6 /* journal: a transfer is in progress */
#define W_JFROM 7
#define W_JTO 8
#define W_JOLDFROM 9
#define W_JOLDTO 10
#define W_SCRATCH 11
#define W_ACCOUNTS 16
#define NACCOUNTS 16
#define W_SLOTS 64
#define NSLOTS 64
#define SLOTW 8
#define S_PID 0
#define S_PHASE 1
#define S_EPOCH 2
#define S_LOCKSTART 3
#define S_MAXWAIT 4
#define S_OPS 5
#define S_RECOV 6
#define S_DEATHAT 7
#define W_LOG (W_SLOTS + NSLOTS * SLOTW)
#define NLOG 4096
#define NWORDS (W_LOG + 2 * NLOG)
#define MAGIC 0x534f414b43484153LL
#define TOTAL (NACCOUNTS * 1000)

enum { IDLE, LOCKING, INSIDE, UNLOCKING, EXECING, THREADDYING };


static pthread_mutex_t *mu;
static int64_t *w;    /* shared words */
static int64_t *slot; /* this worker's slot */
static long pexec, ptdie;
static unsigned seed;

static int64_t ld(int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void st(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

static int64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fatal(const char *msg, long long a, long long b)
{
	printf("violation %s %lld %lld\n", msg, a, b);
	fflush(stdout);
	exit(3);
}

static unsigned rnd(unsigned n) { return (unsigned)rand_r(&seed) % n; }

static void check_sum(const char *when)
{
	int64_t sum = 0;
	for (int i = 0; i < NACCOUNTS; i++) sum += w[W_ACCOUNTS + i];
	if (sum != TOTAL) fatal(when, sum, TOTAL);
}

/* recover runs with the lock held after EOWNERDEAD. */
static void recover(void)
{
	int64_t d = ld(&w[W_OWNER]);
	int64_t n = ld(&w[W_LOGN]);
	if (d != 0 && !(n > 0 && ld(&w[W_LOG + 2 * ((n - 1) % NLOG)]) == d)) {
		st(&w[W_LOG + 2 * (n % NLOG)], d);
		st(&w[W_LOG + 2 * (n % NLOG) + 1], now());
		st(&w[W_LOGN], n + 1); /* the commit */
	} else {
		st(&w[W_ANON], ld(&w[W_ANON]) + 1);
	}
	if (w[W_JACTIVE]) { /* roll the dead holder's transfer back */
		w[W_ACCOUNTS + w[W_JFROM]] = w[W_JOLDFROM];
		w[W_ACCOUNTS + w[W_JTO]] = w[W_JOLDTO];
		w[W_JACTIVE] = 0;
	}
	check_sum("sum-after-repair");
	int e = pthread_mutex_consistent(mu);
	if (e) fatal("consistent", e, 0);
	st(&slot[S_RECOV], slot[S_RECOV] + 1);
}

enum { NORMAL, EXEC, TDIE };

/* op is one critical section. */
static void op(int how)
{
	st(&slot[S_EPOCH], 0);
	int64_t t0 = now();
	st(&slot[S_LOCKSTART], t0);
	st(&slot[S_PHASE], LOCKING);
	int e = pthread_mutex_lock(mu);
	int64_t waited = now() - t0;
	if (waited > slot[S_MAXWAIT]) st(&slot[S_MAXWAIT], waited);
	if (e == EOWNERDEAD)
		recover();
	else if (e != 0)
		fatal("lock", e, 0);
	else if (ld(&w[W_OWNER]) != 0)
		fatal("entered-while-owner-inside", ld(&w[W_OWNER]), 0);
	int64_t ep = ld(&w[W_EPOCH]) + 1;
	st(&w[W_EPOCH], ep);
	st(&slot[S_EPOCH], ep);
	st(&w[W_OWNER], ep);
	st(&slot[S_PHASE], INSIDE);
	check_sum("sum-on-entry");

	int from = rnd(NACCOUNTS), to = rnd(NACCOUNTS);
	int64_t amt = rnd(50);
	w[W_JFROM] = from, w[W_JTO] = to;
	w[W_JOLDFROM] = w[W_ACCOUNTS + from], w[W_JOLDTO] = w[W_ACCOUNTS + to];
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	w[W_JACTIVE] = 1;
	w[W_ACCOUNTS + from] -= amt;
	for (int i = 0; i < 100 + (int)rnd(400); i++) /* a window for kills mid-transfer */
		__atomic_store_n(&w[W_SCRATCH], w[W_SCRATCH] + w[W_ACCOUNTS + to], __ATOMIC_RELAXED);
	if (rnd(50) == 0) usleep(500); /* sometimes hold long enough to be stopped */
	w[W_ACCOUNTS + to] += amt;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	w[W_JACTIVE] = 0;
	check_sum("sum-on-exit");

	if (how == EXEC) {
		st(&slot[S_DEATHAT], now());
		st(&slot[S_PHASE], EXECING);
		fflush(stdout);
		execl("/bin/true", "true", (char *)NULL);
		fatal("exec", errno, 0);
	}
	if (how == TDIE) {
		st(&slot[S_DEATHAT], now());
		st(&slot[S_PHASE], THREADDYING);
		return; /* the thread ends holding the lock */
	}
	st(&w[W_OPS], ld(&w[W_OPS]) + 1);
	st(&slot[S_OPS], slot[S_OPS] + 1);
	st(&slot[S_PHASE], UNLOCKING);
	st(&w[W_OWNER], 0);
	if ((e = pthread_mutex_unlock(mu))) fatal("unlock", e, 0);
	st(&slot[S_PHASE], IDLE);
}

static void *thread_op(void *arg)
{
	op(TDIE);
	return arg;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "layout")) {
		printf("magic=%lld epoch=%d owner=%d ops=%d logn=%d anon=%d jactive=%d accounts=%d naccounts=%d "
		       "slots=%d nslots=%d slotw=%d log=%d nlog=%d nwords=%d total=%d\n",
		       (long long)MAGIC, W_EPOCH, W_OWNER, W_OPS, W_LOGN, W_ANON, W_JACTIVE, W_ACCOUNTS, NACCOUNTS,
		       W_SLOTS, NSLOTS, SLOTW, W_LOG, NLOG, NWORDS, TOTAL);
		return 0;
	}
	if (argc != 6) {
		fprintf(stderr, "usage: chaos PATH SLOT SEED PEXEC PTDIE\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		perror("open");
		return 2;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0) return 2;
	char *base = mmap(NULL, sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) return 2;
	struct robustlock_segment *h = (struct robustlock_segment *)base;
	const char *bad = robustlock_segment_check(h, sb.st_size);
	if (bad || h->data_size < NWORDS * 8) {
		fprintf(stderr, "chaos: not a segment of the right shape (%s)\n", bad ? bad : "data_size");
		return 2;
	}
	mu = robustlock_segment_mutex(h, 0);
	w = robustlock_segment_data(h);
	if (w[W_MAGIC] != MAGIC) {
		fprintf(stderr, "chaos: layout magic missing\n");
		return 2;
	}
	int s = atoi(argv[2]);
	if (s < 1 || s >= NSLOTS) return 2;
	slot = &w[W_SLOTS + s * SLOTW];
	seed = (unsigned)strtoul(argv[3], NULL, 0);
	pexec = atol(argv[4]);
	ptdie = atol(argv[5]);
	st(&slot[S_PID], getpid());
	printf("ready\n");
	for (;;) {
		long r = (long)rnd(1000000);
		if (r < pexec) {
			op(EXEC);
		} else if (r < pexec + ptdie) {
			pthread_t th;
			if (pthread_create(&th, NULL, thread_op, NULL)) fatal("pthread_create", errno, 0);
			pthread_join(th, NULL);
			printf("tdied %lld %lld\n", (long long)ld(&slot[S_EPOCH]), (long long)ld(&slot[S_DEATHAT]));
			st(&slot[S_PHASE], IDLE);
		} else {
			op(NORMAL);
		}
		if (rnd(4) == 0) usleep(rnd(200)); /* let others in */
	}
}
