//go:build linux

package e2e

// The chaos soak.
//
// Go workers (this test binary, run again) and C workers (testdata/chaos.c)
// share one segment. Each critical section moves money between accounts
// with an undo journal; the sum is checked on every entry and exit. The
// supervisor (TestChaos) SIGKILLs workers, picking the current holder half
// of the time, and sometimes SIGSTOPs one first and kills it a little
// later; workers themselves exec (from the main thread) or end the locking
// thread while holding, now and then.
//
// Exactly-once accounting. Every critical section takes the next epoch
// from a shared counter and writes it to W_OWNER while inside, and 0
// before unlocking. A worker that gets ErrOwnerDied (EOWNERDEAD) reads
// W_OWNER: a non-zero value is the epoch of the holder that died inside,
// and it appends it to a recovery log (one store of the count commits an
// entry; an entry equal to the last one means a recoverer died after
// committing it, and is not appended again). A zero means the holder died
// just after taking the lock or just before releasing it, where no epoch
// is visible: that is counted as an anonymous recovery.
//
// Each worker also has a slot, written only by itself, saying what it is
// doing: LOCKING (epoch 0, then the new epoch once taken but before it is
// published in W_OWNER), INSIDE (W_OWNER holds its epoch), UNLOCKING
// (about to clear W_OWNER and unlock), EXECING / THREADDYING (inside, and
// about to die on purpose). When a worker dies the supervisor reads its
// slot. INSIDE, EXECING and THREADDYING are certain deaths while holding:
// the epoch must appear in the log exactly once. LOCKING and UNLOCKING are
// ambiguous: the lock may or may not have been held; the epoch, if any,
// may appear in the log, and otherwise at most one anonymous recovery may
// be due to it. A worker that gets the lock without ErrOwnerDied while
// W_OWNER is not 0 has caught a death that was not reported (or two
// holders at once), and fails the test on the spot.
//
// At the end: no epoch logged twice; every certain death's epoch logged;
// every logged epoch belongs to a death (no live holder was reported
// dead); anonymous recoveries no more than the ambiguous deaths left
// unexplained; the accounts balance; and no worker ever waited longer
// than the bound.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// The shared layout, in int64 words of the segment's data; testdata/chaos.c
// has the same (TestChaosLayout).
const (
	wMagic     = 0
	wEpoch     = 1
	wOwner     = 2
	wOps       = 3
	wLogN      = 4
	wAnon      = 5
	wJActive   = 6
	wJFrom     = 7
	wJTo       = 8
	wJOldFrom  = 9
	wJOldTo    = 10
	wScratch   = 11
	wAccounts  = 16
	nAccounts  = 16
	wSlots     = 64
	nSlots     = 64
	slotWords  = 8
	wLog       = wSlots + nSlots*slotWords
	nLog       = 4096
	nWords     = wLog + 2*nLog
	chaosMagic = 0x534f414b43484153
	total      = nAccounts * 1000

	sPID       = 0
	sPhase     = 1
	sEpoch     = 2
	sLockStart = 3
	sMaxWait   = 4
	sOps       = 5
	sRecov     = 6
	sDeathAt   = 7
)

const (
	phIdle = iota
	phLocking
	phInside
	phUnlocking
	phExecing
	phThreadDying
)

var phaseName = []string{"idle", "locking", "inside", "unlocking", "execing", "threaddying"}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// A chaosMem is the shared words and the lock.
type chaosMem struct {
	m *robustlock.Mutex
	w []int64
}

func (c *chaosMem) ld(i int) int64     { return atomic.LoadInt64(&c.w[i]) }
func (c *chaosMem) st(i int, v int64)  { atomic.StoreInt64(&c.w[i], v) }
func (c *chaosMem) slot(s int) []int64 { return c.w[wSlots+s*slotWords : wSlots+(s+1)*slotWords] }

