//go:build linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/segment"
)

// vanishedTID returns a thread id that no task has now.
func vanishedTID(t *testing.T) uint32 {
	for tid := 4_000_000; tid > 1000; tid -= 7919 {
		if errors.Is(syscall.Kill(tid, 0), syscall.ESRCH) {
			return uint32(tid)
		}
	}
	t.Fatal("no free thread id found")
	return 0
}

// recover marks a mutex held by a vanished thread owner-died, and leaves a
// free one alone.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	seg, err := segment.Open("stale", segment.Dir(dir), segment.Size(64), segment.Mutexes(2), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	m, _ := seg.MutexN(1)
	// What a holder whose robust-list walk the kernel abandoned leaves.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(m)), vanishedTID(t))
	r := runBin(t, 10*time.Second, "recover", "-dir", dir, "stale")
	if r.code != 0 || !strings.Contains(r.stdout, "mutex 1: held by tid") || strings.Contains(r.stdout, "mutex 0") {
		t.Fatalf("recover: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := m.TryLock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("TryLock after recover = %v, want ErrOwnerDied", err)
	}
	m.MarkConsistent()
	m.Unlock()
	r = runBin(t, 10*time.Second, "recover", "-dir", dir, "stale")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to recover") {
		t.Fatalf("recover with nothing stale: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// rm refuses a truncated segment, and removes it with -force.
func TestRmForce(t *testing.T) {
	dir := t.TempDir()
	seg, err := segment.Open("cut", segment.Dir(dir), segment.Size(64), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	seg.Close()
	path := filepath.Join(dir, "cut")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if r := runBin(t, 10*time.Second, "rm", "-dir", dir, "cut"); r.code == 0 {
		t.Fatalf("rm of a truncated segment without -force succeeded:\n%s", r.stdout)
	}
	if r := runBin(t, 10*time.Second, "rm", "-dir", dir, "-force", "cut"); r.code != 0 {
		t.Fatalf("rm -force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm -force: %v", err)
	}
}
