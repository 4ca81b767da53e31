//go:build linux

package robustlock_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/internal/robustlist"
)

// word reads the glibc field at byte offset off of the mutex at mem[0:].
func word(mem []byte, off int) uint32 { return *(*uint32)(unsafe.Pointer(&mem[off])) }

func TestLayoutMatchesGlibc(t *testing.T) {
	want := map[string]int{"amd64": 40, "arm64": 48}[runtime.GOARCH]
	if want != 0 && robustlock.Size != want {
		t.Fatalf("Size = %d, want %d", robustlock.Size, want)
	}
	if unsafe.Sizeof(robustlock.Mutex{}) != robustlock.Size {
		t.Fatalf("sizeof Mutex = %d, Size = %d", unsafe.Sizeof(robustlock.Mutex{}), robustlock.Size)
	}
	_, mem, m := shared(t)
	if k := word(mem, 16); k != 144 {
		t.Fatalf("__kind after Init = %d, want 144 (robust | pshared)", k)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	tid := uint32(unix.Gettid())
	if word(mem, 0) != tid || word(mem, 8) != tid || word(mem, 4) != 1 || word(mem, 12) != 1 {
		t.Errorf("held: __lock %#x __count %d __owner %d __nusers %d; want tid %d, 1, tid, 1",
			word(mem, 0), word(mem, 4), word(mem, 8), word(mem, 12), tid)
	}
	next := *(*uintptr)(unsafe.Pointer(&mem[32]))
	prev := *(*uintptr)(unsafe.Pointer(&mem[24]))
	if next == 0 || prev == 0 {
		t.Errorf("held mutex not linked: __prev %#x __next %#x", prev, next)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if word(mem, 0) != 0 || word(mem, 8) != 0 || word(mem, 12) != 0 || *(*uintptr)(unsafe.Pointer(&mem[32])) != 0 {
		t.Errorf("released: __lock %#x __owner %d __nusers %d __next %#x", word(mem, 0), word(mem, 8),
			word(mem, 12), *(*uintptr)(unsafe.Pointer(&mem[32])))
	}
}

func TestAtChecksBoundsAndAlignment(t *testing.T) {
	_, mem, _ := shared(t)
	for _, off := range []int{-8, len(mem) - robustlock.Size + 8, len(mem), 4, 1} {
		if _, err := robustlock.At(mem, off); err == nil {
			t.Errorf("At(mem, %d) accepted", off)
		}
	}
	if _, err := robustlock.At(mem, len(mem)-robustlock.Size); err != nil {
		t.Errorf("At at the last slot: %v", err)
	}
}

func TestErrorsMatchErrno(t *testing.T) {
	for err, errno := range map[error]syscall.Errno{
		robustlock.ErrOwnerDied: syscall.EOWNERDEAD, robustlock.ErrNotRecoverable: syscall.ENOTRECOVERABLE,
		robustlock.ErrNotOwner: syscall.EPERM, robustlock.ErrBusy: syscall.EBUSY,
		robustlock.ErrDeadlock: syscall.EDEADLK, robustlock.ErrKind: syscall.EINVAL,
	} {
		if !errors.Is(err, errno) {
			t.Errorf("%v is not %v", err, errno)
		}
	}
}

func TestFastTIDWithoutSyscall(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("fast TID is implemented for amd64 and arm64")
	}
	if !robustlist.FastTID() {
		t.Fatal("the runtime's TID offsets did not verify; every lock would make a gettid syscall")
	}
}

func TestUncontendedAllocatesNothing(t *testing.T) {
	_, _, m := shared(t)
	allocs := testing.AllocsPerRun(1000, func() {
		if m.Lock() != nil || m.Unlock() != nil {
			panic("lock failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Lock+Unlock allocates %v times", allocs)
	}
}

func TestKindsThisPackageDoesNotRunAreRefused(t *testing.T) {
	_, mem, m := shared(t)
	for _, kind := range []uint32{0, 1, 2, 128, 145, 176, 177, 208} {
		*(*uint32)(unsafe.Pointer(&mem[16])) = kind
		before := bytes.Clone(mem[:robustlock.Size])
		for name, f := range map[string]func() error{"Lock": m.Lock, "TryLock": m.TryLock,
			"LockContext": func() error { return m.LockContext(context.Background()) }} {
			if err := f(); !errors.Is(err, robustlock.ErrKind) {
				t.Errorf("kind %d: %s = %v, want ErrKind", kind, name, err)
			}
		}
		if !bytes.Equal(before, mem[:robustlock.Size]) {
			t.Errorf("kind %d: refused lock changed the mutex", kind)
		}
	}
	for _, kind := range []uint32{16, 144, 146, 147} { // normal, errorcheck, adaptive robust
		*(*uint32)(unsafe.Pointer(&mem[16])) = kind
		if err := m.Lock(); err != nil {
			t.Errorf("kind %d: %v", kind, err)
		} else if err := m.Unlock(); err != nil {
			t.Errorf("kind %d: unlock: %v", kind, err)
		}
	}
}

// onOtherThread runs f on a new goroutine (so, while the caller holds a
// lock, on another thread) and returns its result.
func onOtherThread(f func() error) error {
	ch := make(chan error)
	go func() { ch <- f() }()
	return <-ch
}

func TestUnlockByNonOwnerChangesNothing(t *testing.T) {
	_, mem, m := shared(t)
	if err := m.Unlock(); err != robustlock.ErrNotOwner {
		t.Fatalf("unlock of a free mutex = %v, want ErrNotOwner", err)
	}
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(mem[:robustlock.Size])
	if err := onOtherThread(m.Unlock); err != robustlock.ErrNotOwner {
		t.Fatalf("unlock by another goroutine = %v, want ErrNotOwner", err)
	}
	if err := onOtherThread(m.MarkConsistent); err != robustlock.ErrNotOwner {
		t.Fatalf("MarkConsistent by another goroutine = %v, want ErrNotOwner", err)
	}
	if !bytes.Equal(before, mem[:robustlock.Size]) {
		t.Fatal("a refused unlock changed the mutex")
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); err != robustlock.ErrNotOwner {
		t.Fatalf("second unlock = %v, want ErrNotOwner", err)
	}
}

func TestRelockIsDeadlockNotHang(t *testing.T) {
	_, mem, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(mem[:robustlock.Size])
	if err := m.Lock(); err != robustlock.ErrDeadlock {
		t.Errorf("Lock by holder = %v, want ErrDeadlock", err)
	}
	if err := m.TryLock(); err != robustlock.ErrDeadlock {
		t.Errorf("TryLock by holder = %v, want ErrDeadlock", err)
	}
	if err := m.LockContext(context.Background()); err != robustlock.ErrDeadlock {
		t.Errorf("LockContext by holder = %v, want ErrDeadlock", err)
	}
	if !bytes.Equal(before, mem[:robustlock.Size]) {
		t.Error("relock attempts changed the mutex")
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := onOtherThread(m.TryLock); err != nil {
		t.Fatalf("after unlock another thread cannot take it: %v", err)
	}
}

func TestTryLockBusy(t *testing.T) {
	path, _, m := shared(t)
	h := startHelper(t, path, "hold")
	h.expect("locked")
	if err := m.TryLock(); err != robustlock.ErrBusy {
		t.Fatalf("TryLock on a lock held elsewhere = %v, want ErrBusy", err)
	}
	if robustlock.Busy(unsafe.Slice((*byte)(unsafe.Pointer(m)), robustlock.Size)) {
		t.Fatal("list_op_pending left set after a failed TryLock")
	}
}

func TestNilMutexGivesErrors(t *testing.T) {
	var m *robustlock.Mutex // what a closed segment's Mutex() returns
	for name, f := range map[string]func() error{"Lock": m.Lock, "TryLock": m.TryLock, "Unlock": m.Unlock,
		"MarkConsistent": m.MarkConsistent, "LockContext": func() error { return m.LockContext(context.Background()) }} {
		if err := f(); err != robustlock.ErrNilMutex {
			t.Errorf("%s on a nil Mutex = %v, want ErrNilMutex", name, err)
		}
	}
	m.Init()
	if m.State() != (robustlock.State{}) || m.HeldHere() {
		t.Error("State or HeldHere of a nil Mutex not zero")
	}
}

func TestMarkConsistentOnlyAfterOwnerDied(t *testing.T) {
	_, _, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	defer m.Unlock()
	if err := m.MarkConsistent(); err != robustlock.ErrConsistent {
		t.Fatalf("MarkConsistent on a consistent mutex = %v, want ErrConsistent", err)
	}
}

func TestHolderKilledNextLockerRecovers(t *testing.T) {
	path, _, m := shared(t)
	h := startHelper(t, path, "hold")
	h.expect("locked")
	held := m.State()
	if held.Owner == 0 || held.LastOwner != held.Owner {
		t.Fatalf("held state %+v: want Owner == LastOwner != 0", held)
	}
	h.kill()
	h.wait()
	if s := m.State(); !s.OwnerDied || s.Owner != 0 || s.LastOwner != held.Owner {
		t.Fatalf("after the kill: %+v; want OwnerDied, no Owner, LastOwner %d", s, held.Owner)
	}
	if err := m.Lock(); err != robustlock.ErrOwnerDied {
		t.Fatalf("Lock after holder was killed = %v, want ErrOwnerDied", err)
	}
	if s := m.State(); !s.Inconsistent || s.OwnerDied {
		t.Fatalf("state after takeover: %+v", s)
	}
	if err := m.MarkConsistent(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock after recovery = %v", err)
	}
	m.Unlock()
	if s := m.State(); s.Owner != 0 || s.Inconsistent || s.NotRecoverable || s.Waiters {
		t.Fatalf("final state %+v", s)
	}
}

func TestHolderKilledWhileOthersSleep(t *testing.T) {
	path, _, _ := shared(t)
	holder := startHelper(t, path, "hold")
	holder.expect("locked")
	var waiters []*helper
	var pids []int
	for i := 0; i < 3; i++ {
		w := startHelper(t, path, "lock", "mark")
		w.expect("waiting")
		waiters = append(waiters, w)
		pids = append(pids, w.cmd.Process.Pid)
	}
	proctest.AwaitSleepers(t, 3, pids...)
	holder.kill()
	died := 0
	for _, w := range waiters {
		switch r := w.next(); r {
		case "ownerdied":
			died++
		case "ok":
		default:
			t.Fatalf("waiter said %q", r)
		}
		w.expect("unlocked")
	}
	if died != 1 {
		t.Fatalf("%d waiters were told the owner died, want exactly 1", died)
	}
}

func TestNotRecoverableReachesEveryWaiter(t *testing.T) {
	path, mem, m := shared(t)
	holder := startHelper(t, path, "hold")
	holder.expect("locked")
	var waiters []*helper
	pids := []int{unix.Getpid()}
	for i := 0; i < 2; i++ {
		w := startHelper(t, path, "lock") // no MarkConsistent: unlock makes it unrecoverable
		w.expect("waiting")
		waiters = append(waiters, w)
		pids = append(pids, w.cmd.Process.Pid)
	}
	// In-process waiters unlock (without MarkConsistent) on the goroutine
	// that locked: a goroutine exiting while holding would be one more
	// owner death.
	local := make(chan error, 2)
	report := func(err error) {
		if err == robustlock.ErrOwnerDied {
			m.Unlock()
		}
		local <- err
	}
	go func() { report(m.Lock()) }()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), watchdog)
		defer cancel()
		report(m.LockContext(ctx))
	}()
	// One of the two local waiters sleeps in the kernel (the room's
	// delegate); the other waits as a parked goroutine.
	proctest.AwaitSleepers(t, 3, pids...)
	awaitWaiting(t, 2)
	holder.kill()
	results := map[string]int{}
	for _, w := range waiters {
		r := w.next()
		results[r]++
		if r == "ownerdied" {
			w.expect("unlocked")
		}
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-local:
			if err == robustlock.ErrOwnerDied {
				results["ownerdied"]++
			} else {
				results[err.Error()]++
			}
		case <-time.After(watchdog):
			t.Fatal("an in-process waiter never learned the mutex became unrecoverable")
		}
	}
	if results["ownerdied"] != 1 || results[robustlock.ErrNotRecoverable.Error()] != 3 {
		t.Fatalf("results %v: want one ownerdied and three not recoverable", results)
	}
	before := bytes.Clone(mem[:robustlock.Size])
	if err := m.TryLock(); err != robustlock.ErrNotRecoverable {
		t.Fatalf("TryLock = %v", err)
	}
	if err := m.Lock(); err != robustlock.ErrNotRecoverable {
		t.Fatalf("Lock = %v", err)
	}
	if !bytes.Equal(before, mem[:robustlock.Size]) || m.State().Owner != 0 {
		t.Logf("before % x\nafter  % x", before, mem[:robustlock.Size])
		t.Fatal("a lock attempt on an unrecoverable mutex left it changed or held (glibc 2.36's trylock bug)")
	}
	m.Init()
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock after Init = %v", err)
	}
	m.Unlock()
}

