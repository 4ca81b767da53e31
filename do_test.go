//go:build linux

package robustlock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// anonMutex returns an initialised Mutex in a MAP_SHARED anonymous mapping
// that the test's cleanup unmaps.
func anonMutex(t *testing.T) *robustlock.Mutex {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	m, err := robustlock.At(mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Init()
	return m
}

// abandon takes m on a goroutine that then exits holding it: its thread
// ends and the kernel marks m OWNER_DIED, as for a process killed holding
// it. The next lock gets ErrOwnerDied.
func abandon(t *testing.T, m *robustlock.Mutex) {
	t.Helper()
	errc := make(chan error)
	go func() { errc <- m.Lock() }() // returns still locked to its thread, which then ends
	if err := <-errc; err != nil {
		t.Fatalf("abandon: Lock = %v", err)
	}
}

func TestUnlockInconsistentSaysSo(t *testing.T) {
	m := anonMutex(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatalf("plain Unlock = %v, want nil", err)
	}
	abandon(t, m)
	if err := m.Lock(); err != robustlock.ErrOwnerDied {
		t.Fatalf("Lock after the owner died = %v", err)
	}
	err := m.Unlock()
	if err != robustlock.ErrUnlockedInconsistent || !errors.Is(err, robustlock.ErrNotRecoverable) ||
		!errors.Is(err, syscall.ENOTRECOVERABLE) {
		t.Fatalf("Unlock without MarkConsistent = %v, want ErrUnlockedInconsistent (errors.Is ErrNotRecoverable)", err)
	}
	if errors.Is(robustlock.ErrNotRecoverable, robustlock.ErrUnlockedInconsistent) {
		t.Fatal("ErrNotRecoverable must not match the narrower ErrUnlockedInconsistent")
	}
	if s := m.State(); !s.NotRecoverable || s.Owner != 0 {
		t.Fatalf("after Unlock: %v, want free and not recoverable", s)
	}
	if err := m.Lock(); err != robustlock.ErrNotRecoverable {
		t.Fatalf("next Lock = %v, want ErrNotRecoverable", err)
	}
}

func TestDo(t *testing.T) {
	errRepair := errors.New("repair failed")
	t.Run("plain", func(t *testing.T) {
		m := anonMutex(t)
		var got []bool
		survives := threadSurvives(t, func() {
			err := m.Do(context.Background(), func(recovered bool) error {
				got = append(got, recovered)
				if s := m.State(); s.Owner != unix.Gettid() {
					t.Errorf("inside Do: %v, want held by this thread", s)
				}
				return errRepair
			})
			if err != errRepair {
				t.Errorf("Do = %v, want fn's error as is", err)
			}
		})
		if !survives {
			t.Error("Do left the goroutine locked to its thread")
		}
		if len(got) != 1 || got[0] {
			t.Errorf("fn calls: %v, want one with recovered false", got)
		}
		if s := m.State(); s.Owner != 0 || s.Inconsistent || s.NotRecoverable {
			t.Errorf("after Do: %v, want free", s)
		}
	})
	t.Run("recovered", func(t *testing.T) {
		m := anonMutex(t)
		abandon(t, m)
		var got []bool
		for i := 0; i < 2; i++ {
			//lint:ignore SA1012 Do documents what a nil ctx means; this checks it
			err := m.Do(nil, func(recovered bool) error {
				got = append(got, recovered)
				return nil
			})
			if err != nil {
				t.Fatalf("Do %d = %v", i, err)
			}
		}
		if len(got) != 2 || !got[0] || got[1] {
			t.Errorf("recovered: %v, want [true false]", got)
		}
		if s := m.State(); s.Owner != 0 || s.Inconsistent || s.NotRecoverable {
			t.Errorf("after a successful repair: %v, want free and usable", s)
		}
	})
	t.Run("repair fails", func(t *testing.T) {
		m := anonMutex(t)
		abandon(t, m)
		err := m.Do(context.Background(), func(recovered bool) error {
			if !recovered {
				t.Error("recovered is false after an owner death")
			}
			return errRepair
		})
		if !errors.Is(err, errRepair) || !errors.Is(err, robustlock.ErrUnlockedInconsistent) {
			t.Fatalf("Do = %v, want the repair's error and ErrUnlockedInconsistent", err)
		}
		if s := m.State(); !s.NotRecoverable || s.Owner != 0 {
			t.Fatalf("after a failed repair: %v, want free and not recoverable", s)
		}
		called := false
		err = m.Do(context.Background(), func(bool) error { called = true; return nil })
		if err != robustlock.ErrNotRecoverable || called {
			t.Fatalf("next Do = %v (fn called: %v), want ErrNotRecoverable without fn", err, called)
		}
	})
	t.Run("repair marks, work fails", func(t *testing.T) {
		m := anonMutex(t)
		abandon(t, m)
		err := m.Do(context.Background(), func(recovered bool) error {
			if err := m.MarkConsistent(); err != nil {
				t.Errorf("MarkConsistent inside Do = %v", err)
			}
			return errRepair
		})
		if err != errRepair {
			t.Fatalf("Do = %v, want fn's error alone", err)
		}
		if s := m.State(); s.NotRecoverable || s.Owner != 0 {
			t.Fatalf("after Do: %v, want free and usable", s)
		}
	})
	for _, recovered := range []bool{false, true} {
		t.Run(fmt.Sprintf("panic recovered=%v", recovered), func(t *testing.T) {
			m := anonMutex(t)
			if recovered {
				abandon(t, m)
			}
			survives := threadSurvives(t, func() {
				defer func() {
					if p := recover(); p != "boom" {
						t.Errorf("recovered %v, want the panic of fn", p)
					}
				}()
				m.Do(context.Background(), func(bool) error { panic("boom") })
			})
			if !survives {
				t.Error("a panic in Do's fn left the goroutine locked to its thread")
			}
			s := m.State()
			if s.Owner != 0 || s.NotRecoverable != recovered {
				t.Fatalf("after the panic: %v, want free, not recoverable only if it was a repair", s)
			}
		})
	}
	t.Run("context", func(t *testing.T) {
		m := anonMutex(t)
		release, locked := make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Lock()
			close(locked)
			<-release
			m.Unlock()
		}()
		<-locked
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		called := false
		err := m.Do(ctx, func(bool) error { called = true; return nil })
		close(release)
		wg.Wait()
		if err != context.DeadlineExceeded || called {
			t.Fatalf("Do on a held mutex past its deadline = %v (fn called: %v)", err, called)
		}
	})
}

