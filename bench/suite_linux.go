package bench

// The suite: what every section shares, and the run of the sections in
// order. The sections are uncontended_linux.go, contended_linux.go,
// handoff_linux.go, recovery_linux.go and segments_linux.go; the worker
// processes they start are spawn_linux.go (parent side) and
// worker_linux.go (child side).

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// suite holds what every section shares: the temporary directory, the
// shared file and lock file the workers open, the SysV semaphore.
type suite struct {
	opt      *options
	ctx      context.Context
	log      io.Writer
	dir      string
	shPath   string
	sh       *shared
	lockFile string
	semID    int
	exe      string
	rep      *report
	meter    *meter             // overall progress (progress.go); s.log writes through it
	plan     map[string]planned // each section's work units, for the meter
}

// planned is a section's work as the meter counts it: so many units, each
// of a rough cost in seconds.
type planned struct {
	units int
	cost  float64
}

func runSuite(opt *options, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep := &report{
		Machine: describeMachine(), Reps: opt.reps, Quick: opt.quick, Procs: opt.procs, CS: opt.cs,
		G: opt.goroutines, HandoffWait: opt.delay.String(), Started: start,
		Unavailable: map[string]string{},
	}
	for _, c := range contenders {
		if !opt.selected(c.Name) {
			continue
		}
		rep.Contenders = append(rep.Contenders, c)
		if why := c.unavailable(); why != "" {
			rep.Unavailable[c.Name] = why
		}
	}
	cpu := startCPUMeter()
	s, err := newSuite(ctx, opt, stderr, rep)
	if err != nil {
		fmt.Fprintf(stderr, "robustlock: bench: %v\n", err)
		return 1
	}
	defer s.cleanup()
	s.plan = s.planWork()
	total := 0.0
	for name, p := range s.plan {
		if opt.sections[name] {
			total += float64(p.units) * p.cost
		}
	}
	s.meter = newMeter(stderr, total)
	s.log = s.meter
	defer s.meter.finish()
	fmt.Fprintf(s.log, "robustlock bench: %s, %d cores, load %s; %d reps\n",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.LoadBefore, opt.reps)
	steps := []struct {
		name string
		run  func() error
	}{
		{"uncontended", s.uncontended},
		{"sync", s.syncShapes},
		{"contended", s.contended},
		{"handoff", s.handoff},
		{"recovery", s.recovery},
		{"segment", s.segments},
	}
	for _, st := range steps {
		if !opt.sections[st.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		s.meter.enter(st.name)
		if err := st.run(); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", st.name, err))
			fmt.Fprintf(s.log, "robustlock: bench: %s: %v\n", st.name, err)
		}
		s.meter.leave()
	}
	s.meter.finish()
	if ctx.Err() != nil {
		rep.Errors = append(rep.Errors, "interrupted")
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.Machine.OthersCPU = cpu.othersShare()
	rep.Elapsed = time.Since(start).Round(100 * time.Millisecond).String()
	rep.Targets = evalTargets(rep)
	rep.text(stdout)
	if opt.out != "" {
		if err := writeOutputs(rep, opt.out); err != nil {
			fmt.Fprintf(stderr, "robustlock: bench: -out: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "robustlock bench: wrote %s\n", opt.out)
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

func newSuite(ctx context.Context, opt *options, log io.Writer, rep *report) (*suite, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// tmpfs, as a segment in /dev/shm would be; any temp dir otherwise.
	dir, err := os.MkdirTemp("/dev/shm", "robustlock-bench-")
	if err != nil {
		if dir, err = os.MkdirTemp("", "robustlock-bench-"); err != nil {
			return nil, err
		}
	}
	s := &suite{opt: opt, ctx: ctx, log: log, dir: dir, exe: exe, rep: rep, semID: -1,
		shPath: filepath.Join(dir, "shared"), lockFile: filepath.Join(dir, "lock")}
	if s.sh, err = createShared(s.shPath); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := createLockFile(s.lockFile); err != nil {
		s.cleanup()
		return nil, err
	}
	if opt.selected(cSysV) {
		if s.semID, err = newSem(); err != nil {
			rep.Unavailable[cSysV] = "unavailable: " + err.Error()
		}
	}
	return s, nil
}

func (s *suite) cleanup() {
	if s.sh != nil {
		s.sh.close()
	}
	if s.semID >= 0 {
		removeSem(s.semID)
	}
	os.RemoveAll(s.dir)
}

// progress prints one line of a section's results.
func (s *suite) progress(format string, args ...any) {
	fmt.Fprintf(s.log, "  "+format+"\n", args...)
}

// step counts one unit of section's work as done, for the overall
// progress.
func (s *suite) step(section string) {
	if s.meter != nil {
		s.meter.advance(s.plan[section].cost)
	}
}

// planWork counts each section's units of work as the sections will run
// them, with a rough cost for each from the flags: the meter needs the
// proportions right more than the seconds (progress.go).
func (s *suite) planWork() map[string]planned {
	o := s.opt
	runnable := func(c string) bool { ok, _ := s.runnable(c); return ok }
	n := func(names []string) int {
		k := 0
		for _, c := range names {
			if runnable(c) {
				k++
			}
		}
		return k
	}
	var all, shared []string
	for _, c := range contenders {
		all = append(all, c.Name)
		if c.Shared {
			shared = append(shared, c.Name)
		}
	}
	uncTarget := 15 * 0.1 // chunks of the 100 ms target, per contender
	if o.quick {
		uncTarget = 15 * 0.002
	}
	perSeries := o.reps
	if o.runTime > 0 {
		perSeries++ // the pilot run
	}
	runs := 0
	for range o.cs {
		for _, x := range o.procs {
			if x < 1 {
				continue
			}
			for _, se := range s.seriesList() {
				if runnable(se.contender) {
					runs += perSeries
				}
			}
		}
	}
	const start = 0.05 // starting worker processes and meeting at the barrier
	return map[string]planned{
		"uncontended": {o.reps, uncTarget * float64(n(all))},
		"sync":        {len(SyncShapes) * o.reps, 2 * 2.5 * s.shapeTime().Seconds()},
		"contended":   {runs, o.runTime.Seconds() + start},
		"handoff":     {n(shared) * o.reps, float64(o.handoff)*(o.delay.Seconds()+20e-6) + start},
		"recovery":    {n(recoveryContenders) * o.reps * o.recovery, 2*start + 0.002},
		"segment":     {4 * o.reps, float64(o.segOps) * 30e-6},
	}
}

// runnable reports whether contender c runs in this suite, and why not.
func (s *suite) runnable(c string) (bool, string) {
	if !s.opt.selected(c) {
		return false, ""
	}
	if why := s.rep.Unavailable[c]; why != "" {
		return false, why
	}
	return true, ""
}

// unavailable says why c cannot run in this binary, or "" if it can.
func (c contender) unavailable() string {
	if c.NeedsCgo && !HaveGlibc {
		return "unavailable: built without cgo"
	}
	return ""
}

// selected reports whether the -contenders flag lets c run.
func (o *options) selected(c string) bool { return o.only == nil || o.only[c] }
