//go:build linux

package robustlock_test

// The proof that the uncontended Lock/Unlock makes no system call: a helper
// runs uncontended pairs with every system call forbidden on its thread,
// then raises a flag in shared memory. internal/proctest's
// nosyscall_linux.go has the harness and what it proves on a slow machine.

import (
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
)

const (
	offNoSyscallFlag = 512 // uint32 in the shared file: 1 once the loop is done

	minPairs = 2000
	maxPairs = 20000
)

func init() {
	// nosyscall: see the top of this file. Prints "ready N", then N pairs
	// run with system calls forbidden, then the flag.
	helpers["nosyscall"] = func(mem []byte, args []string) int {
		runtime.LockOSThread()
		m, _ := robustlock.At(mem, 0)
		pair := func() bool { return m.Lock() == nil && m.Unlock() == nil }
		if !pair() { // registers the thread
			return 1
		}
		flag := (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
		return proctest.NoSyscallLoop(pair, minPairs, maxPairs,
			func() string { return "" }, func() { atomic.StoreUint32(flag, 1) })
	}
}

// TestUncontendedMakesNoSyscall proves the fast path's claim: with every
// system call forbidden on the thread, a run of uncontended Lock/Unlock
// pairs completes (an attempt the scheduler preempted is retried; see
// proctest.ProveNoSyscall).
func TestUncontendedMakesNoSyscall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation makes system calls of its own")
	}
	var flag *uint32
	proctest.ProveNoSyscall(t, "uncontended Lock/Unlock", func() *exec.Cmd {
		path, mem, _ := shared(t)
		flag = (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
		return proctest.Command("nosyscall", path)
	}, func([]string) func() bool {
		return func() bool { return atomic.LoadUint32(flag) != 0 }
	})
}
