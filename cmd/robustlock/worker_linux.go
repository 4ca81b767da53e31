//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// transferWindow is how long a transfer keeps one account debited and the
// other not yet credited: the window in which a kill leaves the ledger
// half-updated.
const transferWindow = 30 * time.Microsecond

// runWorker is a demo worker process: it opens the demo's segment by name,
// as an unrelated process would, and takes turns on its lock until the
// parent says stop or goes away.
func runWorker(name, dir string, n, ppid int, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "robustlock: demo worker %d (pid %d): %s\n", n, os.Getpid(), fmt.Sprintf(format, a...))
		return exitFail
	}
	if n < 0 || n >= maxWorkers {
		return fail("slot out of range")
	}
	// A Ctrl-C at the terminal reaches the whole process group; the demo
	// handles it and kills its workers, which must not die on their own
	// terms (a worker that dies by SIGINT would look like a crash).
	signal.Ignore(os.Interrupt, syscall.SIGHUP)
	// Keep this goroutine on one thread for good: its TID is published,
	// and Lock would pin it anyway.
	runtime.LockOSThread()
	seg, err := segment.Open(name, segment.Dir(dir), segment.OpenOnly(), segment.Size(ledgerSize))
	if err != nil {
		return fail("%v", err)
	}
	l, err := viewLedger(seg.Data(), true)
	if err != nil {
		return fail("%s: %v", seg.Path(), err)
	}
	s := &l.slots[n]
	pid := os.Getpid()
	s.tid.Store(int32(unix.Gettid()))
	s.pid.Store(int32(pid))
	m := seg.Mutex()
	rng := rand.New(rand.NewPCG(uint64(pid), uint64(time.Now().UnixNano())))
	for turn := 0; l.stop.Load() == 0; turn++ {
		if turn%64 == 0 && os.Getppid() != ppid {
			break // the demo is gone; so is the point
		}
		s.phase.Store(uint32(phaseLocking))
		err := m.Lock()
		if errors.Is(err, robustlock.ErrOwnerDied) {
			l.recordRecovery(monotonic(), pid)
			s.phase.Store(uint32(phaseRecovering))
			l.repair()
			s.recoveries.Add(1)
			err = m.MarkConsistent()
		}
		if err != nil {
			return fail("lock: %v", err)
		}
		l.holder.Store(int32(pid))
		s.phase.Store(uint32(phaseHolding))
		l.check()
		if l.stop.Load() == 0 {
			l.transfer(rng, s, transferWindow)
			s.ops.Add(1)
		}
		s.beat.Store(monotonic())
		l.holder.Store(0)
		s.phase.Store(uint32(phaseUnlocking))
		if err := m.Unlock(); err != nil {
			return fail("unlock: %v", err)
		}
		s.phase.Store(uint32(phaseIdle))
	}
	s.phase.Store(uint32(phaseExited))
	if err := seg.Close(); err != nil {
		return fail("%v", err)
	}
	return exitOK
}
