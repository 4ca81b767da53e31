package bench

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/atomicx"
	"github.com/futexlab/robustlock/internal/futex"
)

// The shared file every process of a run maps: control words, the locks
// and the critical section's counter, each on its own cache line.
const (
	offReady    = 0   // uint32: workers that finished their setup
	offGo       = 4   // uint32: 1 once the parent opened the barrier
	offCounter  = 64  // uint64: bumped in every critical section
	offHandoff  = 128 // int64 x3: announce, acq, tun (hand-off protocol)
	offHeld     = 192 // uint32: recovery: the holder has the lock
	offWaiting  = 196 // uint32: recovery: the next locker is about to lock
	offKill     = 200 // int64: recovery: clock just before SIGKILL
	offRobust   = 256 // robustlock.Mutex
	offGlibc    = 320 // glibc pthread_mutex_t
	sharedBytes = 4096
)

// shared is a run's shared file, mapped.
type shared struct {
	mem []byte
}

func createShared(path string) (*shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(sharedBytes); err != nil {
		return nil, err
	}
	return mapShared(f)
}

func openShared(path string) (*shared, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mapShared(f)
}

func mapShared(f *os.File) (*shared, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, sharedBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	return &shared{mem: mem}, nil
}

func (s *shared) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.mem[off])) }
func (s *shared) i64(off int) *int64  { return (*int64)(unsafe.Pointer(&s.mem[off])) }

func (s *shared) counter() *uint64      { return (*uint64)(unsafe.Pointer(&s.mem[offCounter])) }
func (s *shared) glibc() unsafe.Pointer { return unsafe.Pointer(&s.mem[offGlibc]) }
func (s *shared) robust() *robustlock.Mutex {
	m, err := robustlock.At(s.mem, offRobust)
	if err != nil {
		panic(err) // the layout above is fixed and aligned
	}
	return m
}

// reset prepares the file for a new run: control words zeroed, both
// mutexes initialised afresh.
func (s *shared) reset() error {
	clear(s.mem[:offRobust])
	s.robust().Init()
	if HaveGlibc {
		return GlibcInit(s.glibc())
	}
	return nil
}

// arrive is the workers' side of the start barrier: count this process in,
// then sleep until the parent opens the barrier, so that every process
// starts its rounds at once and the lock is really contended.
func (s *shared) arrive(timeout time.Duration) error {
	atomic.AddUint32(s.u32(offReady), 1)
	deadline := futex.Now() + int64(timeout)
	g := s.u32(offGo)
	for atomic.LoadUint32(g) == 0 {
		if futex.Now() > deadline {
			return errors.New("start barrier: timed out")
		}
		futex.WaitUntil(g, 0, deadline)
	}
	return nil
}

// open is the parent's side: wait until n workers arrived, then release them.
func (s *shared) open(n int, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint32(s.u32(offReady)) < uint32(n) {
		if err := alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start barrier: %d of %d workers ready after %v",
				atomic.LoadUint32(s.u32(offReady)), n, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
	atomic.StoreUint32(s.u32(offGo), 1)
	_, err := futex.Wake(s.u32(offGo), futex.WakeAll)
	return err
}

// await spins (yielding now and then) until *w == v.
func await(w *int64, v int64) {
	for spins := 0; atomic.LoadInt64(w) != v; spins++ {
		if spins > 1000 {
			osYield()
		} else {
			atomicx.Pause(1)
		}
	}
}

func osYield() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

func (s *shared) close() error { return unix.Munmap(s.mem) }
