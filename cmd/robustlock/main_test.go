//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/proctest"
	"github.com/futexlab/robustlock/segment"
)

// The tests run the real command: TestMain builds it once (with -race when
// the tests are), and each test executes it as a user would.

var bin string // the robustlock binary under test

// The test binary's helper processes (proctest.Command): "hold DIR NAME"
// locks a segment and waits to be killed; "map DIR NAME" maps it and waits;
// "exit" exits at once.
var helpers = map[string]proctest.Helper{
	"hold": func(args []string) int { return helper(append([]string{"hold"}, args...)) },
	"map":  func(args []string) int { return helper(append([]string{"map"}, args...)) },
	"exit": func([]string) int { return 0 },
}

func TestMain(m *testing.M) {
	proctest.Serve(helpers) // in a helper process, runs it and exits
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "robustlock-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "robustlock")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool(), append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building robustlock: %v\n", err)
		return 1
	}
	// A -race binary sleeps a second at exit (GORACE atexit_sleep_ms) to
	// let late reports out; with dozens of short runs that is most of the
	// test time. The demo's workers inherit it.
	if raceEnabled {
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return m.Run()
}

// goTool is the go command that runs these tests: go test puts its
// GOROOT/bin first on the PATH of the test binary.
func goTool() string { return "go" }

// helper is the test binary run as a lock holder: it locks the segment's
// mutex, says so on stdout and sleeps until the test kills it.
func helper(args []string) int {
	if len(args) == 1 && args[0] == "exit" {
		return 0
	}
	if len(args) == 3 && args[0] == "map" {
		seg, err := segment.Open(args[2], segment.Dir(args[1]), segment.OpenOnly())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("mapped %d\n", os.Getpid())
		time.Sleep(time.Minute) // killed long before
		seg.Close()
		return 0
	}
	if len(args) != 3 || args[0] != "hold" {
		fmt.Fprintf(os.Stderr, "bad helper arguments: %q\n", args)
		return 2
	}
	seg, err := segment.Open(args[2], segment.Dir(args[1]), segment.OpenOnly())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := seg.Mutex().Lock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("locked %d %d\n", os.Getpid(), unix.Gettid())
	time.Sleep(time.Minute) // killed long before
	return 0
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// runBin executes robustlock with args and fails the test if it does not end
// within timeout.
func runBin(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("robustlock %s: still running after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, r.stdout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("robustlock %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// holder starts a helper process holding the lock of segment name in dir
// and returns its pid and the TID that holds the lock. The process is
// killed at the end of the test if still alive.
func holder(t *testing.T, dir, name string) (pid, tid int, cmd *exec.Cmd) {
	t.Helper()
	cmd = proctest.Command("hold", dir, name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if _, err := fmt.Sscanf(s, "locked %d %d", &pid, &tid); err != nil {
			t.Fatalf("helper said %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not lock within 10s")
	}
	return pid, tid, cmd
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestUsage(t *testing.T) {
	r := runBin(t, 10*time.Second)
	if r.code != exitUsage || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q; want %d and the usage", r.code, r.stderr, exitUsage)
	}
	r = runBin(t, 10*time.Second, "-h")
	if r.code != 0 {
		t.Errorf("-h: exit %d", r.code)
	}
	for _, c := range []string{"demo", "ls", "inspect", "rm", "reset", "bench", "version"} {
		if !strings.Contains(r.stdout, "robustlock "+c) {
			t.Errorf("-h does not list %s:\n%s", c, r.stdout)
		}
	}
	r = runBin(t, 10*time.Second, "frobnicate")
	if r.code != exitUsage || !strings.Contains(r.stderr, `robustlock: unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, c := range []string{"demo", "ls", "inspect", "rm", "reset", "version"} {
		for _, h := range []string{"-h", "--help"} {
			r := runBin(t, 10*time.Second, c, h)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: robustlock "+c) || r.stderr != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", c, h, r.code, r.stdout, r.stderr)
			}
		}
		r = runBin(t, 10*time.Second, "help", c)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: robustlock "+c) {
			t.Errorf("help %s: exit %d, stdout %q", c, r.code, r.stdout)
		}
		r = runBin(t, 10*time.Second, c, "-no-such-flag")
		if !isUsageError(r, c) {
			t.Errorf("%s -no-such-flag: exit %d, stderr %q; want %d, the error, then the usage line", c, r.code, r.stderr, exitUsage)
		}
	}
	r = runBin(t, 10*time.Second, "demo", "-h")
	for _, f := range []string{"-worker", "-corrupt", "-slot", "-ppid"} {
		if strings.Contains(r.stdout, f+"\n") || strings.Contains(r.stdout, f+" ") {
			t.Errorf("demo -h shows the internal flag %s", f)
		}
	}
}

// isUsageError reports whether r is subcommand c's answer to a usage
// error: exit 2 and two lines on stderr, what is wrong and the usage.
func isUsageError(r result, c string) bool {
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	return r.code == exitUsage && r.stdout == "" && len(lines) == 2 &&
		strings.HasPrefix(lines[0], "robustlock: "+c+": ") &&
		strings.HasPrefix(lines[1], "usage: robustlock "+c+" ") &&
		strings.HasSuffix(lines[1], "(see 'robustlock "+c+" -h')")
}

// TestVersion: the module, the Go version and the platform, as text and
// as JSON with its schema number.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runBin(t, 10*time.Second, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "robustlock ") ||
			!strings.Contains(r.stdout, runtime.Version()) || !strings.Contains(r.stdout, runtime.GOOS+"/"+runtime.GOARCH) ||
			!strings.Contains(r.stdout, "github.com/futexlab/robustlock") {
			t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	r := runBin(t, 10*time.Second, "version", "--json")
	var v versionReport
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
		t.Fatalf("version --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if v.Schema != versionSchema || v.Go != runtime.Version() || v.GOOS != runtime.GOOS || v.GOARCH != runtime.GOARCH ||
		v.Module != "github.com/futexlab/robustlock" || v.Version == "" {
		t.Errorf("version --json: %+v", v)
	}
	if r := runBin(t, 10*time.Second, "version", "extra"); !isUsageError(r, "version") {
		t.Errorf("version extra: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestBench checks the wiring only: package bench owns what it prints.
func TestBench(t *testing.T) {
	r := runBin(t, 30*time.Second, "bench", "-h")
	if strings.Contains(r.stderr, "unknown command") {
		t.Errorf("bench is not wired: %q", r.stderr)
	}
	// Installed or not, -h is help on stdout.
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: robustlock bench ") {
		t.Errorf("bench -h: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
