//go:build linux

package robustlock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
)

// manyWaiters is how many goroutines the thread-count tests park on one
// Mutex: 100,000, except under the race detector, whose runtime refuses
// more than 8128 live goroutines.
func manyWaiters() int {
	if raceEnabled {
		return 4000
	}
	return 100_000
}

// threads reads this process's thread count from /proc/self/status.
func threads(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// threadBound is what the issue allows while they wait: 64 + GOMAXPROCS.
func threadBound() int { return 64 + runtime.GOMAXPROCS(0) }

// crowd is n goroutines that each take m once, checking mutual exclusion
// with an atomic "inside" flag (the race detector cannot see a robust
// lock's edges, so nothing here is a plain shared variable).
type crowd struct {
	inside   atomic.Int32
	acquired atomic.Int64
	died     atomic.Int64
	gaveUp   atomic.Int64
	bad      atomic.Value // first unexpected error
	wg       sync.WaitGroup
}

func (c *crowd) take(m *robustlock.Mutex, lock func() error) {
	defer c.wg.Done()
	err := lock()
	switch {
	case err == nil:
	case errors.Is(err, robustlock.ErrOwnerDied):
		c.died.Add(1)
		if err := m.MarkConsistent(); err != nil {
			c.bad.CompareAndSwap(nil, err)
		}
	case errors.Is(err, context.DeadlineExceeded):
		c.gaveUp.Add(1)
		return
	default:
		c.bad.CompareAndSwap(nil, err)
		return
	}
	if !c.inside.CompareAndSwap(0, 1) {
		c.bad.CompareAndSwap(nil, errors.New("two goroutines inside the critical section"))
	}
	c.acquired.Add(1)
	c.inside.Store(0)
	if err := m.Unlock(); err != nil {
		c.bad.CompareAndSwap(nil, err)
	}
}

// run starts n goroutines on m (the i-th locks with lock(i)), waits until
// all of them wait, checks the thread count, calls release and waits for
// every one to finish.
func (c *crowd) run(t *testing.T, m *robustlock.Mutex, n int, lock func(i int) func() error, release func()) {
	t.Helper()
	base := robustlock.Waiting()
	c.wg.Add(n)
	for i := range n {
		go c.take(m, lock(i))
	}
	deadline := time.Now().Add(watchdog)
	maxThreads := 0
	for robustlock.Waiting()-base+int(c.gaveUp.Load()) < n {
		maxThreads = max(maxThreads, threads(t))
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d goroutines waited within %v", robustlock.Waiting()-base, n, watchdog)
		}
		time.Sleep(5 * time.Millisecond)
	}
	maxThreads = max(maxThreads, threads(t))
	t.Logf("%d goroutines waiting, at most %d threads (bound %d)", n, maxThreads, threadBound())
	if maxThreads >= threadBound() {
		t.Errorf("%d threads while %d goroutines waited: want fewer than %d", maxThreads, n, threadBound())
	}
	release()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(4 * watchdog):
		t.Fatalf("waiters still running after release: %d acquired, %d gave up of %d",
			c.acquired.Load(), c.gaveUp.Load(), n)
	}
	if err, _ := c.bad.Load().(error); err != nil {
		t.Fatal(err)
	}
	if got := c.acquired.Load() + c.gaveUp.Load(); got != int64(n) {
		t.Fatalf("%d acquired + %d gave up, want %d", c.acquired.Load(), c.gaveUp.Load(), n)
	}
	if w := robustlock.Waiting() - base; w != 0 {
		t.Fatalf("%d goroutines still counted as waiting", w)
	}
	awaitNoRooms(t)
}

// awaitNoRooms checks that idle Mutexes keep no process-local state.
func awaitNoRooms(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for robustlock.RoomsInUse() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms left after every waiter returned", robustlock.RoomsInUse())
		}
		time.Sleep(time.Millisecond)
	}
}

func plainLock(m *robustlock.Mutex) func(int) func() error {
	return func(int) func() error { return m.Lock }
}