func TestLocker(t *testing.T) {
	// mustPanic runs f and returns what it panicked with.
	mustPanic := func(t *testing.T, f func()) (v error) {
		t.Helper()
		defer func() {
			p := recover()
			if p == nil {
				t.Fatal("no panic")
			}
			v, _ = p.(error)
			if v == nil {
				t.Fatalf("panicked with %v (%T), want an error", p, p)
			}
		}()
		f()
		return nil
	}
	t.Run("plain", func(t *testing.T) {
		m := anonMutex(t)
		var l sync.Locker = m.Locker(nil)
		l.Lock()
		if s := m.State(); s.Owner != unix.Gettid() {
			t.Fatalf("after Locker.Lock: %v", s)
		}
		done := make(chan error)
		go func() {
			defer func() { p, _ := recover().(error); done <- p }()
			l.Unlock()
		}()
		if err := <-done; err != robustlock.ErrNotOwner {
			t.Fatalf("Unlock from another goroutine panicked with %v, want ErrNotOwner", err)
		}
		l.Unlock()
		if err := mustPanic(t, l.Unlock); err != robustlock.ErrNotOwner {
			t.Fatalf("second Unlock panicked with %v", err)
		}
	})
	t.Run("repaired", func(t *testing.T) {
		m := anonMutex(t)
		abandon(t, m)
		repairs := 0
		l := m.Locker(func() error { repairs++; return nil })
		for i := 0; i < 2; i++ {
			l.Lock()
			if s := m.State(); s.Owner != unix.Gettid() || s.Inconsistent {
				t.Errorf("Lock %d: %v, want held by this thread and consistent", i, s)
			}
			l.Unlock()
		}
		if s := m.State(); repairs != 1 || s.Owner != 0 || s.NotRecoverable {
			t.Fatalf("%d repairs, state %v; want 1, free and usable", repairs, s)
		}
	})
	for _, tc := range []struct {
		name   string
		repair func() error
	}{
		{"no repair", nil},
		{"repair fails", func() error { return errors.New("cannot") }},
		{"repair panics", func() error { panic("cannot") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := anonMutex(t)
			abandon(t, m)
			l := m.Locker(tc.repair)
			err := mustPanic(t, l.Lock)
			if !errors.Is(err, robustlock.ErrOwnerDied) || !errors.Is(err, robustlock.ErrUnlockedInconsistent) {
				t.Fatalf("Lock panicked with %v, want ErrOwnerDied and ErrUnlockedInconsistent", err)
			}
			if s := m.State(); s.Owner != 0 || !s.NotRecoverable {
				t.Fatalf("after the panic: %v, want free and not recoverable", s)
			}
			if err := mustPanic(t, l.Lock); err != robustlock.ErrNotRecoverable {
				t.Fatalf("next Lock panicked with %v, want ErrNotRecoverable", err)
			}
		})
	}
}