func TestGoroutineExitWhileHoldingIsOwnerDeath(t *testing.T) {
	_, _, m := shared(t)
	done := make(chan error)
	go func() {
		done <- m.Lock()
		// return while holding: the runtime ends this locked thread
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		err := m.Lock()
		if err == robustlock.ErrOwnerDied {
			m.Unlock()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != robustlock.ErrOwnerDied {
			t.Fatalf("Lock after holder goroutine exited = %v, want ErrOwnerDied", err)
		}
	case <-time.After(watchdog):
		t.Fatal("lock held by an exited goroutine was never released by the kernel")
	}
}

func TestUnlockWakesWaiter(t *testing.T) {
	_, _, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error)
	go func() {
		err := m.Lock()
		if err == nil {
			err = m.Unlock()
		}
		got <- err
	}()
	awaitWaiting(t, 1)
	// The holder is a thread of this process: the waiter waits in Go, not
	// in the kernel, and its wake costs the Unlock no system call.
	if n := proctest.SharedFutexSleepers(unix.Getpid()); n != 0 {
		t.Fatalf("%d threads asleep in the kernel for a lock held in this process", n)
	}
	m.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if s := m.State(); s.Owner != 0 || s.Waiters {
		t.Fatalf("final state %+v", s)
	}
}

