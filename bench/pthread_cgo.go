//go:build cgo && linux

package bench

/*
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <gnu/libc-version.h>

#if defined(__x86_64__) || defined(__i386__)
#define RL_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define RL_PAUSE() __asm__ __volatile__("yield")
#else
#define RL_PAUSE() do {} while (0)
#endif

static inline int64_t rl_now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int rl_init_robust(void *p) {
	pthread_mutexattr_t a;
	int e;
	if ((e = pthread_mutexattr_init(&a)) != 0) return e;
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	e = pthread_mutex_init((pthread_mutex_t *)p, &a);
	pthread_mutexattr_destroy(&a);
	return e;
}

// rl_loop runs n uncontended lock+unlock pairs in C and returns the
// elapsed nanoseconds: glibc's cost with no Go in the loop.
static int64_t rl_loop(void *p, int64_t n) {
	pthread_mutex_t *m = p;
	int64_t a = rl_now();
	for (int64_t i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
	return rl_now() - a;
}

// rl_contend is one process's share of a contended run, all in C: k rounds
// of lock, critical section, unlock. lat[i] is round i's wait for the lock
// (clock before pthread_mutex_lock to clock after it returns). The critical
// section bumps the shared counter (the parent checks it against the total,
// which proves mutual exclusion held) and, if cs > 0, spins on the clock
// until cs ns have passed since the lock returned. The Go contenders run the
// same loop, statement for statement (contendLoop).
static int rl_contend(void *p, int64_t k, int64_t cs, int64_t *lat,
		volatile uint64_t *counter, int64_t *start, int64_t *end) {
	pthread_mutex_t *m = p;
	int e;
	*start = rl_now();
	for (int64_t i = 0; i < k; i++) {
		int64_t t0 = rl_now();
		if ((e = pthread_mutex_lock(m)) != 0) return e;
		int64_t t1 = rl_now();
		lat[i] = t1 - t0;
		(*counter)++;
		if (cs > 0)
			while (rl_now() - t1 < cs)
				;
		if ((e = pthread_mutex_unlock(m)) != 0) return e;
	}
	*end = rl_now();
	return 0;
}

static void rl_await(volatile int64_t *w, int64_t v) {
	for (int spins = 0; __atomic_load_n(w, __ATOMIC_ACQUIRE) != v; spins++)
		if (spins > 1000) sched_yield();
		else RL_PAUSE();
}

// rl_handoff is the hand-off protocol (see handoffLoop, its Go twin) in C.
// sh points at three shared words: announce, acq, tun. It returns the number
// of latencies stored in lat, or -errno.
static int64_t rl_handoff(void *p, volatile int64_t *sh, int id, int64_t n,
		int64_t delay, int64_t *lat) {
	pthread_mutex_t *m = p;
	volatile int64_t *announce = &sh[0], *acq = &sh[1], *tun = &sh[2];
	int64_t nl = 0;
	int e, held = 0;
	if (id == 0) {
		if ((e = pthread_mutex_lock(m)) != 0) return -e;
		held = 1;
		__atomic_store_n(acq, 1, __ATOMIC_RELEASE);
	}
	for (int64_t r = 0; r < n; r++) {
		if (r % 2 == id) {
			rl_await(announce, r + 1);
			int64_t t = rl_now();
			while (rl_now() - t < delay)
				;
			__atomic_store_n(tun, rl_now(), __ATOMIC_RELEASE);
			if ((e = pthread_mutex_unlock(m)) != 0) return -e;
			held = 0;
		} else {
			rl_await(acq, r + 1);
			__atomic_store_n(announce, r + 1, __ATOMIC_RELEASE);
			if ((e = pthread_mutex_lock(m)) != 0) return -e;
			int64_t t = rl_now();
			lat[nl++] = t - __atomic_load_n(tun, __ATOMIC_ACQUIRE);
			held = 1;
			__atomic_store_n(acq, r + 2, __ATOMIC_RELEASE);
		}
	}
	if (held && (e = pthread_mutex_unlock(m)) != 0) return -e;
	return nl;
}

// rl_recover announces that it is about to lock, locks, and reads the clock
// the moment pthread_mutex_lock returns.
static int rl_recover(void *p, volatile uint32_t *waiting, int64_t *t1) {
	__atomic_store_n(waiting, 1, __ATOMIC_RELEASE);
	int e = pthread_mutex_lock((pthread_mutex_t *)p);
	*t1 = rl_now();
	return e;
}

static int rl_lock(void *p) { return pthread_mutex_lock((pthread_mutex_t *)p); }
static int rl_unlock(void *p) { return pthread_mutex_unlock((pthread_mutex_t *)p); }
static int rl_consistent(void *p) { return pthread_mutex_consistent((pthread_mutex_t *)p); }
static const char *rl_libc_version(void) { return gnu_get_libc_version(); }
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// HaveGlibc reports whether the glibc contenders are built in (cgo).
const HaveGlibc = true

// GlibcInit initialises the mutex at p with pthread_mutex_init, robust and
// process-shared.
func GlibcInit(p unsafe.Pointer) error { return errno(C.rl_init_robust(p)) }

// GlibcLoop runs n lock+unlock pairs of glibc's mutex at p in a C loop and
// returns the nanoseconds they took.
func GlibcLoop(p unsafe.Pointer, n int64) int64 { return int64(C.rl_loop(p, C.int64_t(n))) }

// GlibcLock is pthread_mutex_lock called from Go through cgo.
func GlibcLock(p unsafe.Pointer) error { return errno(C.rl_lock(p)) }

// GlibcUnlock is pthread_mutex_unlock called from Go through cgo.
func GlibcUnlock(p unsafe.Pointer) error { return errno(C.rl_unlock(p)) }

// GlibcConsistent is pthread_mutex_consistent called from Go through cgo.
func GlibcConsistent(p unsafe.Pointer) error { return errno(C.rl_consistent(p)) }

// glibcVersion is gnu_get_libc_version().
func glibcVersion() string { return C.GoString(C.rl_libc_version()) }

// glibcContend runs rl_contend: k rounds in C, latencies into lat.
func glibcContend(p unsafe.Pointer, k int, cs int64, lat []int64, counter *uint64) (start, end int64, err error) {
	var s, e C.int64_t
	r := C.rl_contend(p, C.int64_t(k), C.int64_t(cs), (*C.int64_t)(unsafe.Pointer(&lat[0])),
		(*C.uint64_t)(unsafe.Pointer(counter)), &s, &e)
	return int64(s), int64(e), errno(r)
}

// glibcHandoff runs rl_handoff; sh points at the announce, acq and tun words.
func glibcHandoff(p unsafe.Pointer, sh *int64, id int, n int, delay int64, lat []int64) ([]int64, error) {
	r := C.rl_handoff(p, (*C.int64_t)(unsafe.Pointer(sh)), C.int(id), C.int64_t(n), C.int64_t(delay),
		(*C.int64_t)(unsafe.Pointer(&lat[0])))
	if r < 0 {
		return nil, syscall.Errno(-r)
	}
	return lat[:r], nil
}

// glibcRecover runs rl_recover: it returns pthread_mutex_lock's result and
// the clock the moment it returned.
func glibcRecover(p unsafe.Pointer, waiting *uint32) (int64, error) {
	var t C.int64_t
	r := C.rl_recover(p, (*C.uint32_t)(unsafe.Pointer(waiting)), &t)
	return int64(t), errno(r)
}

func errno(e C.int) error {
	if e == 0 {
		return nil
	}
	return syscall.Errno(e)
}
