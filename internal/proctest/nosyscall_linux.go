package proctest

// The proof that a loop makes no system call, and what it proves on a slow
// machine (the root package's uncontended Lock/Unlock and event's Publish
// use it).
//
// A helper process forbids every system call on its thread with seccomp
// (SECCOMP_RET_KILL_PROCESS: the first one kills it with SIGSYS), runs the
// loop, then shows it is done through memory only (a flag in a shared
// file, a counter in the channel: printing or exiting would be a system
// call) and spins. The test passes when the parent sees that.
//
// The Go runtime can make system calls on that thread that are not the
// loop's: when the goroutine outlives its time slice (10 ms, measured by
// sysmon on another thread), the scheduler preempts it, at a function's
// stack check or with a signal, and handing the thread's P over is a
// futex wake (runtime.goschedImpl -> wakep -> startm -> futexwakeup).
// On a fast machine the loop ends long before that; under emulation (qemu
// on 6.1 kernels, issue 14) or on a loaded host it often does not. So the
// helper keeps the runtime out, and the test says exactly what it proved:
//
//   - GODEBUG=asyncpreemptoff=1: no preemption signal, so no signal handler
//     runs and nothing at all is allowed (not even rt_sigreturn);
//   - the garbage collector is run to completion and switched off first
//     (a collection stops the world, which preempts);
//   - the loop's length is measured first, so it lasts about loopTarget,
//     between the caller's minimum and maximum steps, and a
//     runtime.Gosched just before seccomp gives it a fresh time slice;
//   - no watchdog timer is pending in the helper (SetLife 0);
//   - a host that stalls the helper past its slice still gets it
//     preempted, and that kill looks like any other: such an attempt is
//     retried, up to noSyscallAttempts. A system call that the loop made
//     would be there in every attempt (each runs at least the minimum of
//     the same path). Measured on Debian's 6.1 arm64 kernel under qemu on
//     a loaded 2-core host: 8 of 38 attempts of the Lock/Unlock loop were
//     killed, and with the trap all 8 were runtime.futex from goschedImpl
//     -> wakep (the scheduler preempting at Lock's stack check), none from
//     Lock/Unlock.
//
// So a pass means: at least one run of N consecutive steps (N logged) made
// no system call of any kind. If no attempt completes, a last diagnostic
// helper traps instead of killing (SECCOMP_RET_TRAP: the runtime's SIGSYS
// crash prints the calling stack) and the failure shows which call it was
// and who made it.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	loopTarget        = 2 * time.Millisecond // well inside the runtime's 10 ms slice
	noSyscallAttempts = 10
	diagnoseEnv       = "ROBUSTLOCK_TEST_NOSYSCALL_DIAGNOSE"
)

// crashPathSyscalls are the calls the runtime's own SIGSYS crash report
// makes (printing, freezing the other threads, exiting). Only the
// diagnostic helper allows them; the proof allows nothing.
var crashPathSyscalls = []uint32{
	unix.SYS_WRITE, unix.SYS_EXIT_GROUP, unix.SYS_EXIT, unix.SYS_NANOSLEEP,
	unix.SYS_CLOCK_NANOSLEEP, unix.SYS_SCHED_YIELD, unix.SYS_RT_SIGPROCMASK,
	unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGRETURN, unix.SYS_SIGALTSTACK,
	unix.SYS_GETPID, unix.SYS_GETTID, unix.SYS_TGKILL, unix.SYS_MMAP,
	unix.SYS_MUNMAP, unix.SYS_MADVISE,
}

// seccompFilter returns the BPF program: kill on every system call, or,
// for diagnose, trap on every one but crashPathSyscalls.
func seccompFilter(diagnose bool) []unix.SockFilter {
	ld := unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0} // seccomp_data.nr
	if !diagnose {
		return []unix.SockFilter{ld, {Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_KILL_PROCESS}}
	}
	prog := []unix.SockFilter{ld}
	n := len(crashPathSyscalls)
	for i, nr := range crashPathSyscalls {
		// Equal: jump over the remaining tests and the trap to the allow.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: uint8(n - i)})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_TRAP},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW})
}

