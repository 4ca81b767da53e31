package main

import (
	"fmt"
	"io"

	"github.com/futexlab/robustlock/segment"
)

// runRecover releases the stale mutexes of a segment: held by a thread that
// no longer exists, which the kernel failed to mark owner-died.
func runRecover(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("recover", "[-dir DIR] NAME", `
Mark the stale mutexes of segment NAME owner-died, as the kernel should
have when their holder died: a mutex is stale when the thread id in its
lock word no longer exists (or is a zombie), which happens when the holder
died while its robust list held an entry the kernel could not read (a
truncated segment) or exec'd from a thread other than the main one. The
next locker, in any process, then gets ErrOwnerDied and repairs.

Waiting lockers recover a stale mutex by themselves within about a second;
recover is for one that nobody waits for yet, or for a glibc program whose
lockers would sleep for ever. A mutex whose holder lives is never touched.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segment")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return fs.usageError("want one segment NAME, got %d arguments", len(pos))
	}
	name := pos[0]
	seg, err := segment.Open(name, segment.Dir(*dir), segment.OpenOnly())
	if err != nil {
		return failf(stderr, exitFail, "recover %s: %s", name, explain(err, *dir))
	}
	defer seg.Close()
	n := 0
	for i := range seg.NumMutexes() {
		m, _ := seg.MutexN(i)
		owner := m.State().Owner
		done, err := m.ReleaseStale()
		if err != nil {
			return failf(stderr, exitFail, "recover %s: mutex %d: %v", name, i, err)
		}
		if done {
			fmt.Fprintf(stdout, "%s: mutex %d: held by tid %d, which no longer exists: marked owner-died\n", seg.Path(), i, owner)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(stdout, "%s: no stale mutex; nothing to recover\n", seg.Path())
	}
	return exitOK
}
