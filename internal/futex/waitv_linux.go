//go:build linux

package futex

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sysFutexWaitv is futex_waitv(2)'s number, the same on amd64 and arm64
// (and every architecture using the generic table), Linux 5.16 and later.
const sysFutexWaitv = 449

// flagSize32 is FUTEX2_SIZE_U32: every word here is 32 bits. Without
// FUTEX2_PRIVATE the wait is shared, as every wait in this package is.
const flagSize32 = 0x02

// MaxWaitV is FUTEX_WAITV_MAX: the most words one WaitV sleeps on.
const MaxWaitV = 128

// A WaitVEntry is struct futex_waitv: one word WaitV sleeps on while it
// holds Val.
type WaitVEntry struct {
	Val   uint64
	Addr  uint64
	Flags uint32
	_     uint32
}

// Entry returns the WaitVEntry for sleeping while *addr == val.
func Entry(addr *uint32, val uint32) WaitVEntry {
	return WaitVEntry{Val: uint64(val), Addr: uint64(uintptr(unsafe.Pointer(addr))), Flags: flagSize32}
}

// WaitV sleeps while every word of ws holds its value, until a Wake on any
// of them (or the kernel's robust-list wake at a thread's death), the
// absolute CLOCK_MONOTONIC deadline (0: none), or a signal. It returns the
// index of the word whose wake ended the sleep and nil, or -1 and EAGAIN
// if a word differed on entry, ETIMEDOUT, EINTR, or ENOSYS on kernels
// before 5.16. Callers re-check their words in every case. The words must
// stay mapped for the call.
func WaitV(ws []WaitVEntry, deadline int64) (int, error) {
	if len(ws) == 0 || len(ws) > MaxWaitV {
		return -1, unix.EINVAL
	}
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if deadline != 0 {
		ts = unix.NsecToTimespec(deadline)
		tsp = unsafe.Pointer(&ts)
	}
	r, _, e := unix.Syscall6(sysFutexWaitv, uintptr(unsafe.Pointer(&ws[0])), uintptr(len(ws)), 0,
		uintptr(tsp), uintptr(unix.CLOCK_MONOTONIC), 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
