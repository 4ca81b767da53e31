//go:build linux

package futex_test

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
)

// shared returns a word in a MAP_SHARED page, as robust words live.
func shared(t *testing.T) *uint32 {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return (*uint32)(unsafePointer(&mem[0]))
}

func TestWaitOnChangedValueReturnsEAGAIN(t *testing.T) {
	w := shared(t)
	*w = 1
	if err := futex.Wait(w, 2); err != syscall.EAGAIN {
		t.Fatalf("Wait on a changed word = %v, want EAGAIN", err)
	}
}

func TestWaitUntilPastDeadline(t *testing.T) {
	w := shared(t)
	if err := futex.WaitUntil(w, 0, futex.Now()-1); err != syscall.ETIMEDOUT {
		t.Fatalf("WaitUntil with a past deadline = %v, want ETIMEDOUT", err)
	}
	start := time.Now()
	if err := futex.WaitUntil(w, 0, futex.Deadline(time.Now().Add(20*time.Millisecond))); err != syscall.ETIMEDOUT {
		t.Fatalf("WaitUntil = %v, want ETIMEDOUT", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("WaitUntil returned after %v, before its deadline", el)
	}
}

// sleeper waits on w with bits on its own thread until w becomes nonzero.
func sleeper(w *uint32, bits uint32) chan error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for atomic.LoadUint32(w) == 0 {
			if err := futex.WaitBitset(w, 0, bits, 0); err != nil && err != syscall.EINTR && err != syscall.EAGAIN {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// wakeSleeper sets *w and calls wake until it reports one waiter woken or
// the sleeper has ended, failing after a watchdog. between runs before
// each try, while the sleeper is known to be waiting or about to.
func wakeSleeper(t *testing.T, w *uint32, done chan error, between func(), wake func() (int, error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		between()
		atomic.StoreUint32(w, 1)
		n, err := wake()
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		select {
		case err := <-done: // it saw w == 1 before sleeping
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		atomic.StoreUint32(w, 0)
		if time.Now().After(deadline) {
			t.Fatal("the sleeper was never woken")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWakeBitsetWakesOnlyMatchingWaiters(t *testing.T) {
	w := shared(t)
	done := sleeper(w, 1<<3)
	wakeSleeper(t, w, done, func() {
		if n, _ := futex.WakeBitset(w, 1, 1<<4); n != 0 {
			t.Fatalf("a wake for bit 4 woke %d waiter(s) of bit 3", n)
		}
	}, func() (int, error) { return futex.WakeBitset(w, 1, 1<<3) })
}

func TestWakeWakesAnyWaiter(t *testing.T) {
	w := shared(t)
	done := sleeper(w, 1<<7)
	wakeSleeper(t, w, done, func() {}, func() (int, error) { return futex.Wake(w, futex.WakeAll) })
}
