//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/futexlab/robustlock/segment"
)

// BenchmarkLockUnlock runs one uncontended lock+unlock pair of every
// contender, one sub-benchmark each, and reports beside its ns/op the ratio
// to robustlock measured in the same sub-benchmark right after it (above 1:
// robustlock is faster).
func BenchmarkLockUnlock(b *testing.B) {
	dir := b.TempDir()
	sh, err := createShared(filepath.Join(dir, "shared"))
	if err != nil {
		b.Fatal(err)
	}
	defer sh.close()
	if err := sh.reset(); err != nil {
		b.Fatal(err)
	}
	lockFile := filepath.Join(dir, "lock")
	if err := createLockFile(lockFile); err != nil {
		b.Fatal(err)
	}
	semID, semErr := newSem()
	if semErr == nil {
		defer removeSem(semID)
	}
	e := &env{sh: sh, lockFile: lockFile, semID: semID, inproc: new(sync.Mutex)}
	m := sh.robust()
	robust := func(n int) float64 {
		t := nanotime()
		for range n {
			m.Lock()
			m.Unlock()
		}
		return float64(nanotime()-t) / float64(n)
	}
	for _, c := range contenders {
		b.Run(c.Name, func(b *testing.B) {
			if why := c.unavailable(); why != "" {
				b.Skip(why)
			}
			if c.Name == cSysV && semErr != nil {
				b.Skip(semErr)
			}
			var l locker
			if c.Name != cGlibcC {
				if l, err = newLocker(c.Name, e); err != nil {
					b.Fatal(err)
				}
				defer l.close()
			}
			b.ReportAllocs()
			b.ResetTimer()
			switch c.Name {
			case cRobust:
				for range b.N {
					m.Lock()
					m.Unlock()
				}
			case cGlibcC:
				GlibcLoop(sh.glibc(), int64(b.N))
			default:
				for range b.N {
					l.lock()
					l.unlock()
				}
			}
			b.StopTimer()
			n := min(max(b.N, 1000), 2_000_000)
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/robust(n), "x-robustlock")
		})
	}
}

// tmpfsDir is a temporary directory in /dev/shm, where segments normally
// live, falling back to the test's temporary directory.
func tmpfsDir(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "robustlock-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkSegmentOpen is segment.Open of an existing segment, then Close.
func BenchmarkSegmentOpen(b *testing.B) {
	dir := tmpfsDir(b)
	s, err := segment.Open("bench", segment.Size(4096), segment.Dir(dir))
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.ReportAllocs()
	for b.Loop() {
		s, err := segment.Open("bench", segment.Dir(dir))
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkSegmentCreate is segment.Open creating and publishing a new
// segment; Close and Remove are outside the timer.
func BenchmarkSegmentCreate(b *testing.B) {
	dir := tmpfsDir(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench-%d", i)
		s, err := segment.Open(name, segment.Size(4096), segment.CreateOnly(), segment.Dir(dir))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		if err := segment.Remove(name, segment.Dir(dir)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
