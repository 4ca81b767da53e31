package main

// robustlock reset: the way back from ErrNotRecoverable (issue 9).

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"

	"github.com/futexlab/robustlock/segment"
)

func runReset(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reset", "[-dir DIR] [-force] NAME", `
Re-initialise the mutexes of segment NAME that are not recoverable: a
holder got ErrOwnerDied and unlocked without MarkConsistent, and every
later lock fails with ErrNotRecoverable. Reset makes each such mutex free
and consistent again, as pthread_mutex_init would; mutexes in any other
state are left alone. It does not repair the data they guard, which is as
the last holder left it: rebuild or check it before relying on it.

Re-initialising a mutex that another process is using would break it, so
reset refuses while any other process maps the segment: it looks for the
file's device and inode in every /proc/PID/maps. What it cannot see it
cannot refuse for: processes whose maps it may not read (another user's,
unless run as root; /proc mounted with hidepid), processes in another PID
namespace or container, and a process that opens the segment after the
check. It reports the processes it could not check. -force skips the
refusal, for when you know every user of the segment is gone or stopped.`, stdout, stderr)
	dir := fs.String("dir", segment.DefaultDir, "the `directory` that holds the segment")
	force := fs.Bool("force", false, "reset even if other processes map the segment")
	pos, status, ok := fs.parse(args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return fs.usageError("want one segment NAME, got %d arguments", len(pos))
	}
	name := pos[0]
	fail := func(format string, a ...any) int {
		return failf(stderr, exitFail, "reset %s: %s", name, fmt.Sprintf(format, a...))
	}
	seg, err := segment.Open(name, segment.Dir(*dir), segment.OpenOnly())
	if err != nil {
		return fail("%s", explain(err, *dir))
	}
	defer seg.Close()
	var broken []int
	for i := range seg.NumMutexes() {
		m, _ := seg.MutexN(i)
		if m.State().NotRecoverable {
			broken = append(broken, i)
		}
	}
	if len(broken) == 0 {
		fmt.Fprintf(stdout, "%s: no mutex is not recoverable; nothing to reset\n", seg.Path())
		return exitOK
	}
	m0, _ := seg.MutexN(0)
	users, unchecked, err := otherMappers(uintptr(unsafe.Pointer(m0)))
	switch {
	case err != nil && !*force:
		return fail("cannot tell whether other processes map it: %v; use -force if none does", err)
	case len(users) > 0 && !*force:
		return fail("refusing: mapped by %s; stop them, or use -force", pidList(users))
	}
	if unchecked > 0 {
		fmt.Fprintf(stderr, "robustlock: reset %s: %d processes could not be checked (maps not readable)\n", name, unchecked)
	}
	if len(users) > 0 {
		fmt.Fprintf(stderr, "robustlock: reset %s: -force: resetting although mapped by %s\n", name, pidList(users))
	}
	for _, i := range broken {
		m, _ := seg.MutexN(i)
		m.Init()
	}
	fmt.Fprintf(stdout, "%s: re-initialised %s %s (they were not recoverable); the data they guard is as the last holder left it\n",
		seg.Path(), plural(len(broken), "mutex", "mutexes"), intList(broken))
	if err := seg.Close(); err != nil {
		return fail("%s", explain(err, *dir))
	}
	return exitOK
}

// pidList names processes for a message: "pid 12 (worker), pid 13 (cat)".
func pidList(ts []task) string {
	var s []string
	for _, t := range ts {
		p := "pid " + strconv.Itoa(t.ID)
		if t.Process != "" {
			p += " (" + t.Process + ")"
		}
		s = append(s, p)
	}
	return strings.Join(s, ", ")
}

func intList(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ", ")
}
