//go:build linux

package segment

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
)

// abandonLock takes m on a goroutine that exits holding it: its thread
// ends and the kernel marks m OWNER_DIED.
func abandonLock(t *testing.T, m *robustlock.Mutex) {
	t.Helper()
	errc := make(chan error)
	go func() { errc <- m.Lock() }()
	if err := <-errc; err != nil {
		t.Fatalf("Lock = %v", err)
	}
}

// TestDoRepairs: a process holding the segment's lock is SIGKILLed; Do,
// in this process, runs the Repair option once, marks the lock consistent
// and runs fn; later Do calls run fn alone.
func TestDoRepairs(t *testing.T) {
	dir := t.TempDir()
	var repaired []string
	repair := func(d []byte) error {
		repaired = append(repaired, string(d[:4]))
		copy(d, "good")
		return nil
	}
	s := mustOpen(t, "do", Dir(dir), Size(8), Init(func(d []byte) error { copy(d, "good"); return nil }), Repair(repair))
	defer s.Close()
	k := spawn(t, "hold", "SEG_DIR="+dir, "SEG_NAME=do", "SEG_MUTEX=0")
	if line := k.NextBefore(deadlineIn()); !strings.HasPrefix(line, "locked ") {
		t.Fatalf("helper: %q", line)
	}
	copy(s.Data(), "half") // what the holder was writing when it died
	k.Kill()
	var seen []string
	for i := 0; i < 2; i++ {
		if err := s.Do(context.Background(), func(d []byte) error {
			seen = append(seen, string(d[:4]))
			return nil
		}); err != nil {
			t.Fatalf("Do %d: %v", i, err)
		}
	}
	if len(repaired) != 1 || repaired[0] != "half" || len(seen) != 2 || seen[0] != "good" || seen[1] != "good" {
		t.Fatalf("repair saw %q, fn saw %q; want one repair of \"half\", then \"good\" twice", repaired, seen)
	}
	if st := s.Mutex().State(); st.Owner != 0 || st.Inconsistent || st.NotRecoverable {
		t.Fatalf("after Do: %v", st)
	}
}

func TestDoErrors(t *testing.T) {
	dir := t.TempDir()
	errFn := errors.New("fn failed")
	t.Run("fn error", func(t *testing.T) {
		s := mustOpen(t, "fnerr", Dir(dir), Size(8), Repair(func([]byte) error { return nil }))
		defer s.Close()
		if err := s.Do(context.Background(), func([]byte) error { return errFn }); err != errFn {
			t.Fatalf("Do = %v, want fn's error as is", err)
		}
		abandonLock(t, s.Mutex())
		if err := s.Do(context.Background(), func([]byte) error { return errFn }); err != errFn {
			t.Fatalf("Do after a death = %v, want fn's error as is", err)
		}
		if st := s.Mutex().State(); st.NotRecoverable || st.Owner != 0 {
			t.Fatalf("fn's error after a good repair left %v; want free and usable", st)
		}
	})
	t.Run("repair fails", func(t *testing.T) {
		errRepair := errors.New("cannot repair")
		s := mustOpen(t, "repairerr", Dir(dir), Size(8), Repair(func([]byte) error { return errRepair }))
		defer s.Close()
		abandonLock(t, s.Mutex())
		called := false
		err := s.Do(context.Background(), func([]byte) error { called = true; return nil })
		var se *Error
		if !errors.Is(err, ErrRepair) || !errors.Is(err, errRepair) || !errors.Is(err, robustlock.ErrUnlockedInconsistent) ||
			!errors.As(err, &se) || called {
			t.Fatalf("Do = %v (fn called: %v); want ErrRepair wrapping the cause, ErrUnlockedInconsistent, fn not called", err, called)
		}
		if st := s.Mutex().State(); !st.NotRecoverable || st.Owner != 0 {
			t.Fatalf("after a failed repair: %v, want free and not recoverable", st)
		}
		err = s.Do(context.Background(), func([]byte) error { called = true; return nil })
		if !errors.Is(err, robustlock.ErrNotRecoverable) || !errors.As(err, &se) || se.Op != "lock" || called {
			t.Fatalf("next Do = %v, want a lock *Error wrapping ErrNotRecoverable", err)
		}
	})
	t.Run("no repair", func(t *testing.T) {
		s := mustOpen(t, "norepair", Dir(dir), Size(8))
		defer s.Close()
		called := false
		if err := s.Do(context.Background(), func([]byte) error { called = true; return nil }); !errors.Is(err, ErrNoRepair) || called {
			t.Fatalf("Do without Repair = %v (fn called: %v), want ErrNoRepair", err, called)
		}
		if st := s.Mutex().State(); st.Owner != 0 {
			t.Fatalf("Do without Repair locked: %v", st)
		}
	})
	t.Run("nil repair", func(t *testing.T) {
		if _, err := Open("nilrepair", Dir(dir), Size(8), Repair(nil)); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("Open with Repair(nil) = %v, want ErrInvalidOption", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		s := mustOpen(t, "closed", Dir(dir), Size(8), Repair(func([]byte) error { return nil }))
		s.Close()
		if err := s.Do(context.Background(), func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("Do after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		s := mustOpen(t, "deadline", Dir(dir), Size(8), Repair(func([]byte) error { return nil }))
		defer s.Close()
		locked, release := make(chan struct{}), make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Mutex().Lock()
			close(locked)
			<-release
			s.Mutex().Unlock()
		}()
		<-locked
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		err := s.Do(ctx, func([]byte) error { return nil })
		close(release)
		<-done
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do on a held lock = %v, want DeadlineExceeded", err)
		}
	})
}

func init() {
	// Keep the main goroutine on the main thread for good, so no test
	// goroutine runs there: a goroutine that exits holding a lock must end
	// its thread, which the main thread never does (see package robustlock).
	runtime.LockOSThread()
}
