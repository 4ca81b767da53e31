//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// notRecoverable makes mutex 0 of a new segment name in dir not
// recoverable, as a careless program does: a holder dies, the next locker
// gets ErrOwnerDied and unlocks without MarkConsistent.
func notRecoverable(t *testing.T, dir, name string) {
	t.Helper()
	seg, err := segment.Open(name, segment.Dir(dir), segment.Size(64), segment.Mutexes(2), segment.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	_, _, cmd := holder(t, dir, name)
	cmd.Process.Kill()
	cmd.Wait()
	m := seg.Mutex()
	if err := m.Lock(); !errors.Is(err, robustlock.ErrOwnerDied) {
		t.Fatalf("lock after the holder's death: %v", err)
	}
	m.Unlock() // without MarkConsistent: not recoverable from now on
	if !m.State().NotRecoverable {
		t.Fatalf("mutex 0 is %v, want not recoverable", m.State())
	}
}

// mapper starts a helper process that maps segment name and waits.
func mapper(t *testing.T, dir, name string) (pid int, cmd *exec.Cmd) {
	t.Helper()
	cmd = proctest.Command("map", dir, name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "mapped %d", &pid); err != nil {
			t.Fatalf("helper said %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not map the segment within 10s")
	}
	return pid, cmd
}

func state(t *testing.T, dir, name string, i int) robustlock.State {
	t.Helper()
	info, err := segment.Stat(name, segment.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	return info.Mutexes[i]
}

// TestReset is issue 9's way back from ErrNotRecoverable: reset refuses
// while another process maps the segment, resets with -force or once
// nobody does, and the mutex then locks again.
func TestReset(t *testing.T) {
	dir := t.TempDir()
	notRecoverable(t, dir, "broken")

	ls := runBin(t, 10*time.Second, "ls", "-dir", dir)
	if !strings.Contains(ls.stdout, "not recoverable") {
		t.Errorf("ls does not show the lock as not recoverable:\n%s", ls.stdout)
	}

	pid, cmd := mapper(t, dir, "broken")
	r := runBin(t, 10*time.Second, "reset", "-dir", dir, "broken")
	if r.code != exitFail || !strings.HasPrefix(r.stderr, "robustlock: reset broken: refusing: mapped by pid "+fmt.Sprint(pid)) {
		t.Errorf("reset while mapped: exit %d, stderr %q; want a refusal naming pid %d", r.code, r.stderr, pid)
	}
	if !state(t, dir, "broken", 0).NotRecoverable {
		t.Fatal("the refused reset changed the mutex")
	}

	r = runBin(t, 10*time.Second, "reset", "-dir", dir, "-force", "broken")
	if r.code != 0 || !strings.Contains(r.stdout, "re-initialised mutex 0") || !strings.Contains(r.stderr, "-force") {
		t.Errorf("reset -force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if st := state(t, dir, "broken", 0); st.NotRecoverable || st.Owner != 0 || st.Kind != robustlock.KindRobustNormal {
		t.Errorf("after reset -force: %v", st)
	}
	cmd.Process.Kill()
	cmd.Wait()

	// Once nobody maps it, reset needs no -force.
	notRecoverable(t, dir, "again")
	r = runBin(t, 10*time.Second, "reset", "-dir", dir, "again")
	if r.code != 0 || !strings.Contains(r.stdout, "re-initialised mutex 0 ") {
		t.Errorf("reset: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	seg, err := segment.Open("again", segment.Dir(dir), segment.OpenOnly())
	if err != nil {
		t.Fatal(err)
	}
	if err := seg.Mutex().Lock(); err != nil {
		t.Errorf("lock after reset: %v", err)
	} else {
		seg.Mutex().Unlock()
	}
	seg.Close()

	r = runBin(t, 10*time.Second, "reset", "-dir", dir, "again")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to reset") {
		t.Errorf("reset of a healthy segment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(dir+"/notes.txt", []byte("not a segment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, 10*time.Second, "reset", "-dir", dir, "notes.txt")
	if r.code != exitFail || !strings.Contains(r.stderr, "is not a robustlock segment") {
		t.Errorf("reset of a file that is not a segment: exit %d, %q", r.code, r.stderr)
	}
	if r := runBin(t, 10*time.Second, "reset", "-dir", dir); !isUsageError(r, "reset") {
		t.Errorf("reset without a name: exit %d, %q", r.code, r.stderr)
	}
}
