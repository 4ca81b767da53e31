//go:build linux

package main

// The demo parent: its flags, the segment, the run loop and the end of the
// run. The workers it starts are worker_linux.go, their shared state
// ledger_linux.go; the parent controls them in children_linux.go, kills
// them in chaos_linux.go and reports in summary_linux.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

const (
	aimedShare   = 0.75                  // share of kills that wait for a victim mid-transfer
	aimPatience  = 50 * time.Millisecond // how long such a kill waits before taking anyone
	stopPatience = 5 * time.Second       // for workers to leave, and for the final lock
	stallLimit   = 5 * time.Second       // no transfer for this long: the demo is stuck
	tick         = 2 * time.Millisecond  // the parent's loop
)

// demoConfig is what the flags ask for.
type demoConfig struct {
	workers  int
	duration time.Duration
	kills    int
	dir      string
	keep     bool
	verbose  bool
	corrupt  bool
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "[flags]", `
Run the main job: worker processes (this program, started again) share a
segment in /dev/shm and move money between accounts under its robust lock,
a transfer at a time, with an undo journal. A chaos killer SIGKILLs workers,
most of them while they hold the lock in the middle of a transfer, and
starts replacements. The next worker to lock gets ErrOwnerDied, rolls the
half-done transfer back from the journal and calls MarkConsistent. Every
worker checks the total each time it takes the lock; the demo checks it
again at the end.

Exit status 0 only if the total never changed and every death while holding
the lock was recovered; 1 otherwise; 130 if interrupted. The segment is
removed at the end, also on Ctrl-C, unless -keep is given.`, stdout, stderr)
	var c demoConfig
	workers := intFlag{n: 4, lo: 1, hi: maxWorkers}
	duration := positiveDuration{10 * time.Second}
	kills := intFlag{lo: 0, hi: maxInt}
	fs.Var(&workers, "workers", fmt.Sprintf("run `N` worker processes, 1 to %d (default 4)", maxWorkers))
	fs.Var(&duration, "duration", "how long to run (default 10s)")
	fs.Var(&kills, "kills", "SIGKILL `N` workers over the run; 0 turns the killer off (default 4 per second of -duration)")
	fs.StringVar(&c.dir, "dir", segment.DefaultDir, "`directory` for the segment")
	fs.BoolVar(&c.keep, "keep", false, "leave the segment in place at the end, for robustlock inspect")
	fs.BoolVar(&c.verbose, "v", false, "print a line for every kill and every recovery")
	fs.BoolVar(&c.corrupt, "corrupt", false, "workers update without the journal (proves the checker sees damage)")
	worker := fs.Bool("worker", false, "run as a worker process")
	name := fs.String("name", "", "worker: the segment's name")
	n := fs.Int("slot", 0, "worker: its slot")
	ppid := fs.Int("ppid", 0, "worker: the demo's pid")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		return fs.usageError("unexpected argument %q", pos[0])
	}
	if *worker {
		return runWorker(*name, c.dir, *n, *ppid, stderr)
	}
	c.workers, c.duration, c.kills = workers.n, duration.d, kills.n
	if !kills.set {
		c.kills = int(4 * c.duration.Seconds())
	}
	d, err := newDemo(c, stdout, stderr)
	if err != nil {
		return failf(stderr, exitFail, "demo: %s", explain(err, c.dir))
	}
	return d.run()
}

