//go:build linux

package robustlist_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/robustlist"
)

func init() {
	// Keep test goroutines off the main thread, which never exits.
	runtime.LockOSThread()
}

// robustHead returns the calling thread's registered robust list head.
func robustHead(t testing.TB) uintptr {
	var head, n uintptr
	if _, _, e := unix.RawSyscall(unix.SYS_GET_ROBUST_LIST, 0, uintptr(unsafe.Pointer(&head)),
		uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("get_robust_list: %v", e)
	}
	return head
}

func TestTIDMatchesGettidOnManyThreads(t *testing.T) {
	if !robustlist.FastTID() && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") {
		t.Fatal("fast TID did not verify")
	}
	const threads = 64
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(threads)
	errs := make(chan string, threads)
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			ready.Wait() // all locked at once: 64 distinct threads
			for j := 0; j < 100; j++ {
				if got, want := robustlist.TID(), uint32(unix.Gettid()); got != want {
					errs <- fmt.Sprintf("TID() = %d, gettid = %d", got, want)
					return
				}
				runtime.Gosched()
			}
			th, err := robustlist.Current()
			if err != nil {
				errs <- err.Error()
				return
			}
			if th.TID() != uint32(unix.Gettid()) || robustlist.Lookup() != th {
				errs <- fmt.Sprintf("record for tid %d on thread %d", th.TID(), unix.Gettid())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestRegistrationKeepsAnExistingList(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := robustHead(t)
	already := robustlist.Lookup() != nil
	th, err := robustlist.Current()
	if err != nil {
		t.Fatal(err)
	}
	after := robustHead(t)
	switch {
	case already && after != before:
		t.Fatalf("a registered thread's head %#x changed to %#x", before, after)
	case already:
	case before != 0 && after != before:
		t.Fatalf("the thread's robust list head %#x was replaced by %#x", before, after)
	case before != 0 && !th.Joined():
		t.Fatal("a thread with a list of its own was not joined")
	case before == 0 && (after == 0 || th.Joined()):
		t.Fatalf("a thread without a list got none registered (head %#x, joined %v)", after, th.Joined())
	}
	t.Logf("list before %#x after %#x joined %v (cgo %v)", before, after, th.Joined(), cgoBuild)
	if cgoBuild && !th.Joined() {
		t.Fatal("in a cgo binary glibc's list should have been joined")
	}
}

func TestLockOnJoinedOrOwnListIsRobust(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	m, _ := robustlock.At(mem, 0)
	m.Init()
	heads := make(chan [2]uintptr)
	go func() {
		runtime.LockOSThread()
		before := robustHead(t)
		if err := m.Lock(); err != nil {
			panic(err)
		}
		heads <- [2]uintptr{before, robustHead(t)}
		// exit holding it: the thread ends, and with it the lock
	}()
	h := <-heads
	if h[0] != 0 && h[0] != h[1] {
		t.Fatalf("Lock replaced the thread's robust list %#x with %#x", h[0], h[1])
	}
	done := make(chan error)
	go func() {
		err := m.Lock()
		if err == nil || err == robustlock.ErrOwnerDied {
			m.Unlock() // before the mapping goes
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != robustlock.ErrOwnerDied {
			t.Fatalf("after the holder thread died: %v, want ErrOwnerDied", err)
		}

	case <-time.After(time.Minute):
		t.Fatal("the dead thread's lock was never released")
	}
}

// threadOnce runs f on a fresh locked goroutine that exits locked, so its
// thread dies afterwards, and returns f's result.
func threadOnce[T any](f func() T) T {
	ch := make(chan T)
	go func() {
		runtime.LockOSThread()
		ch <- f()
	}()
	return <-ch
}

type reg struct {
	tid  uint32
	regs uint64
	err  error
}

func register() reg {
	th, err := robustlist.Current()
	if err != nil {
		return reg{err: err}
	}
	return reg{tid: th.TID(), regs: th.Registrations()}
}

// TestReusedTIDRegistersAfresh makes a thread die, gets its TID handed to
// a new thread (as root by steering ns_last_pid; otherwise by churning
// through pid_max), and checks that the new thread's record was rebuilt and
// that its locks are robust.
//
// The first thread dies holding a lock whose memory it unmapped: the
// kernel's walk of its list gives up at that entry, and the record must
// still be seen as dead.
func TestReusedTIDRegistersAfresh(t *testing.T) {
	first := threadOnce(func() reg {
		r := register()
		mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
		if err != nil {
			return reg{err: err}
		}
		m, _ := robustlock.At(mem, 0)
		m.Init()
		if err := m.Lock(); err != nil {
			return reg{err: err}
		}
		unix.Munmap(mem) // the misuse segment.Close refuses; here on purpose
		return r
	})
	if first.err != nil {
		t.Fatal(first.err)
	}
	steer := os.Geteuid() == 0
	limit := 300
	if !steer {
		limit = 70000
	}
	deadline := time.Now().Add(40 * time.Second)
	var got reg
	for i := 0; ; i++ {
		if i == limit || time.Now().After(deadline) {
			t.Skipf("TID %d was not reused after %d new threads (pid_max %s, root %v)", first.tid, i, pidMax(), steer)
		}
		if steer {
			os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(first.tid)-1)), 0)
		}
		if got = threadOnce(register); got.err != nil {
			t.Fatal(got.err)
		}
		if got.tid == first.tid {
			break
		}
	}
	if got.regs != first.regs+1 {
		t.Fatalf("reused TID %d: record registered %d times, want %d (the dead thread's record was reused as is)",
			got.tid, got.regs, first.regs+1)
	}
	t.Logf("TID %d reused; record re-registered", got.tid)

	// The thread that reused the TID has a live registration: a lock it
	// abandons by dying is recovered.
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	m, _ := robustlock.At(mem, 0)
	m.Init()
	for i := 0; ; i++ {
		if i == limit {
			t.Skip("TID not reused a second time")
		}
		if steer {
			os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(first.tid)-1)), 0)
		}
		tid := threadOnce(func() uint32 {
			if m.Lock() != nil {
				return 0
			}
			if robustlist.TID() != first.tid {
				m.Unlock()
			}
			return robustlist.TID()
		})
		if tid == first.tid {
			break
		}
	}
	if err := threadOnce(m.Lock); err != robustlock.ErrOwnerDied {
		t.Fatalf("lock abandoned by the thread that reused TID %d: %v, want ErrOwnerDied", first.tid, err)
	}
}

