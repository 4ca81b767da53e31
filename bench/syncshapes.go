package bench

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// Go's own sync.Mutex benchmarks (the shapes of sync/mutex_test.go), run on
// robustlock.Mutex and on sync.Mutex in the same process, one after the
// other, so that their ratio says how far in-process contention is from
// the runtime's own lock.

// shapeLocker is what the shapes need of a lock.
type shapeLocker interface {
	Lock()
	Unlock()
}

// robustShapeLocker adapts a robustlock.Mutex in shared memory. Errors cannot
// happen here (nobody dies), so they are dropped.
type robustShapeLocker struct{ m *robustlock.Mutex }

func (l robustShapeLocker) Lock()   { l.m.Lock() }
func (l robustShapeLocker) Unlock() { l.m.Unlock() }

// syncRow is one of Go's sync.Mutex benchmark shapes, run on sync.Mutex and
// on robustlock in this process, interleaved rep by rep.
type syncRow struct {
	Shape  string  `json:"shape"`
	Sync   summary `json:"sync_ns_per_op"`
	Robust summary `json:"robustlock_ns_per_op"`
	Ratio  float64 `json:"ratio"` // robustlock ÷ sync.Mutex, medians
}

// SyncShape is one of sync's benchmark shapes.
type SyncShape struct {
	Name string
	Run  func(b *testing.B, newLocker func() shapeLocker)
}

// SyncShapes are BenchmarkMutexUncontended, Mutex, MutexSlack, MutexWork,
// MutexWorkSlack, MutexNoSpin and MutexSpin, as in sync/mutex_test.go.
var SyncShapes = []SyncShape{
	{"MutexUncontended", func(b *testing.B, newL func() shapeLocker) {
		b.RunParallel(func(pb *testing.PB) {
			mu := newL()
			for pb.Next() {
				mu.Lock()
				//lint:ignore SA2001 an empty critical section is the shape sync's benchmark measures
				mu.Unlock()
			}
		})
	}},
	{"Mutex", func(b *testing.B, newL func() shapeLocker) { mutexShape(b, newL(), false, false) }},
	{"MutexSlack", func(b *testing.B, newL func() shapeLocker) { mutexShape(b, newL(), true, false) }},
	{"MutexWork", func(b *testing.B, newL func() shapeLocker) { mutexShape(b, newL(), false, true) }},
	{"MutexWorkSlack", func(b *testing.B, newL func() shapeLocker) { mutexShape(b, newL(), true, true) }},
	{"MutexNoSpin", func(b *testing.B, newL func() shapeLocker) {
		// Spinning should not pay: many goroutines, most doing local
		// work and yielding.
		m := newL()
		var acc0, acc1 uint64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			c := make(chan bool)
			var data [4 << 10]uint64
			for i := 0; pb.Next(); i++ {
				if i%4 == 0 {
					m.Lock()
					acc0 -= 100
					acc1 += 100
					m.Unlock()
				} else {
					for i := 0; i < len(data); i += 4 {
						data[i]++
					}
					go func() { c <- true }()
					<-c
				}
			}
		})
		_, _ = acc0, acc1
	}},
	{"MutexSpin", func(b *testing.B, newL func() shapeLocker) {
		// Spinning should pay: a goroutine per P, each with enough local
		// data that needless rescheduling costs cache misses.
		m := newL()
		var acc0, acc1 uint64
		b.RunParallel(func(pb *testing.PB) {
			var data [16 << 10]uint64
			for i := 0; pb.Next(); i++ {
				m.Lock()
				acc0 -= 100
				acc1 += 100
				m.Unlock()
				for i := 0; i < len(data); i += 4 {
					data[i]++
				}
			}
		})
		_, _ = acc0, acc1
	}},
}

func mutexShape(b *testing.B, m shapeLocker, slack, work bool) {
	if slack {
		b.SetParallelism(10)
	}
	b.RunParallel(func(pb *testing.PB) {
		foo := 0
		for pb.Next() {
			m.Lock()
			//lint:ignore SA2001 an empty critical section is the shape sync's benchmark measures
			m.Unlock()
			if work {
				for i := 0; i < 100; i++ {
					foo *= 2
					foo /= 2
				}
			}
		}
		_ = foo
	})
}

// SyncLockers returns the two contenders of the shapes: "sync" makes a
// fresh sync.Mutex, "robustlock" a fresh robustlock.Mutex in an anonymous
// MAP_SHARED mapping (as a segment would hold it). free unmaps them.
func SyncLockers() (sync_, robust func() shapeLocker, free func(), err error) {
	const slots = 256 // MutexUncontended makes one per goroutine
	mem, err := unix.Mmap(-1, 0, slots*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, nil, err
	}
	var mu sync.Mutex
	next := 0
	robust = func() shapeLocker {
		mu.Lock()
		defer mu.Unlock()
		m, err := robustlock.At(mem, (next%slots)*64) // a cache line each
		if err != nil {
			panic(fmt.Sprintf("bench: %v", err)) // cannot happen: in bounds, aligned
		}
		next++
		m.Init()
		return robustShapeLocker{m}
	}
	sync_ = func() shapeLocker { return new(sync.Mutex) }
	return sync_, robust, func() { unix.Munmap(mem) }, nil
}
