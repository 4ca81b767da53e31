package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helper processes are this test binary run again with helperEnv naming
// the helper; TestMain runs the helper instead of the tests.
const (
	helperEnv = "E2E_HELPER"
	argsEnv   = "E2E_ARGS"
	lifeEnv   = "E2E_LIFE" // a helper exits on its own after this long
)

var helpers = map[string]func() int{}

// cleanups run after all tests (for things built once and shared).
var cleanups []func()

// watchdog bounds every wait for another process: a hang detector, not a
// timing assertion. Nothing should take more than a small part of it, even
// under -race on two loaded cores.
const watchdog = 60 * time.Second

func init() {
	// Keep the main goroutine on the main thread for good, so no other
	// goroutine runs there: a goroutine that ends holding a lock on the
	// main thread would not end the thread (see the package robustlock
	// docs), and the tests rely on goroutine death being thread death.
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		fn := helpers[name]
		if fn == nil {
			fmt.Fprintln(os.Stderr, "e2e: unknown helper", name)
			os.Exit(3)
		}
		life := 3 * time.Minute
		if d, err := time.ParseDuration(os.Getenv(lifeEnv)); err == nil {
			life = d
		}
		// A helper whose test went away must not linger (Pdeathsig would
		// fire when the spawning thread, not the process, exits).
		time.AfterFunc(life, func() {
			fmt.Fprintln(os.Stderr, "e2e helper: lifetime expired")
			os.Exit(4)
		})
		os.Exit(fn())
	}
	code := m.Run()
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
	bin := filepath.Join(buildDir, name)
	out, err := exec.Command(gcc, "-std=gnu11", "-O2", "-Wall", "-pthread", "-o", bin, src, "-lrt").CombinedOutput()
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
type proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{} // closed when it has exited
	err   error         // exit status, valid after done
	errMu sync.Mutex
	errb  bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) { // stderr
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.errb.Write(b)
}

func (p *proc) stderr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.errb.String()
}

// helperCmd is the command that runs helper name with args.
func helperCmd(name string, life time.Duration, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, argsEnv+"="+strings.Join(args, " "),
		lifeEnv+"="+life.String())
	return cmd
}

// startProc starts cmd; the test's cleanup kills it if it still runs.
func startProc(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p, err := launch(t, name, cmd)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(p.kill)
	return p
}

func launch(t testing.TB, name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{t: t, name: name, cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	cmd.Stderr = p
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.in = in
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) String() string { return fmt.Sprintf("%s[%d]", p.name, p.pid()) }

// send writes one command line.
func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("%v: writing %q: %v", p, line, err)
	}
}

// next returns the next line, failing the test if none comes within the
// watchdog or the process ends first.
func (p *proc) next() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			p.t.Fatalf("%v ended (%v) without answering; stderr:\n%s", p, p.err, p.stderr())
		}
		return l
	case <-time.After(watchdog):
		p.t.Fatalf("%v said nothing for %v: hung", p, watchdog)
	}
	return ""
}

// do sends a command and returns its answer.
func (p *proc) do(line string) string {
	p.t.Helper()
	p.send(line)
	return p.next()
}

// must sends a command and fails the test unless the answer is want.
func (p *proc) must(line, want string) {
	p.t.Helper()
	if got := p.do(line); got != want {
		p.t.Fatalf("%v: %q answered %q, want %q", p, line, got, want)
	}
}

// expect fails the test unless the next line is want.
func (p *proc) expect(want string) {
	p.t.Helper()
	if got := p.next(); got != want {
		p.t.Fatalf("%v said %q, want %q", p, got, want)
	}
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(watchdog):
		p.t.Errorf("%v survived SIGKILL for %v", p, watchdog)
	}
}

// wait waits for the process to exit by itself.
func (p *proc) wait() error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(watchdog):
		p.t.Fatalf("%v did not exit within %v", p, watchdog)
	}
	return nil
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
	if l := p.next(); !strings.HasPrefix(l, "ready ") {
		t.Fatalf("%v started with %q; stderr:\n%s", p, l, p.stderr())
	}
	return p
}

// --- sleepers ----------------------------------------------------------

// futexSleepers counts the threads of pid blocked in a shared (not
// private) FUTEX_WAIT or FUTEX_WAIT_BITSET: lock waiters, Go's or
// glibc's. The Go runtime's idle threads use private futexes.
func futexSleepers(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fs := strings.Fields(string(b))
		if len(fs) < 3 || fs[0] != strconv.Itoa(unix.SYS_FUTEX) {
			continue
		}
		op, err := strconv.ParseUint(strings.TrimPrefix(fs[2], "0x"), 16, 64)
		// FUTEX_WAIT 0, FUTEX_WAIT_BITSET 9, either with
		// FUTEX_CLOCK_REALTIME (256); FUTEX_PRIVATE_FLAG (128) excluded.
		if err == nil && (op&^256 == 0 || op&^256 == 9) {
			n++
		}
	}
	return n
}

// awaitSleepers waits until the processes pids have together at least n
// threads asleep on shared futexes.
func awaitSleepers(t testing.TB, n int, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(watchdog)
	for time.Now().Before(deadline) {
		got := 0
		for _, p := range pids {
			got += futexSleepers(p)
		}
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d threads of %v went to sleep on the lock within %v", n, pids, watchdog)
}

// quit tells a peer to exit and waits for it.
func (p *proc) quit() {
	p.t.Helper()
	p.send("exit")
	if err := p.wait(); err != nil {
		p.t.Fatalf("%v exited with %v; stderr:\n%s", p, err, p.stderr())
	}
}
