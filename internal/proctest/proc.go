package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Watchdog bounds every wait for another process: a hang detector, not a
// timing assertion. Nothing should take more than a small part of it, even
// under -race on two loaded cores.
const Watchdog = 60 * time.Second

// A Proc is a running helper or other program that answers commands on
// its stdin with lines on its stdout. Its methods fail its test rather
// than wait longer than Watchdog for it.
type Proc struct {
	t     testing.TB
	name  string
	Cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{} // closed when it has exited
	err   error         // exit status, valid after done
	errMu sync.Mutex
	errb  bytes.Buffer
}

// Start starts cmd as a Proc called name, failing t if it cannot; the
// test's cleanup kills it if it still runs.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := Launch(t, name, cmd)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Launch starts cmd as a Proc called name whose methods report to t; it
// leaves killing it to the caller. Its stderr is kept for Stderr.
func Launch(t testing.TB, name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{t: t, name: name, Cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	cmd.Stderr = (*stderrWriter)(p)
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

type stderrWriter Proc

func (w *stderrWriter) Write(b []byte) (int, error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.errb.Write(b)
}

// Stderr is what the process has written to its stderr so far.
func (p *Proc) Stderr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.errb.String()
}

// Lines is the process's stdout, line by line; it is closed at EOF.
func (p *Proc) Lines() <-chan string { return p.lines }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit status; valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

func (p *Proc) String() string { return fmt.Sprintf("%s[%d]", p.name, p.Pid()) }

// Send writes one command line.
func (p *Proc) Send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("%v: writing %q: %v", p, line, err)
	}
}

// CloseStdin closes the process's stdin, its end of input.
func (p *Proc) CloseStdin() error { return p.in.Close() }

// Next returns the next line, failing the test if none comes within the
// Watchdog or the process ends first.
func (p *Proc) Next() string {
	p.t.Helper()
	return p.next(time.After(Watchdog), fmt.Sprintf("for %v", Watchdog))
}

// NextBefore is Next with a deadline instead of the Watchdog, for tests
// that bound a series of answers as a whole.
func (p *Proc) NextBefore(deadline time.Time) string {
	p.t.Helper()
	return p.next(time.After(time.Until(deadline)), "before its deadline")
}

func (p *Proc) next(timeout <-chan time.Time, when string) string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			p.t.Fatalf("%v ended (%v) without answering; stderr:\n%s", p, p.err, p.Stderr())
		}
		return l
	case <-timeout:
		p.t.Fatalf("%v said nothing %s: hung", p, when)
	}
	return ""
}

// Do sends a command and returns its answer.
func (p *Proc) Do(line string) string {
	p.t.Helper()
	p.Send(line)
	return p.Next()
}

// Must sends a command and fails the test unless the answer is want.
func (p *Proc) Must(line, want string) {
	p.t.Helper()
	if got := p.Do(line); got != want {
		p.t.Fatalf("%v: %q answered %q, want %q", p, line, got, want)
	}
}

// Expect fails the test unless the next line is want.
func (p *Proc) Expect(want string) {
	p.t.Helper()
	if got := p.Next(); got != want {
		p.t.Fatalf("%v said %q, want %q", p, got, want)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Kill SIGKILLs the process and waits until it is gone.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(Watchdog):
		p.t.Errorf("%v survived SIGKILL for %v", p, Watchdog)
	}
}

// Wait waits for the process to exit by itself and returns its exit
// status.
func (p *Proc) Wait() error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(Watchdog):
		p.t.Fatalf("%v did not exit within %v", p, Watchdog)
	}
	return nil
}

// Quit sends line, a command that makes the process exit, and fails the
// test unless it then exits cleanly.
func (p *Proc) Quit(line string) {
	p.t.Helper()
	p.Send(line)
	if err := p.Wait(); err != nil {
		p.t.Fatalf("%v exited with %v; stderr:\n%s", p, err, p.Stderr())
	}
}