func TestLockContextCancelAndDeadline(t *testing.T) {
	_, mem, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	// A plain waiter sleeps alongside the ones that give up; it must still
	// be woken by the final unlock.
	plain := make(chan error)
	go func() {
		err := m.Lock()
		if err == nil {
			err = m.Unlock()
		}
		plain <- err
	}()
	awaitWaiting(t, 1)

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error)
	go func() { res <- m.LockContext(ctx) }()
	awaitWaiting(t, 2)
	cancel()
	select {
	case err := <-res:
		if err != context.Canceled {
			t.Fatalf("cancelled LockContext = %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("cancelled LockContext did not return")
	}

	if err := onOtherThread(func() error { return m.LockContext(ctx) }); err != context.Canceled {
		t.Fatalf("LockContext with a done context = %v", err)
	}
	m.Unlock()
	select {
	case err := <-plain:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(watchdog):
		t.Fatal("the plain waiter was never woken: a giving-up waiter lost its wake")
	}

	// Deadline: nobody else waits now, so any pending pointer left set
	// would be the timed-out waiter's.
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	const d = 30 * time.Millisecond
	start := time.Now()
	dctx, dcancel := context.WithTimeout(context.Background(), d)
	defer dcancel()
	if err := onOtherThread(func() error { return m.LockContext(dctx) }); err != context.DeadlineExceeded {
		t.Fatalf("LockContext past its deadline = %v", err)
	}
	if el := time.Since(start); el < d {
		t.Fatalf("LockContext gave up after %v, before its %v deadline", el, d)
	}
	if robustlock.Busy(mem) {
		t.Fatal("list_op_pending left set after a timed-out lock (glibc 2.36's timedlock bug)")
	}
	m.Unlock()
}

// TestGivingUpWaitersNeverStrandOthers races many LockContext waiters with
// tiny timeouts against plain waiters and a holder that hands the lock on;
// every plain waiter must get through.
func TestGivingUpWaitersNeverStrandOthers(t *testing.T) {
	_, _, m := shared(t)
	const plain, rounds = 3, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var quitters sync.WaitGroup
	defer quitters.Wait() // before the mapping goes away
	for i := 0; i < 4; i++ {
		quitters.Add(1)
		go func() {
			defer quitters.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i)*50*time.Microsecond)
				if m.LockContext(ctx) == nil {
					m.Unlock()
				}
				cancel()
			}
		}()
	}
	done := make(chan struct{})
	for i := 0; i < plain; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if err := m.Lock(); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(10 * time.Microsecond)
				m.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(watchdog):
		close(stop)
		t.Fatal("plain waiters stranded")
	}
	close(stop)
}

