package robustlock

import (
	"errors"
	"syscall"

	"github.com/futexlab/robustlock/internal/robustlist"
)

// Error is a robustlock error that is errors.Is-equal to the errno a
// pthread mutex call would have returned for the same condition.
type Error struct {
	msg   string
	errno syscall.Errno
}

func (e *Error) Error() string { return "robustlock: " + e.msg }

// Unwrap returns the errno, so errors.Is(err, syscall.EOWNERDEAD) holds for
// ErrOwnerDied, and so on.
func (e *Error) Unwrap() error { return e.errno }

// Is reports whether e refines target: ErrUnlockedInconsistent is a kind
// of ErrNotRecoverable, so errors.Is(err, ErrNotRecoverable) holds for it.
func (e *Error) Is(target error) bool {
	return e == ErrUnlockedInconsistent && target == error(ErrNotRecoverable)
}

// Errno returns the errno a pthread call would have returned.
func (e *Error) Errno() syscall.Errno { return e.errno }

var (
	// ErrOwnerDied: the lock is acquired, but its previous owner died
	// holding it and the data it guards may be inconsistent. Repair it,
	// then call MarkConsistent before Unlock. (EOWNERDEAD)
	ErrOwnerDied = &Error{"previous owner died; lock acquired, state may be inconsistent", syscall.EOWNERDEAD}

	// ErrNotRecoverable: a recovering owner unlocked without MarkConsistent;
	// the lock was not acquired and never will be until the mutex is
	// initialised again. (ENOTRECOVERABLE)
	ErrNotRecoverable = &Error{"mutex is not recoverable", syscall.ENOTRECOVERABLE}

	// ErrUnlockedInconsistent: Unlock released a mutex taken with
	// ErrOwnerDied without MarkConsistent having been called. The unlock
	// happened and, as POSIX requires, the mutex is now not recoverable:
	// every later lock, in every process, fails with ErrNotRecoverable
	// until Init. errors.Is(err, ErrNotRecoverable) and errors.Is(err,
	// syscall.ENOTRECOVERABLE) hold for it. (glibc's pthread_mutex_unlock
	// returns 0 here; this package says what happened.)
	ErrUnlockedInconsistent = &Error{"unlocked without MarkConsistent after the owner died: the mutex is now not recoverable", syscall.ENOTRECOVERABLE}

	// ErrNotOwner: Unlock or MarkConsistent by a thread that does not hold
	// the lock; nothing was changed. (EPERM)
	ErrNotOwner = &Error{"calling thread does not hold the lock", syscall.EPERM}

	// ErrBusy: TryLock found the lock held. (EBUSY)
	ErrBusy = &Error{"lock is held", syscall.EBUSY}

	// ErrDeadlock: the calling thread already holds the lock. (EDEADLK)
	ErrDeadlock = &Error{"calling thread already holds the lock", syscall.EDEADLK}

	// ErrKind: the mutex was not initialised as a robust mutex of a kind
	// this package implements (robust normal, errorcheck or adaptive); for
	// example a C program set it up recursive, priority-inheriting or not
	// robust, or it was never initialised. Nothing was changed. (EINVAL)
	ErrKind = &Error{"mutex is not initialised as a robust normal mutex", syscall.EINVAL}

	// ErrConsistent: MarkConsistent on a mutex that is not inconsistent.
	// (EINVAL, as pthread_mutex_consistent)
	ErrConsistent = &Error{"mutex is not in the owner-died state", syscall.EINVAL}

	// ErrNilMutex: a method was called on a nil *Mutex, such as the one a
	// closed segment returns. Nothing was done. (EINVAL)
	ErrNilMutex = &Error{"nil mutex (its memory was closed or never mapped)", syscall.EINVAL}

	// ErrUnsupported: robust futexes cannot be used on this platform, or the
	// calling thread's robust list cannot be registered or shared. (ENOSYS)
	ErrUnsupported = &Error{"robust mutexes are not supported here", syscall.ENOSYS}
)

// unsupported wraps the robustlist reason under ErrUnsupported.
func unsupported(err error) error {
	if errors.Is(err, robustlist.ErrUnsupported) || errors.Is(err, robustlist.ErrForeignList) {
		return errors.Join(ErrUnsupported, err)
	}
	return err
}