func openChaos(path string) (*chaosMem, error) {
	seg, err := segment.Open(filepath.Base(path), segment.Dir(filepath.Dir(path)), segment.OpenOnly())
	if err != nil {
		return nil, err
	}
	d := seg.Data()
	if len(d) < nWords*8 {
		return nil, fmt.Errorf("segment data %d bytes, want %d", len(d), nWords*8)
	}
	c := &chaosMem{m: seg.Mutex(), w: unsafe.Slice((*int64)(unsafe.Pointer(&d[0])), nWords)}
	if c.ld(wMagic) != chaosMagic {
		return nil, errors.New("layout magic missing")
	}
	return c, nil
}

// violation is a broken invariant, found by a worker.
type violation struct{ msg string }

func (v *violation) Error() string { return "violation " + v.msg }

func (c *chaosMem) checkSum(when string) error {
	var sum int64
	for i := 0; i < nAccounts; i++ {
		sum += c.w[wAccounts+i]
	}
	if sum != total {
		return &violation{fmt.Sprintf("%s %d %d", when, sum, total)}
	}
	return nil
}

// recoverDead runs with the lock held after ErrOwnerDied.
func (c *chaosMem) recoverDead(slot []int64) error {
	d, n := c.ld(wOwner), c.ld(wLogN)
	if d != 0 && !(n > 0 && c.ld(wLog+2*int((n-1)%nLog)) == d) {
		c.st(wLog+2*int(n%nLog), d)
		c.st(wLog+2*int(n%nLog)+1, monoNow())
		c.st(wLogN, n+1) // the commit
	} else {
		c.st(wAnon, c.ld(wAnon)+1)
	}
	if c.w[wJActive] != 0 { // roll the dead holder's transfer back
		c.w[wAccounts+c.w[wJFrom]] = c.w[wJOldFrom]
		c.w[wAccounts+c.w[wJTo]] = c.w[wJOldTo]
		c.w[wJActive] = 0
	}
	if err := c.checkSum("sum-after-repair"); err != nil {
		return err
	}
	if err := c.m.MarkConsistent(); err != nil {
		return &violation{"consistent " + err.Error()}
	}
	atomic.AddInt64(&slot[sRecov], 1)
	return nil
}

const (
	opNormal = iota
	opExec
	opThreadDie
)

