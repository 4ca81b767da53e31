//go:build !linux

package robustlist

import "errors"

// FutexOffset is the offset from a list entry to its lock word in glibc's
// 64-bit layout.
const FutexOffset = -32

// ErrForeignList is returned when the thread already has a robust list in a
// format this package cannot share.
var ErrForeignList = errors.New("robustlist: thread has a robust list in a foreign format")

// ErrUnsupported is returned where robust lists cannot be used: not Linux.
var ErrUnsupported = errors.New("robustlist: robust futex lists are not supported here")

// Thread is a thread's record; off Linux there are none.
type Thread struct{}

// Current returns ErrUnsupported off Linux.
func Current() (*Thread, error) { return nil, ErrUnsupported }

// LookupFast returns nil off Linux.
func LookupFast() *Thread { return nil }

// Lookup returns nil off Linux.
func Lookup() *Thread { return nil }

// Register returns ErrUnsupported off Linux.
func Register() (*Thread, error) { return nil, ErrUnsupported }

// TID returns 0 off Linux.
func TID() uint32 { return 0 }

// FastTID reports false off Linux.
func FastTID() bool { return false }

// PendingIn reports false off Linux.
func PendingIn(lo, hi uintptr) bool { return false }

// TID returns 0.
func (t *Thread) TID() uint32 { return 0 }

// SetPending does nothing off Linux.
func (t *Thread) SetPending(entry *uintptr) {}

// ClearPending does nothing off Linux.
func (t *Thread) ClearPending() {}

// Enqueue does nothing off Linux.
func (t *Thread) Enqueue(entry *uintptr) {}

// Dequeue does nothing off Linux.
func (t *Thread) Dequeue(entry *uintptr) {}

// Joined reports false off Linux.
func (t *Thread) Joined() bool { return false }

// Registrations reports 0 off Linux.
func (t *Thread) Registrations() uint64 { return 0 }

// Owner returns nil off Linux.
func Owner(tid uint32) *Thread { return nil }

// AddLocalWaiter does nothing off Linux.
func (t *Thread) AddLocalWaiter(delta int32) {}

// LocalWaiters reports false off Linux.
func (t *Thread) LocalWaiters() bool { return false }

// Pending returns 0 off Linux.
func (t *Thread) Pending() uintptr { return 0 }

// Unlink reports false off Linux.
func (t *Thread) Unlink(entry uintptr) bool { return false }

// Prepare does nothing off Linux.
func Prepare() {}

// Prepared reports true off Linux: there is nothing to prepare.
func Prepared() bool { return true }

// Took does nothing off Linux.
func (t *Thread) Took(entry *uintptr) {}
