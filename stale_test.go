//go:build linux

package robustlock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
)

func init() {
	// holdtwo: lock the mutex of the shared file, then the one at the
	// start of the file args[0], say "locked" and sleep holding both.
	helpers["holdtwo"] = func(mem []byte, args []string) int {
		other, err := proctest.MapFile(args[0])
		if err != nil {
			fmt.Println("map:", err)
			return 1
		}
		a, _ := robustlock.At(mem, 0)
		b, _ := robustlock.At(other, 0)
		if err := a.Lock(); err != nil {
			fmt.Println("lock a:", err)
			return 1
		}
		if err := b.Lock(); err != nil {
			fmt.Println("lock b:", err)
			return 1
		}
		fmt.Println("locked")
		for {
			time.Sleep(time.Hour)
		}
	}
}

// A process holds locks in two files and the second one is truncated
// under it; when it is killed, the kernel's robust walk faults on the
// truncated entry (the latest, so the first walked) and abandons the rest:
// the first file's lock stays held by a TID that no longer exists. A
// waiter recovers it as owner-died (stale-owner recovery), exactly once.
func TestStaleOwnerAfterTruncatedSegment(t *testing.T) {
	path, _, m := shared(t)
	otherPath, _, other := shared(t)
	other.Init()
	h := startHelper(t, path, "holdtwo", otherPath)
	h.expect("locked")
	if err := os.Truncate(otherPath, 0); err != nil {
		t.Fatal(err)
	}
	h.kill()
	h.wait()
	if st := m.State(); st.OwnerDied || st.Owner == 0 {
		t.Fatalf("after the holder died: %v; want the lock still held by the dead TID (the kernel's walk gave up)", st)
	}
	got := make(chan error, 2)
	for range 2 { // two waiters: exactly one is told the owner died
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), watchdog)
			defer cancel()
			err := m.LockContext(ctx)
			if errors.Is(err, robustlock.ErrOwnerDied) {
				if e := m.MarkConsistent(); e != nil {
					err = e
				}
			}
			if err == nil || errors.Is(err, robustlock.ErrOwnerDied) {
				m.Unlock()
			}
			got <- err
		}()
	}
	died := 0
	for range 2 {
		switch err := <-got; {
		case errors.Is(err, robustlock.ErrOwnerDied):
			died++
		case err == nil:
		default:
			t.Fatalf("waiter: %v (a stale lock was not recovered)", err)
		}
	}
	if died != 1 {
		t.Fatalf("%d waiters were told the owner died, want exactly 1", died)
	}
	if st := m.State(); st.Owner != 0 || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("final state %v", st)
	}
}

// A live holder in another process is never taken by the probe, however
// long waiters sleep: the lock stays its until it dies.
func TestStaleProbeSparesLiveOwner(t *testing.T) {
	path, _, m := shared(t)
	h := startHelper(t, path, "hold")
	h.expect("locked")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond) // several probes
	defer cancel()
	if err := m.LockContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockContext on a lock a live process holds = %v, want DeadlineExceeded", err)
	}
	h.kill()
	if err := m.Lock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("Lock after the holder's death = %v, want ErrOwnerDied", err)
	}
	m.MarkConsistent()
	m.Unlock()
}

// The same, with the waiter asleep before the holder dies: after its first
// probe it watches the holder's exit through a pidfd, which wakes it the
// moment the thread is gone (Linux 6.9+; older kernels rely on the probe).
func TestStaleOwnerFoundByExitWatch(t *testing.T) {
	fd, err := unix.PidfdOpen(unix.Gettid(), unix.PIDFD_THREAD)
	if err != nil {
		t.Skipf("pidfd_open(PIDFD_THREAD): %v: this kernel has no thread pidfds, the probe alone serves", err)
	}
	unix.Close(fd)
	// No probe after the first within the test: only the watch can find
	// the holder gone.
	defer robustlock.SetStaleMax(time.Hour)()
	path, _, m := shared(t)
	otherPath, _, other := shared(t)
	other.Init()
	h := startHelper(t, path, "holdtwo", otherPath)
	h.expect("locked")
	before := robustlock.StaleWakes()
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), watchdog)
		defer cancel()
		got <- m.LockContext(ctx)
	}()
	watches := robustlock.StaleWatches()
	awaitWaiting(t, 1)
	for deadline := time.Now().Add(watchdog); robustlock.StaleWatches() == watches; {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never started watching the holder's exit")
		}
		time.Sleep(time.Millisecond) // the first probe arms it
	}
	if err := os.Truncate(otherPath, 0); err != nil {
		t.Fatal(err)
	}
	h.kill()
	if err := <-got; !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("waiter: %v, want ErrOwnerDied", err)
	}
	if robustlock.StaleWakes() == before {
		t.Fatal("the stale lock was recovered, but not through the holder's exit watch")
	}
	m.MarkConsistent()
	m.Unlock()
}

// ReleaseStale marks a stale lock owner-died as the kernel would have, and
// leaves a live holder's lock alone.
func TestReleaseStale(t *testing.T) {
	path, _, m := shared(t)
	otherPath, _, other := shared(t)
	other.Init()
	h := startHelper(t, path, "holdtwo", otherPath)
	h.expect("locked")
	if ok, err := m.ReleaseStale(); ok || err != nil {
		t.Fatalf("ReleaseStale with a live holder = %v, %v; want false, nil", ok, err)
	}
	if err := os.Truncate(otherPath, 0); err != nil {
		t.Fatal(err)
	}
	h.kill()
	h.wait()
	if ok, err := m.ReleaseStale(); !ok || err != nil {
		t.Fatalf("ReleaseStale of a vanished holder's lock = %v, %v; want true, nil", ok, err)
	}
	if st := m.State(); !st.OwnerDied || st.Owner != 0 {
		t.Fatalf("after ReleaseStale: %v, want owner died and free", st)
	}
	if err := m.TryLock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("TryLock after ReleaseStale = %v, want ErrOwnerDied", err)
	}
	m.MarkConsistent()
	m.Unlock()
	if ok, _ := m.ReleaseStale(); ok {
		t.Fatal("ReleaseStale released a free lock")
	}
}
