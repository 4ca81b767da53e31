package bench

// Worker processes, as the suite sees them: started with a spec, released
// together at a barrier, their results collected.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

// start launches one worker: this binary again, with the spec in the
// environment. It dies with the parent (Pdeathsig) and with s.ctx.
func (s *suite) start(spec workerSpec) (*proc, error) {
	spec.Shared, spec.LockFile, spec.SemID = s.shPath, s.lockFile, s.semID
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(s.ctx, s.exe, "bench")
	// A -race binary sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	p.cmd.Env = append(os.Environ(), workerEnv+"="+string(js), "GORACE="+gorace)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// result waits for the worker and decodes what it printed.
func (p *proc) result(timeout time.Duration) (workerResult, error) {
	var r workerResult
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return r, fmt.Errorf("worker timed out after %v; stderr: %s", timeout, p.stderr.String())
	}
	if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("worker: %v (%v); stderr: %s", err, p.err, p.stderr.String())
	}
	if r.Err != "" {
		return r, fmt.Errorf("worker: %s", r.Err)
	}
	return r, nil
}

func killAll(ps []*proc) {
	for _, p := range ps {
		if p != nil && !p.exited() {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

const workerTimeout = 2 * time.Minute

// runBarrier starts one worker per spec, opens the start barrier once all
// of them are ready, and collects their results.
func (s *suite) runBarrier(specs []workerSpec) ([]workerResult, error) {
	ps := make([]*proc, 0, len(specs))
	defer func() { killAll(ps) }()
	for _, sp := range specs {
		sp.Timeout = workerTimeout
		p, err := s.start(sp)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	alive := func() error {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		for _, p := range ps {
			if p.exited() {
				_, err := p.result(0)
				return fmt.Errorf("worker exited before the start: %v", err)
			}
		}
		return nil
	}
	if err := s.sh.open(len(ps), workerTimeout, alive); err != nil {
		return nil, err
	}
	out := make([]workerResult, len(ps))
	for i, p := range ps {
		r, err := p.result(workerTimeout)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// fresh resets the shared state between runs.
func (s *suite) fresh() error {
	if err := s.sh.reset(); err != nil {
		return err
	}
	if s.semID >= 0 {
		return setSem(s.semID)
	}
	return nil
}
