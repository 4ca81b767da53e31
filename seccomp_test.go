//go:build linux

package robustlock_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// Offsets in struct seccomp_data: the syscall number, and the low half of
// its second argument (futex's op) on a little-endian machine.
const (
	seccompNr   = 0
	seccompArg1 = 16 + 8
)

// installFilter puts prog on every thread of the process (TSYNC), after
// no_new_privs, so that goroutines on any thread meet it.
func installFilter(prog []unix.SockFilter) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return e
	}
	return nil
}

func init() {
	// nofutexwait: deny shared FUTEX_WAIT and FUTEX_WAIT_BITSET with EPERM
	// (the runtime's own futexes are private and unaffected), then Lock
	// the mutex another process holds and report what Lock returned.
	helpers["nofutexwait"] = func(mem []byte, args []string) int {
		const deny = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		err := installFilter([]unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: seccompNr},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_FUTEX, Jt: 0, Jf: 4},
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: seccompArg1},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: 3},   // FUTEX_WAIT
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 9, Jt: 2},   // FUTEX_WAIT_BITSET
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 265, Jt: 1}, // ... | FUTEX_CLOCK_REALTIME
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
			{Code: unix.BPF_RET | unix.BPF_K, K: deny},
		})
		if err != nil {
			fmt.Println("seccomp:", err)
			return 1
		}
		m, _ := robustlock.At(mem, 0)
		err = m.Lock()
		fmt.Println("result", errors.Is(err, syscall.EPERM), err)
		return 0
	}
	// fakerobust: make set_robust_list return 0 without running it, then
	// Lock a free mutex on a thread that has no list yet.
	helpers["fakerobust"] = func(mem []byte, args []string) int {
		err := installFilter([]unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: seccompNr},
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_SET_ROBUST_LIST, Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO}, // errno 0: "success"
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		})
		if err != nil {
			fmt.Println("seccomp:", err)
			return 1
		}
		m, _ := robustlock.At(mem, 0)
		err = m.Lock()
		fmt.Println("result", errors.Is(err, robustlock.ErrUnsupported), err)
		return 0
	}
}

// With shared futex waits refused by seccomp, a contended Lock returns a
// typed error (errors.Is EPERM) instead of spinning a CPU for ever.
func TestFutexWaitRefused(t *testing.T) {
	path, _, _ := shared(t)
	holder := startHelper(t, path, "hold")
	holder.expect("locked")
	h := startHelper(t, path, "nofutexwait")
	if got := h.next(); !strings.HasPrefix(got, "result true ") {
		t.Fatalf("Lock with FUTEX_WAIT refused: %q, want an error that Is EPERM", got)
	}
}

// With set_robust_list faked to succeed, Lock refuses (ErrUnsupported)
// rather than hand out a lock that is silently not robust.
func TestFakedRobustListRegistration(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race (cgo) glibc registered every thread's list before the filter; it is joined, not set")
	}
	path, _, m := shared(t)
	h := startHelper(t, path, "fakerobust")
	if got := h.next(); !strings.HasPrefix(got, "result true ") {
		t.Fatalf("Lock with set_robust_list faked: %q, want ErrUnsupported", got)
	}
	if st := m.State(); st.Owner != 0 {
		t.Fatalf("the refused Lock left the word held: %v", st)
	}
}
