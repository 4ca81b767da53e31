package bench

import (
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"
)

var benchInit sync.Once

// shapeTime is how long testing.Benchmark runs each shape per rep.
func (s *suite) shapeTime() time.Duration {
	if s.opt.quick {
		return 10 * time.Millisecond
	}
	return 200 * time.Millisecond
}

// syncShapes runs SyncShapes with testing.Benchmark, sync.Mutex then
// robustlock within each rep.
func (s *suite) syncShapes() error {
	fmt.Fprintln(s.log, "Go's sync.Mutex benchmark shapes: robustlock beside sync.Mutex")
	benchInit.Do(func() {
		testing.Init()
		flag.CommandLine.Set("test.benchtime", s.shapeTime().String())
	})
	syncL, robustL, free, err := SyncLockers()
	if err != nil {
		return err
	}
	defer free()
	for _, shape := range SyncShapes {
		var sy, rl []float64
		for range s.opt.reps {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			for _, c := range []struct {
				newL func() shapeLocker
				into *[]float64
			}{{syncL, &sy}, {robustL, &rl}} {
				r := testing.Benchmark(func(b *testing.B) { shape.Run(b, c.newL) })
				if r.N == 0 {
					return fmt.Errorf("%s: the benchmark did not run", shape.Name)
				}
				*c.into = append(*c.into, float64(r.T.Nanoseconds())/float64(r.N))
			}
			s.step("sync")
		}
		row := syncRow{Shape: shape.Name, Sync: summarize(sy), Robust: summarize(rl)}
		row.Ratio = row.Robust.Median / row.Sync.Median
		s.rep.Sync = append(s.rep.Sync, row)
		s.progress("%-17s sync.Mutex %s  robustlock %s  ratio %.2fx", shape.Name,
			fmtNs(row.Sync.Median), fmtNs(row.Robust.Median), row.Ratio)
	}
	return nil
}
