package bench

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

// uncontended measures lock+unlock pairs with no other user, in this
// process, interleaving the contenders within each repetition so that a
// change in the machine's load touches all of them alike.
func (s *suite) uncontended() error {
	fmt.Fprintln(s.log, "uncontended lock+unlock")
	if err := s.fresh(); err != nil {
		return err
	}
	type cand struct {
		name string
		run  func(n int) int64 // ns for n pairs
		n    int
		ns   []float64
	}
	e := &env{sh: s.sh, lockFile: s.lockFile, semID: s.semID, inproc: new(sync.Mutex)}
	var cs []*cand
	for _, c := range contenders {
		ok, why := s.runnable(c.Name)
		if !ok {
			if why != "" {
				s.rep.Uncontended = append(s.rep.Uncontended, uncRow{Contender: c.Name, Unavailable: why})
			}
			continue
		}
		var run func(int) int64
		switch c.Name {
		case cRobust:
			m := s.sh.robust()
			run = func(n int) int64 {
				t := nanotime()
				for range n {
					m.Lock()
					m.Unlock()
				}
				return nanotime() - t
			}
		case cGlibcC:
			p := s.sh.glibc()
			run = func(n int) int64 { return GlibcLoop(p, int64(n)) }
		case cGlibcGo:
			l := cgoLocker{s.sh.glibc()}
			run = func(n int) int64 {
				t := nanotime()
				for range n {
					l.lock()
					l.unlock()
				}
				return nanotime() - t
			}
		case cSync:
			var mu sync.Mutex
			run = func(n int) int64 {
				t := nanotime()
				for range n {
					mu.Lock()
					//lint:ignore SA2001 the empty critical section is what is measured
					mu.Unlock()
				}
				return nanotime() - t
			}
		default:
			l, err := newLocker(c.Name, e)
			if err != nil {
				s.rep.Uncontended = append(s.rep.Uncontended, uncRow{Contender: c.Name, Unavailable: "failed: " + err.Error()})
				continue
			}
			defer l.close()
			run = func(n int) int64 {
				t := nanotime()
				for range n {
					l.lock()
					l.unlock()
				}
				return nanotime() - t
			}
		}
		cs = append(cs, &cand{name: c.Name, run: run})
	}
	// Size each contender's loop to the target time, after a warm-up.
	target := int64(100 * time.Millisecond)
	if s.opt.quick {
		target = int64(2 * time.Millisecond)
	}
	for _, c := range cs {
		c.run(1000)
		ns := max(c.run(1000), 1)
		c.n = int(min(max(target*1000/ns, 100), 50_000_000))
	}
	// Each repetition is chunks short slices per contender, interleaved;
	// its figure is the median slice, so a burst of other work on the
	// machine spoils a slice, not the repetition.
	const chunks = 15
	for rep := 0; rep < s.opt.reps && s.ctx.Err() == nil; rep++ {
		per := make([][]float64, len(cs))
		for range chunks {
			for i, c := range cs {
				n := max(c.n/chunks, 10)
				per[i] = append(per[i], float64(c.run(n))/float64(n))
			}
		}
		for i, c := range cs {
			c.ns = append(c.ns, median(per[i]))
		}
		s.step("uncontended")
	}
	for _, c := range cs {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		c.run(1000)
		runtime.ReadMemStats(&b)
		row := uncRow{Contender: c.name, NsOp: summarize(c.ns), N: c.n,
			AllocsOp: float64(b.Mallocs-a.Mallocs) / 1000}
		s.rep.Uncontended = append(s.rep.Uncontended, row)
		s.progress("%-11s %10s/op  [%s]  %d ops x %d reps", c.name, fmtNs(row.NsOp.Median), spreadNs(row.NsOp), c.n, len(c.ns))
	}
	sort.SliceStable(s.rep.Uncontended, func(i, j int) bool {
		return order(s.rep.Uncontended[i].Contender) < order(s.rep.Uncontended[j].Contender)
	})
	return s.ctx.Err()
}

func order(name string) int {
	for i, c := range contenders {
		if c.Name == name {
			return i
		}
	}
	return len(contenders)
}
