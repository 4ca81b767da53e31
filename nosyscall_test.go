//go:build linux

package robustlock_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

const offNoSyscallFlag = 512 // uint32 in the shared file: 1 once the loop is done

func init() {
	// nosyscall: after a first Lock/Unlock (which registers the thread),
	// forbid every system call on this thread with seccomp (the process
	// is killed by SIGSYS on the first one), run uncontended Lock/Unlock
	// pairs, then raise a flag in shared memory and spin: printing or
	// exiting would need a system call.
	helpers["nosyscall"] = func(mem []byte, args []string) int {
		runtime.LockOSThread()
		m, _ := robustlock.At(mem, 0)
		if m.Lock() != nil || m.Unlock() != nil {
			fmt.Println("first lock failed")
			return 1
		}
		prog := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_RT_SIGRETURN, Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_KILL_PROCESS},
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("no_new_privs:", err)
			return 1
		}
		fmt.Println("ready")
		flag := (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
		// From here until the flag, no system call may happen on this
		// thread. The loop is far shorter than the scheduler's 10 ms
		// preemption tick.
		if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER,
			uintptr(unsafe.Pointer(&fprog))); e != 0 {
			return 1 // cannot print: the parent sees a plain exit
		}
		for i := 0; i < 20000; i++ {
			if m.Lock() != nil || m.Unlock() != nil {
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
// system call forbidden on the thread, 20000 Lock/Unlock pairs complete.
func TestUncontendedMakesNoSyscall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation makes system calls of its own")
	}
	path, mem, _ := shared(t)
	h := startHelper(t, path, "nosyscall")
	h.expect("ready")
	flag := (*uint32)(unsafe.Pointer(&mem[offNoSyscallFlag]))
	exited := make(chan struct{})
	go func() { h.cmd.Wait(); close(exited) }()
	deadline := time.After(watchdog)
	for atomic.LoadUint32(flag) == 0 {
		select {
		case <-exited:
			ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if ws.Signaled() && ws.Signal() == syscall.SIGSYS {
				t.Fatal("uncontended Lock/Unlock made a system call (killed by seccomp)")
			}
			t.Fatalf("helper ended early: %v", h.cmd.ProcessState)
		case <-deadline:
			t.Fatal("helper never finished its loop")
		case <-time.After(time.Millisecond):
		}
	}
	h.kill()
	<-exited
}
