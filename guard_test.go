//go:build linux

package robustlock_test

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
)

// A Guarded Lock on a mutex whose file was truncated under the mapping
// returns ErrFault instead of crashing, and leaves no pin behind.
func TestGuardedLockOnTruncatedFile(t *testing.T) {
	path, _, m := shared(t)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	if !threadSurvives(t, func() { err = m.Guarded().Lock() }) {
		t.Fatal("a faulted Guarded Lock left its goroutine pinned")
	}
	if !errors.Is(err, robustlock.ErrFault) {
		t.Fatalf("Guarded Lock on a truncated file = %v, want ErrFault", err)
	}
	if err := m.Guarded().TryLock(); !errors.Is(err, robustlock.ErrFault) {
		t.Fatalf("Guarded TryLock on a truncated file = %v, want ErrFault", err)
	}
}

// A thread holds two locks, then the file of the later one is truncated;
// its Guarded Unlock reports ErrFault and takes the dead entry off the
// thread's robust list without touching it. The proof: when the thread
// then dies holding the other lock, the kernel's walk reaches that lock
// and marks it OWNER_DIED (a dead entry first in the list would have made
// the walk give up before it).
func TestGuardedUnlockUnlinksFaultedEntry(t *testing.T) {
	_, _, intact := shared(t)
	path, _, doomed := shared(t)
	errs := make(chan error, 3)
	go func() {
		if err := intact.Lock(); err != nil {
			errs <- err
			return
		}
		if err := doomed.Guarded().Lock(); err != nil {
			errs <- err
			return
		}
		if err := os.Truncate(path, 0); err != nil {
			errs <- err
			return
		}
		errs <- doomed.Guarded().Unlock()
		runtime.Goexit() // holding intact: the thread dies, the kernel walks its list
	}()
	if err := <-errs; !errors.Is(err, robustlock.ErrFault) {
		t.Fatalf("Guarded Unlock of a truncated mutex = %v, want ErrFault", err)
	}
	deadline := time.Now().Add(watchdog)
	for !intact.State().OwnerDied {
		if time.Now().After(deadline) {
			t.Fatalf("the dying thread's other lock was not marked owner-died: %v (its list still held the dead entry)", intact.State())
		}
		time.Sleep(time.Millisecond)
	}
}

// Guarded State reports a truncated mutex's fault instead of crashing.
func TestGuardedState(t *testing.T) {
	path, _, m := shared(t)
	if _, err := m.Guarded().State(); err != nil {
		t.Fatalf("Guarded State of an intact mutex: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Guarded().State(); !errors.Is(err, robustlock.ErrFault) {
		t.Fatalf("Guarded State of a truncated mutex = %v, want ErrFault", err)
	}
}
