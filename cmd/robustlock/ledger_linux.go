//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The demo's shared state lives in the segment's data: a ledger of
// accounts whose balances must always add up to the same total, the undo
// journal that makes a transfer repairable, counters, and one slot per
// worker. Every field is accessed with sync/atomic, since other processes
// read and write the same memory; the fields marked "under the lock" are
// only written by the holder of the segment's lock.

const (
	ledgerMagic    = "RLDEMO\x00\x01" // the layout below, version 1
	numAccounts    = 8
	openingBalance = 1000
	maxTransfer    = 100
	maxWorkers     = 64
	ringSize       = 1024 // recoveries the parent may fall behind by
)

// phase is what a worker is doing, published in its slot so the chaos
// killer can aim and the report can say where kills landed.
type phase uint32

const (
	phaseStarting    phase = iota // not yet running its loop
	phaseIdle                     // between two turns, not holding the lock
	phaseLocking                  // inside Lock
	phaseRecovering               // holding after ErrOwnerDied, repairing from the journal
	phaseHolding                  // holding: checking the total, writing the journal
	phaseMidTransfer              // holding: one account debited, the other not yet credited
	phaseUnlocking                // inside Unlock
	phaseExited                   // left its loop
)

func (p phase) String() string {
	switch p {
	case phaseStarting:
		return "starting"
	case phaseIdle:
		return "between turns"
	case phaseLocking:
		return "locking"
	case phaseRecovering:
		return "recovering"
	case phaseHolding:
		return "holding"
	case phaseMidTransfer:
		return "mid-transfer"
	case phaseUnlocking:
		return "unlocking"
	case phaseExited:
		return "exited"
	}
	return fmt.Sprintf("phase(%d)", uint32(p))
}

// journal is the undo record of the transfer in progress: the two
// accounts and their balances before it. While active is 1, a recoverer
// puts both balances back.
type journal struct {
	active  atomic.Uint32
	from    atomic.Uint32
	to      atomic.Uint32
	_       uint32
	oldFrom atomic.Int64
	oldTo   atomic.Int64
}

// slot is one worker's public face, a cache line each.
type slot struct {
	pid        atomic.Int32  // the worker process, once it is running
	tid        atomic.Int32  // the thread that takes the lock
	phase      atomic.Uint32 // a phase
	_          uint32
	ops        atomic.Uint64 // transfers done by the workers of this slot
	recoveries atomic.Uint64 // recoveries done by them
	beat       atomic.Int64  // monotonic ns of the last turn
	_          [24]byte
}

// ledger is the layout of the segment's data.
type ledger struct {
	magic   [8]byte
	layout  uint64 // unsafe.Sizeof(ledger{}): a different build is refused
	total   int64  // what the accounts must add up to
	corrupt uint32 // workers skip the journal (tests of the checker)
	stop    atomic.Uint32

	// Under the lock.
	accounts   [numAccounts]atomic.Int64
	journal    journal
	holder     atomic.Int32 // pid of the holder, from just after Lock to just before Unlock
	_          uint32
	ops        atomic.Uint64 // transfers completed
	recoveries atomic.Uint64 // locks that returned ErrOwnerDied
	rollbacks  atomic.Uint64 // recoveries that undid a half-done transfer
	checks     atomic.Uint64 // totals checked
	violations atomic.Uint64 // checks that found the wrong total
	firstBad   atomic.Int64  // the total the first failed check found
	lastBad    atomic.Int64  // and the latest one

	// Recovery i (counting from 0) is recorded at i%ringSize: when the
	// recoverer got the lock (CLOCK_MONOTONIC ns), who it was, and whose
	// death it found (the holder field it read; 0 when the holder died
	// before writing it or after clearing it).
	recAt   [ringSize]atomic.Int64
	recBy   [ringSize]atomic.Int32
	recDead [ringSize]atomic.Int32

	slots [maxWorkers]slot
}

// ledgerSize is the segment data size the demo creates and its workers
// expect.
const ledgerSize = int(unsafe.Sizeof(ledger{}))

// initLedger lays out a new ledger in data, before the segment is
// published.
func initLedger(data []byte, corrupt bool) error {
	l, err := viewLedger(data, false)
	if err != nil {
		return err
	}
	for i := range l.accounts {
		l.accounts[i].Store(openingBalance)
	}
	l.total = numAccounts * openingBalance
	l.layout = uint64(ledgerSize)
	if corrupt {
		l.corrupt = 1
	}
	copy(l.magic[:], ledgerMagic)
	return nil
}

