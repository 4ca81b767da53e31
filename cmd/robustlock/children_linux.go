//go:build linux

package main

// The demo's worker processes, as the parent sees them: starting, reaping,
// stopping and killing them.
//
// The parent waits for its children itself, with wait4 (os/exec's Wait
// cannot report a stop), and never without a bound: every wait polls with
// WNOHANG until a deadline. A stop in particular can be undone at any time
// by a SIGCONT from outside (timeout(1) sends SIGINT then SIGCONT to the
// process group; so does a shell's fg after Ctrl-Z), and a blocking
// wait4(WUNTRACED) for a stop that SIGCONT undid waits forever. So
// waitStopped re-sends SIGSTOP while it polls, and every caller copes with
// a child that neither stops nor dies in time.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// worker is the parent's record of one slot's current process.
type worker struct {
	pid     int // 0: none running
	started time.Time
}

// spawn starts a worker in slot i: this program again, told the segment's
// name and nothing else. It dies with the demo if the demo is killed
// (the parent-death signal, and a check of its parent pid).
func (d *demo) spawn(i int) error {
	s := &d.l.slots[i]
	s.pid.Store(0)
	s.tid.Store(0)
	s.phase.Store(uint32(phaseStarting))
	cmd := exec.Command(d.exe, "demo", "-worker", "-name", d.seg.Name(), "-dir", d.dir,
		"-slot", strconv.Itoa(i), "-ppid", strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = d.stdin, d.workerErr, d.workerErr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.procs[i] = worker{pid: cmd.Process.Pid, started: time.Now()}
	d.started++
	// The demo waits for its workers itself (wait4, to see them stop too).
	cmd.Process.Release()
	return nil
}

func (d *demo) slotOf(pid int) int {
	for i, w := range d.procs {
		if w.pid == pid {
			return i
		}
	}
	return -1
}

// reap collects workers that exited by themselves. While running, that is
// a failure; when stopping, it is what they were asked to do.
func (d *demo) reap(stopping bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		i := d.slotOf(pid)
		if i < 0 {
			continue
		}
		d.procs[i].pid = 0
		if ws.Signaled() && interruptSignal(ws.Signal()) {
			// A Ctrl-C or a supervisor's signal to the whole process
			// group: the demo's own copy may not have been seen yet (a
			// slow machine), but it is an interrupt, not a failure.
			d.groupSignal = ws.Signal()
			continue
		}
		if !stopping || !ws.Exited() || ws.ExitStatus() != 0 {
			d.failf("worker %d (pid %d) %s", i, pid, exitText(ws))
		}
	}
}

// interruptSignal reports whether s is one of the signals the demo takes
// as an interrupt (its signal.Notify set).
func interruptSignal(s syscall.Signal) bool {
	return s == syscall.SIGINT || s == syscall.SIGTERM || s == syscall.SIGHUP
}

func exitText(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by %v", ws.Signal())
	}
	return fmt.Sprintf("ended (wait status %#x)", uint32(ws))
}

func (d *demo) running() int {
	n := 0
	for _, w := range d.procs {
		if w.pid != 0 {
			n++
		}
	}
	return n
}

// errNoChange is waitPoll's answer when the deadline passed first.
var errNoChange = errors.New("no change of state in time")

// waitPoll is wait4(pid, options|WNOHANG), retried until it reports a
// change of state or until deadline, when it returns errNoChange. Between
// polls it sleeps a little, more as time goes by, and calls each (if not
// nil) so the caller can nudge the child.
func waitPoll(pid, options int, deadline time.Time, each func()) (syscall.WaitStatus, error) {
	pause := 10 * time.Microsecond
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, options|syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return ws, err
		case got == pid:
			return ws, nil
		}
		if !time.Now().Before(deadline) {
			return ws, errNoChange
		}
		if each != nil {
			each()
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// stopWorker sends SIGSTOP to pid and waits, until deadline, for it to
// stop or end; the wait status says which. A SIGCONT from outside may
// resume the worker before the stop is seen: SIGSTOP is sent again every
// few milliseconds until the stop is reported.
func stopWorker(pid int, deadline time.Time) (syscall.WaitStatus, error) {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return 0, err
	}
	last := time.Now()
	return waitPoll(pid, syscall.WUNTRACED, deadline, func() {
		if now := time.Now(); now.Sub(last) >= 5*time.Millisecond {
			syscall.Kill(pid, syscall.SIGSTOP)
			last = now
		}
	})
}

// killWorker sends SIGKILL to pid and reaps it, waiting until deadline.
// SIGKILL cannot be caught, and a SIGCONT does not undo it; only a process
// stuck in the kernel can outlast the deadline.
func killWorker(pid int, deadline time.Time) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	for {
		ws, err := waitPoll(pid, 0, deadline, nil)
		if err == syscall.ECHILD {
			return nil // reaped already
		}
		if err != nil {
			return err
		}
		if ws.Exited() || ws.Signaled() {
			return nil
		}
	}
}

// killAll ends every worker at once (interrupt, or a failure), without
// accounting, waiting at most stopPatience in all. A worker that cannot be
// reaped in time is reported; the parent-death signal ends it when the demo
// exits.
func (d *demo) killAll() {
	for _, w := range d.procs {
		if w.pid != 0 {
			syscall.Kill(w.pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(stopPatience)
	for i, w := range d.procs {
		if w.pid == 0 {
			continue
		}
		if err := killWorker(w.pid, deadline); err != nil {
			d.failf("worker %d (pid %d) did not die within %s of SIGKILL: %v", i, w.pid, stopPatience, err)
		}
		d.procs[i].pid = 0
	}
}
