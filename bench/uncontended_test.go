package bench

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
)

// sharedPage maps one anonymous MAP_SHARED page, as a segment would be.
func sharedPage(tb testing.TB) []byte {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

// BenchmarkUncontended measures one uncontended lock+unlock pair of
// robustlock and of glibc's robust process-shared pthread mutex run as a C
// loop, interleaved in rounds in this one run, and reports each one's median
// ns/op and their ratio (robustlock / glibc; below 1 means robustlock is
// faster).
func BenchmarkUncontended(b *testing.B) {
	if !HaveGlibc {
		b.Skip("glibc baseline needs cgo")
	}
	mem := sharedPage(b)
	m, err := robustlock.At(mem, 0)
	if err != nil {
		b.Fatal(err)
	}
	m.Init()
	g := unsafe.Pointer(&mem[64])
	if err := GlibcInit(g); err != nil {
		b.Fatal(err)
	}
	const rounds, perRound = 15, 2_000_000
	var ours, theirs []float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < perRound; i++ {
			m.Lock()
			m.Unlock()
		}
		ours = append(ours, float64(time.Since(start).Nanoseconds())/perRound)
		theirs = append(theirs, float64(GlibcLoop(g, perRound))/perRound)
	}
	// b.N iterations of our own, so go test's ns/op is robustlock's.
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Lock()
		m.Unlock()
	}
	b.StopTimer()
	o, t := median(ours), median(theirs)
	b.ReportMetric(o, "robustlock-ns/op")
	b.ReportMetric(t, "glibc-C-ns/op")
	b.ReportMetric(o/t, "ratio")
	b.Logf("uncontended lock+unlock: robustlock %.2f ns, glibc C loop %.2f ns, ratio %.3f (median of %d rounds)",
		o, t, o/t, rounds)
}
