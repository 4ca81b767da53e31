package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/segment"
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
	meter := startCPUMeter()
	s, err := newSuite(ctx, opt, stderr, rep)
	if err != nil {
		fmt.Fprintf(stderr, "robustlock bench: %v\n", err)
		return 1
	}
	defer s.cleanup()
	fmt.Fprintf(stderr, "robustlock bench: %s, %d cores, load %s; %d reps\n",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.LoadBefore, opt.reps)
	steps := []struct {
		name string
		run  func() error
	}{
		{"uncontended", s.uncontended},
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
		if err := st.run(); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", st.name, err))
			fmt.Fprintf(stderr, "robustlock bench: %s: %v\n", st.name, err)
		}
	}
	if ctx.Err() != nil {
		rep.Errors = append(rep.Errors, "interrupted")
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.Machine.OthersCPU = meter.othersShare()
	rep.Elapsed = time.Since(start).Round(100 * time.Millisecond).String()
	rep.Targets = evalTargets(rep)
	rep.text(stdout)
	if opt.out != "" {
		if err := writeOutputs(rep, opt.out); err != nil {
			fmt.Fprintf(stderr, "robustlock bench: -out: %v\n", err)
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

func (s *suite) progress(format string, args ...any) {
	fmt.Fprintf(s.log, "  "+format+"\n", args...)
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

// ---------------------------------------------------------------- workers

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

// start launches one worker: this binary again, with the spec in the
// environment. It dies with the parent (Pdeathsig) and with s.ctx.
func (s *suite) start(spec workerSpec) (*proc, error) {
	spec.Shared, spec.LockFile, spec.SemID = s.shPath, s.lockFile, s.semID
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(s.ctx, s.exe, "bench")
	// A -race binary sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	p.cmd.Env = append(os.Environ(), workerEnv+"="+string(js), "GORACE="+gorace)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// result waits for the worker and decodes what it printed.
func (p *proc) result(timeout time.Duration) (workerResult, error) {
	var r workerResult
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return r, fmt.Errorf("worker timed out after %v; stderr: %s", timeout, p.stderr.String())
	}
	if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("worker: %v (%v); stderr: %s", err, p.err, p.stderr.String())
	}
	if r.Err != "" {
		return r, fmt.Errorf("worker: %s", r.Err)
	}
	return r, nil
}

func killAll(ps []*proc) {
	for _, p := range ps {
		if p != nil && !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

const workerTimeout = 2 * time.Minute

// runBarrier starts one worker per spec, opens the start barrier once all
// of them are ready, and collects their results.
func (s *suite) runBarrier(specs []workerSpec) ([]workerResult, error) {
	ps := make([]*proc, 0, len(specs))
	defer func() { killAll(ps) }()
	for _, sp := range specs {
		sp.Timeout = workerTimeout
		p, err := s.start(sp)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	alive := func() error {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		for _, p := range ps {
			if p.exited() {
				_, err := p.result(0)
				return fmt.Errorf("worker exited before the start: %v", err)
			}
		}
		return nil
	}
	if err := s.sh.open(len(ps), workerTimeout, alive); err != nil {
		return nil, err
	}
	out := make([]workerResult, len(ps))
	for i, p := range ps {
		r, err := p.result(workerTimeout)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// fresh resets the shared state between runs.
func (s *suite) fresh() error {
	if err := s.sh.reset(); err != nil {
		return err
	}
	if s.semID >= 0 {
		return setSem(s.semID)
	}
	return nil
}

// ------------------------------------------------------------ uncontended

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
					//lint:ignore SA2001 the uncontended benchmark measures an empty critical section
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

// -------------------------------------------------------------- contended

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

// ---------------------------------------------------------------- handoff

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

// --------------------------------------------------------------- recovery

// recovery kills a process holding the lock while another waits for it,
// and measures from the clock reading just before kill(2) to the waiter's
// lock returning. The waiter has been asleep in the kernel for a couple of
// milliseconds when the kill is sent.
func (s *suite) recovery() error {
	fmt.Fprintln(s.log, "recovery: SIGKILL the holder, time until the next lock returns")
	for _, name := range []string{cRobust, cGlibcC, cFlock, cOFD, cSysV} {
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

// ---------------------------------------------------------------- segment

func (s *suite) segments() error {
	fmt.Fprintln(s.log, "segments: open an existing one, create+publish a new one")
	dir := filepath.Join(s.dir, "segments")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	const size = 4096
	seg, err := segment.Open("existing", segment.Size(size), segment.Dir(dir))
	if err != nil {
		return err
	}
	seg.Close()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, make([]byte, size), 0o600); err != nil {
		return err
	}
	n := s.opt.segOps
	serial := 0
	ops := []struct {
		name, what string
		run        func() (int64, error) // ns for one op
	}{
		{"segment open", "segment.Open of a published segment (validated), then Close", func() (int64, error) {
			t := nanotime()
			sg, err := segment.Open("existing", segment.Dir(dir))
			if err != nil {
				return 0, err
			}
			err = sg.Close()
			return nanotime() - t, err
		}},
		{"plain open", "open(2), fstat, mmap, munmap, close of a plain file (no checks)", func() (int64, error) {
			t := nanotime()
			err := mapPlain(plain, 0, size)
			return nanotime() - t, err
		}},
		{"segment create", "segment.Open with Size, CreateOnly: build, link, map (Close and Remove untimed)", func() (int64, error) {
			serial++
			name := fmt.Sprintf("new-%d", serial)
			t := nanotime()
			sg, err := segment.Open(name, segment.Size(size), segment.CreateOnly(), segment.Dir(dir))
			d := nanotime() - t
			if err != nil {
				return 0, err
			}
			sg.Close()
			return d, segment.Remove(name, segment.Dir(dir))
		}},
		{"plain create", "open O_CREAT|O_EXCL, ftruncate, mmap, munmap, close (unlink untimed)", func() (int64, error) {
			serial++
			name := filepath.Join(dir, fmt.Sprintf("plain-%d", serial))
			t := nanotime()
			err := mapPlain(name, os.O_CREATE|os.O_EXCL, size)
			d := nanotime() - t
			os.Remove(name)
			return d, err
		}},
	}
	for _, op := range ops {
		op.run() // warm up
		var per []float64
		for rep := 0; rep < s.opt.reps; rep++ {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			var total int64
			for range n {
				d, err := op.run()
				if err != nil {
					return fmt.Errorf("%s: %w", op.name, err)
				}
				total += d
			}
			per = append(per, float64(total)/float64(n))
		}
		row := segRow{Name: op.name, What: op.what, NsOp: summarize(per), N: n}
		s.rep.Segment = append(s.rep.Segment, row)
		s.progress("%-15s %s [%s]", op.name, fmtNs(row.NsOp.Median), spreadNs(row.NsOp))
	}
	return nil
}

func mapPlain(path string, flags int, size int) error {
	f, err := os.OpenFile(path, os.O_RDWR|flags, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if flags&os.O_CREATE != 0 {
		if err := f.Truncate(int64(size)); err != nil {
			return err
		}
	} else if _, err := f.Stat(); err != nil {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	return unix.Munmap(mem)
}
