package etcdlock

import (
	"errors"
	"fmt"

	"github.com/futexlab/robustlock"
)

// The error values of the lock itself are the core package's, so that
// errors.Is works the same for both kinds of Mutex:
//
//	robustlock.ErrOwnerDied       Lock/TryLock: acquired; the previous holder's lease ended while it held the lock
//	robustlock.ErrNotRecoverable  Lock/TryLock: a recovering holder unlocked without MarkConsistent; not acquired
//	robustlock.ErrBusy            TryLock: held by another lease
//	robustlock.ErrDeadlock        Lock/TryLock: this Mutex already holds it (or is acquiring it)
//	robustlock.ErrNotOwner        Unlock/MarkConsistent/Do: this Mutex does not hold it
//	robustlock.ErrConsistent      MarkConsistent: the lock is not in the owner-died state
//
// Errors of etcd itself (unreachable cluster, context ended) are returned
// as they come, and say nothing about the lock's state.

// ErrLost is matched by every *LostError: this Mutex held the lock, but its
// lease ended (or its owner key was deleted) before the call, so it is no
// longer the owner; nothing was changed. It wraps robustlock.ErrNotOwner,
// so errors.Is(err, robustlock.ErrNotOwner) holds for it too.
var ErrLost = fmt.Errorf("etcdlock: lock lost: the holder's lease ended: %w", robustlock.ErrNotOwner)

// ErrBadName is returned by New and Inspect for an empty lock name or one
// with bytes that do not belong in an etcd key path (control characters).
var ErrBadName = errors.New("etcdlock: bad lock name")

// ErrBadOption is returned by New for an option out of range, such as a TTL
// below one second, or a nil client.
var ErrBadOption = errors.New("etcdlock: bad option")

// ErrCorrupt is returned when the lock's state key holds a value this
// package did not write. Nothing is changed; Reset repairs it.
var ErrCorrupt = errors.New("etcdlock: lock state key is corrupt")

// LostError tells a holder that lost its lock which acquisition it was.
// It is returned by Unlock, MarkConsistent and the fenced writes.
type LostError struct {
	Name  string // lock name
	Fence int64  // the fence of the acquisition that was lost
	Lease int64  // the lease that ended
}

// Error describes the lost acquisition.
func (e *LostError) Error() string {
	return fmt.Sprintf("etcdlock: lock %q lost: lease %x of the acquisition with fence %d ended (another holder may have it)",
		e.Name, e.Lease, e.Fence)
}

// Is makes errors.Is(err, ErrLost) hold.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// Unwrap returns robustlock.ErrNotOwner.
func (e *LostError) Unwrap() error { return robustlock.ErrNotOwner }
