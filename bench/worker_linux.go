package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/futexlab/robustlock"
)

// Worker modes.
const (
	modeContend = "contend" // K rounds of lock / critical section / unlock
	modeHandoff = "handoff" // alternate the lock with one other process
	modeHold    = "hold"    // take the lock and wait to be killed
	modeRecover = "recover" // lock after the holder is killed
)

// workerSpec tells a worker process what to run.
type workerSpec struct {
	Mode      string        `json:"mode"`
	Contender string        `json:"contender"`
	Shared    string        `json:"shared"`
	LockFile  string        `json:"lock_file"`
	SemID     int           `json:"sem_id"`
	ID        int           `json:"id"`
	G         int           `json:"g"`     // goroutines (contend)
	K         int           `json:"k"`     // rounds per goroutine (contend), rounds in all (handoff)
	CS        int64         `json:"cs"`    // critical section, ns
	Delay     int64         `json:"delay"` // hand-off: holder waits this long after the waiter announced itself
	Timeout   time.Duration `json:"timeout"`
}

// workerResult is what a worker prints on its stdout.
type workerResult struct {
	Start     int64   `json:"start"` // CLOCK_MONOTONIC when its rounds began
	End       int64   `json:"end"`
	Rounds    int64   `json:"rounds"`
	Hist      *hist   `json:"hist,omitempty"`
	Lat       []int64 `json:"lat,omitempty"`
	OwnerDied bool    `json:"owner_died"`
	Err       string  `json:"err,omitempty"`
}

// runWorker runs the spec in JSON and prints the result; its exit status
// is 0 unless the spec could not even be read.
func runWorker(specJSON string, stdout, stderr io.Writer) int {
	var spec workerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(stderr, "bench worker: bad spec: %v\n", err)
		return 2
	}
	res, err := work(&spec)
	if err != nil {
		res.Err = err.Error()
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "bench worker: %v\n", err)
		return 1
	}
	return 0
}

func work(spec *workerSpec) (res workerResult, err error) {
	sh, err := openShared(spec.Shared)
	if err != nil {
		return res, err
	}
	e := &env{sh: sh, lockFile: spec.LockFile, semID: spec.SemID, inproc: new(sync.Mutex)}
	if spec.Timeout <= 0 {
		spec.Timeout = time.Minute
	}
	switch spec.Mode {
	case modeContend:
		return workContend(spec, e)
	case modeHandoff:
		return workHandoff(spec, e)
	case modeHold:
		return workHold(spec, e)
	case modeRecover:
		return workRecover(spec, e)
	}
	return res, fmt.Errorf("unknown mode %q", spec.Mode)
}

