//go:build cgo && linux

package bench

/*
#include <pthread.h>
#include <stdint.h>
#include <time.h>

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
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int64_t i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
}

static int rl_lock(void *p) { return pthread_mutex_lock((pthread_mutex_t *)p); }
static int rl_unlock(void *p) { return pthread_mutex_unlock((pthread_mutex_t *)p); }
static int rl_consistent(void *p) { return pthread_mutex_consistent((pthread_mutex_t *)p); }
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

func errno(e C.int) error {
	if e == 0 {
		return nil
	}
	return syscall.Errno(e)
}