// op is one critical section. With opExec it does not return; with
// opThreadDie it returns holding the lock (the caller's goroutine then
// ends, and its thread with it).
func (c *chaosMem) op(slot []int64, how int, rng *rand.Rand) error {
	atomic.StoreInt64(&slot[sEpoch], 0)
	t0 := monoNow()
	atomic.StoreInt64(&slot[sLockStart], t0)
	atomic.StoreInt64(&slot[sPhase], phLocking)
	var err error
	if rng.IntN(8) == 0 {
		// A timed lock that may give up, then a plain one: giving up must
		// never strand anyone.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(20))*time.Millisecond)
		err = c.m.LockContext(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = c.m.Lock()
		}
	} else {
		err = c.m.Lock()
	}
	if waited := monoNow() - t0; waited > slot[sMaxWait] {
		atomic.StoreInt64(&slot[sMaxWait], waited)
	}
	switch {
	case errors.Is(err, robustlock.ErrOwnerDied):
		if err := c.recoverDead(slot); err != nil {
			return err
		}
	case err != nil:
		return &violation{"lock " + errName(err)}
	case c.ld(wOwner) != 0:
		return &violation{fmt.Sprintf("entered-while-owner-inside %d", c.ld(wOwner))}
	}
	ep := c.ld(wEpoch) + 1
	c.st(wEpoch, ep)
	atomic.StoreInt64(&slot[sEpoch], ep)
	c.st(wOwner, ep)
	atomic.StoreInt64(&slot[sPhase], phInside)
	if err := c.checkSum("sum-on-entry"); err != nil {
		return err
	}

	from, to := rng.IntN(nAccounts), rng.IntN(nAccounts)
	amt := rng.Int64N(50)
	c.w[wJFrom], c.w[wJTo] = int64(from), int64(to)
	c.w[wJOldFrom], c.w[wJOldTo] = c.w[wAccounts+from], c.w[wAccounts+to]
	c.st(wJActive, 1)
	c.w[wAccounts+from] -= amt
	for i := 0; i < 100+rng.IntN(400); i++ { // a window for kills mid-transfer
		c.st(wScratch, c.w[wScratch]+c.w[wAccounts+to])
	}
	if rng.IntN(50) == 0 {
		time.Sleep(500 * time.Microsecond) // sometimes hold long enough to be stopped
	}
	c.w[wAccounts+to] += amt
	c.st(wJActive, 0)
	if err := c.checkSum("sum-on-exit"); err != nil {
		return err
	}

	switch how {
	case opExec:
		atomic.StoreInt64(&slot[sDeathAt], monoNow())
		atomic.StoreInt64(&slot[sPhase], phExecing)
		// exec runs the kernel's robust-list walk, as exit does (from the
		// main thread: see TestExecFromOtherThread). Half the time /bin/true,
		// half this test binary, which exits at once.
		if rng.IntN(2) == 0 {
			err = syscall.Exec("/bin/true", []string{"true"}, nil)
		} else {
			err = syscall.Exec(os.Args[0], []string{os.Args[0], "-test.run=^$"}, proctest.HelperEnv("execd"))
		}
		return &violation{"exec " + err.Error()}
	case opThreadDie:
		atomic.StoreInt64(&slot[sDeathAt], monoNow())
		atomic.StoreInt64(&slot[sPhase], phThreadDying)
		return nil
	}
	c.st(wOps, c.ld(wOps)+1)
	atomic.AddInt64(&slot[sOps], 1)
	atomic.StoreInt64(&slot[sPhase], phUnlocking)
	c.st(wOwner, 0)
	if err := c.m.Unlock(); err != nil {
		return &violation{"unlock " + errName(err)}
	}
	atomic.StoreInt64(&slot[sPhase], phIdle)
	return nil
}

func init() {
	helpers["execd"] = func([]string) int { return 0 }
	// chaos PATH SLOT SEED PEXEC PGDIE: the Go worker. It runs on the main
	// goroutine, so on the main thread (see init in main_test.go), which is
	// what makes its exec while holding recoverable.
	helpers["chaos"] = func(a []string) int {
		if len(a) != 5 {
			fmt.Fprintln(os.Stderr, "chaos: bad args", a)
			return 2
		}
		c, err := openChaos(a[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		s, seed, pexec, pgdie := atoi(a[1]), atoi(a[2]), atoi(a[3]), atoi(a[4])
		slot := c.slot(s)
		atomic.StoreInt64(&slot[sPID], int64(os.Getpid()))
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(s)))
		fmt.Println("ready")
		for {
			r := rng.IntN(1000000)
			var err error
			switch {
			case r < pexec:
				err = c.op(slot, opExec, rng)
			case r < pexec+pgdie:
				// A goroutine locks and ends holding the lock; its thread
				// ends with it and the kernel marks the lock.
				done := make(chan error)
				grng := rand.New(rand.NewPCG(rng.Uint64(), 1))
				go func() { done <- c.op(slot, opThreadDie, grng) }()
				if err = <-done; err == nil {
					fmt.Println("tdied", atomic.LoadInt64(&slot[sEpoch]), atomic.LoadInt64(&slot[sDeathAt]))
					atomic.StoreInt64(&slot[sPhase], phIdle)
				}
			default:
				err = c.op(slot, opNormal, rng)
			}
			if err != nil {
				fmt.Println(err)
				return 3
			}
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond) // let others in
			}
		}
	}
}