// TestLockContextFarDeadline: a deadline centuries away must not overflow
// into "already past"; the waiter sleeps until its context is cancelled.
func TestLockContextFarDeadline(t *testing.T) {
	_, _, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	defer m.Unlock()
	for _, d := range []time.Time{time.Unix(1<<40, 0), time.Now().Add(1<<63 - 1)} {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		res := make(chan error)
		go func() { res <- m.LockContext(ctx) }()
		select {
		case err := <-res:
			cancel()
			t.Fatalf("deadline %v: LockContext returned %v at once", d, err)
		case <-time.After(50 * time.Millisecond):
		}
		cancel()
		if err := <-res; err != context.Canceled {
			t.Fatalf("deadline %v: after cancel, LockContext = %v, want context.Canceled", d, err)
		}
	}
}

// TestVetReportsCopies: Mutex's noCopy field makes go vet's copylocks
// check report a copy (testdata/vetcopy makes one).
func TestVetReportsCopies(t *testing.T) {
	gotool, err := exec.LookPath("go") // go test puts its own first in PATH
	if err != nil {
		t.Skip("no go command")
	}
	if exec.Command(gotool, "env", "GOROOT").Run() != nil {
		t.Skip("the go command here cannot vet (a qemu guest's stand-in serves builds only)")
	}
	out, err := exec.Command(gotool, "vet", "./testdata/vetcopy").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("copies lock value")) || !bytes.Contains(out, []byte("robustlock.Mutex")) {
		t.Fatalf("go vet on a copied Mutex: %v\n%s", err, out)
	}
}
