//go:build linux

package robustlock_test

// The proof that the uncontended Lock/Unlock makes no system call, and what
// it proves on a slow machine.
//
// A helper process forbids every system call on its thread with seccomp
// (SECCOMP_RET_KILL_PROCESS: the first one kills it with SIGSYS), runs
// uncontended Lock/Unlock pairs, then raises a flag in shared memory and
// spins (printing or exiting would be a system call). The test passes when
// the flag goes up.
//
// The Go runtime can make system calls on that thread that are not
// Lock's: when the goroutine outlives its time slice (10 ms, measured by
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
//   - the loop's length is measured first, so it lasts about 2 ms, between
//     minPairs and maxPairs pairs, and a runtime.Gosched just before seccomp
//     gives it a fresh time slice;
//   - a host that stalls the helper past its slice still gets it
//     preempted, and that kill looks like any other: such an attempt is
//     retried, up to noSyscallAttempts. A system call that Lock or Unlock
//     made would be there in every attempt (each runs at least minPairs
//     pairs of the same path). Measured on Debian's 6.1 arm64 kernel under
//     qemu on a loaded 2-core host: 8 of 38 attempts were killed, and with
//     the trap all 8 were runtime.futex from goschedImpl -> wakep (the
//     scheduler preempting at Lock's stack check), none from Lock/Unlock.
//
// So a pass means: at least one run of N consecutive uncontended pairs
// (N logged) made no system call of any kind. If no attempt completes, a
// last diagnostic helper traps instead of killing (SECCOMP_RET_TRAP: the
// runtime's SIGSYS crash prints the calling stack) and the failure shows
// which call it was and who made it.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
)

const (
	offNoSyscallFlag = 512 // uint32 in the shared file: 1 once the loop is done

	minPairs          = 2000
	maxPairs          = 20000
	loopTarget        = 2 * time.Millisecond // well inside the runtime's 10 ms slice
	noSyscallAttempts = 10
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

func init() {
	// nosyscall [diagnose]: see the top of this file. Prints "ready N",
	// then N pairs run with system calls forbidden, then the flag.
	helpers["nosyscall"] = func(mem []byte, args []string) int {
		runtime.LockOSThread()
		diagnose := len(args) > 0 && args[0] == "diagnose"
		m, _ := robustlock.At(mem, 0)
		pair := func() bool { return m.Lock() == nil && m.Unlock() == nil }
		if !pair() { // registers the thread
			fmt.Println("first lock failed")
			return 1
		}
		// Size the loop: about loopTarget, within [minPairs, maxPairs].
		const probe = 1000
		start := time.Now()
		for range probe {
			if !pair() {
				fmt.Println("lock failed")
				return 1
			}
		}
		per := time.Since(start) / probe
		n := maxPairs
		if per > 0 {
			n = max(minPairs, min(maxPairs, int(loopTarget/per)))
		}
		runtime.GC()
		debug.SetGCPercent(-1)
		prog := seccompFilter(diagnose)
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("no_new_privs:", err)
			return 1
		}
		fmt.Println("ready", n)
		flag := (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
		runtime.Gosched() // a fresh time slice for the loop
		// From here until the flag, no system call may happen on this
		// thread (RawSyscall: the prctl itself does not enter the scheduler).
		if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER,
			uintptr(unsafe.Pointer(&fprog))); e != 0 {
			return 1 // cannot print: the parent sees a plain exit
		}
		for range n {
			if !pair() {
				return 1
			}
		}
		atomic.StoreUint32(flag, 1)
		//lint:ignore SA5002 spinning is the point: printing or exiting would need a system call
		for {
		}
	}
}

// TestUncontendedMakesNoSyscall proves the fast path's claim: with every
// system call forbidden on the thread, a run of uncontended Lock/Unlock
// pairs completes (see the top of this file for what a slow machine
// changes, and why an attempt the scheduler preempted is retried).
func TestUncontendedMakesNoSyscall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation makes system calls of its own")
	}
	for attempt := 1; attempt <= noSyscallAttempts; attempt++ {
		n, ok, _ := runNoSyscall(t, false)
		if ok {
			t.Logf("%d uncontended Lock/Unlock pairs made no system call (attempt %d of %d)", n, attempt, noSyscallAttempts)
			return
		}
		t.Logf("attempt %d: %d pairs: killed by seccomp (Lock/Unlock, or the scheduler preempting the loop)", attempt, n)
	}
	_, ok, report := runNoSyscall(t, true)
	if ok {
		t.Fatalf("uncontended Lock/Unlock made a system call in all %d attempts; a diagnostic run that "+
			"allowed the runtime crash path's calls (%v) completed, so it was one of those", noSyscallAttempts, crashPathSyscalls)
	}
	t.Fatalf("uncontended Lock/Unlock made a system call in all %d attempts; the diagnostic run trapped it:\n%s",
		noSyscallAttempts, report)
}

// runNoSyscall runs one nosyscall helper and returns its pair count,
// whether it raised the flag, and, for a diagnostic helper that died, the
// start of its crash report.
func runNoSyscall(t *testing.T, diagnose bool) (int, bool, string) {
	t.Helper()
	path, mem, _ := shared(t)
	args := []string{path}
	if diagnose {
		args = append(args, "diagnose")
	}
	var stderr bytes.Buffer
	cmd := proctest.Command("nosyscall", args...)
	proctest.SetLife(cmd, 0) // a pending watchdog timer would be a system call
	cmd.Env = append(cmd.Env, "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+",asyncpreemptoff=1", ","), "GOTRACEBACK=system")
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
	select {
	case l := <-line:
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != "ready" {
			t.Fatalf("helper said %q; stderr:\n%s", l, stderr.String())
		}
		n, _ = strconv.Atoi(f[1])
	case <-time.After(watchdog):
		t.Fatal("helper never got ready")
	}
	flag := (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
	deadline := time.After(watchdog)
	for atomic.LoadUint32(flag) == 0 {
		select {
		case <-exited:
			if atomic.LoadUint32(flag) != 0 {
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
