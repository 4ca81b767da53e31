//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"

	"github.com/futexlab/robustlock/internal/proctest"
)

// onGoroutine runs f on a new goroutine (so on another thread than a
// goroutine that holds a lock) and returns its result.
func onGoroutine(f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(watchdog):
		return errors.New("hung")
	}
}

// holder is a goroutine that holds a lock until told what to do next.
type holder struct {
	do   chan func() error
	done chan error
}

func hold(m *robustlock.Mutex) (*holder, error) {
	h := &holder{do: make(chan func() error), done: make(chan error)}
	got := make(chan error)
	go func() {
		err := m.Lock()
		got <- err
		if err != nil {
			return
		}
		for f := range h.do {
			h.done <- f()
		}
	}()
	return h, <-got
}

// run runs f on the holding goroutine.
func (h *holder) run(f func() error) error { h.do <- f; return <-h.done }

// TestMisuseMutex: every wrong call on a Mutex gets its typed error (each
// errors.Is its errno), changes no byte of the mutex, and neither hangs
// nor crashes; the rightful owner can go on afterwards.
func TestMisuseMutex(t *testing.T) {
	f := rawFixture(t)
	f.m.Init()
	m := f.m
	unchanged := func(what string, before []byte) {
		t.Helper()
		if !bytes.Equal(before, f.mem) {
			t.Errorf("%s changed the mutex:\n  % x\n  % x", what, before, f.mem)
		}
	}
	is := func(what string, err, want error, errno syscall.Errno) {
		t.Helper()
		if !errors.Is(err, want) || !errors.Is(err, errno) {
			t.Errorf("%s: %v, want %v (errors.Is %v)", what, err, want, errno)
		}
	}

	b := bytes.Clone(f.mem)
	is("Unlock of a free mutex", m.Unlock(), robustlock.ErrNotOwner, syscall.EPERM)
	is("MarkConsistent of a free mutex", m.MarkConsistent(), robustlock.ErrNotOwner, syscall.EPERM)
	unchanged("misuse of a free mutex", b)

	h, err := hold(m)
	if err != nil {
		t.Fatal(err)
	}
	// A waiter that gives up leaves WAITERS set (it may have consumed a
	// wake-up meant for others): the snapshot is taken after it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if err := onGoroutine(func() error { return m.LockContext(ctx) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockContext from another goroutine: %v", err)
	}
	cancel()
	b = bytes.Clone(f.mem)
	is("Unlock from another goroutine", onGoroutine(m.Unlock), robustlock.ErrNotOwner, syscall.EPERM)
	is("MarkConsistent from another goroutine", onGoroutine(m.MarkConsistent), robustlock.ErrNotOwner, syscall.EPERM)
	is("TryLock from another goroutine", onGoroutine(m.TryLock), robustlock.ErrBusy, syscall.EBUSY)
	is("Lock again by the holder", h.run(m.Lock), robustlock.ErrDeadlock, syscall.EDEADLK)
	is("TryLock again by the holder", h.run(m.TryLock), robustlock.ErrDeadlock, syscall.EDEADLK)
	is("LockContext again by the holder", h.run(func() error { return m.LockContext(context.Background()) }),
		robustlock.ErrDeadlock, syscall.EDEADLK)
	is("MarkConsistent of a consistent mutex", h.run(m.MarkConsistent), robustlock.ErrConsistent, syscall.EINVAL)
	// Another process, Go or C, unlocking a lock this process holds.
	for _, kind := range []string{"go", "c"} {
		if kind == "c" && !haveGCC() {
			continue
		}
		p := startPeer(t, kind, f.tgt)
		p.Must("unlock", "EPERM")
		p.Must("trylock", "EBUSY")
		p.Quit("exit")
	}
	unchanged("misuse while held", b)
	if err := h.run(m.Unlock); err != nil {
		t.Fatalf("the holder's Unlock after all that: %v", err)
	}
	b = bytes.Clone(f.mem)
	is("second Unlock", h.run(m.Unlock), robustlock.ErrNotOwner, syscall.EPERM)
	unchanged("second Unlock", b)
	close(h.do)

	// The holder's goroutine is gone, holding: the others get ErrNotOwner
	// from Unlock and ErrOwnerDied from Lock.
	died := make(chan error)
	go func() { died <- m.Lock() }() // ends holding
	if err := <-died; err != nil {
		t.Fatal(err)
	}
	waitOwnerDied(t, m)
	is("Unlock of a dead goroutine's lock", onGoroutine(m.Unlock), robustlock.ErrNotOwner, syscall.EPERM)
	if err := onGoroutine(func() error {
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) {
			m.MarkConsistent()
			return m.Unlock()
		}
		return fmt.Errorf("Lock after the holder's goroutine ended: %v", err)
	}); err != nil {
		t.Fatal(err)
	}

	// Memory that was never initialised, or initialised as something else.
	z := rawFixture(t)
	b = bytes.Clone(z.mem)
	is("Lock of zeroed memory", onGoroutine(z.m.Lock), robustlock.ErrKind, syscall.EINVAL)
	is("TryLock of zeroed memory", onGoroutine(z.m.TryLock), robustlock.ErrKind, syscall.EINVAL)
	if !bytes.Equal(b, z.mem) {
		t.Errorf("a refused lock wrote to zeroed memory")
	}

	// At refuses views that are out of range or misaligned.
	mem := make([]byte, 256)
	for _, off := range []int{-8, 1, 4, 250, 256, 1 << 40} {
		if _, err := robustlock.At(mem, off); err == nil && (off < 0 || off%8 != 0 || off+robustlock.Size > len(mem)) {
			t.Errorf("At(mem[%d], %d) accepted a bad view", len(mem), off)
		}
	}
	if _, err := robustlock.At(nil, 0); err == nil {
		t.Errorf("At(nil, 0) accepted")
	}
}

