// Command staticjob is the e2e tests' own lock, kill and recover job, for
// running where nothing but the binary exists: built with CGO_ENABLED=0,
// it needs no libc, no /proc and no /dev. TestStaticBinary runs it (and
// the demo command) in a chroot.
//
//	staticjob [-dir /tmp] [-duration 3s] [-workers 3]
//	staticjob -dir D -open NAME [-allow-other-pidns]
//	staticjob -dir D -create NAME
//
// The parent creates a segment in -dir, starts -workers copies of itself
// (by os.Args[0], which must be an absolute path: without /proc there is
// no other way to find the program), and SIGKILLs one every few tens of
// milliseconds, preferring the one inside the critical section, starting
// a replacement each time. Workers move money between accounts under the
// segment's lock with an undo journal and roll back a dead holder's
// transfer on ErrOwnerDied. At the end the parent kills everyone, takes
// the lock itself and checks the total. It prints one "ok ..." line and
// exits 0, or says what failed and exits 1.
//
// -open opens an existing segment and prints "ok PIDNS" or "error CAUSE"
// (pidns for ErrPIDNamespace); -create creates one and prints "ok
// PIDNS", PIDNS being the namespace recorded in its header. The PID
// namespace tests use them where /proc is missing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// Shared words (int64) of the segment's data.
const (
	wHolder   = 0 // pid of the worker inside the critical section, 0 if none
	wOps      = 1
	wRecov    = 2
	wJActive  = 3
	wJFrom    = 4
	wJTo      = 5
	wJOldFrom = 6
	wJOldTo   = 7
	wAccounts = 8
	nAccounts = 8
	nWords    = wAccounts + nAccounts
	total     = nAccounts * 1000
)

func main() {
	dir := flag.String("dir", "/tmp", "directory for the segment")
	dur := flag.Duration("duration", 3*time.Second, "how long to run")
	workers := flag.Int("workers", 3, "worker processes")
	worker := flag.String("worker", "", "run as a worker on this segment name")
	open := flag.String("open", "", "open this existing segment and say how it went")
	create := flag.String("create", "", "create this segment and say which PID namespace it records")
	allow := flag.Bool("allow-other-pidns", false, "with -open: segment.AllowOtherPIDNamespace")
	flag.Parse()
	switch {
	case *worker != "":
		os.Exit(work(*dir, *worker))
	case *open != "" || *create != "":
		opts := []segment.Option{segment.Dir(*dir)}
		name := *open
		if *create != "" {
			name = *create
			opts = append(opts, segment.Size(64), segment.CreateOnly())
		} else {
			opts = append(opts, segment.OpenOnly())
		}
		if *allow {
			opts = append(opts, segment.AllowOtherPIDNamespace())
		}
		seg, err := segment.Open(name, opts...)
		switch {
		case errors.Is(err, segment.ErrPIDNamespace):
			fmt.Println("error pidns")
		case err != nil:
			fmt.Println("error", err)
		default:
			fmt.Println("ok", seg.Header().PIDNamespace)
		}
		os.Exit(0)
	}
	os.Exit(parent(*dir, *dur, *workers))
}

func words(seg *segment.Segment) []int64 {
	return unsafe.Slice((*int64)(unsafe.Pointer(&seg.Data()[0])), nWords)
}

