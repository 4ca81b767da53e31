package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SharedFutexSleepers counts the threads of pid blocked in a shared (not
// private) FUTEX_WAIT or FUTEX_WAIT_BITSET: lock waiters, Go's or glibc's.
// The Go runtime's own idle threads use private futexes and are not
// counted.
func SharedFutexSleepers(pid int) int {
	return sleepers(pid, unix.SYS_FUTEX, func(args []string) bool {
		if len(args) < 2 {
			return false
		}
		op, err := strconv.ParseUint(strings.TrimPrefix(args[1], "0x"), 16, 64)
		// FUTEX_WAIT 0, FUTEX_WAIT_BITSET 9, either with
		// FUTEX_CLOCK_REALTIME (256); FUTEX_PRIVATE_FLAG (128) excluded.
		return err == nil && (op&^256 == 0 || op&^256 == 9)
	})
}

// SyscallSleepers counts the threads of pid that are inside system call
// sysno (a unix.SYS_ constant) right now, for example asleep in flock.
// Unlike the process's thread count, it does not include the idle
// threads the Go runtime keeps after a burst of short system calls.
func SyscallSleepers(pid int, sysno int) int {
	return sleepers(pid, sysno, func([]string) bool { return true })
}

// sleepers counts the threads of pid inside system call sysno whose
// arguments (hexadecimal, as /proc/PID/task/TID/syscall shows them)
// satisfy match.
func sleepers(pid, sysno int, match func(args []string) bool) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fs := strings.Fields(string(b))
		if len(fs) > 0 && fs[0] == strconv.Itoa(sysno) && match(fs[1:]) {
			n++
		}
	}
	return n
}

// AwaitSleepers waits until the processes pids have together at least n
// threads asleep on shared futexes, failing the test after the Watchdog.
func AwaitSleepers(t testing.TB, n int, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(Watchdog)
	for time.Now().Before(deadline) {
		got := 0
		for _, p := range pids {
			got += SharedFutexSleepers(p)
		}
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d threads of %v went to sleep on the lock within %v", n, pids, Watchdog)
}
