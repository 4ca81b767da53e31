package bench

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// recoveryContenders are the locks whose holders the recovery section
// kills: every one shared between processes.
var recoveryContenders = []string{cRobust, cGlibcC, cFlock, cOFD, cSysV}

// recovery kills a process holding the lock while another waits for it,
// and measures from the clock reading just before kill(2) to the waiter's
// lock returning. The waiter has been asleep in the kernel for a couple of
// milliseconds when the kill is sent.
func (s *suite) recovery() error {
	fmt.Fprintln(s.log, "recovery: SIGKILL the holder, time until the next lock returns")
	for _, name := range recoveryContenders {
		c, _ := contenderByName(name)
		ok, why := s.runnable(name)
		if !ok {
			if why != "" {
				s.rep.Recovery = append(s.rep.Recovery, recRow{Contender: name, Unavailable: why})
			}
			continue
		}
		row := recRow{Contender: name}
		var lat []float64
		told := 0
		for i := 0; i < s.opt.reps*s.opt.recovery; i++ {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			l, died, err := s.recoverOnce(name)
			s.step("recovery")
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			lat = append(lat, float64(l))
			if died {
				told++
			}
		}
		row.Latency, row.Samples = summarize(lat), len(lat)
		switch {
		case told == len(lat):
			row.Told = "yes: EOWNERDEAD"
		case told == 0 && !c.Robust:
			row.Told = "no: lock simply granted"
		default:
			row.Told = fmt.Sprintf("only %d of %d times", told, len(lat))
		}
		s.rep.Recovery = append(s.rep.Recovery, row)
		s.progress("%-11s median %s [%s]  told: %s", name, fmtNs(row.Latency.Median), spreadNs(row.Latency), row.Told)
	}
	return nil
}

func (s *suite) recoverOnce(name string) (int64, bool, error) {
	if err := s.fresh(); err != nil {
		return 0, false, err
	}
	holder, err := s.start(workerSpec{Mode: modeHold, Contender: name, Timeout: workerTimeout})
	if err != nil {
		return 0, false, err
	}
	waiter, err := s.start(workerSpec{Mode: modeRecover, Contender: name, ID: 1, Timeout: workerTimeout})
	if err != nil {
		killAll([]*proc{holder})
		return 0, false, err
	}
	defer killAll([]*proc{holder, waiter})
	deadline := time.Now().Add(workerTimeout)
	for atomic.LoadUint32(s.sh.u32(offWaiting)) == 0 {
		for _, p := range []*proc{holder, waiter} {
			if p.exited() {
				_, err := p.result(0)
				return 0, false, fmt.Errorf("worker exited early: %v", err)
			}
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			return 0, false, errors.New("waiter never got to its lock")
		}
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(2 * time.Millisecond) // let the waiter fall asleep in the kernel
	atomic.StoreInt64(s.sh.i64(offKill), nanotime())
	if err := unix.Kill(holder.cmd.Process.Pid, unix.SIGKILL); err != nil {
		return 0, false, err
	}
	r, err := waiter.result(workerTimeout)
	if err != nil {
		return 0, false, err
	}
	if len(r.Lat) != 1 {
		return 0, false, errors.New("waiter sent no latency")
	}
	return r.Lat[0], r.OwnerDied, nil
}