// demo is the parent: it owns the segment, the worker processes and the
// accounting. Everything runs on one goroutine.
type demo struct {
	demoConfig
	groupSignal    syscall.Signal // an interrupt that killed a worker before the demo saw its own
	stdout, stderr io.Writer
	workerErr      *os.File
	stdin          *os.File // an empty pipe: workers' stdin
	exe            string
	seg            *segment.Segment
	l              *ledger
	m              *robustlock.Mutex
	rng            *rand.Rand
	out            *progress
	start          time.Time
	procs          []worker
	started        int

	killed  []kill
	killAt  []int64 // monotonic ns of each kill while holding, in order
	victims []int   // and the victim's pid

	recSeen    uint64          // recoveries read from the ring so far
	recTimes   []time.Duration // kill to next lock, per recovery matched to a kill
	misplaced  int             // recoveries that found another pid than the victim in holder
	finalRecov bool            // the demo itself recovered at the end
	finalOK    bool
	failures   []string
	lastOps    uint64
	recoveries uint64 // read from the ledger before it is unmapped
	violations uint64
	lastOpsAt  time.Time
	lastTick   time.Time
}

// findSelf returns this program's path, for re-executing it as a worker:
// /proc/self/exe where there is a /proc, else the path it was started by.
func findSelf() (string, error) {
	if exe, err := os.Executable(); err == nil {
		return exe, nil
	}
	if p := os.Args[0]; strings.Contains(p, "/") {
		return filepath.Abs(p)
	}
	return exec.LookPath(os.Args[0])
}

func newDemo(c demoConfig, stdout, stderr io.Writer) (*demo, error) {
	exe, err := findSelf()
	if err != nil {
		return nil, fmt.Errorf("cannot find this program to start workers: %v", err)
	}
	// Workers get an empty pipe for stdin and the demo's stderr for
	// output: os/exec would open /dev/null for nil streams, and a bare
	// root (a scratch container, a chroot) may have no /dev.
	stdin, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w.Close()
	d := &demo{
		demoConfig: c,
		stdout:     stdout,
		stderr:     stderr,
		workerErr:  os.Stderr,
		exe:        exe,
		stdin:      stdin,
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		out:        newProgress(stdout, isTerminal(stdout)),
		procs:      make([]worker, c.workers),
	}
	if f, ok := stderr.(*os.File); ok {
		d.workerErr = f
	}
	name := fmt.Sprintf("robustlock-demo-%d-%08x", os.Getpid(), d.rng.Uint32())
	d.seg, err = segment.Open(name, segment.Dir(c.dir), segment.Size(ledgerSize), segment.CreateOnly(),
		segment.Init(func(data []byte) error { return initLedger(data, c.corrupt) }))
	if err != nil {
		return nil, err
	}
	if d.l, err = viewLedger(d.seg.Data(), true); err != nil {
		d.seg.Close()
		segment.Remove(name, segment.Dir(c.dir))
		return nil, err
	}
	d.m = d.seg.Mutex()
	return d, nil
}

// run is the whole demo; it returns the exit status.
func (d *demo) run() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// Output piped into a reader that quits (robustlock demo | head) must
	// not kill the demo before it has killed its workers and removed the
	// segment: writes then just fail.
	signal.Ignore(syscall.SIGPIPE)

	mode := ""
	if d.corrupt {
		mode = " WITHOUT the journal (-corrupt: the total is expected to break)"
	}
	fmt.Fprintf(d.stdout, "robustlock demo: %d workers move money between %d accounts (total %d) under one robust lock%s\n",
		d.workers, numAccounts, d.l.total, mode)
	fmt.Fprintf(d.stdout, "segment %s; %d kills over %s; Ctrl-C stops\n", d.seg.Path(), d.kills, d.duration)

	d.start = time.Now()
	d.lastOpsAt = d.start
	for i := range d.procs {
		if err := d.spawn(i); err != nil {
			d.failf("starting worker %d: %v", i, err)
			break
		}
	}
	schedule := d.schedule()
	next := 0
	interrupted := ""
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
loop:
	for len(d.failures) == 0 {
		select {
		case s := <-sigs:
			interrupted = s.String()
			break loop
		case <-ticker.C:
		}
		now := time.Now()
		elapsed := now.Sub(d.start)
		d.reap(false)
		if d.groupSignal != 0 {
			interrupted = d.groupSignal.String()
			break
		}
		d.readRecoveries()
		if elapsed >= d.duration {
			break
		}
		if next < len(schedule) && elapsed >= schedule[next] {
			// One death at a time: the next kill waits until the last
			// holder's death has been recovered, so each recovery is
			// matched to its kill and timed exactly.
			if d.l.recoveries.Load() >= uint64(len(d.killAt)) {
				d.chaos(elapsed)
				next++
			}
		}
		d.watchdog(now)
		d.out.status(now, d.statusLine(now))
	}

	if interrupted != "" {
		// Kill first, then count: dead workers hold the counters still,
		// as the table needs, and nothing waits for a stop that a SIGCONT
		// coming with the signal (timeout -s INT) would undo.
		d.killAll()
		d.out.done()
		d.readRecoveries()
		d.table()
		d.cleanup()
		fmt.Fprintf(d.stdout, "\ninterrupted (%s): workers killed, no verdict\n", interrupted)
		return exitInterrupted
	}
	d.finish()
	d.out.done()
	d.readRecoveries()
	d.table()
	d.cleanup()
	return d.verdict()
}

