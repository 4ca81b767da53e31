//go:build !linux

package futex

import "syscall"

// MaxWaitV is FUTEX_WAITV_MAX.
const MaxWaitV = 128

// A WaitVEntry is struct futex_waitv.
type WaitVEntry struct {
	Val   uint64
	Addr  uint64
	Flags uint32
	_     uint32
}

// Entry returns an entry; futexes are Linux-only.
func Entry(addr *uint32, val uint32) WaitVEntry { return WaitVEntry{Val: uint64(val)} }

// WaitV returns ENOSYS: futexes are Linux-only.
func WaitV(ws []WaitVEntry, deadline int64) (int, error) { return -1, syscall.ENOSYS }