// TestChaosLayout: the C worker's layout is the Go one.
func TestChaosLayout(t *testing.T) {
	out, err := exec.Command(cProgram(t, "chaos"), "layout").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("magic=%d epoch=%d owner=%d ops=%d logn=%d anon=%d jactive=%d accounts=%d naccounts=%d "+
		"slots=%d nslots=%d slotw=%d log=%d nlog=%d nwords=%d total=%d",
		chaosMagic, wEpoch, wOwner, wOps, wLogN, wAnon, wJActive, wAccounts, nAccounts,
		wSlots, nSlots, slotWords, wLog, nLog, nWords, total)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("C layout:\n%s\nGo layout:\n%s", got, want)
	}
}

// soakDefault is how long TestChaos runs by default. CI runs the package
// three times (plain, -race, CGO_ENABLED=0); the plain run soaks longest
// and the others, which repeat the proof with glibc's robust lists (race)
// or without cgo, are shortened by chaos_race_test.go and
// chaos_nocgo_test.go.
var soakDefault = 60 * time.Second

// soakDuration is how long TestChaos runs: ROBUSTLOCK_SOAK if set (the
// long mode, e.g. 2h), else soakDefault, or 10 s with -short.
func soakDuration(t *testing.T) (time.Duration, bool) {
	if s := os.Getenv("ROBUSTLOCK_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("ROBUSTLOCK_SOAK=%q: want a duration such as 2h", s)
		}
		return d, true
	}
	if testing.Short() {
		return 10 * time.Second, false
	}
	return soakDefault, false
}

// maxWaitBound is the longest any worker may wait for the lock. Holders
// are stopped for at most 50 ms before being killed, and a critical
// section is microseconds; seconds of waiting mean a lost wake-up or a
// death nobody was told of.
const maxWaitBound = 10 * time.Second

type chaosWorker struct {
	slot     int
	kind     string
	cmd      *exec.Cmd
	killedAt int64 // monotonic ns when we sent SIGKILL; 0: not killed by us
	how      string
	stopped  bool
	out      []string // its last lines
}

type chaosEvent struct {
	w      *chaosWorker
	line   string
	exited bool
	err    error
}

type death struct {
	at  int64 // monotonic ns
	how string
}

// chaosStats are what TestChaos prints at the end.
type chaosStats struct {
	spawned, kills, stopKills, killsHolding, killsAmbiguous, execs, threadDeaths int
	recoveries, anon, ops                                                        int64
	longestRecovery, longestWait                                                 time.Duration
	byKind                                                                       map[string]int
}