func parent(dir string, dur time.Duration, n int) int {
	fail := func(format string, args ...any) int {
		fmt.Printf("FAIL: "+format+"\n", args...)
		return 1
	}
	name := fmt.Sprintf("staticjob-%d", os.Getpid())
	seg, err := segment.Open(name, segment.Dir(dir), segment.Size(nWords*8), segment.CreateOnly(),
		segment.Init(func(d []byte) error {
			w := unsafe.Slice((*int64)(unsafe.Pointer(&d[0])), nWords)
			for i := 0; i < nAccounts; i++ {
				w[wAccounts+i] = total / nAccounts
			}
			return nil
		}))
	if err != nil {
		return fail("%v", err)
	}
	defer segment.Remove(name, segment.Dir(dir))
	w := words(seg)
	_, procErr := os.Stat("/proc/self/fd")
	entries, _ := os.ReadDir(dir)

	procs := make([]*exec.Cmd, n)
	exited := make(chan int, n)
	start := func(i int) error {
		cmd := exec.Command(os.Args[0], "-dir", dir, "-worker", name)
		// Explicit files: nil would make os/exec open /dev/null, which a
		// bare root does not have.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		procs[i] = cmd
		go func() { cmd.Wait(); exited <- i }()
		return nil
	}
	for i := range procs {
		if err := start(i); err != nil {
			return fail("starting a worker: %v", err)
		}
	}
	kills, holding := 0, 0
	lastOps := int64(0)
	deadline := time.Now().Add(dur)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
		// Kill only once some transfer was made since the last kill: on a
		// slow machine (an emulated one) a worker takes longer to start
		// than the pause, and would always die before its first transfer.
		ops := atomic.LoadInt64(&w[wOps])
		if ops == lastOps {
			continue
		}
		lastOps = ops
		victim := rand.IntN(n)
		if h := atomic.LoadInt64(&w[wHolder]); h != 0 {
			for i, p := range procs {
				if p.Process.Pid == int(h) {
					victim = i
					holding++
				}
			}
		}
		procs[victim].Process.Signal(syscall.SIGKILL)
		kills++
		if i := <-exited; i != victim {
			return fail("worker %d exited by itself", i)
		}
		if err := start(victim); err != nil {
			return fail("starting a worker: %v", err)
		}
	}
	for _, p := range procs {
		p.Process.Signal(syscall.SIGKILL)
	}
	for range procs {
		<-exited
	}
	m := seg.Mutex()
	err = m.Lock()
	if errors.Is(err, robustlock.ErrOwnerDied) {
		repair(w)
		w[wRecov]++
		err = m.MarkConsistent()
	}
	if err != nil {
		return fail("final lock: %v", err)
	}
	var sum int64
	for i := 0; i < nAccounts; i++ {
		sum += w[wAccounts+i]
	}
	ops, recov := w[wOps], w[wRecov]
	m.Unlock()
	seg.Close()
	proc := "absent"
	if procErr == nil {
		proc = "present"
	}
	switch {
	case sum != total:
		return fail("accounts sum to %d, want %d", sum, total)
	case ops == 0:
		return fail("no transfer completed")
	case recov == 0:
		return fail("%d kills but no recovery", kills)
	}
	fmt.Printf("ok kills=%d aimed_at_holder=%d recoveries=%d transfers=%d proc=%s pidns=%d dir_entries_at_create=%d\n",
		kills, holding, recov, ops, proc, seg.Header().PIDNamespace, len(entries))
	return 0
}

func repair(w []int64) {
	if w[wJActive] != 0 {
		w[wAccounts+w[wJFrom]] = w[wJOldFrom]
		w[wAccounts+w[wJTo]] = w[wJOldTo]
		w[wJActive] = 0
	}
}

func work(dir, name string) int {
	seg, err := segment.Open(name, segment.Dir(dir), segment.OpenOnly())
	if err != nil {
		fmt.Println("worker:", err)
		return 1
	}
	w := words(seg)
	m := seg.Mutex()
	pid := int64(os.Getpid())
	for {
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) {
			repair(w)
			w[wRecov]++
			err = m.MarkConsistent()
		}
		if err != nil {
			fmt.Println("worker: lock:", err)
			return 1
		}
		atomic.StoreInt64(&w[wHolder], pid)
		from, to, amt := rand.IntN(nAccounts), rand.IntN(nAccounts), rand.Int64N(100)
		w[wJFrom], w[wJTo], w[wJOldFrom], w[wJOldTo] = int64(from), int64(to), w[wAccounts+from], w[wAccounts+to]
		atomic.StoreInt64(&w[wJActive], 1)
		w[wAccounts+from] -= amt
		for i := 0; i < 2000; i++ { // a window for kills mid-transfer
			atomic.AddInt64(&w[wOps], 0)
		}
		w[wAccounts+to] += amt
		atomic.StoreInt64(&w[wJActive], 0)
		var sum int64
		for i := 0; i < nAccounts; i++ {
			sum += w[wAccounts+i]
		}
		if sum != total {
			fmt.Println("worker: invariant broken: sum " + strconv.FormatInt(sum, 10))
			return 1
		}
		w[wOps]++
		atomic.StoreInt64(&w[wHolder], 0)
		m.Unlock()
	}
}
