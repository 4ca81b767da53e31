//go:build linux

package main

// The chaos killer: when to kill, whom (aimed at a worker caught
// mid-transfer, or anyone), the kill itself, and matching each death while
// holding the lock to the recovery that follows it.

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// kill is one SIGKILL the chaos killer sent.
type kill struct {
	at      time.Duration
	slot    int
	pid     int
	aimed   bool  // waited for a victim mid-transfer
	holding bool  // the lock word held one of the victim's threads
	phase   phase // where the victim was, frozen
}

// schedule spreads the kills over the run, each at a jittered point of
// its own share of the time.
func (d *demo) schedule() []time.Duration {
	if d.kills <= 0 {
		return nil
	}
	share := float64(d.duration) / float64(d.kills)
	s := make([]time.Duration, d.kills)
	for k := range s {
		s[k] = time.Duration(share * (float64(k) + 0.1 + 0.8*d.rng.Float64()))
	}
	return s
}

// chaos makes one kill and starts the victim's replacement.
func (d *demo) chaos(elapsed time.Duration) {
	aimed := d.rng.Float64() < aimedShare
	i := -1
	if aimed {
		i = d.aim()
	}
	if i < 0 {
		aimed = false
		i = d.anyone()
	}
	if i < 0 {
		return // nobody running yet
	}
	if k, ok := d.freezeAndKill(i); ok {
		k.aimed, k.at = aimed, elapsed
		d.killed = append(d.killed, k)
		if d.verbose {
			where := "not holding the lock"
			if k.holding {
				where = "holding the lock"
			}
			d.out.event(fmt.Sprintf("%7.3fs  kill %d: worker %d (pid %d), %s, %s",
				k.at.Seconds(), len(d.killed), k.slot, k.pid, where, k.phase))
		}
	}
	if len(d.failures) == 0 {
		if err := d.spawn(i); err != nil {
			d.failf("restarting worker %d: %v", i, err)
		}
	}
}

// aim waits a little for a worker caught mid-transfer, holding the lock
// with the ledger half-updated, and returns its slot (-1 if none came).
func (d *demo) aim() int {
	deadline := time.Now().Add(aimPatience)
	for {
		for _, i := range d.rng.Perm(len(d.procs)) {
			w, s := d.procs[i], &d.l.slots[i]
			if w.pid != 0 && int(s.pid.Load()) == w.pid && phase(s.phase.Load()) == phaseMidTransfer {
				return i
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// anyone picks a random running worker, preferring those past start-up.
func (d *demo) anyone() int {
	var ready, running []int
	for i, w := range d.procs {
		if w.pid == 0 {
			continue
		}
		running = append(running, i)
		if int(d.l.slots[i].pid.Load()) == w.pid {
			ready = append(ready, i)
		}
	}
	if len(ready) > 0 {
		return ready[d.rng.IntN(len(ready))]
	}
	if len(running) > 0 {
		return running[d.rng.IntN(len(running))]
	}
	return -1
}

// freezeAndKill SIGKILLs the worker in slot i, and tells exactly whether
// it held the lock when it died: it is stopped first (SIGSTOP, and wait4
// until the whole process has stopped), so the lock word read then is the
// one the kernel will find at its death. A worker that held the lock
// leaves it OWNER_DIED, and the next Lock must return ErrOwnerDied.
//
// Every wait is bounded (children_linux.go): a worker that does not stop
// within stopPatience is killed all the same, and the demo fails, since
// whether it held the lock is then unknown. A SIGCONT from outside (a
// shell's fg, a supervisor) can resume the worker after the stop was seen:
// the lock word is read only while /proc still shows it stopped, and the
// SIGKILL follows at once; a resume in the microseconds between that check
// and the kill is the one case left where the count can be wrong.
func (d *demo) freezeAndKill(i int) (kill, bool) {
	pid := d.procs[i].pid
	k := kill{slot: i, pid: pid}
	deadline := time.Now().Add(stopPatience)
	for {
		ws, err := stopWorker(pid, deadline)
		switch {
		case err == nil && !ws.Stopped():
			d.procs[i].pid = 0
			d.failf("worker %d (pid %d) %s", i, pid, exitText(ws))
			return k, false
		case err != nil:
			d.failf("worker %d (pid %d) did not stop within %s: %v", i, pid, stopPatience, err)
			if err := killWorker(pid, time.Now().Add(stopPatience)); err != nil {
				d.failf("worker %d (pid %d) did not die within %s of SIGKILL: %v", i, pid, stopPatience, err)
			}
			d.procs[i].pid = 0
			return k, false
		}
		st := d.m.State()
		k.phase = phase(d.l.slots[i].phase.Load())
		k.holding = d.owns(i, pid, st.Owner)
		if stillStopped(pid) {
			break
		}
		// A SIGCONT from outside resumed it while the lock word was
		// read: what was read may no longer hold. Freeze it again.
	}
	at := monotonic()
	if err := killWorker(pid, time.Now().Add(stopPatience)); err != nil {
		d.failf("worker %d (pid %d) did not die within %s of SIGKILL: %v", i, pid, stopPatience, err)
	}
	d.procs[i].pid = 0
	if k.holding {
		d.killAt = append(d.killAt, at)
		d.victims = append(d.victims, pid)
	}
	return k, true
}

// owns reports whether thread tid, the lock word's owner, is a thread of
// process pid (the worker in slot i).
func (d *demo) owns(i, pid, tid int) bool {
	if tid == 0 {
		return false
	}
	if t := lookupTask(tid); t.Known && t.Alive {
		return t.PID == pid
	}
	return tid == int(d.l.slots[i].tid.Load()) // no /proc: the worker's published TID
}

// readRecoveries takes the recoveries recorded since the last call and
// matches each with its kill: deaths while holding and recoveries
// alternate (nobody takes the lock between a holder's death and its
// recovery), so recovery n belongs to kill-while-holding n.
func (d *demo) readRecoveries() {
	for n := d.l.recoveries.Load(); d.recSeen < n; d.recSeen++ {
		i := d.recSeen
		at := d.l.recAt[i%ringSize].Load()
		by := d.l.recBy[i%ringSize].Load()
		dead := int(d.l.recDead[i%ringSize].Load())
		if i >= uint64(len(d.killAt)) {
			continue // no death while holding to match: verdict reports the count mismatch
		}
		took := time.Duration(at - d.killAt[i])
		d.recTimes = append(d.recTimes, took)
		if dead != 0 && dead != d.victims[i] {
			d.misplaced++
		}
		if d.verbose {
			who := fmt.Sprintf("pid %d", by)
			if int(by) == os.Getpid() {
				who = "the demo itself"
			}
			d.out.event(fmt.Sprintf("%7.3fs  recovery %d: %s got ErrOwnerDied %s after pid %d died",
				time.Since(d.start).Seconds(), i+1, who, short(took), d.victims[i]))
		}
	}
}

// watchdog fails the demo when transfers stop: a lock nobody gets back
// would otherwise hang it.
func (d *demo) watchdog(now time.Time) {
	if now.Sub(d.lastTick) > time.Second {
		d.lastOpsAt = now // the demo itself was stopped (Ctrl-Z) or starved
	}
	d.lastTick = now
	ops := d.l.ops.Load()
	if ops != d.lastOps {
		d.lastOps, d.lastOpsAt = ops, now
		return
	}
	if now.Sub(d.lastOpsAt) > stallLimit {
		d.failf("no transfer for %s; segment lock: %v", stallLimit, d.m.State())
	}
}

// stillStopped reports whether /proc shows process pid stopped (state T),
// or cannot tell (no /proc).
func stillStopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold anything, so look after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'T'
}
