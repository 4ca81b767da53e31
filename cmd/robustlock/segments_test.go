//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// create makes a segment in dir and closes it.
func create(t *testing.T, dir, name string) {
	t.Helper()
	seg, err := segment.Open(name, segment.Dir(dir), segment.Size(64), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
}

// deadTID returns the id of a thread that has exited: the pid of a
// process that ran and was reaped.
func deadTID(t *testing.T) int {
	t.Helper()
	cmd := proctest.Command("exit")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestSegments runs ls, inspect and rm on a directory holding segments in
// every state the issue names, and files that are not segments.
func TestSegments(t *testing.T) {
	dir := t.TempDir()

	create(t, dir, "free")

	create(t, dir, "held")
	heldPID, heldTID, _ := holder(t, dir, "held")

	create(t, dir, "died")
	diedPID, diedTID, diedCmd := holder(t, dir, "died")
	diedCmd.Process.Kill()
	diedCmd.Wait()

	// A lock word naming a thread that is gone, which the kernel never
	// marked (as after a death in another PID namespace).
	stale := deadTID(t)
	seg, err := segment.Open("stale", segment.Dir(dir), segment.Size(64), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(seg.Mutex())), uint32(stale))
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}

	// Files that are not segments.
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("notes.txt", "not a segment\n")
	write("big.bin", strings.Repeat("x", 4096))
	write("empty", "")
	if err := os.Symlink(filepath.Join(dir, "free"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	foreign := []string{"notes.txt", "big.bin", "empty", "link", "subdir"}

	t.Run("ls", func(t *testing.T) {
		r := runBin(t, 10*time.Second, "ls", "-dir", dir)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		t.Logf("ls:\n%s", r.stdout)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("want a header and 4 segments:\n%s", r.stdout)
		}
		want := map[string]string{
			"died":  "owner died",
			"free":  "free",
			"held":  "held by tid " + strconv.Itoa(heldTID) + " (pid " + strconv.Itoa(heldPID) + ")",
			"stale": "held by tid " + strconv.Itoa(stale) + " (dead!)",
		}
		for _, l := range lines[1:] {
			name := strings.Fields(l)[0]
			if w, ok := want[name]; !ok || !strings.HasSuffix(l, w) {
				t.Errorf("ls line %q; want it to end in %q", l, w)
			}
		}
		// The directory may also be given as the argument.
		if r2 := runBin(t, 10*time.Second, "ls", dir); r2.code != 0 || strings.Count(r2.stdout, "\n") != len(lines) {
			t.Errorf("ls DIR differs from ls -dir DIR: exit %d\n%s", r2.code, r2.stdout)
		}
	})

	t.Run("ls-json", func(t *testing.T) {
		for _, flag := range []string{"--json", "-json"} {
			r := runBin(t, 10*time.Second, "ls", "-dir", dir, flag)
			var got []segmentReport
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
				t.Fatalf("ls %s: exit %d, %v:\n%s", flag, r.code, err, r.stdout)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, []string{"died", "free", "held", "stale"}) {
				t.Errorf("ls %s lists %v", flag, names)
			}
		}
		r := runBin(t, 10*time.Second, "ls", "-dir", t.TempDir(), "--json")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("ls --json of an empty directory: exit %d, %q", r.code, r.stdout)
		}
	})

	inspect := func(t *testing.T, name string) (segmentReport, string) {
		t.Helper()
		r := runBin(t, 10*time.Second, "inspect", "-dir", dir, name, "--json") // flags after the name too
		var got segmentReport
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Fatalf("inspect %s --json: exit %d, %v:\n%s%s", name, r.code, err, r.stdout, r.stderr)
		}
		text := runBin(t, 10*time.Second, "inspect", "-dir", dir, name)
		if text.code != 0 {
			t.Fatalf("inspect %s: exit %d: %s", name, text.code, text.stderr)
		}
		t.Logf("inspect %s:\n%s", name, text.stdout)
		for _, w := range []string{"segment  ", "creator  ", "mutex 0 (segment lock): ", "owner died  ", "inconsistent  ", "not recoverable  ", "waiters  "} {
			if !strings.Contains(text.stdout, w) {
				t.Errorf("inspect %s does not show %q:\n%s", name, strings.TrimSpace(w), text.stdout)
			}
		}
		if len(got.Mutexes) != 1 || got.Size <= 0 || got.Version != segment.Version || got.Creator.ID != os.Getpid() || !got.Creator.Alive {
			t.Errorf("inspect %s --json: %+v", name, got)
		}
		return got, text.stdout
	}

	t.Run("inspect-free", func(t *testing.T) {
		got, text := inspect(t, "free")
		if m := got.Mutexes[0]; m.State != "free" || m.Owner != nil || m.OwnerDied || m.Inconsistent || m.NotRecoverable {
			t.Errorf("%+v", m)
		}
		if !strings.Contains(text, "mutex 0 (segment lock): free\n") {
			t.Errorf("\n%s", text)
		}
	})

	t.Run("inspect-held", func(t *testing.T) {
		got, text := inspect(t, "held")
		m := got.Mutexes[0]
		if m.State != "held" || m.Owner == nil || m.Owner.ID != heldTID || !m.Owner.Alive || m.Owner.PID != heldPID || m.OwnerDied {
			t.Errorf("%+v owner %+v; want held by tid %d of pid %d", m, m.Owner, heldTID, heldPID)
		}
		want := "held by tid " + strconv.Itoa(heldTID) + " (alive, "
		if !strings.Contains(text, want) || !strings.Contains(text, "pid "+strconv.Itoa(heldPID)) {
			t.Errorf("want %q and the pid:\n%s", want, text)
		}
	})

	t.Run("inspect-owner-died", func(t *testing.T) {
		got, text := inspect(t, "died")
		m := got.Mutexes[0]
		if m.State != "owner-died" || !m.OwnerDied || m.Owner != nil {
			t.Errorf("%+v", m)
		}
		if m.PreviousOwner == nil || m.PreviousOwner.ID != diedTID || m.PreviousOwner.Alive {
			t.Errorf("previous owner %+v; want the dead tid %d (of pid %d)", m.PreviousOwner, diedTID, diedPID)
		}
		if !regexp.MustCompile(`(?m)^\s+owner died\s+yes$`).MatchString(text) ||
			!strings.Contains(text, "owner died holding it (tid "+strconv.Itoa(diedTID)+", no such thread: dead)") {
			t.Errorf("\n%s", text)
		}
	})

	t.Run("inspect-stale", func(t *testing.T) {
		got, text := inspect(t, "stale")
		m := got.Mutexes[0]
		if m.State != "held" || m.Owner == nil || m.Owner.ID != stale || m.Owner.Alive || !m.Owner.Known {
			t.Errorf("%+v owner %+v", m, m.Owner)
		}
		if !strings.Contains(text, "held by tid "+strconv.Itoa(stale)+" (no such thread: dead)") {
			t.Errorf("\n%s", text)
		}
	})

	t.Run("foreign", func(t *testing.T) {
		for _, name := range foreign {
			for _, cmd := range []string{"inspect", "rm"} {
				r := runBin(t, 10*time.Second, cmd, "-dir", dir, name)
				if r.code != exitFail || strings.Count(r.stderr, "\n") != 1 ||
					!strings.HasPrefix(r.stderr, "robustlock: "+cmd+" "+name+": ") ||
					!strings.Contains(r.stderr, "is not a robustlock segment") {
					t.Errorf("%s %s: exit %d, stderr %q", cmd, name, r.code, r.stderr)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				t.Errorf("rm touched %s: %v", name, err)
			}
		}
		r := runBin(t, 10*time.Second, "inspect", "-dir", dir, "nothing-here")
		if r.code != exitFail || !strings.Contains(r.stderr, "no such segment") {
			t.Errorf("inspect of a missing name: exit %d, %q", r.code, r.stderr)
		}
		r = runBin(t, 10*time.Second, "inspect", "-dir", dir, "../escape")
		if r.code != exitFail || !strings.Contains(r.stderr, "invalid segment name") {
			t.Errorf("inspect of a bad name: exit %d, %q", r.code, r.stderr)
		}
		r = runBin(t, 10*time.Second, "inspect", "-dir", dir)
		if r.code != exitUsage {
			t.Errorf("inspect without a name: exit %d, %q", r.code, r.stderr)
		}
	})

	t.Run("rm", func(t *testing.T) {
		r := runBin(t, 10*time.Second, "rm", "-dir", dir, "free", "stale", "nothing-here")
		if r.code != exitFail || !strings.Contains(r.stderr, "rm nothing-here: no such segment") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		left := entries(t, dir)
		if slices.Contains(left, "free") || slices.Contains(left, "stale") {
			t.Errorf("rm left %v", left)
		}
		// A segment can be removed while its lock is held: the holder
		// keeps its mapping.
		if r := runBin(t, 10*time.Second, "rm", "-dir", dir, "held", "died"); r.code != 0 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		left = entries(t, dir)
		slices.Sort(left)
		want := slices.Clone(foreign)
		slices.Sort(want)
		if !slices.Equal(left, want) {
			t.Errorf("left %v, want only %v", left, want)
		}
	})
}