// finish stops the workers, then takes the lock itself (recovering the
// last death if no worker did) and checks the total one last time.
func (d *demo) finish() {
	d.l.stop.Store(1)
	deadline := time.Now().Add(stopPatience)
	for d.running() > 0 && time.Now().Before(deadline) {
		time.Sleep(tick)
		d.reap(true)
	}
	for i, w := range d.procs {
		if w.pid != 0 {
			d.failf("worker %d (pid %d) did not stop within %s; killed", i, w.pid, stopPatience)
			d.freezeAndKill(i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopPatience)
	defer cancel()
	err := d.m.LockContext(ctx)
	if errors.Is(err, robustlock.ErrOwnerDied) {
		d.l.recordRecovery(monotonic(), os.Getpid())
		d.l.repair()
		d.finalRecov = true
		err = d.m.MarkConsistent()
		if err != nil {
			d.m.Unlock()
		}
	}
	if err != nil {
		d.failf("final lock: %v (segment lock: %v)", err, d.m.State())
		return
	}
	d.finalOK = d.l.check()
	if err := d.m.Unlock(); err != nil {
		d.failf("final unlock: %v", err)
	}
}

// cleanup unmaps the segment and removes it unless -keep.
func (d *demo) cleanup() {
	if err := d.seg.Close(); err != nil {
		d.failf("%v", err)
	}
	if d.keep {
		fmt.Fprintf(d.stdout, "\nsegment kept: robustlock inspect -dir %s %s\n", d.dir, d.seg.Name())
		return
	}
	if err := segment.Remove(d.seg.Name(), segment.Dir(d.dir)); err != nil {
		d.failf("%v", err)
	}
}

func (d *demo) failf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	d.failures = append(d.failures, msg)
	d.out.done()
	fmt.Fprintf(d.stderr, "robustlock: demo: %s\n", msg)
}

const maxInt = int(^uint(0) >> 1)

// intFlag is an integer flag (the demo's) with a range, refused by the flag parser
// (so as a usage error) when out of it, and that knows whether it was set.
type intFlag struct {
	n, lo, hi int
	set       bool
}

func (f *intFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.Itoa(f.n)
}

func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	switch {
	case n < f.lo && f.hi == maxInt:
		return fmt.Errorf("must be %d or more", f.lo)
	case n < f.lo || n > f.hi:
		return fmt.Errorf("must be between %d and %d", f.lo, f.hi)
	}
	f.n, f.set = n, true
	return nil
}

// positiveDuration is a duration flag that refuses zero and negative
// values.
type positiveDuration struct{ d time.Duration }

func (f *positiveDuration) String() string {
	if f == nil {
		return ""
	}
	return f.d.String()
}

func (f *positiveDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (like 10s or 1m30s)")
	}
	if d <= 0 {
		return errors.New("must be positive")
	}
	f.d = d
	return nil
}
