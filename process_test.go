//go:build linux

package robustlock_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
)

// Shared layout used by the counting and chaos helpers, after the mutex.
const (
	offCounter  = 64  // int64: incremented non-atomically under the lock
	offAccounts = 128 // [nAccounts]int64: sum must stay constant
	offJournal  = 256 // journal: active, from, to, oldFrom, oldTo, scratch (int64 each)
	offStats    = 320 // ops, recoveries (int64 each): only under the lock
	nAccounts   = 8
	total       = nAccounts * 1000
)

func i64(mem []byte, off int) *int64 { return (*int64)(unsafe.Pointer(&mem[off])) }

func init() {
	// count: G goroutines each do K locked read-pause-write increments.
	helpers["count"] = func(mem []byte, args []string) int {
		g, k := atoi(args[0]), atoi(args[1])
		m, _ := robustlock.At(mem, 0)
		ctr := i64(mem, offCounter)
		var wg sync.WaitGroup
		var failed atomic.Bool
		for i := 0; i < g; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < k; j++ {
					if err := m.Lock(); err != nil {
						fmt.Println("lock:", err)
						failed.Store(true)
						return
					}
					v := *ctr
					if j%64 == 0 {
						runtime.Gosched() // widen the window a broken lock would show
					}
					*ctr = v + 1
					m.Unlock()
				}
			}()
		}
		wg.Wait()
		if failed.Load() {
			return 1
		}
		fmt.Println("done")
		return 0
	}

	// transfer: loop forever moving money between accounts with an undo
	// journal, recovering a dead owner's half-done transfer on ErrOwnerDied.
	// Prints "tick" every 100 operations so the parent can see progress.
	helpers["transfer"] = func(mem []byte, args []string) int {
		m, _ := robustlock.At(mem, 0)
		acct := func(i int64) *int64 { return i64(mem, offAccounts+8*int(i)) }
		j := func(i int) *int64 { return i64(mem, offJournal+8*i) }
		ops, recov := i64(mem, offStats), i64(mem, offStats+8)
		for n := 0; ; n++ {
			switch err := m.Lock(); err {
			case nil:
			case robustlock.ErrOwnerDied:
				if *j(0) != 0 { // roll back the dead owner's transfer
					*acct(*j(1)), *acct(*j(2)) = *j(3), *j(4)
					*j(0) = 0
				}
				*recov++
				if err := m.MarkConsistent(); err != nil {
					fmt.Println("mark:", err)
					return 1
				}
			default:
				fmt.Println("lock:", err)
				return 1
			}
			from, to := rand.Int64N(nAccounts), rand.Int64N(nAccounts)
			amt := rand.Int64N(50)
			*j(1), *j(2), *j(3), *j(4) = from, to, *acct(from), *acct(to)
			*j(0) = 1
			*acct(from) -= amt
			for i := 0; i < 200; i++ { // a window in which kills land mid-transfer
				*j(5) += *acct(to)
			}
			*acct(to) += amt
			*j(0) = 0
			var sum int64
			for i := int64(0); i < nAccounts; i++ {
				sum += *acct(i)
			}
			if sum != total {
				fmt.Println("invariant broken:", sum)
				return 1
			}
			*ops++
			m.Unlock()
			if n%100 == 0 {
				fmt.Println("tick")
			}
		}
	}

	// exitholding: a goroutine locks and exits holding the lock; the
	// process lives on.
	helpers["exitholding"] = func(mem []byte, args []string) int {
		m, _ := robustlock.At(mem, 0)
		done := make(chan error)
		go func() { done <- m.Lock() }()
		if err := <-done; err != nil {
			fmt.Println("lock:", err)
			return 1
		}
		fmt.Println("exited holding")
		for {
			time.Sleep(time.Hour)
		}
	}
}

