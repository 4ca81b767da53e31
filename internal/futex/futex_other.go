//go:build !linux

package futex

import (
	"math"
	"syscall"
	"time"
)

// Supported reports whether this platform has futexes. Off Linux it is false
// and every call returns ENOSYS.
const Supported = false

// Wait returns ENOSYS: futexes are Linux-only.
func Wait(addr *uint32, val uint32) error { return syscall.ENOSYS }

// WaitUntil returns ENOSYS: futexes are Linux-only.
func WaitUntil(addr *uint32, val uint32, deadline int64) error { return syscall.ENOSYS }

// WaitBitset returns ENOSYS: futexes are Linux-only.
func WaitBitset(addr *uint32, val, bits uint32, deadline int64) error { return syscall.ENOSYS }

// WakeBitset returns ENOSYS: futexes are Linux-only.
func WakeBitset(addr *uint32, n int, bits uint32) (int, error) { return 0, syscall.ENOSYS }

// BitsetAll matches every waiter.
const BitsetAll = 0xffffffff

// Wake returns ENOSYS: futexes are Linux-only.
func Wake(addr *uint32, n int) (int, error) { return 0, syscall.ENOSYS }

// Now returns a monotonic reading in nanoseconds.
func Now() int64 { return int64(time.Since(start)) }

var start = time.Now()

// Deadline converts a wall-clock deadline to Now's scale, saturating.
func Deadline(t time.Time) int64 {
	now, rem := Now(), int64(time.Until(t))
	if rem > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + rem
}
