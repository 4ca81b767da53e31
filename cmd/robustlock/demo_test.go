//go:build linux

package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// row reads a number from the demo's table: the first one after label.
func row(t *testing.T, out, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q row in the demo's output:\n%s", label, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	r := runBin(t, 60*time.Second, "demo", "-workers", "3", "-duration", "3s", "-kills", "12", "-dir", dir)
	t.Logf("stdout:\n%s", r.stdout)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	kills, holding := row(t, r.stdout, "kills"), row(t, r.stdout, "kills holding the lock")
	recoveries := row(t, r.stdout, "recoveries")
	if kills < 6 || kills > 12 {
		t.Errorf("%d kills, want 12 (a few may be put off past the end on a loaded machine)", kills)
	}
	if recoveries == 0 || recoveries != holding {
		t.Errorf("%d recoveries for %d kills while holding the lock; want as many, and some", recoveries, holding)
	}
	if row(t, r.stdout, "operations") == 0 {
		t.Error("no transfers")
	}
	if !regexp.MustCompile(`(?m)^invariant\s+held\s`).MatchString(r.stdout) {
		t.Error("the table does not say the invariant held")
	}
	if !strings.Contains(r.stdout, "\nok: ") {
		t.Error("no ok verdict")
	}
	if !regexp.MustCompile(`(?m)^longest recovery\s+\d`).MatchString(r.stdout) {
		t.Error("no recovery time")
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("the segment was not removed: %v", e)
	}
}

// TestDemoCorrupt proves the checker: workers that skip the journal leave
// half-done transfers behind when killed, and the demo must see it.
func TestDemoCorrupt(t *testing.T) {
	dir := t.TempDir()
	r := runBin(t, 60*time.Second, "demo", "-corrupt", "-workers", "3", "-duration", "3s", "-kills", "12", "-dir", dir)
	t.Logf("stdout:\n%s", r.stdout)
	if r.code != exitFail {
		t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitFail, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^invariant\s+BROKEN\s`).MatchString(r.stdout) {
		t.Error("the table does not say the invariant broke")
	}
	if !strings.Contains(r.stdout, "\nFAIL: the invariant broke") {
		t.Error("no FAIL verdict naming the invariant")
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("the segment was not removed: %v", e)
	}
}

// TestDemoKeep leaves the segment behind and looks at it with the other
// commands.
func TestDemoKeep(t *testing.T) {
	dir := t.TempDir()
	r := runBin(t, 60*time.Second, "demo", "-workers", "2", "-duration", "1s", "-kills", "3", "-dir", dir, "-keep", "-v")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n, k := strings.Count(r.stdout, "s  kill "), row(t, r.stdout, "kills"); n != k || k == 0 {
		t.Errorf("-v printed %d kill lines for %d kills:\n%s", n, k, r.stdout)
	}
	if n, k := strings.Count(r.stdout, "s  recovery "), row(t, r.stdout, "recoveries"); n != k {
		t.Errorf("-v printed %d recovery lines for %d recoveries:\n%s", n, k, r.stdout)
	}
	e := entries(t, dir)
	if len(e) != 1 || !strings.HasPrefix(e[0], "robustlock-demo-") {
		t.Fatalf("-keep left %v", e)
	}
	if !strings.Contains(r.stdout, "robustlock inspect -dir "+dir+" "+e[0]) {
		t.Errorf("the demo does not say how to inspect the kept segment:\n%s", r.stdout)
	}
	ls := runBin(t, 10*time.Second, "ls", "-dir", dir)
	if ls.code != 0 || !regexp.MustCompile(`(?m)^`+e[0]+`\s.*\(exited\).*free$`).MatchString(ls.stdout) {
		t.Errorf("ls: exit %d:\n%s%s", ls.code, ls.stdout, ls.stderr)
	}
	in := runBin(t, 10*time.Second, "inspect", "-dir", dir, e[0])
	if in.code != 0 || !strings.Contains(in.stdout, "mutex 0 (segment lock): free") {
		t.Errorf("inspect: exit %d:\n%s%s", in.code, in.stdout, in.stderr)
	}
	if rm := runBin(t, 10*time.Second, "rm", "-dir", dir, e[0]); rm.code != 0 || rm.stdout+rm.stderr != "" {
		t.Errorf("rm: exit %d: %s%s", rm.code, rm.stdout, rm.stderr)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("rm left %v", e)
	}
}

// TestDemoInterrupt: Ctrl-C kills the workers, removes the segment and
// exits 130.
func TestDemoInterrupt(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "demo", "-duration", "60s", "-dir", dir)
	out := startDemo(t, cmd)
	time.Sleep(time.Second) // time to kill a few workers
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	checkInterrupted(t, cmd, out, dir, 15*time.Second)
}

// demoRun is a demo started by startDemo: its stdout, once it has ended,
// and its stderr.
type demoRun struct {
	stdout chan string
	stderr *bytes.Buffer
}

// startDemo starts cmd, a demo, and returns once it has printed its header
// (it handles signals from before that).
func startDemo(t *testing.T, cmd *exec.Cmd) demoRun {
	t.Helper()
	r := demoRun{stdout: make(chan string, 1), stderr: new(bytes.Buffer)}
	cmd.Stderr = r.stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	header := make(chan struct{})
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C stops") {
				close(header)
			}
		}
		r.stdout <- all.String()
	}()
	select {
	case <-header:
	case <-time.After(15 * time.Second):
		t.Fatal("the demo printed no header within 15s")
	}
	return r
}

// checkInterrupted checks that the demo cmd, just interrupted, ends within
// patience with status 130, saying so, having removed its segment from dir
// and left no worker running.
func checkInterrupted(t *testing.T, cmd *exec.Cmd, r demoRun, dir string, patience time.Duration) {
	t.Helper()
	var stdout string
	select {
	case stdout = <-r.stdout:
	case <-time.After(patience):
		cmd.Process.Kill()
		t.Fatalf("the demo did not end within %s of SIGINT", patience)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d after SIGINT, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInterrupted, stdout, r.stderr.String())
	}
	if !strings.Contains(stdout, "interrupted") {
		t.Errorf("the demo does not say it was interrupted:\n%s", stdout)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("the segment was not removed: %v", e)
	}
	noWorkersLeft(t, dir)
}

// noWorkersLeft fails the test if a worker outlives the demo: a process
// still naming dir, the demo's -dir, on its command line. It gives the
// kernel a moment, then kills what is left.
func noWorkersLeft(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesMentioning(dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("workers still running after the demo ended: %v", left)
			for _, p := range left {
				syscall.Kill(p, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesMentioning lists the live processes whose command line has s.
func processesMentioning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if t := lookupTask(pid); t.Alive {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestDemoBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-workers", "65"},
		{"-duration", "0s"},
		{"-kills", "x"},
		{"-kills", "-1"},
		{"-workers", "-3"},
		{"-duration", "-1s"},
		{"-duration", "x"},
		{"extra"},
	} {
		r := runBin(t, 10*time.Second, append([]string{"demo"}, args...)...)
		if !isUsageError(r, "demo") {
			t.Errorf("demo %v: exit %d, stderr %q; want %d, the error, then the usage line", args, r.code, r.stderr, exitUsage)
		}
	}
	r := runBin(t, 10*time.Second, "demo", "-dir", "/nonexistent/dir", "-duration", "1s")
	if r.code != exitFail || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "robustlock: demo: ") {
		t.Errorf("demo -dir /nonexistent/dir: exit %d, stderr %q; want %d and one line", r.code, r.stderr, exitFail)
	}
}
