package futex

import (
	"math"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futex(2) operations used here (include/uapi/linux/futex.h).
const (
	opWait       = 0
	opWake       = 1
	opWaitBitset = 9
	opWakeBitset = 10
	// BitsetAll matches every waiter; it is what FUTEX_WAIT and FUTEX_WAKE use.
	BitsetAll = 0xffffffff
)

// Supported reports whether this platform has futexes. On Linux it is true.
const Supported = true

// Wait sleeps while *addr == val, until woken by Wake (or by the kernel at a
// robust owner's death), or spuriously. It returns nil on a wake, EAGAIN if
// *addr was not val on entry, and EINTR if a signal interrupted the sleep;
// callers re-check the word in every case, so none of these is an error for
// a lock loop.
func Wait(addr *uint32, val uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait, uintptr(val), 0, 0, 0)
	return errnoErr(e)
}

// WaitUntil is Wait with an absolute CLOCK_MONOTONIC deadline, given as
// nanoseconds on Now's clock. It returns ETIMEDOUT once the deadline has
// passed, including when it had already passed on entry.
func WaitUntil(addr *uint32, val uint32, deadline int64) error {
	return WaitBitset(addr, val, BitsetAll, deadline)
}

// WaitBitset is Wait that only WakeBitset calls sharing a bit with bits (or
// any plain Wake, which uses BitsetAll) end, with an optional absolute
// CLOCK_MONOTONIC deadline (0: none). A waiter can thus be woken on its own,
// without waking the others asleep on the same word.
func WaitBitset(addr *uint32, val, bits uint32, deadline int64) error {
	var tsp unsafe.Pointer
	var ts unix.Timespec
	if deadline != 0 {
		ts = unix.NsecToTimespec(deadline)
		tsp = unsafe.Pointer(&ts)
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWaitBitset,
		uintptr(val), uintptr(tsp), 0, uintptr(bits))
	return errnoErr(e)
}

// Wake wakes at most n threads waiting on addr and returns how many it woke.
// It never blocks, so it is made as a raw syscall without telling the
// scheduler.
func Wake(addr *uint32, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// WakeBitset wakes at most n waiters on addr whose WaitBitset bits share a
// bit with bits, and returns how many it woke.
func WakeBitset(addr *uint32, n int, bits uint32) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWakeBitset, uintptr(n), 0, 0, uintptr(bits))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Now returns the current CLOCK_MONOTONIC time in nanoseconds, the clock
// WaitUntil's deadline is measured on. It is the runtime's own reading of
// that clock (through the vDSO, no system call; x/sys's ClockGettime would
// make one), the same clock time.Now's monotonic part and every other
// process on the machine read, so it is this module's one clock.
func Now() int64 { return nanotime() }

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Deadline converts a wall-clock deadline (as from context.Context) to the
// monotonic nanoseconds WaitUntil takes. The conversion is made once, at
// the start of a wait, from the time still remaining. A deadline too far
// away to represent (centuries) saturates at the largest time, which no
// wait reaches.
func Deadline(t time.Time) int64 {
	now, rem := Now(), int64(time.Until(t))
	if rem > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + rem
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
