//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/futexlab/robustlock/internal/proctest"
)

// Helper processes are this test binary run again as a helper
// (proctest's protocol); TestMain runs the helper instead of the tests.
var helpers = map[string]proctest.Helper{}

// cleanups run after all tests (for things built once and shared).
var cleanups []func()

// watchdog bounds every wait for another process: a hang detector, not a
// timing assertion. Nothing should take more than a small part of it, even
// under -race on two loaded cores.
const watchdog = proctest.Watchdog

func init() {
	// Keep the main goroutine on the main thread for good, so no other
	// goroutine runs there: a goroutine that ends holding a lock on the
	// main thread would not end the thread (see the package robustlock
	// docs), and the tests rely on goroutine death being thread death.
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	code := proctest.Main(m, helpers)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	for _, f := range cleanups {
		f()
	}
	os.Exit(code)
}

// --- C programs -------------------------------------------------------

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{} // name -> binary, or "" after a failure
	buildErr = map[string]error{}
)

// cProgram builds testdata/NAME.c with the system gcc (once per test
// binary run) and returns the binary's path. It skips the test if there
// is no gcc and fails it if the program does not build.
func cProgram(t testing.TB, name string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: the glibc peers are C programs built by the test")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[name]; ok {
		if bin == "" {
			t.Fatalf("building testdata/%s.c failed earlier: %v", name, buildErr[name])
		}
		return bin
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "robustlock-e2e-bin-"); err != nil {
			t.Fatal(err)
		}
	}
	src, err := filepath.Abs(filepath.Join("testdata", name+".c"))
	if err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs(filepath.Join("..", "segment")) // robustlock_segment.h
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(buildDir, name)
	out, err := exec.Command(gcc, "-std=gnu11", "-O2", "-Wall", "-pthread", "-I", inc, "-o", bin, src, "-lrt").CombinedOutput()
	if err != nil {
		built[name], buildErr[name] = "", fmt.Errorf("%v\n%s", err, out)
		t.Fatalf("building testdata/%s.c: %v", name, buildErr[name])
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Logf("gcc warnings for %s.c:\n%s", name, out)
	}
	built[name] = bin
	return bin
}

// --- processes that talk in lines -----------------------------------

// A proc is a running helper or C program that answers commands on stdin
// with lines on stdout.
type proc = proctest.Proc

// helperCmd is the command that runs helper name with args.
func helperCmd(name string, life time.Duration, args ...string) *exec.Cmd {
	cmd := proctest.Command(name, args...)
	proctest.SetLife(cmd, life)
	return cmd
}

// startProc starts cmd; the test's cleanup kills it if it still runs.
func startProc(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	return proctest.Start(t, name, cmd)
}

// --- peers: a C or Go process holding one mutex -----------------------

// A target names a mutex and its counter for a peer, in the argument
// form peer.c takes: "raw PATH OFF", "seg PATH I" or "shm /NAME I".
type target []string

// startPeer starts a peer of the given kind ("c" or "go") on tgt and
// waits for it to be ready.
func startPeer(t testing.TB, kind string, tgt target) *proc {
	t.Helper()
	var cmd *exec.Cmd
	switch kind {
	case "c":
		cmd = exec.Command(cProgram(t, "peer"), tgt...)
	case "go":
		cmd = helperCmd("peer", 3*time.Minute, tgt...)
	default:
		t.Fatalf("unknown peer kind %q", kind)
	}
	p := startProc(t, kind+"-peer", cmd)
	if l := p.Next(); !strings.HasPrefix(l, "ready ") {
		t.Fatalf("%v started with %q; stderr:\n%s", p, l, p.Stderr())
	}
	return p
}