// NoSyscallLoop is the helper's side of the proof (see the top of this
// file). It sizes the loop from a probe of step, stops the collector,
// prints "ready N" and the words mark returns (N steps will follow), then
// forbids every system call on the thread, runs step N times, calls done
// and spins for ever. step and done must make no system call when the
// code under proof is right; a step that returns false ends the helper
// (killed by the exit's system call, so a failed step counts as one).
//
// Preconditions: the goroutine is locked to its thread, and step has run
// once (anything it sets up on first use is set up).
func NoSyscallLoop(step func() bool, minSteps, maxSteps int, mark func() string, done func()) int {
	const probe = 1000
	start := time.Now()
	for range probe {
		if !step() {
			fmt.Println("step failed")
			return 1
		}
	}
	per := time.Since(start) / probe
	n := maxSteps
	if per > 0 {
		n = max(minSteps, min(maxSteps, int(loopTarget/per)))
	}
	runtime.GC()
	debug.SetGCPercent(-1)
	prog := seccompFilter(os.Getenv(diagnoseEnv) != "")
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	fmt.Println(strings.TrimSpace("ready " + strconv.Itoa(n) + " " + mark()))
	runtime.Gosched() // a fresh time slice for the loop
	// From here until done, no system call may happen on this thread
	// (RawSyscall: the prctl itself does not enter the scheduler).
	if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER,
		uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return 1 // cannot print: the parent sees a plain exit
	}
	for range n {
		if !step() {
			return 1
		}
	}
	done()
	//lint:ignore SA5002 spinning is the point: printing or exiting would need a system call
	for {
	}
}

// ProveNoSyscall is the test's side: it runs helpers made by command (each
// runs NoSyscallLoop) until one completes, up to noSyscallAttempts, then
// one diagnostic helper, and fails the test with what that one trapped.
// what names the loop in messages. ready gets the words after "ready" on
// the helper's first line (N first) and returns the test that the helper
// is done.
func ProveNoSyscall(t testing.TB, what string, command func() *exec.Cmd, ready func(words []string) (done func() bool)) {
	t.Helper()
	for attempt := 1; attempt <= noSyscallAttempts; attempt++ {
		n, ok, _ := runNoSyscall(t, command(), false, ready)
		if ok {
			t.Logf("%s: %d steps made no system call (attempt %d of %d)", what, n, attempt, noSyscallAttempts)
			return
		}
		t.Logf("attempt %d: %d steps: killed by seccomp (%s, or the scheduler preempting the loop)", attempt, n, what)
	}
	_, ok, report := runNoSyscall(t, command(), true, ready)
	if ok {
		t.Fatalf("%s made a system call in all %d attempts; a diagnostic run that allowed the runtime "+
			"crash path's calls (%v) completed, so it was one of those", what, noSyscallAttempts, crashPathSyscalls)
	}
	t.Fatalf("%s made a system call in all %d attempts; the diagnostic run trapped it:\n%s",
		what, noSyscallAttempts, report)
}

// runNoSyscall runs one helper and returns its step count, whether it
// finished, and, for a diagnostic helper that died, the start of its
// crash report.
func runNoSyscall(t testing.TB, cmd *exec.Cmd, diagnose bool, ready func([]string) func() bool) (int, bool, string) {
	t.Helper()
	var stderr bytes.Buffer
	SetLife(cmd, 0) // a pending watchdog timer would be a system call
	cmd.Env = append(cmd.Env, "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+",asyncpreemptoff=1", ","), "GOTRACEBACK=system")
	if diagnose {
		cmd.Env = append(cmd.Env, diagnoseEnv+"=1")
	}
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(exited)
	}()
	defer func() { cmd.Process.Kill(); <-exited }()
	var n int
	var done func() bool
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "ready" {
			t.Fatalf("helper said %q; stderr:\n%s", l, stderr.String())
		}
		n, _ = strconv.Atoi(f[1])
		done = ready(f[1:])
	case <-time.After(Watchdog):
		t.Fatal("helper never got ready")
	}
	deadline := time.After(Watchdog)
	for !done() {
		select {
		case <-exited:
			if done() {
				return n, true, ""
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case diagnose && strings.Contains(stderr.String(), "SIGSYS: bad system call"):
				return n, false, crashReport(stderr.String())
			case diagnose && ws.Signaled() && ws.Signal() == syscall.SIGSYS:
				return n, false, "killed by SIGSYS before the runtime could report the call; stderr:\n" + stderr.String()
			case ws.Signaled() && ws.Signal() == syscall.SIGSYS:
				return n, false, ""
			}
			t.Fatalf("helper ended early: %v; stderr:\n%s", cmd.ProcessState, stderr.String())
		case <-deadline:
			t.Fatal("helper never finished its loop")
		case <-time.After(time.Millisecond):
		}
	}
	return n, true, ""
}

// crashReport is the runtime's SIGSYS report up to the end of the first
// goroutine's stack: the system call (PC) and who called it.
func crashReport(s string) string {
	s = s[strings.Index(s, "SIGSYS"):]
	blocks := strings.SplitN(s, "\n\n", 3)
	if len(blocks) > 2 {
		blocks = blocks[:2]
	}
	return strings.Join(blocks, "\n\n")
}
