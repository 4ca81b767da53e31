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
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fs := strings.Fields(string(b))
		if len(fs) < 3 || fs[0] != strconv.Itoa(unix.SYS_FUTEX) {
			continue
		}
		op, err := strconv.ParseUint(strings.TrimPrefix(fs[2], "0x"), 16, 64)
		// FUTEX_WAIT 0, FUTEX_WAIT_BITSET 9, either with
		// FUTEX_CLOCK_REALTIME (256); FUTEX_PRIVATE_FLAG (128) excluded.
		if err == nil && (op&^256 == 0 || op&^256 == 9) {
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