func workContend(spec *workerSpec, e *env) (res workerResult, err error) {
	g, k := max(spec.G, 1), max(spec.K, 1)
	counter := e.sh.counter()
	lats := make([][]int64, g)
	for i := range lats {
		lats[i] = make([]int64, k)
		for j := 0; j < k; j += 512 { // fault the pages in now, not in the timed loop
			lats[i][j] = 1
		}
	}
	if spec.Contender == cGlibcC {
		if g != 1 {
			return res, errors.New("glibc-C runs one thread per process")
		}
		if !HaveGlibc {
			return res, errNoCgo
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// Warm up (page faults, glibc's lazy binding), then start together.
		GlibcLoop(e.sh.glibc(), 1)
		if err := e.sh.arrive(spec.Timeout); err != nil {
			return res, err
		}
		res.Start, res.End, err = glibcContend(e.sh.glibc(), k, spec.CS, lats[0], counter)
		if err != nil {
			return res, err
		}
	} else {
		ls := make([]locker, g)
		for i := range ls {
			if ls[i], err = newLocker(spec.Contender, e); err != nil {
				return res, err
			}
			defer ls[i].close()
			if err := ls[i].lock(); err != nil { // warm up: registration, page faults
				return res, err
			}
			if err := ls[i].unlock(); err != nil {
				return res, err
			}
		}
		if err := e.sh.arrive(spec.Timeout); err != nil {
			return res, err
		}
		errs := make([]error, g)
		var wg sync.WaitGroup
		res.Start = nanotime()
		for i := range ls {
			wg.Go(func() {
				if rl, ok := ls[i].(robustLocker); ok {
					errs[i] = contendRobust(rl.m, lats[i], spec.CS, counter)
				} else {
					errs[i] = contendLoop(ls[i], lats[i], spec.CS, counter)
				}
			})
		}
		wg.Wait()
		res.End = nanotime()
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
	}
	h := newHist()
	for _, l := range lats {
		for _, v := range l {
			h.add(v)
		}
	}
	res.Hist, res.Rounds = h, h.N
	return res, nil
}

// contendRobust is contendLoop with direct calls to robustlock, so the Go
// side pays no interface dispatch the C loop does not pay either.
func contendRobust(m *robustlock.Mutex, lat []int64, cs int64, counter *uint64) error {
	for i := range lat {
		t0 := nanotime()
		if err := m.Lock(); err != nil {
			return err
		}
		t1 := nanotime()
		lat[i] = t1 - t0
		*counter++
		if cs > 0 {
			for nanotime()-t1 < cs {
			}
		}
		if err := m.Unlock(); err != nil {
			return err
		}
	}
	return nil
}

// contendLoop is rl_contend's loop in Go, for any locker.
func contendLoop(l locker, lat []int64, cs int64, counter *uint64) error {
	for i := range lat {
		t0 := nanotime()
		if err := l.lock(); err != nil {
			return err
		}
		t1 := nanotime()
		lat[i] = t1 - t0
		*counter++
		if cs > 0 {
			for nanotime()-t1 < cs {
			}
		}
		if err := l.unlock(); err != nil {
			return err
		}
	}
	return nil
}

// The hand-off protocol, between processes 0 and 1, rounds r = 0..K-1,
// on three shared words: announce, acq, tun. Process 0 takes the lock
// once both have passed the start barrier and sets acq = 1. Process r%2
// holds the lock at the start of round r; the other one is the waiter.
// The waiter waits until the lock is held for this round (acq == r+1),
// announces itself (announce = r+1) and calls lock. The holder waits for
// the announcement, then for Delay ns (so that the waiter is asleep in the
// kernel, not spinning), writes the clock to tun and unlocks. The waiter
// reads the clock the moment lock returns: the latency is that minus tun,
// the time from one process's unlock to the other's lock returning. It
// then sets acq = r+2 and is the holder of round r+1. rl_handoff is the
// same protocol in C.
func handoffLoop(l locker, sh *shared, id, n int, delay int64) ([]int64, error) {
	announce, acq, tun := sh.i64(offHandoff), sh.i64(offHandoff+8), sh.i64(offHandoff+16)
	lat := make([]int64, 0, n/2+1)
	held := false
	if id == 0 {
		if err := l.lock(); err != nil {
			return nil, err
		}
		held = true
		atomic.StoreInt64(acq, 1)
	}
	for r := 0; r < n; r++ {
		if r%2 == id {
			await(announce, int64(r+1))
			for t := nanotime(); nanotime()-t < delay; {
			}
			atomic.StoreInt64(tun, nanotime())
			if err := l.unlock(); err != nil {
				return nil, err
			}
			held = false
		} else {
			await(acq, int64(r+1))
			atomic.StoreInt64(announce, int64(r+1))
			if err := l.lock(); err != nil {
				return nil, err
			}
			t := nanotime()
			lat = append(lat, t-atomic.LoadInt64(tun))
			held = true
			atomic.StoreInt64(acq, int64(r+2))
		}
	}
	if held {
		return lat, l.unlock()
	}
	return lat, nil
}

func workHandoff(spec *workerSpec, e *env) (res workerResult, err error) {
	n := max(spec.K, 2)
	if spec.Contender == cGlibcC {
		if !HaveGlibc {
			return res, errNoCgo
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		GlibcLoop(e.sh.glibc(), 1)
		if err := e.sh.arrive(spec.Timeout); err != nil {
			return res, err
		}
		res.Start = nanotime()
		res.Lat, err = glibcHandoff(e.sh.glibc(), e.sh.i64(offHandoff), spec.ID, n, spec.Delay,
			make([]int64, n/2+1))
		res.End = nanotime()
	} else {
		l, err := newLocker(spec.Contender, e)
		if err != nil {
			return res, err
		}
		defer l.close()
		if err := l.lock(); err != nil { // warm up
			return res, err
		}
		if err := l.unlock(); err != nil {
			return res, err
		}
		if err := e.sh.arrive(spec.Timeout); err != nil {
			return res, err
		}
		res.Start = nanotime()
		res.Lat, err = handoffLoop(l, e.sh, spec.ID, n, spec.Delay)
		res.End = nanotime()
		if err != nil {
			return res, err
		}
	}
	res.Rounds = int64(len(res.Lat))
	return res, err
}

// workHold takes the lock, says so, and waits to be killed.
func workHold(spec *workerSpec, e *env) (res workerResult, err error) {
	l, err := newLocker(spec.Contender, e)
	if err != nil {
		return res, err
	}
	if err := l.lock(); err != nil {
		return res, err
	}
	atomic.StoreUint32(e.sh.u32(offHeld), 1)
	time.Sleep(spec.Timeout)
	return res, errors.New("holder was not killed")
}

// workRecover waits for the holder, announces itself and locks; the
// latency is from the parent's clock reading just before it sent SIGKILL
// to the holder, to this lock returning.
func workRecover(spec *workerSpec, e *env) (res workerResult, err error) {
	l, err := newLocker(spec.Contender, e)
	if err != nil {
		return res, err
	}
	defer l.close()
	deadline := nanotime() + int64(spec.Timeout)
	for atomic.LoadUint32(e.sh.u32(offHeld)) == 0 {
		if nanotime() > deadline {
			return res, errors.New("holder never took the lock")
		}
		time.Sleep(50 * time.Microsecond)
	}
	var t1 int64
	if spec.Contender == cGlibcC {
		runtime.LockOSThread() // stays pinned: cgoLocker below unlocks on this thread
		t1, err = glibcRecover(e.sh.glibc(), e.sh.u32(offWaiting))
	} else {
		atomic.StoreUint32(e.sh.u32(offWaiting), 1)
		err = l.lock()
		t1 = nanotime()
	}
	res.OwnerDied = errors.Is(err, syscall.EOWNERDEAD)
	if err != nil && !res.OwnerDied {
		return res, err
	}
	res.Lat = []int64{t1 - atomic.LoadInt64(e.sh.i64(offKill))}
	if res.OwnerDied {
		if err := l.consistent(); err != nil {
			return res, err
		}
	}
	return res, l.unlock()
}