// viewLedger returns the ledger in a segment's data, checking that a
// demo of this build laid it out when check is set.
func viewLedger(data []byte, check bool) (*ledger, error) {
	if len(data) != ledgerSize {
		return nil, fmt.Errorf("segment holds %d bytes of data, the demo's ledger is %d", len(data), ledgerSize)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%8 != 0 {
		return nil, fmt.Errorf("segment data is not 8-byte aligned")
	}
	l := (*ledger)(unsafe.Pointer(unsafe.SliceData(data)))
	if check && (string(l.magic[:]) != ledgerMagic || l.layout != uint64(ledgerSize)) {
		return nil, fmt.Errorf("segment does not hold a ledger of this build of the demo")
	}
	return l, nil
}

// sum adds up the accounts. Under the lock.
func (l *ledger) sum() int64 {
	var s int64
	for i := range l.accounts {
		s += l.accounts[i].Load()
	}
	return s
}

// check verifies the invariant and counts the result. Under the lock.
func (l *ledger) check() bool {
	s := l.sum()
	l.checks.Add(1)
	if s == l.total {
		return true
	}
	if l.violations.Add(1) == 1 {
		l.firstBad.Store(s)
	}
	l.lastBad.Store(s)
	return false
}

// recordRecovery is the first thing a locker does after ErrOwnerDied: it
// notes when it got the lock and whose death it found, then counts the
// recovery. Under the lock.
func (l *ledger) recordRecovery(at int64, by int) {
	i := l.recoveries.Load()
	l.recAt[i%ringSize].Store(at)
	l.recBy[i%ringSize].Store(int32(by))
	l.recDead[i%ringSize].Store(l.holder.Load())
	l.recoveries.Store(i + 1)
}

// repair undoes the transfer a dead holder left half done, if any, from
// the journal. Rolling back twice is harmless, so a recoverer that dies
// while repairing leaves nothing its successor cannot redo. Under the lock.
func (l *ledger) repair() {
	j := &l.journal
	if l.corrupt != 0 || j.active.Load() == 0 {
		return
	}
	l.accounts[j.from.Load()].Store(j.oldFrom.Load())
	l.accounts[j.to.Load()].Store(j.oldTo.Load())
	j.active.Store(0)
	l.rollbacks.Add(1)
}

// transfer moves a random amount between two random accounts in steps, as
// a real update of several records would: journal, debit, work, credit,
// close the journal. A death anywhere in between leaves the total wrong
// until repair runs. Under the lock.
func (l *ledger) transfer(rng *rand.Rand, s *slot, window time.Duration) {
	from := rng.IntN(numAccounts)
	to := (from + 1 + rng.IntN(numAccounts-1)) % numAccounts
	fb, tb := l.accounts[from].Load(), l.accounts[to].Load()
	amount := 1 + rng.Int64N(maxTransfer)
	if amount > fb {
		amount = max(fb, 0) // no overdrafts; a zero transfer still goes through every step
	}
	journaled := l.corrupt == 0
	if journaled {
		j := &l.journal
		j.from.Store(uint32(from))
		j.to.Store(uint32(to))
		j.oldFrom.Store(fb)
		j.oldTo.Store(tb)
		j.active.Store(1)
	}
	l.accounts[from].Store(fb - amount)
	s.phase.Store(uint32(phaseMidTransfer))
	busy(window) // the rest of a multi-record update
	l.accounts[to].Store(tb + amount)
	s.phase.Store(uint32(phaseHolding))
	if journaled {
		l.journal.active.Store(0)
	}
	l.ops.Add(1)
}

// busy keeps the CPU for d, standing in for the work between the first
// and the last write of an update.
func busy(d time.Duration) {
	start := time.Now()
	for time.Since(start) < d {
	}
}

// monotonic returns CLOCK_MONOTONIC in nanoseconds: one clock for every
// process on the machine, so a kill time taken by the parent and a lock
// time taken by a worker can be subtracted.
func monotonic() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // CLOCK_MONOTONIC always exists on Linux
	}
	return ts.Nano()
}
