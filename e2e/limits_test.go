//go:build linux

package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock"

	"github.com/futexlab/robustlock/internal/proctest"
)

// Tests of the edges: what the kernel and glibc do where the protocol is
// weakest, and what robustlock does about it.

// TestExecFromOtherThread: a thread other than the main one locks, then
// calls exec. The kernel walks the exec'ing thread's robust list only
// after de_thread has given it the thread group leader's PID, so the walk
// compares lock words with the wrong TID and leaves the lock held by a
// thread that no longer exists (fs/exec.c: de_thread before exec_mmap,
// which calls exec_mm_release). glibc and robustlock are alike here; for
// Go it matters more, since goroutines rarely run on the main thread. Exec
// from the main thread is recovered (TestGlibcPeers, *-execs-*).
//
// A waiter recovers it anyway: the holder's TID no longer exists, so
// stale-owner recovery (stale.go) takes the word and reports ErrOwnerDied,
// for a C holder and for a Go one alike.
func TestExecFromOtherThread(t *testing.T) {
	cProgram(t, "peer")
	var lost []string
	for _, kind := range []string{"c", "go"} {
		f := rawFixture(t)
		f.m.Init()
		h := startPeer(t, kind, f.tgt)
		h.Send("threadexec")
		got := strings.Fields(h.Next())
		if len(got) != 2 || got[0] != "ok" {
			t.Fatalf("%v: threadexec said %q", h, got)
		}
		tid := atoi(got[1])
		if err := h.Wait(); err != nil {
			t.Fatalf("%v: exec of /bin/true: %v; stderr %s", h, err, h.Stderr())
		}
		ctx, cancel := context.WithTimeout(context.Background(), proctest.Watchdog)
		err := f.m.LockContext(ctx)
		cancel()
		switch {
		case errors.Is(err, robustlock.ErrOwnerDied):
			f.m.MarkConsistent()
			f.m.Unlock()
		case errors.Is(err, context.DeadlineExceeded):
			st := f.m.State()
			alive := unix.Kill(tid, 0) == nil
			lost = append(lost, kind)
			t.Logf("%s: the lock is still held by tid %d (alive: %v) after that thread exec'd: %v", kind, tid, alive, st)
		default:
			t.Fatalf("%s: Lock after exec from another thread: %v", kind, err)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("a lock held by a non-main thread that called exec was never recovered (holders: %v): "+
			"the kernel does not mark it OWNER_DIED, and stale-owner recovery should have", lost)
	}
}

// TestGlibcLostWakeup reproduces glibc 2.36's lost wake-up on the not
// recoverable path, then checks what a Go locker does for the thread it
// stranded. Three C processes sleep on the lock; its Go holder is killed;
// the first C sleeper gets EOWNERDEAD and unlocks without consistent
// (glibc wakes one: the second); the second takes the word, sees
// NOTRECOVERABLE and releases it with a plain exchange that wakes nobody
// when WAITERS is set, so the third sleeps on. A later Go Lock, which
// finds the mutex not recoverable, should wake every sleeper, as README
// promises ("a lock that finds the mutex not recoverable wakes every
// sleeper"), whether or not glibc left WAITERS set.
func TestGlibcLostWakeup(t *testing.T) {
	f := rawFixture(t)
	f.m.Init()
	h := startPeer(t, "go", f.tgt)
	h.Must("lock", "ok")
	var cs []*proc
	for i := 0; i < 3; i++ {
		c := startPeer(t, "c", f.tgt)
		c.Send("lock")
		proctest.AwaitSleepers(t, 1, c.Pid()) // one after the other: the kernel wakes in FIFO order
		cs = append(cs, c)
	}
	h.Send("die")
	h.Wait()
	cs[0].Expect("EOWNERDEAD")
	cs[0].Must("unlock", "ok") // without consistent
	cs[1].Expect("ENOTRECOVERABLE")
	stranded := false
	select {
	case l := <-cs[2].Lines():
		t.Logf("third C sleeper answered %q: glibc did not lose the wake-up this time", l)
	case <-time.After(300 * time.Millisecond):
		stranded = true
		t.Logf("glibc 2.36's lost wake-up reproduced: the third C sleeper is still asleep; mutex %v", f.m.State())
	}
	if err := result(t, localLock(f.m, false)); !errors.Is(err, robustlock.ErrNotRecoverable) {
		t.Fatalf("Go Lock on the not recoverable mutex: %v", err)
	}
	if !stranded {
		return
	}
	rescuedByGo := false
	select {
	case l := <-cs[2].Lines():
		rescuedByGo = true
		if l != "ENOTRECOVERABLE" {
			t.Fatalf("the stranded C sleeper answered %q after the Go Lock", l)
		}
	case <-time.After(2 * time.Second):
	}
	if !rescuedByGo {
		// Let a later glibc locker (its release sees a plain TID, > 1, and
		// wakes one) free the stranded sleeper so the test ends cleanly.
		c := startPeer(t, "c", f.tgt)
		c.Must("lock", "ENOTRECOVERABLE")
		select {
		case <-cs[2].Lines():
		case <-time.After(5 * time.Second):
		}
		t.Fatal("a Go Lock on a not recoverable mutex did not wake the C sleeper glibc's lost wake-up stranded")
	}
}
