//go:build linux

package robustlock_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// threadSurvives runs f on a fresh goroutine and reports whether that
// goroutine's thread still exists after the goroutine has returned. Go
// keeps idle threads, but ends a thread whose goroutine exits while locked
// to it: a call that leaks a LockOSThread shows as a thread that dies.
func threadSurvives(t *testing.T, f func()) bool {
	t.Helper()
	tids := make(chan int)
	go func() {
		runtime.LockOSThread() // so that f runs, and we report, on one thread
		tid := unix.Gettid()
		f()
		runtime.UnlockOSThread()
		tids <- tid
	}()
	tid := <-tids
	path := fmt.Sprintf("/proc/self/task/%d", tid)
	for i := 0; i < 50; i++ { // a leaked pin ends the thread within moments
		if _, err := os.Stat(path); err != nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// TestFailedLocksLeaveNoPin checks every way an acquire can fail without
// taking the lock: none may leave the goroutine locked to its thread.
func TestFailedLocksLeaveNoPin(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	held, _ := robustlock.At(mem, 0)
	held.Init()
	unrec, _ := robustlock.At(mem, 64)
	unrec.Init()
	bad, _ := robustlock.At(mem, 128) // never initialised: ErrKind

	// Hold one mutex on a parked goroutine; make another unrecoverable.
	release, locked, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		held.Lock()
		close(locked)
		<-release
		held.Unlock()
		close(released)
	}()
	<-locked
	defer func() { close(release); <-released }() // before the unmap
	makeUnrecoverable(t, unrec)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := map[string]func() error{
		"TryLock busy":          held.TryLock,
		"LockContext timeout":   func() error { return timeout(held, time.Millisecond) },
		"LockContext cancelled": func() error { return held.LockContext(cancelled) },
		"Lock not recoverable":  unrec.Lock,
		"TryLock not recov.":    unrec.TryLock,
		"Lock wrong kind":       bad.Lock,
	}
	for name, f := range cases {
		var got error
		if !threadSurvives(t, func() { got = f() }) {
			t.Errorf("%s (%v) left the goroutine locked to its thread", name, got)
		}
		if got == nil || got == robustlock.ErrOwnerDied {
			t.Errorf("%s took the lock: %v", name, got)
		}
	}
	// Relock by the holder: ErrDeadlock must undo only its own pin.
	if !threadSurvives(t, func() {
		m, _ := robustlock.At(mem, 192)
		m.Init()
		m.Lock()
		if err := m.Lock(); err != robustlock.ErrDeadlock {
			t.Errorf("relock: %v", err)
		}
		m.Unlock()
	}) {
		t.Error("Lock returning ErrDeadlock left an extra pin")
	}
	// And the control: a goroutine that really keeps a lock does lose its
	// thread, so the check above can fail.
	if threadSurvives(t, func() {
		m, _ := robustlock.At(mem, 256)
		m.Init()
		m.Lock()
	}) {
		t.Error("a goroutine that exited holding a lock kept its thread: the pin check sees nothing")
	}
}

func timeout(m *robustlock.Mutex, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return m.LockContext(ctx)
}

// makeUnrecoverable takes m, abandons it on an exiting goroutine, recovers
// it and unlocks without MarkConsistent.
func makeUnrecoverable(t *testing.T, m *robustlock.Mutex) {
	t.Helper()
	done := make(chan struct{})
	go func() { m.Lock(); close(done) }() // exits holding: the thread ends
	<-done
	errc := make(chan error)
	go func() {
		err := m.Lock()
		if err == robustlock.ErrOwnerDied {
			m.Unlock()
		}
		errc <- err
	}()
	if err := <-errc; err != robustlock.ErrOwnerDied {
		t.Fatalf("recovering an abandoned lock: %v", err)
	}
	if !m.State().NotRecoverable {
		t.Fatal("mutex did not become not recoverable")
	}
}
