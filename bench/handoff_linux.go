package bench

import (
	"fmt"
	"sort"
)

// handoff measures the hand-off latency between two processes: from the
// holder's unlock to the waiter's lock returning, with the waiter asleep
// in the kernel when the holder lets go.
func (s *suite) handoff() error {
	fmt.Fprintf(s.log, "hand-off between two processes (holder keeps the lock %v after the waiter arrives)\n", s.opt.delay)
	for _, c := range contenders {
		if !c.Shared {
			continue
		}
		ok, why := s.runnable(c.Name)
		if !ok {
			if why != "" {
				s.rep.Handoff = append(s.rep.Handoff, latRow{Contender: c.Name, Unavailable: why})
			}
			continue
		}
		row := latRow{Contender: c.Name}
		var meds, p99s []float64
		for rep := 0; rep < s.opt.reps; rep++ {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			if err := s.fresh(); err != nil {
				return err
			}
			specs := []workerSpec{
				{Mode: modeHandoff, Contender: c.Name, ID: 0, K: s.opt.handoff, Delay: int64(s.opt.delay)},
				{Mode: modeHandoff, Contender: c.Name, ID: 1, K: s.opt.handoff, Delay: int64(s.opt.delay)},
			}
			res, err := s.runBarrier(specs)
			s.step("handoff")
			if err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
			var lat []float64
			for _, r := range res {
				for _, v := range r.Lat {
					lat = append(lat, float64(v))
				}
			}
			if len(lat) == 0 {
				return fmt.Errorf("%s: no hand-offs measured", c.Name)
			}
			sort.Float64s(lat)
			meds = append(meds, quantileSorted(lat, 0.5))
			p99s = append(p99s, quantileSorted(lat, 0.99))
			row.Samples += len(lat)
		}
		row.Median, row.P99 = summarize(meds), summarize(p99s)
		s.rep.Handoff = append(s.rep.Handoff, row)
		s.progress("%-11s median %s [%s]  p99 %s  (%d hand-offs)", c.Name, fmtNs(row.Median.Median),
			spreadNs(row.Median), fmtNs(row.P99.Median), row.Samples)
	}
	return nil
}
