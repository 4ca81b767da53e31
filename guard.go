package robustlock

// Fault-guarded locking, opt in.
//
// A process with write access may truncate or replace a segment while
// others use it; the next access to its pages is a SIGBUS or SIGSEGV, which
// the Go runtime turns into a fatal error. The plain methods do not guard
// against it: a guard costs a deferred recover and two SetPanicOnFault
// calls, about a third of an uncontended Lock (bench measures it). Guarded
// pays that to report a fault as ErrFault instead, and to leave the
// calling thread as if the call had not been made:
//
//   - Every acquire path sets the thread's pending pointer to m before it
//     first touches m's memory, and clears it only when it unpins or when
//     the lock is held (m then on the thread's list); Unlock keeps m on the
//     list or in pending until it unpins. So after a fault the call held a
//     pin of its own exactly when pending is m or m is on the list.
//   - Cleanup clears pending, unlinks m from the list without touching m's
//     memory (robustlist.Unlink walks the neighbours' links), and drops
//     that pin. The kernel's death-time walk then never meets the dead
//     entry, so the thread's other locks stay robust.
//
// Data() accesses are the caller's: guard them the same way (see
// segment's docs), with debug.SetPanicOnFault and a recover.

import (
	"context"
	"runtime"
	"runtime/debug"
	"syscall"
	"unsafe"

	"github.com/futexlab/robustlock/internal/robustlist"
)

// ErrFault: the mutex's memory faulted (the file under a mapping was
// truncated or replaced): nothing can be done with it but unmap it. Only
// Guarded's methods return it; the plain ones crash the process. (EFAULT)
var ErrFault = &Error{"memory faulted (file truncated or replaced while mapped)", syscall.EFAULT}

// Guarded is a view of a Mutex whose methods report a memory fault as
// ErrFault instead of crashing the process. Otherwise they behave exactly
// as the Mutex's own.
type Guarded struct{ m *Mutex }

// Guarded returns m's fault-guarded view.
func (m *Mutex) Guarded() Guarded { return Guarded{m} }

// Lock is Mutex.Lock, guarded.
func (g Guarded) Lock() (err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.Lock()
}

// LockContext is Mutex.LockContext, guarded.
func (g Guarded) LockContext(ctx context.Context) (err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.LockContext(ctx)
}

// TryLock is Mutex.TryLock, guarded.
func (g Guarded) TryLock() (err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.TryLock()
}

// Unlock is Mutex.Unlock, guarded. After ErrFault the lock is gone with its
// memory and the thread no longer counts it as held.
func (g Guarded) Unlock() (err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.Unlock()
}

// MarkConsistent is Mutex.MarkConsistent, guarded.
func (g Guarded) MarkConsistent() (err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.MarkConsistent()
}

// guard restores the fault setting and turns a fault into ErrFault,
// cleaning up as the file comment says. Other panics go on.
func (g Guarded) guard(err *error, was bool) {
	debug.SetPanicOnFault(was)
	r := recover()
	if r == nil {
		return
	}
	if e, ok := r.(interface{ Addr() uintptr }); !ok || e == nil {
		panic(r)
	}
	*err = ErrFault
	entry := uintptr(unsafe.Pointer(g.m.entry()))
	runtime.LockOSThread() // the thread is ours to inspect either way
	if t := robustlist.Lookup(); t != nil {
		pinned := false
		if t.Pending() == entry {
			t.ClearPending()
			pinned = true
		}
		if t.Unlink(entry) {
			pinned = true
		}
		if pinned {
			runtime.UnlockOSThread()
		}
	}
	runtime.UnlockOSThread()
}

// State is Mutex.State, guarded: a fault is ErrFault with the zero State.
func (g Guarded) State() (s State, err error) {
	defer g.guard(&err, debug.SetPanicOnFault(true))
	return g.m.State(), nil
}
