//go:build linux

package main

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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
	fs := newFlagSet("demo", "[flags]", `
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
	fs.IntVar(&c.workers, "workers", 4, "run `N` worker processes")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&c.kills, "kills", -1, "SIGKILL `N` workers over the run; 0 turns the killer off (default 4 per second of -duration)")
	fs.StringVar(&c.dir, "dir", segment.DefaultDir, "`directory` for the segment")
	fs.BoolVar(&c.keep, "keep", false, "leave the segment in place at the end, for robustlock inspect")
	fs.BoolVar(&c.verbose, "v", false, "print a line for every kill and every recovery")
	fs.BoolVar(&c.corrupt, "corrupt", false, "workers update without the journal (proves the checker sees damage)")
	worker := fs.Bool("worker", false, "run as a worker process")
	name := fs.String("name", "", "worker: the segment's name")
	n := fs.Int("slot", 0, "worker: its slot")
	ppid := fs.Int("ppid", 0, "worker: the demo's pid")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(stderr, "demo", err)
	}
	if len(pos) > 0 {
		return failf(stderr, exitUsage, "demo: unexpected argument %q (see 'robustlock demo -h')", pos[0])
	}
	if *worker {
		return runWorker(*name, c.dir, *n, *ppid, stderr)
	}
	if c.kills < 0 {
		c.kills = int(4 * c.duration.Seconds())
	}
	switch {
	case c.workers < 1 || c.workers > maxWorkers:
		return failf(stderr, exitUsage, "demo: -workers must be between 1 and %d", maxWorkers)
	case c.duration <= 0:
		return failf(stderr, exitUsage, "demo: -duration must be positive")
	}
	d, err := newDemo(c, stdout, stderr)
	if err != nil {
		return failf(stderr, exitFail, "demo: %s", explain(err, c.dir))
	}
	return d.run()
}

// worker is the parent's record of one slot's current process.
type worker struct {
	pid     int // 0: none running
	started time.Time
}

// kill is one SIGKILL the chaos killer sent.
type kill struct {
	at      time.Duration
	slot    int
	pid     int
	aimed   bool  // waited for a victim mid-transfer
	holding bool  // the lock word held one of the victim's threads
	phase   phase // where the victim was, frozen
}

// demo is the parent: it owns the segment, the worker processes and the
// accounting. Everything runs on one goroutine.
type demo struct {
	demoConfig
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
		d.freezeAll() // so the table adds up
		d.out.done()
		d.readRecoveries()
		d.table()
		d.killAll()
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

// schedule spreads the kills over the run, each at a jittered point of
// its own share of the time.
func (d *demo) schedule() []time.Duration {
	if d.kills <= 0 {
		return nil
	}
	share := float64(d.duration) / float64(d.kills)
	s := make([]time.Duration, d.kills)
	for k := range s {
		s[k] = time.Duration(share * (float64(k) + 0.1 + 0.8*d.rng.Float64()))
	}
	return s
}

// spawn starts a worker in slot i: this program again, told the segment's
// name and nothing else. It dies with the demo if the demo is killed
// (the parent-death signal, and a check of its parent pid).
func (d *demo) spawn(i int) error {
	s := &d.l.slots[i]
	s.pid.Store(0)
	s.tid.Store(0)
	s.phase.Store(uint32(phaseStarting))
	cmd := exec.Command(d.exe, "demo", "-worker", "-name", d.seg.Name(), "-dir", d.dir,
		"-slot", strconv.Itoa(i), "-ppid", strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = d.stdin, d.workerErr, d.workerErr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.procs[i] = worker{pid: cmd.Process.Pid, started: time.Now()}
	d.started++
	// The demo waits for its workers itself (wait4, to see them stop too).
	cmd.Process.Release()
	return nil
}

func (d *demo) slotOf(pid int) int {
	for i, w := range d.procs {
		if w.pid == pid {
			return i
		}
	}
	return -1
}

// reap collects workers that exited by themselves. While running, that is
// a failure; when stopping, it is what they were asked to do.
func (d *demo) reap(stopping bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		i := d.slotOf(pid)
		if i < 0 {
			continue
		}
		d.procs[i].pid = 0
		if !stopping || !ws.Exited() || ws.ExitStatus() != 0 {
			d.failf("worker %d (pid %d) %s", i, pid, exitText(ws))
		}
	}
}

func exitText(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by %v", ws.Signal())
	}
	return fmt.Sprintf("ended (wait status %#x)", uint32(ws))
}

// chaos makes one kill and starts the victim's replacement.
func (d *demo) chaos(elapsed time.Duration) {
	aimed := d.rng.Float64() < aimedShare
	i := -1
	if aimed {
		i = d.aim()
	}
	if i < 0 {
		aimed = false
		i = d.anyone()
	}
	if i < 0 {
		return // nobody running yet
	}
	if k, ok := d.freezeAndKill(i); ok {
		k.aimed, k.at = aimed, elapsed
		d.killed = append(d.killed, k)
		if d.verbose {
			where := "not holding the lock"
			if k.holding {
				where = "holding the lock"
			}
			d.out.event(fmt.Sprintf("%7.3fs  kill %d: worker %d (pid %d), %s, %s",
				k.at.Seconds(), len(d.killed), k.slot, k.pid, where, k.phase))
		}
	}
	if len(d.failures) == 0 {
		if err := d.spawn(i); err != nil {
			d.failf("restarting worker %d: %v", i, err)
		}
	}
}

// aim waits a little for a worker caught mid-transfer, holding the lock
// with the ledger half-updated, and returns its slot (-1 if none came).
func (d *demo) aim() int {
	deadline := time.Now().Add(aimPatience)
	for {
		for _, i := range d.rng.Perm(len(d.procs)) {
			w, s := d.procs[i], &d.l.slots[i]
			if w.pid != 0 && int(s.pid.Load()) == w.pid && phase(s.phase.Load()) == phaseMidTransfer {
				return i
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// anyone picks a random running worker, preferring those past start-up.
func (d *demo) anyone() int {
	var ready, running []int
	for i, w := range d.procs {
		if w.pid == 0 {
			continue
		}
		running = append(running, i)
		if int(d.l.slots[i].pid.Load()) == w.pid {
			ready = append(ready, i)
		}
	}
	if len(ready) > 0 {
		return ready[d.rng.IntN(len(ready))]
	}
	if len(running) > 0 {
		return running[d.rng.IntN(len(running))]
	}
	return -1
}

// freezeAndKill SIGKILLs the worker in slot i, and tells exactly whether
// it held the lock when it died: it is stopped first (SIGSTOP, and wait4
// until the whole process has stopped), so the lock word read then is the
// one the kernel will find at its death. A worker that held the lock
// leaves it OWNER_DIED, and the next Lock must return ErrOwnerDied.
func (d *demo) freezeAndKill(i int) (kill, bool) {
	pid := d.procs[i].pid
	k := kill{slot: i, pid: pid}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		d.failf("stopping worker %d (pid %d): %v", i, pid, err)
		return k, false
	}
	ws, err := wait(pid, syscall.WUNTRACED)
	if err != nil {
		d.failf("waiting for worker %d (pid %d) to stop: %v", i, pid, err)
		return k, false
	}
	if !ws.Stopped() {
		d.procs[i].pid = 0
		d.failf("worker %d (pid %d) %s", i, pid, exitText(ws))
		return k, false
	}
	st := d.m.State()
	k.phase = phase(d.l.slots[i].phase.Load())
	k.holding = d.owns(i, pid, st.Owner)
	at := monotonic()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		d.failf("killing worker %d (pid %d): %v", i, pid, err)
		return k, false
	}
	if _, err := wait(pid, 0); err != nil {
		d.failf("waiting for worker %d (pid %d) to die: %v", i, pid, err)
	}
	d.procs[i].pid = 0
	if k.holding {
		d.killAt = append(d.killAt, at)
		d.victims = append(d.victims, pid)
	}
	return k, true
}

// owns reports whether thread tid, the lock word's owner, is a thread of
// process pid (the worker in slot i).
func (d *demo) owns(i, pid, tid int) bool {
	if tid == 0 {
		return false
	}
	if t := lookupTask(tid); t.Known && t.Alive {
		return t.PID == pid
	}
	return tid == int(d.l.slots[i].tid.Load()) // no /proc: the worker's published TID
}

// wait is wait4 on one child, retried when interrupted.
func wait(pid, options int) (syscall.WaitStatus, error) {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, options, nil)
		if err != syscall.EINTR {
			return ws, err
		}
	}
}

// readRecoveries takes the recoveries recorded since the last call and
// matches each with its kill: deaths while holding and recoveries
// alternate (nobody takes the lock between a holder's death and its
// recovery), so recovery n belongs to kill-while-holding n.
func (d *demo) readRecoveries() {
	for n := d.l.recoveries.Load(); d.recSeen < n; d.recSeen++ {
		i := d.recSeen
		at := d.l.recAt[i%ringSize].Load()
		by := d.l.recBy[i%ringSize].Load()
		dead := int(d.l.recDead[i%ringSize].Load())
		if i >= uint64(len(d.killAt)) {
			continue // no death while holding to match: verdict reports the count mismatch
		}
		took := time.Duration(at - d.killAt[i])
		d.recTimes = append(d.recTimes, took)
		if dead != 0 && dead != d.victims[i] {
			d.misplaced++
		}
		if d.verbose {
			who := fmt.Sprintf("pid %d", by)
			if int(by) == os.Getpid() {
				who = "the demo itself"
			}
			d.out.event(fmt.Sprintf("%7.3fs  recovery %d: %s got ErrOwnerDied %s after pid %d died",
				time.Since(d.start).Seconds(), i+1, who, short(took), d.victims[i]))
		}
	}
}

// watchdog fails the demo when transfers stop: a lock nobody gets back
// would otherwise hang it.
func (d *demo) watchdog(now time.Time) {
	if now.Sub(d.lastTick) > time.Second {
		d.lastOpsAt = now // the demo itself was stopped (Ctrl-Z) or starved
	}
	d.lastTick = now
	ops := d.l.ops.Load()
	if ops != d.lastOps {
		d.lastOps, d.lastOpsAt = ops, now
		return
	}
	if now.Sub(d.lastOpsAt) > stallLimit {
		d.failf("no transfer for %s; segment lock: %v", stallLimit, d.m.State())
	}
}

func (d *demo) statusLine(now time.Time) string {
	el := now.Sub(d.start)
	ops := d.l.ops.Load()
	held := "held"
	if d.l.violations.Load() > 0 {
		held = "BROKEN"
	}
	longest := "-"
	if len(d.recTimes) > 0 {
		longest = short(slices.Max(d.recTimes))
	}
	return fmt.Sprintf("%4.1fs  %d transfers (%.0f/s)  kills %d, %d holding  recovered %d  max %s  invariant %s",
		el.Seconds(), ops, float64(ops)/el.Seconds(), len(d.killed), len(d.killAt), d.l.recoveries.Load(), longest, held)
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

func (d *demo) running() int {
	n := 0
	for _, w := range d.procs {
		if w.pid != 0 {
			n++
		}
	}
	return n
}

// freezeAll stops every worker (interrupt), so the counters hold still.
func (d *demo) freezeAll() {
	for _, w := range d.procs {
		if w.pid != 0 {
			syscall.Kill(w.pid, syscall.SIGSTOP)
		}
	}
	for _, w := range d.procs {
		if w.pid != 0 {
			wait(w.pid, syscall.WUNTRACED)
		}
	}
}

// killAll ends every worker at once (interrupt), without accounting.
func (d *demo) killAll() {
	for i, w := range d.procs {
		if w.pid != 0 {
			syscall.Kill(w.pid, syscall.SIGKILL)
			wait(w.pid, 0)
			d.procs[i].pid = 0
		}
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

// table prints the summary, and keeps the counters verdict needs: it must
// run before cleanup unmaps the ledger.
func (d *demo) table() {
	el := time.Since(d.start)
	ops := d.l.ops.Load()
	holding, mid, aimed := 0, 0, 0
	for _, k := range d.killed {
		if k.holding {
			holding++
			if k.phase == phaseMidTransfer {
				mid++
			}
		}
		if k.aimed {
			aimed++
		}
	}
	rec := d.l.recoveries.Load()
	d.recoveries, d.violations = rec, d.l.violations.Load()
	fmt.Fprintln(d.stdout)
	tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "operations\t%d transfers\t%.0f/s over %.1fs\n", ops, float64(ops)/el.Seconds(), el.Seconds())
	fmt.Fprintf(tw, "workers\t%d started\t%d at a time\n", d.started, d.workers)
	fmt.Fprintf(tw, "kills\t%d\t%d aimed at a worker mid-transfer\n", len(d.killed), aimed)
	fmt.Fprintf(tw, "kills holding the lock\t%d\t%d of them mid-transfer\n", holding, mid)
	how := fmt.Sprintf("%d rolled back a half-done transfer", d.l.rollbacks.Load())
	if d.finalRecov {
		how += ", 1 by the demo at the end"
	}
	fmt.Fprintf(tw, "recoveries\t%d\t%s\n", rec, how)
	if len(d.recTimes) > 0 {
		fmt.Fprintf(tw, "longest recovery\t%s\tmedian %s, from the kill to the next lock\n",
			short(slices.Max(d.recTimes)), short(median(d.recTimes)))
	} else {
		fmt.Fprintf(tw, "longest recovery\t-\t\n")
	}
	checks, bad := d.l.checks.Load(), d.l.violations.Load()
	switch {
	case bad == 0 && d.finalOK:
		fmt.Fprintf(tw, "invariant\theld\t%d accounts summed to %d in all %d checks under the lock\n", numAccounts, d.l.total, checks)
	case bad == 0:
		fmt.Fprintf(tw, "invariant\tnot checked at the end\t%d checks under the lock passed\n", checks)
	default:
		fmt.Fprintf(tw, "invariant\tBROKEN\tsum %d, not %d, in %d of %d checks (first seen: %d)\n",
			d.l.lastBad.Load(), d.l.total, bad, checks, d.l.firstBad.Load())
	}
	tw.Flush()
}

// verdict prints the last line and returns the exit status.
func (d *demo) verdict() int {
	holding := len(d.killAt)
	rec := int(d.recoveries)
	var why []string
	if n := d.violations; n > 0 {
		why = append(why, fmt.Sprintf("the invariant broke (%d failed checks)", n))
	}
	if rec != holding {
		why = append(why, fmt.Sprintf("%d deaths while holding the lock but %d recoveries", holding, rec))
	}
	if d.misplaced > 0 {
		why = append(why, fmt.Sprintf("%d recoveries found another holder than the killed one", d.misplaced))
	}
	if len(d.failures) > 0 {
		why = append(why, d.failures[0])
	}
	if len(why) > 0 {
		fmt.Fprintf(d.stdout, "\nFAIL: %s\n", joinClauses(why))
		return exitFail
	}
	if holding == 0 {
		fmt.Fprintf(d.stdout, "\nok: the invariant held; no worker died holding the lock\n")
		return exitOK
	}
	fmt.Fprintf(d.stdout, "\nok: the invariant held and all %d deaths while holding the lock were recovered\n", holding)
	return exitOK
}

func joinClauses(s []string) string {
	out := s[0]
	for _, c := range s[1:] {
		out += "; " + c
	}
	return out
}
