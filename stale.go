package robustlock

// Stale-owner recovery: a lock held by a thread that no longer exists,
// which the kernel did not mark OWNER_DIED.
//
// The kernel marks a dying thread's locks by walking its robust list, and
// it gives that up for good at the first entry it cannot read (a mutex in a
// segment that was truncated or unmapped while held): every lock the thread
// took before that one stays held by its TID. A thread other than the main
// one that calls exec is worse off still: the kernel walks its list after
// giving it the leader's PID, so none of its words match (protocol.md).
// Waiters would sleep for ever. So a room's delegate asleep in the kernel
// for a holder of another process probes it now and then (first after
// staleFirst, doubling to staleMax; one kill(2) each, on the slow path
// only). After the first probe it also watches the holder's exit through a
// pidfd (Linux 6.9+, PIDFD_THREAD), which wakes it the moment the thread is
// gone; short waits, the common case, never pay for the pidfd. When no task with the word's TID exists in this PID namespace, it
// takes the lock with one CAS from exactly the word it probed, as if the
// kernel had marked it, and reports ErrOwnerDied with the lock held.
//
// Why a live owner is never robbed:
//   - The probe says "gone" only on ESRCH: no task has that TID now. A TID
//     that was reused by a new thread answers "alive" (or EPERM), and the
//     lock then simply stays stuck, as it would have without this; never
//     the other way round.
//   - Between the probe and the CAS, the word can change only if someone
//     releases or takes it, and then the CAS fails and the loop starts over.
//     A thread given the dead TID cannot take it in between: the word
//     already holds that TID, so its Lock sees "held by me" (ErrDeadlock),
//     and glibc's sees the same and never writes the word.
//   - PID namespaces: the TID is looked up in the caller's namespace, which
//     is the holder's only if they share one. Segments refuse to be shared
//     across PID namespaces (segment.ErrPIDNamespace); a Mutex placed with
//     At in memory shared across namespaces must not be (README).
//
// A holder of this process is never probed this way: it is waited for in
// Go, and a local thread that dies holding is found by the room's probe
// timer after the kernel marks it (its own list is readable), and by this
// same check otherwise (robustlist.Owner fails for a dead thread, so it is
// treated as another process's).

import (
	"errors"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
)

// The probe schedule: the first probe of a new holder after staleFirst,
// then doubling up to staleMax; once the holder's exit is watched, only
// every staleMax (the watch wakes the delegate itself). A variable so
// that a test can leave the watch alone to do its work.
var (
	staleFirst = 20 * time.Millisecond
	staleMax   = time.Second
)

// staleProbe is a delegate's probing schedule for the holder it sleeps on,
// and, once the holder has held on for a first probe, the watch on its
// exit that makes later probes wait for nothing (stale_linux.go).
type staleProbe struct {
	tid   uint32
	every time.Duration
	next  int64 // futex.Now of the next probe
	exit  *exitWatch
}

func (p *staleProbe) watch(tid uint32, now int64) {
	p.stop()
	p.tid, p.every = tid, staleFirst
	p.next = now + int64(p.every)
}

// backoff schedules the next probe after one found the holder alive, and
// starts watching its exit.
func (p *staleProbe) backoff(now int64, word *uint32) {
	if p.exit == nil {
		p.exit = watchExit(p.tid, word)
	}
	if p.exit != nil {
		p.every = staleMax
	} else {
		p.every = min(2*p.every, staleMax)
	}
	p.next = now + int64(p.every)
}

// due reports whether it is time to probe the holder.
func (p *staleProbe) due(now int64) bool { return now >= p.next || p.exit.exited() }

// exited reports whether the exit watch saw the holder exit.
func (p *staleProbe) exited() bool { return p.exit.exited() }

func (p *staleProbe) stop() {
	p.exit.stop()
	p.exit = nil
}

// taskGone reports whether the task with this TID in the caller's PID
// namespace has exited: kill(2) with signal 0 (which accepts any thread's
// id and sends nothing) finds none, or /proc shows a zombie, whose robust
// list the kernel has already walked (a killed process is one until its
// parent reaps it).
func taskGone(tid uint32) bool {
	if errors.Is(unix.Kill(int(tid), 0), syscall.ESRCH) {
		return true
	}
	return zombie(tid)
}

// recoverStale takes m from a holder that no longer exists, if the word is
// still old and the holder is gone (exited: its exit watch fired, which
// names that very thread, whatever its TID has become since): ok reports that it decided (err is then
// what Lock returns: ErrOwnerDied with the lock held, or an error of
// begin); !ok means the holder lives or the word moved on.
func (m *Mutex) recoverStale(old, assume uint32, exited bool) (err error, ok bool) {
	c := m.c()
	holder := old & futex.TIDMask
	if holder == 0 || !exited && !taskGone(holder) {
		return nil, false
	}
	runtime.LockOSThread()
	t, err := m.begin()
	if err != nil {
		return err, true
	}
	tid := t.TID()
	if !atomic.CompareAndSwapUint32(&c.lock, old, tid|old&futex.Waiters|assume) {
		t.ClearPending()
		runtime.UnlockOSThread()
		return nil, false
	}
	staleRecoveries.Add(1)
	return m.acquired(t, tid, old|futex.OwnerDied), true
}

// staleRecoveries counts locks taken from a vanished holder, staleWatches
// the exit watches started and staleWakes those that fired, for tests.
var staleRecoveries, staleWatches, staleWakes atomic.Int64

// ReleaseStale does for m what the kernel failed to do: if m is held by a
// thread that no longer exists in this PID namespace (see the file comment
// for how that happens and how it is told), it marks m OWNER_DIED exactly as
// the kernel marks a dead owner's lock, and wakes a sleeper, so that the
// next locker, in any process, gets ErrOwnerDied and repairs. It reports
// whether it did; it never touches a lock whose holder lives, and it is
// what `robustlock recover` runs. Waiters do this by themselves after a
// while; ReleaseStale is for a lock nobody waits for yet.
func (m *Mutex) ReleaseStale() (bool, error) {
	if m == nil {
		return false, ErrNilMutex
	}
	c := m.c()
	old := atomic.LoadUint32(&c.lock)
	holder := old & futex.TIDMask
	if holder == 0 || !taskGone(holder) {
		return false, nil
	}
	if !atomic.CompareAndSwapUint32(&c.lock, old, old&futex.Waiters|futex.OwnerDied) {
		return false, nil // it moved on: someone released or recovered it
	}
	if old&futex.Waiters != 0 {
		futex.Wake(&c.lock, 1)
	}
	staleRecoveries.Add(1)
	return true, nil
}
