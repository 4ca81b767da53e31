package bench

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// locker is one goroutine's handle on a contender's lock. lock returns an
// error satisfying errors.Is(err, syscall.EOWNERDEAD) when it acquired the
// lock from a dead holder (robust contenders only).
type locker interface {
	lock() error
	unlock() error
	// consistent repairs the lock after EOWNERDEAD (robust contenders).
	consistent() error
	close() error
}

// env is what a process needs to reach a run's locks.
type env struct {
	sh       *shared
	lockFile string
	semID    int
	inproc   *sync.Mutex // sync.Mutex contender: one per process
}

func newLocker(name string, e *env) (locker, error) {
	switch name {
	case cRobust:
		return robustLocker{e.sh.robust()}, nil
	case cGlibcGo, cGlibcC:
		if !HaveGlibc {
			return nil, errNoCgo
		}
		return cgoLocker{e.sh.glibc()}, nil
	case cFlock, cOFD:
		fd, err := unix.Open(e.lockFile, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", e.lockFile, err)
		}
		if name == cFlock {
			return flockLocker{fd}, nil
		}
		return ofdLocker{fd}, nil
	case cSysV:
		return semLocker{e.semID}, nil
	case cSync:
		return syncLocker{e.inproc}, nil
	}
	return nil, fmt.Errorf("unknown contender %q", name)
}

type robustLocker struct{ m *robustlock.Mutex }

func (l robustLocker) lock() error       { return l.m.Lock() }
func (l robustLocker) unlock() error     { return l.m.Unlock() }
func (l robustLocker) consistent() error { return l.m.MarkConsistent() }
func (l robustLocker) close() error      { return nil }

// cgoLocker is what a Go program using glibc's mutex through cgo must do:
// pin the goroutine to its thread while it holds the lock (the owner is
// the thread), one cgo call to lock and one to unlock.
type cgoLocker struct{ p unsafe.Pointer }

func (l cgoLocker) lock() error {
	runtime.LockOSThread()
	err := GlibcLock(l.p)
	if err != nil && !errors.Is(err, syscall.EOWNERDEAD) {
		runtime.UnlockOSThread()
	}
	return err
}

func (l cgoLocker) unlock() error {
	err := GlibcUnlock(l.p)
	runtime.UnlockOSThread()
	return err
}

func (l cgoLocker) consistent() error { return GlibcConsistent(l.p) }
func (l cgoLocker) close() error      { return nil }

type flockLocker struct{ fd int }

func (l flockLocker) lock() error {
	for {
		if err := unix.Flock(l.fd, unix.LOCK_EX); err != unix.EINTR {
			return err
		}
	}
}
func (l flockLocker) unlock() error     { return unix.Flock(l.fd, unix.LOCK_UN) }
func (l flockLocker) consistent() error { return nil }
func (l flockLocker) close() error      { return unix.Close(l.fd) }

// ofdLocker uses open file description locks: owned by the open file, not
// the process, so they work between goroutines and are dropped when the
// last descriptor closes (at death too).
type ofdLocker struct{ fd int }

var (
	ofdWrite  = unix.Flock_t{Type: unix.F_WRLCK}
	ofdUnlock = unix.Flock_t{Type: unix.F_UNLCK}
)

func (l ofdLocker) lock() error {
	lk := ofdWrite
	for {
		if err := unix.FcntlFlock(uintptr(l.fd), unix.F_OFD_SETLKW, &lk); err != unix.EINTR {
			return err
		}
	}
}

func (l ofdLocker) unlock() error {
	lk := ofdUnlock
	return unix.FcntlFlock(uintptr(l.fd), unix.F_OFD_SETLK, &lk)
}
func (l ofdLocker) consistent() error { return nil }
func (l ofdLocker) close() error      { return unix.Close(l.fd) }

// semLocker is a SysV semaphore of value 1 taken and given back with
// SEM_UNDO, so the kernel gives it back when a holder dies.
type semLocker struct{ id int }

func (l semLocker) lock() error       { return semop(l.id, -1) }
func (l semLocker) unlock() error     { return semop(l.id, 1) }
func (l semLocker) consistent() error { return nil }
func (l semLocker) close() error      { return nil }

type syncLocker struct{ m *sync.Mutex }

func (l syncLocker) lock() error       { l.m.Lock(); return nil }
func (l syncLocker) unlock() error     { l.m.Unlock(); return nil }
func (l syncLocker) consistent() error { return nil }
func (l syncLocker) close() error      { return nil }

// createLockFile makes the file the flock and OFD contenders lock.
func createLockFile(path string) error {
	return os.WriteFile(path, nil, 0o600)
}
