//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/futexlab/robustlock/segment"
)

func init() {
	// No test goroutine on the main thread: the one that dies holding the
	// lock below must end its thread (see package robustlock).
	runtime.LockOSThread()
}

// TestREADME: README.md's quick start is this program, verbatim.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- examples/quickstart/main.go, verbatim (a test checks) -->\n```go\n"
	i := bytes.Index(readme, []byte(marker))
	if i < 0 {
		t.Fatalf("README.md has no line %q before its quick start", strings.SplitN(marker, "\n", 2)[0])
	}
	block := readme[i+len(marker):]
	j := bytes.Index(block, []byte("```\n"))
	if j < 0 {
		t.Fatal("README.md's quick start block does not end")
	}
	if got := block[:j]; !bytes.Equal(got, src) {
		t.Fatalf("README.md's quick start differs from examples/quickstart/main.go; copy the file into the README:\n%s", got)
	}
}

// TestRun builds the program and runs it as the README says: each run,
// a separate process, adds one; after a holder dies mid-update the next
// run rolls the update back and goes on.
func TestRun(t *testing.T) {
	gotool, err := exec.LookPath("go") // go test puts its own first in PATH
	if err != nil {
		t.Skip("no go command to build the program with")
	}
	bin := filepath.Join(t.TempDir(), "quickstart")
	if out, err := exec.Command(gotool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	run := func(want string) {
		t.Helper()
		out, err := exec.Command(bin, "-dir", dir).CombinedOutput()
		if err != nil || string(out) != want {
			t.Fatalf("quickstart: %v, printed %q; want %q", err, out, want)
		}
	}
	run("count 1 (this process created the segment: true)\n")
	run("count 2 (this process created the segment: false)\n")

	// A holder dies between the two writes: a goroutine that exits
	// holding the lock ends its thread, as a killed process would.
	seg, err := segment.Open("quickstart", segment.Dir(dir), segment.OpenOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	errc := make(chan error)
	go func() {
		err := seg.Mutex().Lock()
		binary.LittleEndian.PutUint64(seg.Data()[0:8], 7) // the copy at [8:16] still says 2
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	run("count 3 (this process created the segment: false)\n")
	if a, b := binary.LittleEndian.Uint64(seg.Data()[0:8]), binary.LittleEndian.Uint64(seg.Data()[8:16]); a != 3 || b != 3 {
		t.Fatalf("after the repairing run the counter reads %d and %d, want 3 and 3", a, b)
	}
	if st := seg.Mutex().State(); st.Owner != 0 || st.NotRecoverable || st.Inconsistent {
		t.Fatalf("lock after the repairing run: %v, want free and usable", st)
	}
}
