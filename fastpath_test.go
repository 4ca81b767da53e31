//go:build linux

package robustlock

import (
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/robustlist"
)

// BenchmarkFastPathParts builds the uncontended Lock+Unlock pair up piece
// by piece, in one run, to show where its nanoseconds go: compare each
// sub-benchmark with the one before it (and "full" with bench's glibc C
// loop, BenchmarkUncontended in the bench module).
func BenchmarkFastPathParts(b *testing.B) {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	m, _ := At(mem, 0)
	m.Init()
	c := m.c()
	parts := []struct {
		name string
		pair func()
	}{
		{"cas+swap", func() {
			atomic.CompareAndSwapUint32(&c.lock, 0, 1)
			atomic.SwapUint32(&c.lock, 0)
		}},
		{"+pin", func() {
			runtime.LockOSThread()
			atomic.CompareAndSwapUint32(&c.lock, 0, 1)
			atomic.SwapUint32(&c.lock, 0)
			runtime.UnlockOSThread()
		}},
		{"+record", func() {
			runtime.LockOSThread()
			t := robustlist.LookupFast()
			atomic.CompareAndSwapUint32(&c.lock, 0, t.TID())
			t = robustlist.LookupFast()
			if atomic.LoadUint32(&c.lock)&futex.TIDMask == t.TID() {
				atomic.SwapUint32(&c.lock, 0)
			}
			runtime.UnlockOSThread()
		}},
		{"+pending+list", func() {
			runtime.LockOSThread()
			t := robustlist.LookupFast()
			t.SetPending(m.entry())
			atomic.CompareAndSwapUint32(&c.lock, 0, t.TID())
			t.Took(m.entry())
			t = robustlist.LookupFast()
			if atomic.LoadUint32(&c.lock)&futex.TIDMask == t.TID() {
				t.SetPending(m.entry())
				t.Dequeue(m.entry())
				atomic.SwapUint32(&c.lock, 0)
				t.ClearPending()
			}
			runtime.UnlockOSThread()
		}},
		{"full", func() {
			m.Lock()
			m.Unlock()
		}},
	}
	for _, p := range parts {
		b.Run(p.name, func(b *testing.B) {
			runtime.LockOSThread() // one thread, registered here, for the whole run
			defer runtime.UnlockOSThread()
			if m.Lock() != nil || m.Unlock() != nil {
				b.Fatal("first lock failed")
			}
			for b.Loop() {
				p.pair()
			}
		})
	}
}
