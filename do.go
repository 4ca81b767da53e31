package robustlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Do runs fn with m held: it locks m (as LockContext(ctx); a nil ctx is
// context.Background()), calls fn, and unlocks m on every path, fn's
// panics and runtime.Goexit included. It is the recovery that is hard to
// get wrong:
//
//   - recovered is true when the previous owner died holding m (Lock's
//     ErrOwnerDied). fn must then first repair the data m guards, and only
//     then do its work.
//   - If fn returns nil, Do calls MarkConsistent before unlocking, so m
//     stays usable. If fn returns an error, panics or calls
//     runtime.Goexit after recovered, the repair is taken to have failed: Do unlocks without MarkConsistent,
//     which makes m not recoverable for everyone (POSIX's answer to data
//     nobody could repair), and returns fn's error joined with
//     ErrUnlockedInconsistent (or re-panics). A fn whose repair succeeded
//     but whose own work may fail can call m.MarkConsistent itself right
//     after repairing; Do then only unlocks.
//   - With recovered false, fn's error is returned as is, after Unlock; a
//     panic unlocks and propagates, as a deferred sync.Mutex.Unlock would.
//
// If the lock cannot be taken, Do returns the error (ErrNotRecoverable,
// ErrDeadlock, ctx.Err(), ...) without calling fn. Do must not be nested on
// the same m (that is ErrDeadlock), and fn must not unlock m.
func (m *Mutex) Do(ctx context.Context, fn func(recovered bool) error) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	recovered := false
	switch lerr := m.LockContext(ctx); {
	case errors.Is(lerr, ErrOwnerDied):
		recovered = true
	case lerr != nil:
		return lerr
	}
	finished := false
	defer func() {
		if recovered && finished && err == nil {
			if cerr := m.MarkConsistent(); cerr != nil && cerr != ErrConsistent {
				err = cerr // not the owner any more: fn unlocked m itself
				return
			}
		}
		if uerr := m.Unlock(); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	err = fn(recovered)
	finished = true
	return err
}

// Locker returns a sync.Locker for code that takes a sync.Locker and wants
// errors as panics, such as sync.NewCond. Its Lock calls m.Lock; when the
// previous owner died it runs repair (with m held) and, if repair returns
// nil, marks m consistent and returns normally. Every other outcome
// panics with an error value (test it with errors.Is on the recovered
// value): a lock error such as ErrNotRecoverable or ErrDeadlock, with m
// not held; and, when repair is nil, fails or panics, ErrOwnerDied joined
// with repair's error after m was unlocked without MarkConsistent, so it
// is now not recoverable. A nil repair thus declares that the guarded data
// cannot be repaired; pass func() error { return nil } if nothing needs
// repairing. Its Unlock calls m.Unlock and panics on an error (ErrNotOwner
// from a goroutine that does not hold m).
//
// The same thread rule holds as for Lock: the goroutine that called Lock
// must call Unlock.
func (m *Mutex) Locker(repair func() error) sync.Locker {
	return &locker{m: m, repair: repair}
}

type locker struct {
	m      *Mutex
	repair func() error
}

func (l *locker) Lock() {
	err := l.m.Lock()
	switch {
	case err == nil:
		return
	case !errors.Is(err, ErrOwnerDied):
		panic(err)
	}
	rerr := errors.New("robustlock: Locker has no repair function")
	if l.repair != nil {
		rerr = l.runRepair()
	}
	if rerr == nil {
		if err := l.m.MarkConsistent(); err != nil {
			panic(err) // repair unlocked m
		}
		return
	}
	panic(errors.Join(ErrOwnerDied, rerr, l.m.Unlock()))
}

// runRepair calls repair, turning a panic into an error so the caller can
// still unlock on the thread that holds m.
func (l *locker) runRepair() (err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok {
				err = fmt.Errorf("robustlock: Locker's repair panicked: %w", e)
			} else {
				err = fmt.Errorf("robustlock: Locker's repair panicked: %v", p)
			}
		}
	}()
	return l.repair()
}

func (l *locker) Unlock() {
	if err := l.m.Unlock(); err != nil {
		panic(err)
	}
}
