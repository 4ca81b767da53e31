//go:build linux

package robustlock

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/robustlist"
)

// HeldHere reports whether a thread of the calling process holds m. It
// asks the kernel (tgkill with signal 0), so it is not for hot paths; it is
// what a caller checks before unmapping the memory m lives in.
func (m *Mutex) HeldHere() bool {
	if m == nil {
		return false
	}
	tid := int(atomic.LoadUint32(&m.c().lock) & futex.TIDMask)
	return tid != 0 && unix.Tgkill(unix.Getpid(), tid, 0) == nil
}

// Busy reports whether a thread of the calling process is in the middle of
// locking or unlocking a mutex that lies in mem (with this package), or a
// goroutine waits for one. Unmapping mem then could let the kernel write
// through a stale pointer at that thread's death, or fault the waiter. C code of the same process calling
// pthread_mutex_lock on mem is not seen.
func Busy(mem []byte) bool {
	if len(mem) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	return robustlist.PendingIn(lo, lo+uintptr(len(mem))) || waitingIn(lo, lo+uintptr(len(mem)))
}
