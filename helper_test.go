//go:build linux

package robustlock_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
)

// Tests run helper processes (proctest.Command) that map the same file,
// named by their first argument, and report on stdout, one line per event.
var helpers = map[string]func(mem []byte, args []string) int{}

func init() {
	// Keep the main goroutine on the main thread for good, so that no test
	// goroutine ever runs on it: a goroutine that dies holding a lock on
	// the main thread would not be detected (see the package docs).
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	hs := map[string]proctest.Helper{}
	for name, h := range helpers {
		hs[name] = func(args []string) int {
			if len(args) == 0 {
				fmt.Fprintln(os.Stderr, "helper", name, "needs the shared file's path")
				return 3
			}
			mem, err := proctest.MapFile(args[0])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
			return h(mem, args[1:])
		}
	}
	os.Exit(proctest.Main(m, hs))
}

const shmSize = 1 << 16

// shared makes a file-backed MAP_SHARED region in a temp dir with an
// initialised mutex at offset 0, and returns its path, memory and mutex.
func shared(t testing.TB) (string, []byte, *robustlock.Mutex) {
	t.Helper()
	path, mem := proctest.SharedFile(t, "shm", shmSize)
	m, err := robustlock.At(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Init()
	return path, mem, m
}

// helper is a running helper process.
type helper struct {
	t     testing.TB
	cmd   *exec.Cmd
	lines chan string
}

func startHelper(t testing.TB, path, name string, args ...string) *helper {
	t.Helper()
	cmd := proctest.Command(name, append([]string{path}, args...)...)
	// No lifetime watchdog: the test's cleanup kills the helper, and a
	// pending timer in the nosyscall helper has been seen to cost it a
	// system call under load.
	proctest.SetLife(cmd, 0)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			h.lines <- s.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() { h.kill(); h.cmd.Wait() })
	return h
}

// expect waits for the helper's next line and fails unless it is want.
func (h *helper) expect(want string) {
	h.t.Helper()
	if got := h.next(); got != want {
		h.t.Fatalf("helper %d said %q, want %q", h.cmd.Process.Pid, got, want)
	}
}

// next returns the helper's next line, failing the test after a generous
// watchdog rather than hanging.
func (h *helper) next() string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %d ended without saying more", h.cmd.Process.Pid)
		}
		return l
	case <-time.After(watchdog):
		h.t.Fatalf("helper %d said nothing for %v", h.cmd.Process.Pid, watchdog)
	}
	return ""
}

func (h *helper) kill() { h.cmd.Process.Signal(syscall.SIGKILL) }

// wait waits for the helper to exit and returns its exit code.
func (h *helper) wait() int {
	h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(watchdog):
		h.kill()
		h.t.Fatalf("helper %d did not exit within %v", h.cmd.Process.Pid, watchdog)
	}
	return h.cmd.ProcessState.ExitCode()
}

// watchdog bounds every wait in these tests. It is a hang detector, not a
// timing assertion: nothing here should take more than a fraction of it.
const watchdog = proctest.Watchdog

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// Helpers. Each prints its events on stdout, one per line.
func init() {
	// hold: lock, say "locked", then sleep until killed.
	helpers["hold"] = func(mem []byte, args []string) int {
		m, _ := robustlock.At(mem, 0)
		if err := m.Lock(); err != nil {
			fmt.Println("lock:", err)
			return 1
		}
		fmt.Println("locked")
		for { // not select{}: the runtime would call that a deadlock and exit
			time.Sleep(time.Hour)
		}
	}
	// lock: say "waiting", lock, report the result as "ok" or the error, then
	// MarkConsistent if args[0] == "mark", and unlock (which must say
	// ErrUnlockedInconsistent after an owner death not marked consistent).
	helpers["lock"] = func(mem []byte, args []string) int {
		m, _ := robustlock.At(mem, 0)
		fmt.Println("waiting")
		err := m.Lock()
		var want error
		switch {
		case err == nil:
			fmt.Println("ok")
		case err == robustlock.ErrOwnerDied:
			fmt.Println("ownerdied")
			want = robustlock.ErrUnlockedInconsistent
			if len(args) > 0 && args[0] == "mark" {
				if err := m.MarkConsistent(); err != nil {
					fmt.Println("mark:", err)
					return 1
				}
				want = nil
			}
		default:
			fmt.Println(err)
			return 0
		}
		if err := m.Unlock(); err != want {
			fmt.Println("unlock:", err)
			return 1
		}
		fmt.Println("unlocked")
		return 0
	}
}

// awaitWaiting waits until at least n goroutines of this process wait for
// a Mutex (parked in its room or asleep in the kernel), failing the test
// after the watchdog.
func awaitWaiting(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for robustlock.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d goroutines waited for a lock within %v", n, watchdog)
		}
		time.Sleep(time.Millisecond)
	}
}