func TestChaos(t *testing.T) {
	dur, long := soakDuration(t)
	if d, ok := t.Deadline(); ok && time.Until(d) < dur+2*time.Minute {
		t.Fatalf("the soak needs %v but go test's -timeout leaves %v: add -timeout %v", dur, time.Until(d).Round(time.Second),
			(dur + 10*time.Minute).Round(time.Minute))
	}
	cBin := ""
	if _, err := exec.LookPath("gcc"); err == nil {
		cBin = cProgram(t, "chaos")
	} else {
		t.Log("gcc not found: Go workers only")
	}
	dir := t.TempDir()
	if fi, err := os.Stat(segment.DefaultDir); err == nil && fi.IsDir() {
		dir = segment.DefaultDir
	}
	name := fmt.Sprintf("robustlock-e2e-chaos-%d", os.Getpid())
	seg, err := segment.Open(name, segment.Dir(dir), segment.Size(nWords*8), segment.CreateOnly(),
		segment.Init(func(d []byte) error {
			w := unsafe.Slice((*int64)(unsafe.Pointer(&d[0])), nWords)
			for i := 0; i < nAccounts; i++ {
				w[wAccounts+i] = total / nAccounts
			}
			w[wMagic] = chaosMagic
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { segment.Remove(name, segment.Dir(dir)) })
	path := filepath.Join(dir, name)
	c := &chaosMem{m: seg.Mutex(), w: unsafe.Slice((*int64)(unsafe.Pointer(&seg.Data()[0])), nWords)}

	workers := 6
	if testing.Short() {
		workers = 4
	}
	life := dur + 5*time.Minute
	events := make(chan chaosEvent, 1024)
	live := map[int]*chaosWorker{}
	st := chaosStats{byKind: map[string]int{}}
	certain := map[int64]death{}
	candidates := map[int64]bool{}
	recovered := map[int64]int64{}
	var consumed int64
	var failures []string
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		failures = append(failures, msg)
		t.Error(msg)
	}

	spawn := func(s int) {
		kind := "go"
		if cBin != "" && s%3 == 0 {
			kind = "c"
		}
		clear(c.slot(s))
		seed := strconv.FormatUint(rand.Uint64()>>1, 10)
		var cmd *exec.Cmd
		// Per-million chances per critical section of dying on purpose:
		// roughly one exec and one thread death a second overall.
		if kind == "c" {
			cmd = exec.Command(cBin, path, strconv.Itoa(s), seed, "100", "100")
		} else {
			cmd = helperCmd("chaos", life, path, strconv.Itoa(s), seed, "200", "200")
		}
		w := &chaosWorker{slot: s, kind: kind, cmd: cmd}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting a %s worker: %v", kind, err)
		}
		st.spawned++
		live[s] = w
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				events <- chaosEvent{w: w, line: sc.Text()}
			}
			err := cmd.Wait()
			events <- chaosEvent{w: w, exited: true, err: err}
		}()
	}

	// reap accounts for a worker that has exited.
	reap := func(w *chaosWorker, err error) {
		delete(live, w.slot)
		sl := c.slot(w.slot)
		phase, ep := atomic.LoadInt64(&sl[sPhase]), atomic.LoadInt64(&sl[sEpoch])
		if d := time.Duration(atomic.LoadInt64(&sl[sMaxWait])); d > st.longestWait {
			st.longestWait = d
		}
		if w.killedAt != 0 {
			st.kills++
			switch phase {
			case phInside, phExecing, phThreadDying:
				st.killsHolding++
				st.byKind[w.kind+" killed holding"]++
				if _, ok := certain[ep]; !ok {
					certain[ep] = death{w.killedAt, w.how}
				}
			case phLocking, phUnlocking:
				st.killsAmbiguous++
				if ep != 0 {
					candidates[ep] = true
				}
			}
			return
		}
		if err == nil && phase == phExecing {
			st.execs++
			st.byKind[w.kind+" exec holding"]++
			certain[ep] = death{atomic.LoadInt64(&sl[sDeathAt]), "exec"}
			return
		}
		fail("%s worker in slot %d exited by itself (%v) in phase %s; last output:\n%s",
			w.kind, w.slot, err, phaseName[phase], strings.Join(w.out, "\n"))
	}

	handle := func(ev chaosEvent) {
		w := ev.w
		if ev.exited {
			reap(w, ev.err)
			return
		}
		if w.out = append(w.out, ev.line); len(w.out) > 20 {
			w.out = w.out[1:]
		}
		f := strings.Fields(ev.line)
		switch {
		case len(f) == 3 && (f[0] == "tdied"):
			ep, _ := strconv.ParseInt(f[1], 10, 64)
			at, _ := strconv.ParseInt(f[2], 10, 64)
			if _, ok := certain[ep]; !ok {
				certain[ep] = death{at, "thread exit"}
				st.threadDeaths++
				st.byKind[w.kind+" thread died holding"]++
			}
		case len(f) > 0 && f[0] == "violation":
			fail("%s worker in slot %d: %s", w.kind, w.slot, ev.line)
		case ev.line == "ready":
		default:
			t.Logf("%s worker in slot %d: %s", w.kind, w.slot, ev.line)
		}
	}

	consume := func() {
		n := c.ld(wLogN)
		if n-consumed > nLog {
			fail("recovery log overflowed: %d entries unread", n-consumed)
			consumed = n - nLog
		}
		for ; consumed < n; consumed++ {
			i := wLog + 2*int(consumed%nLog)
			ep, at := c.ld(i), c.ld(i+1)
			if _, dup := recovered[ep]; dup {
				fail("epoch %d recovered twice: one death reported to two lockers", ep)
			}
			recovered[ep] = at
		}
	}

	// The test process is a locker too: it checks the invariant from
	// outside the workers, every few milliseconds.
	selfErr := make(chan error, 1)
	stopSelf := make(chan struct{})
	selfDone := make(chan struct{})
	go func() {
		defer close(selfDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stopSelf:
				return
			case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
			}
			if err := c.op(c.slot(0), opNormal, rng); err != nil {
				selfErr <- err
				return
			}
		}
	}()

	watch := func(now int64) {
		for s := 0; s < nSlots; s++ {
			w := live[s]
			if s != 0 && (w == nil || w.stopped) {
				continue
			}
			sl := c.slot(s)
			if atomic.LoadInt64(&sl[sPhase]) != phLocking {
				continue
			}
			if waited := time.Duration(now - atomic.LoadInt64(&sl[sLockStart])); waited > maxWaitBound {
				fail("slot %d has waited %v for the lock (bound %v); mutex %v; slots:\n%s",
					s, waited, maxWaitBound, c.m.State(), c.describeSlots(live))
			}
		}
	}

	for s := 1; s <= workers; s++ {
		spawn(s)
	}
	t.Logf("%d workers (%d C), %v%s", workers, workers/3*boolInt(cBin != ""), dur, map[bool]string{true: " (long mode)"}[long])
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	deadline := time.Now().Add(dur)
	lastOps, lastProgress := int64(0), time.Now()
	nextReport := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && len(failures) == 0 {
		tick := time.After(time.Duration(5+rng.IntN(60)) * time.Millisecond)
	drain:
		for {
			select {
			case ev := <-events:
				handle(ev)
				if ev.exited {
					spawn(ev.w.slot)
				}
			case err := <-selfErr:
				fail("test process: %v", err)
			case <-tick:
				break drain
			}
		}
		consume()
		now := monoNow()
		watch(now)
		if ops := c.ld(wOps); ops != lastOps {
			lastOps, lastProgress = ops, time.Now()
		} else if time.Since(lastProgress) > maxWaitBound {
			fail("no critical section completed for %v; mutex %v; slots:\n%s", maxWaitBound, c.m.State(), c.describeSlots(live))
		}
		if long && time.Now().After(nextReport) {
			nextReport = time.Now().Add(time.Minute)
			t.Logf("%v left: %d kills (%d holding), %d recoveries, %d ops", time.Until(deadline).Round(time.Second),
				st.kills, st.killsHolding, c.ld(wLogN)+c.ld(wAnon), c.ld(wOps))
		}
		// Kill someone: the holder half the time, anyone otherwise; a
		// quarter of the victims are stopped first and killed later.
		if len(live) < workers {
			continue // wait for replacements
		}
		var victim *chaosWorker
		if rng.IntN(2) == 0 {
			for _, w := range live {
				if atomic.LoadInt64(&c.slot(w.slot)[sPhase]) == phInside {
					victim = w
					break
				}
			}
		}
		if victim == nil {
			keys := make([]int, 0, len(live))
			for s := range live {
				keys = append(keys, s)
			}
			sort.Ints(keys)
			victim = live[keys[rng.IntN(len(keys))]]
		}
		if victim.killedAt != 0 {
			continue
		}
		if rng.IntN(4) == 0 {
			victim.how = "stop+kill"
			victim.stopped = true
			victim.cmd.Process.Signal(syscall.SIGSTOP)
			st.stopKills++
			time.Sleep(time.Duration(1+rng.IntN(50)) * time.Millisecond)
		} else {
			victim.how = "kill"
		}
		victim.killedAt = monoNow()
		victim.cmd.Process.Signal(syscall.SIGKILL)
	}

	// Shut down: stop the test process's locker, kill every worker, account
	// for them, then take the lock once more and check everything.
	close(stopSelf)
	<-selfDone
	for _, w := range live {
		if w.killedAt == 0 {
			w.killedAt = monoNow()
			w.how = "kill at the end"
			w.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for timeout := time.After(watchdog); len(live) > 0; {
		select {
		case ev := <-events:
			handle(ev)
		case <-timeout:
			t.Fatalf("%d workers did not die", len(live))
		}
	}
	final := make(chan error)
	go func() { final <- c.op(c.slot(0), opNormal, rand.New(rand.NewPCG(3, 4))) }()
	select {
	case err := <-final:
		if err != nil {
			fail("final lock: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatalf("the final lock hung; mutex %v", c.m.State())
	}
	consume()

	// The exactly-once checks.
	st.recoveries, st.anon, st.ops = c.ld(wLogN)+c.ld(wAnon), c.ld(wAnon), c.ld(wOps)
	var unexplained int
	for ep, d := range certain {
		at, ok := recovered[ep]
		if !ok {
			fail("epoch %d died holding the lock (%s) and was never reported to a later locker", ep, d.how)
			continue
		}
		if lat := time.Duration(at - d.at); lat > st.longestRecovery {
			st.longestRecovery = lat
		}
	}
	for ep := range recovered {
		if _, ok := certain[ep]; !ok && !candidates[ep] {
			fail("epoch %d was reported dead, but its holder did not die holding the lock", ep)
		}
	}
	ambiguousLeft := st.killsAmbiguous
	for ep := range candidates {
		if _, ok := recovered[ep]; ok {
			ambiguousLeft--
		}
	}
	if int(st.anon) > ambiguousLeft {
		fail("%d anonymous recoveries but only %d deaths where the lock may have been held without an epoch", st.anon, ambiguousLeft)
		unexplained = int(st.anon) - ambiguousLeft
	}
	if err := c.checkSum("final"); err != nil {
		fail("%v", err)
	}
	for s := 0; s < nSlots; s++ {
		if d := time.Duration(c.slot(s)[sMaxWait]); d > st.longestWait {
			st.longestWait = d
		}
	}
	if st.longestWait > maxWaitBound {
		fail("a worker waited %v for the lock (bound %v)", st.longestWait, maxWaitBound)
	}
	kinds := make([]string, 0, len(st.byKind))
	for k, v := range st.byKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(kinds)
	t.Logf("chaos %v: %d workers started, %d critical sections; %d kills (%d stopped first), "+
		"%d while holding, %d in the lock/unlock window; %d execs and %d thread deaths while holding; "+
		"%d recoveries (%d by epoch, %d anonymous, %d unexplained); longest recovery %v, longest wait %v; by kind: %s",
		dur, st.spawned, st.ops, st.kills, st.stopKills, st.killsHolding, st.killsAmbiguous, st.execs, st.threadDeaths,
		st.recoveries, len(recovered), st.anon, unexplained, st.longestRecovery, st.longestWait, strings.Join(kinds, ", "))
	if st.killsHolding+st.execs+st.threadDeaths == 0 || len(recovered) == 0 {
		t.Errorf("no death while holding was recovered: the soak did not test recovery")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (c *chaosMem) describeSlots(live map[int]*chaosWorker) string {
	var b strings.Builder
	for s := 0; s < nSlots; s++ {
		sl := c.slot(s)
		w, ok := live[s]
		if s != 0 && !ok {
			continue
		}
		kind := "test"
		if ok {
			kind = w.kind
		}
		fmt.Fprintf(&b, "  slot %d %s pid %d phase %s epoch %d waiting since %v\n", s, kind, sl[sPID],
			phaseName[sl[sPhase]], sl[sEpoch], time.Duration(monoNow()-sl[sLockStart]))
	}
	return b.String()
}