// A held Mutex with 100,000 goroutines waiting for it costs goroutines,
// not threads, and each of them gets it exactly once after release.
func TestManyGoroutinesWaitInProcess(t *testing.T) {
	_, _, m := shared(t)
	held := make(chan struct{})
	release := make(chan struct{})
	go func() { // the holder, on its own goroutine (and thread)
		if err := m.Lock(); err != nil {
			t.Error(err)
		}
		close(held)
		<-release
		m.Unlock()
	}()
	<-held
	var c crowd
	c.run(t, m, manyWaiters(), plainLock(m), func() { close(release) })
	if c.died.Load() != 0 {
		t.Fatalf("%d owner deaths reported, want none", c.died.Load())
	}
}

// The same with the holder in another process: the room's delegate sleeps
// in the kernel, the rest park, and the holder's death is reported to
// exactly one of them.
func TestManyGoroutinesWaitForAnotherProcess(t *testing.T) {
	path, _, m := shared(t)
	holder := startHelper(t, path, "hold")
	holder.expect("locked")
	var c crowd
	c.run(t, m, manyWaiters(), plainLock(m), holder.kill)
	if c.died.Load() != 1 {
		t.Fatalf("%d goroutines were told the owner died, want exactly 1", c.died.Load())
	}
}

// Half of the waiters give up at random short deadlines while parked or
// asleep; nobody hangs, nothing is left behind, the rest all acquire.
func TestManyGoroutinesWithDeadlines(t *testing.T) {
	_, _, m := shared(t)
	held := make(chan struct{})
	release := make(chan struct{})
	go func() {
		if err := m.Lock(); err != nil {
			t.Error(err)
		}
		close(held)
		<-release
		m.Unlock()
	}()
	<-held
	n := manyWaiters()
	var c crowd
	lock := func(i int) func() error {
		if i%2 == 0 {
			return m.Lock
		}
		d := time.Duration(1+rand.IntN(50)) * time.Millisecond
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			return m.LockContext(ctx)
		}
	}
	c.run(t, m, n, lock, func() {
		// Let the deadlines pass while the lock is held: every
		// LockContext waiter must give up, parked or not.
		deadline := time.Now().Add(watchdog)
		for c.gaveUp.Load() < int64(n/2) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		close(release)
	})
	if got := c.gaveUp.Load(); got != int64(n/2) {
		t.Fatalf("%d LockContext calls gave up, want all %d", got, n/2)
	}
}

// A goroutine that exits while holding the lock (its thread dies with it)
// is found by waiters parked in Go, though the kernel wakes only kernel
// sleepers: exactly one is told ErrOwnerDied.
func TestGoroutineDeathWakesParkedWaiters(t *testing.T) {
	_, _, m := shared(t)
	held := make(chan struct{})
	exit := make(chan struct{})
	go func() {
		if err := m.Lock(); err != nil {
			t.Error(err)
		}
		close(held)
		<-exit
		runtime.Goexit() // locked to its thread: the thread exits holding m
	}()
	<-held
	var c crowd
	c.run(t, m, 100, plainLock(m), func() { close(exit) })
	if c.died.Load() != 1 {
		t.Fatalf("%d goroutines were told the owner died, want exactly 1", c.died.Load())
	}
}

// Unlocking after ErrOwnerDied without MarkConsistent makes the Mutex not
// recoverable; every goroutine parked for it learns so promptly.
func TestNotRecoverableReachesParkedWaiters(t *testing.T) {
	path, _, m := shared(t)
	holder := startHelper(t, path, "hold")
	holder.expect("locked")
	const n = 200
	errs := make(chan error, n)
	for range n {
		go func() {
			err := m.Lock()
			if err == nil || errors.Is(err, robustlock.ErrOwnerDied) {
				m.Unlock() // without MarkConsistent when the owner died
			}
			errs <- err
		}()
	}
	awaitWaiting(t, n)
	holder.kill()
	died, notRec := 0, 0
	for range n {
		select {
		case err := <-errs:
			switch {
			case errors.Is(err, robustlock.ErrOwnerDied):
				died++
			case errors.Is(err, robustlock.ErrNotRecoverable):
				notRec++
			default:
				t.Errorf("Lock = %v", err)
			}
		case <-time.After(watchdog):
			t.Fatalf("waiters still parked after the mutex became not recoverable (%d died, %d told)", died, notRec)
		}
	}
	if died != 1 || notRec != n-1 {
		t.Fatalf("%d owner-died and %d not-recoverable, want 1 and %d", died, notRec, n-1)
	}
	awaitNoRooms(t)
}