func haveGCC() bool {
	_, err := exec.LookPath("gcc")
	return err == nil
}

func waitOwnerDied(t *testing.T, m *robustlock.Mutex) {
	t.Helper()
	for deadline := time.Now().Add(watchdog); !m.State().OwnerDied; {
		if time.Now().After(deadline) {
			t.Fatalf("the lock of a goroutine that ended holding it was never marked: %v", m.State())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMisuseSegment: Close while a mutex is held or being waited for is
// refused with ErrInUse and unmaps nothing; after Close, every accessor
// says so (ErrClosed, nil) instead of touching unmapped memory.
func TestMisuseSegment(t *testing.T) {
	dir := t.TempDir()
	seg, err := segment.Open("m", segment.Dir(dir), segment.Size(64), segment.Mutexes(2))
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := seg.MutexN(2)
	h, err := hold(m2)
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"holder", "another goroutine"} {
		var err error
		if who == "holder" {
			err = h.run(seg.Close)
		} else {
			err = onGoroutine(seg.Close)
		}
		if !errors.Is(err, segment.ErrInUse) {
			t.Fatalf("Close by the %s while mutex 2 is held: %v, want ErrInUse", who, err)
		}
	}
	seg.Data()[0] = 1 // still mapped
	if err := h.run(m2.Unlock); err != nil {
		t.Fatal(err)
	}
	close(h.do)

	// A goroutine asleep in Lock (the lock held by another process) also
	// keeps the segment from being closed.
	p := startPeer(t, "go", target{"seg", filepath.Join(dir, "m"), "0"})
	p.Must("lock", "ok")
	waiter := localLock(seg.Mutex(), false)
	proctest.AwaitSleepers(t, 1, os.Getpid())
	if err := seg.Close(); !errors.Is(err, segment.ErrInUse) {
		t.Fatalf("Close while a goroutine waits in Lock: %v, want ErrInUse", err)
	}
	p.Must("unlock", "ok")
	if err := result(t, waiter); err != nil {
		t.Fatal(err)
	}

	if err := seg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := seg.Close(); !errors.Is(err, segment.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if _, err := seg.MutexN(0); !errors.Is(err, segment.ErrClosed) {
		t.Errorf("MutexN after Close: %v, want ErrClosed", err)
	}
	if seg.Data() != nil || seg.Mutex() != nil {
		t.Errorf("Data or Mutex after Close is not nil")
	}
	if h := seg.Header(); h.DataSize != 64 || seg.NumMutexes() != 3 || seg.String() == "" {
		t.Errorf("Header after Close: %+v", h)
	}

	// The natural mistake: seg.Mutex().Lock() after Close.
	t.Run("Mutex-after-Close", func(t *testing.T) {
		var panicked any
		err := onGoroutine(func() (err error) {
			defer func() { panicked = recover() }()
			return seg.Mutex().Lock()
		})
		if panicked != nil {
			t.Fatalf("Lock through seg.Mutex() after Close panicked: %v", panicked)
		}
		if !errors.Is(err, robustlock.ErrNilMutex) {
			t.Fatalf("Lock through seg.Mutex() after Close: %v, want ErrNilMutex", err)
		}
	})
}