func TestCounterAcrossProcesses(t *testing.T) {
	path, mem, _ := shared(t)
	const procs, gor, k = 4, 4, 5000
	var hs []*helper
	for i := 0; i < procs; i++ {
		hs = append(hs, startHelper(t, path, "count", fmt.Sprint(gor), fmt.Sprint(k)))
	}
	for _, h := range hs {
		h.expect("done")
		if code := h.wait(); code != 0 {
			t.Fatalf("helper exit %d", code)
		}
	}
	if got := *i64(mem, offCounter); got != procs*gor*k {
		t.Fatalf("counter = %d, want %d: the lock let two holders in", got, procs*gor*k)
	}
}

func TestGoroutineExitInAnotherProcess(t *testing.T) {
	path, _, m := shared(t)
	h := startHelper(t, path, "exitholding")
	h.expect("exited holding")
	errc := make(chan error)
	go func() {
		err := m.Lock()
		if err == robustlock.ErrOwnerDied {
			m.MarkConsistent()
		}
		if err == nil || err == robustlock.ErrOwnerDied {
			m.Unlock()
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != robustlock.ErrOwnerDied {
			t.Fatalf("after a goroutine in a live process exited holding the lock: %v, want ErrOwnerDied", err)
		}
	case <-time.After(watchdog):
		t.Fatal("lock of an exited goroutine in a live process never came free")
	}
}

// TestRandomKillsNeverHang runs transfer workers and SIGKILLs random ones
// at random moments, replacing each; survivors must keep making progress,
// every death while holding must be recovered, and the accounts must
// balance at the end.
func TestRandomKillsNeverHang(t *testing.T) {
	path, mem, m := shared(t)
	for i := 0; i < nAccounts; i++ {
		*i64(mem, offAccounts+8*i) = total / nAccounts
	}
	const workers = 4
	kills := 40
	if testing.Short() {
		kills = 10
	}
	ws := make([]*helper, workers)
	for i := range ws {
		ws[i] = startHelper(t, path, "transfer")
	}
	// progress drains a worker's ticks; the watchdog fails the test if no
	// worker ticks for too long (a hang), rather than hanging CI.
	var ticks atomic.Int64
	drain := func(h *helper) {
		go func() {
			for l := range h.lines {
				if l == "tick" {
					ticks.Add(1)
				} else {
					t.Errorf("worker %d: %s", h.cmd.Process.Pid, l)
				}
			}
		}()
	}
	for _, w := range ws {
		drain(w)
	}
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
		before := ticks.Load()
		i := rand.IntN(workers)
		ws[i].kill()
		ws[i].cmd.Wait()
		ws[i] = startHelper(t, path, "transfer")
		drain(ws[i])
		deadline := time.Now().Add(watchdog)
		for ticks.Load() == before {
			if time.Now().After(deadline) {
				t.Fatalf("no worker made progress for %v after kill %d: survivors hang", watchdog, k)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, w := range ws {
		w.kill()
		w.cmd.Wait()
	}
	err := m.Lock()
	if err == robustlock.ErrOwnerDied {
		j := func(i int) *int64 { return i64(mem, offJournal+8*i) }
		if *j(0) != 0 {
			*i64(mem, offAccounts+8*int(*j(1))), *i64(mem, offAccounts+8*int(*j(2))) = *j(3), *j(4)
			*j(0) = 0
		}
		m.MarkConsistent()
	} else if err != nil {
		t.Fatal(err)
	}
	defer m.Unlock()
	var sum int64
	for i := 0; i < nAccounts; i++ {
		sum += *i64(mem, offAccounts+8*i)
	}
	ops, recov := *i64(mem, offStats), *i64(mem, offStats+8)
	t.Logf("%d kills, %d transfers, %d recoveries", kills, ops, recov)
	if sum != total {
		t.Fatalf("accounts sum to %d, want %d", sum, total)
	}
	if recov == 0 {
		t.Fatal("no kill landed while a worker held the lock: the test did not test recovery")
	}
}