// The holder relocking from its own goroutine is told ErrDeadlock at once,
// also while others are parked for the lock.
func TestRelockWithParkedWaiters(t *testing.T) {
	_, _, m := shared(t)
	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	for range 3 {
		go func() {
			err := m.Lock()
			if err == nil {
				err = m.Unlock()
			}
			done <- err
		}()
	}
	awaitWaiting(t, 3)
	if err := m.Lock(); err != robustlock.ErrDeadlock {
		t.Fatalf("relock = %v, want ErrDeadlock", err)
	}
	if err := m.TryLock(); err != robustlock.ErrDeadlock {
		t.Fatalf("TryLock by the holder = %v, want ErrDeadlock", err)
	}
	m.Unlock()
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func init() {
	// churn: args[0] goroutines take the lock in a loop, each holding it
	// for a little work, until killed.
	helpers["churn"] = func(mem []byte, args []string) int {
		m, _ := robustlock.At(mem, 0)
		n, _ := strconv.Atoi(args[0])
		var sink atomic.Int64
		for range n {
			go func() {
				for {
					if err := m.Lock(); err != nil {
						fmt.Println("lock:", err)
						os.Exit(1)
					}
					x := int64(0)
					for i := range 200 {
						x += int64(i) * x
					}
					sink.Add(x)
					m.Unlock()
				}
			}()
		}
		fmt.Println("running")
		for {
			time.Sleep(time.Hour)
		}
	}
}

// A process whose 50 goroutines keep the lock busy does not starve a lone
// waiter in another process: the remote-pressure budget makes it yield.
// The bound checked is only a hang detector (the watchdog); the waits seen
// are logged.
func TestLoneWaiterIsNotStarved(t *testing.T) {
	path, _, m := shared(t)
	busy := startHelper(t, path, "churn", "50")
	busy.expect("running")
	var worst time.Duration
	done := make(chan error, 1)
	const rounds = 20
	go func() {
		for range rounds {
			start := time.Now()
			if err := m.Lock(); err != nil {
				done <- err
				return
			}
			worst = max(worst, time.Since(start))
			m.Unlock()
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(watchdog):
		t.Fatalf("a lone waiter did not get the lock %d times within %v beside 50 busy goroutines of another process", rounds, watchdog)
	}
	t.Logf("lone waiter: longest wait %v over %d acquisitions", worst, rounds)
}

// A goroutine overtaken by its own process's lockers for longer than the
// starvation budget makes its room starve, which sends every Lock of the
// process to the slow path; once it has the lock, the fast path is back at
// once (it used to stay off for up to 16 ms after every episode, which in
// a busy process is most of the time).
func TestStarvationEndsAtOnce(t *testing.T) {
	_, _, m := shared(t)
	for range 20 { // the waiter sometimes wins without an episode: try again
		episode, deferring := starveOnce(t, m)
		if !episode {
			continue
		}
		if deferring {
			t.Fatal("the fast path is still off after the starving waiter got the lock")
		}
		return
	}
	t.Fatal("no starvation episode in 20 tries: the test did not exercise the budget")
}

// starveOnce has a goroutine hold m and barge back in after each Unlock
// while this one waits; it reports whether the wait was a starvation
// episode and whether Lock's fast path was still off when it ended.
func starveOnce(t *testing.T, m *robustlock.Mutex) (episode, deferring bool) {
	stop := make(chan struct{})
	barging := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.Lock(); err != nil {
			t.Error(err)
			return
		}
		close(barging)
		for {
			// Hold a while (longer than a spin), then let go and take it
			// straight back: the waiter, woken by each Unlock, finds it
			// taken again.
			for end := time.Now().Add(50 * time.Microsecond); time.Now().Before(end); {
			}
			m.Unlock()
			select {
			case <-stop:
				return
			default:
			}
			if err := m.Lock(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	<-barging
	episodes := robustlock.Starvations()
	if err := m.Lock(); err != nil { // the overtaken one
		t.Fatal(err)
	}
	deferring = robustlock.Deferring()
	m.Unlock()
	close(stop)
	wg.Wait()
	return robustlock.Starvations() != episodes, deferring
}
