package robustlock_test

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

// sharedFutexSleepers counts the threads of pid blocked in a shared (not
// private) FUTEX_WAIT or FUTEX_WAIT_BITSET: this package's sleepers. The Go
// runtime's own idle threads use private futexes and are not counted.
func sharedFutexSleepers(pid int) int {
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
		if err == nil && (op == 0 || op == 9) {
			n++
		}
	}
	return n
}

// awaitSleepers waits until pids have, together, at least n threads asleep
// on shared futexes, failing after the watchdog.
func awaitSleepers(t testing.TB, n int, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for time.Now().Before(deadline) {
		got := 0
		for _, p := range pids {
			got += sharedFutexSleepers(p)
		}
		if got >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("fewer than %d threads of %v went to sleep on the lock", n, pids)
}
