package bench

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// series is one line of the contended charts.
type series struct {
	name      string
	contender string
	g         int // goroutines per process; 0: one process of x goroutines
}

func (s *suite) seriesList() []series {
	ss := []series{
		{cRobust, cRobust, 1},
		{cGlibcC, cGlibcC, 1},
		{cGlibcGo, cGlibcGo, 1},
		{cFlock, cFlock, 1},
		{cOFD, cOFD, 1},
		{cSysV, cSysV, 1},
	}
	if s.opt.goroutines > 1 {
		ss = append(ss, series{fmt.Sprintf("robustlock ×%dg", s.opt.goroutines), cRobust, s.opt.goroutines})
	}
	return append(ss, series{"robustlock 1 proc", cRobust, 0}, series{"sync.Mutex 1 proc", cSync, 0})
}

type runStats struct {
	throughput, p50, p99, max float64
	rounds                    int64
	window                    int64
}

// contendRun is one run: procs processes of g goroutines, k rounds each.
func (s *suite) contendRun(contender string, procs, g, k int, cs int64) (runStats, error) {
	var st runStats
	if err := s.fresh(); err != nil {
		return st, err
	}
	specs := make([]workerSpec, procs)
	for i := range specs {
		specs[i] = workerSpec{Mode: modeContend, Contender: contender, ID: i, G: g, K: k, CS: cs}
	}
	res, err := s.runBarrier(specs)
	s.step("contended")
	if err != nil {
		return st, err
	}
	h := newHist()
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for _, r := range res {
		if r.Hist == nil {
			return st, errors.New("worker sent no latencies")
		}
		h.merge(r.Hist)
		first, last = min(first, r.Start), max(last, r.End)
	}
	want := uint64(procs * g * k)
	if got := atomic.LoadUint64(s.sh.counter()); got != want || h.N != int64(want) {
		return st, fmt.Errorf("%s: %d critical sections counted, %d rounds reported, %d expected: mutual exclusion failed",
			contender, got, h.N, want)
	}
	st.rounds, st.window = h.N, max(last-first, 1)
	st.throughput = float64(h.N) / (float64(st.window) / 1e9)
	st.p50, st.p99, st.max = h.quantile(0.5), h.quantile(0.99), float64(h.Max)
	return st, nil
}

func (s *suite) contended() error {
	fmt.Fprintln(s.log, "contended: processes x goroutines on one lock")
	for _, cs := range s.opt.cs {
		for _, x := range s.opt.procs {
			if x < 1 {
				continue
			}
			for _, se := range s.seriesList() {
				if err := s.ctx.Err(); err != nil {
					return err
				}
				procs, g := x, se.g
				if g == 0 {
					procs, g = 1, x
				}
				row := conRow{Series: se.name, Contender: se.contender, Procs: procs, G: g, X: x, CS: cs}
				ok, why := s.runnable(se.contender)
				if !ok {
					if why != "" {
						row.Unavailable = why
						s.rep.Contended = append(s.rep.Contended, row)
					}
					continue
				}
				c, _ := contenderByName(se.contender)
				if err := s.contendSeries(&row, c); err != nil {
					return fmt.Errorf("%s %d×%d cs=%d: %w", se.name, procs, g, cs, err)
				}
				s.rep.Contended = append(s.rep.Contended, row)
			}
		}
	}
	return nil
}

// contendSeries measures one row: a pilot run sizes K so that a run takes
// about -run, then -reps runs with fresh processes each.
func (s *suite) contendSeries(row *conRow, c contender) error {
	budget := 20000
	if c.Syscalls {
		budget = 2000
	}
	n := row.Procs * row.G
	k := max(budget/n, 50)
	if s.opt.quick {
		k = max(budget/10/n, 10)
	}
	if s.opt.runTime > 0 {
		pilot, err := s.contendRun(c.Name, row.Procs, row.G, k, row.CS)
		if err != nil {
			return err
		}
		k = int(pilot.throughput * s.opt.runTime.Seconds() / float64(n))
		k = min(max(k, 100), 1_000_000)
	}
	row.K = k
	var thr, p50, p99, mx []float64
	for rep := 0; rep < s.opt.reps; rep++ {
		st, err := s.contendRun(c.Name, row.Procs, row.G, k, row.CS)
		if err != nil {
			return err
		}
		thr, p50, p99, mx = append(thr, st.throughput), append(p50, st.p50), append(p99, st.p99), append(mx, st.max)
	}
	row.Throughput, row.P50, row.P99, row.Max = summarize(thr), summarize(p50), summarize(p99), summarize(mx)
	s.progress("cs=%-5s %-18s %d×%d  K=%-7d %11s [%s]  p50 %s  p99 %s  max %s", csName(row.CS), row.Series,
		row.Procs, row.G, k, fmtRate(row.Throughput.Median), spreadRate(row.Throughput),
		fmtNs(row.P50.Median), fmtNs(row.P99.Median), fmtNs(row.Max.Median))
	return nil
}