func pidMax() string {
	b, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	return strings.TrimSpace(string(b))
}

func TestPendingIn(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	th, err := robustlist.Current()
	if err != nil {
		t.Fatal(err)
	}
	var entry [8]uintptr
	lo := uintptr(unsafe.Pointer(&entry[0]))
	hi := lo + unsafe.Sizeof(entry)
	if robustlist.PendingIn(lo, hi) {
		t.Fatal("pending before any operation")
	}
	th.SetPending(&entry[4])
	if !robustlist.PendingIn(lo, hi) {
		t.Fatal("pending entry not found")
	}
	if robustlist.PendingIn(hi, hi+64) {
		t.Fatal("pending entry found outside its range")
	}
	th.ClearPending()
	if robustlist.PendingIn(lo, hi) {
		t.Fatal("pending after ClearPending")
	}
}

// TestPendingInIndex: PendingIn reads only an index of live records, which
// it prunes: a thread that pends on an entry and then dies is neither
// reported nor kept, and a live thread's pending entry is found among
// them.
func TestPendingInIndex(t *testing.T) {
	// Not on a goroutine stack, which may move: the kernel reads a dead
	// thread's pending entry.
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	entries := (*[16][8]uintptr)(unsafe.Pointer(&mem[0]))
	lo := uintptr(unsafe.Pointer(&entries[0][0]))
	hi := lo + unsafe.Sizeof(*entries)
	before := robustlist.Indexed()
	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			th, err := robustlist.Current()
			if err != nil {
				t.Error(err)
				return
			}
			th.SetPending(&entries[i][4]) // left set: the kernel finds it at death
		}()
	}
	wg.Wait()
	if got := robustlist.Indexed(); got < before+1 {
		t.Fatalf("index holds %d records after %d threads registered, had %d", got, n, before)
	}
	// The threads end just after their goroutines; PendingIn must stop
	// seeing their pending entries and drop their records.
	deadline := time.Now().Add(time.Minute)
	for robustlist.PendingIn(lo, hi) || robustlist.Indexed() > before {
		if time.Now().After(deadline) {
			t.Fatalf("dead threads still pending or indexed: %d records, %d before", robustlist.Indexed(), before)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	th, err := robustlist.Current()
	if err != nil {
		t.Fatal(err)
	}
	th.SetPending(&entries[3][4])
	defer th.ClearPending()
	if !robustlist.PendingIn(lo, hi) {
		t.Fatal("a live thread's pending entry was not found")
	}
}
