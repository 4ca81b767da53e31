//go:build linux

package main

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoInterruptContinue is issue 11 item 10: SIGINT followed by
// SIGCONT, as timeout(1) and some supervisors send, must still end the demo
// promptly, with its workers killed and its segment removed. The demo runs
// in a process group of its own; the test sends SIGINT to the group, then a
// stream of SIGCONTs, which undo any stop the demo may wait for.
func TestDemoInterruptContinue(t *testing.T) {
	for try := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(bin, "demo", "-duration", "60s", "-dir", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := startDemo(t, cmd)
		time.Sleep(500 * time.Millisecond)
		pgid := cmd.Process.Pid
		if err := syscall.Kill(-pgid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		// As dense as kill(2) goes: a stop the demo waits for is undone
		// within microseconds.
		storm := time.Now().Add(2 * time.Second)
		for time.Now().Before(storm) && syscall.Kill(-pgid, syscall.SIGCONT) == nil {
		}
		checkInterrupted(t, cmd, out, dir, 30*time.Second)
		t.Logf("try %d: ok", try)
	}
}

// TestDemoTimeoutINT runs the demo under the real timeout(1) -s INT.
func TestDemoTimeoutINT(t *testing.T) {
	path, err := exec.LookPath("timeout")
	if err != nil {
		t.Skip("no timeout(1):", err)
	}
	if exec.Command(path, "--preserve-status", "1", "true").Run() != nil {
		t.Skip("this timeout(1) has no --preserve-status (busybox's): coreutils' is the one supervisors use")
	}
	for try := range 3 {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, path, "-s", "INT", "--preserve-status", "2",
			bin, "demo", "-duration", "60s", "-dir", dir)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("try %d: the demo did not end within 60s of timeout's SIGINT (and SIGCONT)\nstdout:\n%s\nstderr:\n%s",
				try, stdout.String(), stderr.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
			t.Errorf("try %d: %v, want exit %d\nstdout:\n%s\nstderr:\n%s", try, err, exitInterrupted, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "interrupted") {
			t.Errorf("try %d: the demo does not say it was interrupted:\n%s", try, stdout.String())
		}
		if e := entries(t, dir); len(e) != 0 {
			t.Errorf("try %d: the segment was not removed: %v", try, e)
		}
		noWorkersLeft(t, dir)
	}
}

// TestDemoContinue: SIGCONTs from outside while the demo runs (a shell's
// fg, a supervisor) resume workers the chaos killer has stopped; the demo
// must not hang on a stop that was undone, must keep the ledger's
// invariant, remove its segment, and end with its verdict.
//
// The verdict itself may say the counts differ: a SIGCONT landing between
// freezeAndKill's check of a stopped worker and its SIGKILL lets the
// worker take or release the lock first, so that death is counted on the
// wrong side (README and chaos_linux.go state the limit; it hits on a
// loaded host, under -race and under emulation). Only that clause is
// accepted; any other failure fails the test.
func TestDemoContinue(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "demo", "-duration", "3s", "-kills", "30", "-dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := startDemo(t, cmd)
	pgid := cmd.Process.Pid
	stop := time.Now().Add(3 * time.Second)
	for time.Now().Before(stop) && syscall.Kill(-pgid, syscall.SIGCONT) == nil {
		time.Sleep(200 * time.Microsecond)
	}
	var stdout string
	select {
	case stdout = <-out.stdout:
	case <-time.After(60 * time.Second):
		t.Fatal("the demo did not end within 60s")
	}
	cmd.Wait()
	t.Logf("stdout:\n%s", stdout)
	code := cmd.ProcessState.ExitCode()
	switch {
	case code == 0 && strings.Contains(stdout, "\nok: "):
	case code == exitFail && countOnly.MatchString(stdout):
		t.Logf("the demo's count was off by a SIGCONT in freezeAndKill's window (the stated limit)")
	default:
		t.Errorf("exit %d, stderr:\n%s", code, out.stderr.String())
	}
	if !strings.Contains(stdout, "invariant               held") {
		t.Error("the ledger's invariant did not hold")
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("the segment was not removed: %v", e)
	}
}

// countOnly matches a demo verdict whose only failure is the kill count.
var countOnly = regexp.MustCompile(`\nFAIL: \d+ deaths while holding the lock but \d+ recoveries\n`)
