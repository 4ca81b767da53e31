package segment

import (
	"context"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/futexlab/robustlock"
)

// A Segment is an open, mapped segment. Its methods are safe for
// concurrent use; Close must not run while other goroutines still use the
// segment's memory (its Data or its mutexes).
type Segment struct {
	name    string
	path    string
	created bool
	hdr     Header
	repair  func(data []byte) error // the Repair option; nil if none

	closeMu sync.Mutex // serialises Close
	m       atomic.Pointer[mapping]
}

// mapping is what Close takes away: after it, nothing of the segment's
// memory is reachable from the Segment.
type mapping struct {
	mem     []byte // the whole file, MAP_SHARED
	data    []byte
	mutexes []*robustlock.Mutex
}

//lint:ignore U1000 used by the Linux implementation; unused where segments are unsupported
func newSegment(name, path string, created bool, h Header, mem []byte) (*Segment, error) {
	mp := &mapping{
		mem:  mem,
		data: mem[h.DataOffset:h.TotalSize:h.TotalSize],
	}
	for i := 0; i < h.MutexCount; i++ {
		m, err := robustlock.At(mem, int(h.MutexOff(i)))
		if err != nil {
			return nil, detail(ErrCorrupt, "mutex %d: %v", i, err)
		}
		mp.mutexes = append(mp.mutexes, m)
	}
	s := &Segment{name: name, path: path, created: created, hdr: h}
	s.m.Store(mp)
	return s, nil
}

// Name returns the segment's name, as given to Open.
func (s *Segment) Name() string { return s.name }

// Path returns the file the segment was opened or created as.
func (s *Segment) Path() string { return s.path }

// Created reports whether this Open created and published the segment
// (and so ran its Init), rather than opening one that existed.
func (s *Segment) Created() bool { return s.created }

// Header returns the segment's header, as validated when it was opened.
// It stays available after Close.
func (s *Segment) Header() Header { return s.hdr }

// Mutex returns the segment's own lock, mutex number 0. It returns nil
// after Close. The Mutex lives in the mapping: using it after Close is a
// use after free, which Close cannot detect (Close only refuses while a
// mutex is held or busy).
func (s *Segment) Mutex() *robustlock.Mutex {
	m, err := s.MutexN(0)
	if err != nil {
		return nil
	}
	return m
}

// MutexN returns mutex i: 0 is the segment's own lock (Mutex), 1 to n the
// extra mutexes asked for with Mutexes(n). It returns ErrClosed after
// Close, and ErrInvalidOption for an i out of range.
func (s *Segment) MutexN(i int) (*robustlock.Mutex, error) {
	mp := s.m.Load()
	if mp == nil {
		return nil, s.err("mutex", ErrClosed)
	}
	if i < 0 || i >= len(mp.mutexes) {
		return nil, s.err("mutex", detail(ErrInvalidOption, "mutex %d of %d", i, len(mp.mutexes)))
	}
	return mp.mutexes[i], nil
}

// Do runs fn on the segment's data with the segment's own lock (Mutex)
// held, and unlocks on every path, fn's panics included (see
// robustlock.Mutex.Do). When the lock's previous owner died holding it, Do
// first runs the Repair option's function on the data: if it succeeds, the
// lock is marked consistent and fn runs; if it fails or panics, fn does not
// run, the lock is unlocked unmarked and so becomes not recoverable, and
// Do returns the failure wrapped in ErrRepair, joined with
// robustlock.ErrUnlockedInconsistent (or re-panics).
//
// fn's own error is returned as is. A lock that cannot be taken
// (robustlock.ErrNotRecoverable, robustlock.ErrDeadlock, ctx.Err(), ...)
// returns that error in an *Error, without calling fn. Without a Repair
// option Do returns ErrNoRepair and does not lock, so a missing repair
// shows on the first call rather than at the first death. After Close it
// returns ErrClosed.
func (s *Segment) Do(ctx context.Context, fn func(data []byte) error) error {
	mp := s.m.Load()
	switch {
	case mp == nil:
		return s.err("do", ErrClosed)
	case s.repair == nil:
		return s.err("do", ErrNoRepair)
	}
	m := mp.mutexes[0]
	called := false
	err := m.Do(ctx, func(recovered bool) error {
		called = true
		if recovered {
			if err := s.repair(mp.data); err != nil {
				return s.err("repair", fmt.Errorf("%w: %w", ErrRepair, err))
			}
			if err := m.MarkConsistent(); err != nil {
				return s.err("repair", err) // the repair unlocked the lock
			}
		}
		return fn(mp.data)
	})
	if !called {
		return s.err("lock", err)
	}
	return err
}

// NumMutexes returns the number of mutexes, the segment's own lock
// included: MutexN accepts 0 to NumMutexes()-1.
func (s *Segment) NumMutexes() int { return s.hdr.MutexCount }

// Data returns the segment's user data: Size bytes, shared with every
// process that maps the segment, 64-byte aligned. Its length and capacity
// are the data size; the slice must not be used after Close, when the
// memory behind it is unmapped. After Close, Data returns nil.
func (s *Segment) Data() []byte {
	if mp := s.m.Load(); mp != nil {
		return mp.data
	}
	return nil
}

// Close unmaps the segment. It refuses, returning ErrInUse and leaving
// everything mapped, while a thread of this process holds one of the
// segment's mutexes or is inside a Lock, TryLock, LockContext or Unlock of
// one: the kernel's robust list of that thread points into the mapping and
// would be followed at the thread's death. Unlock first, then Close.
//
// A segment whose file was truncated (or overwritten by a shorter file)
// while mapped cannot be read any more: the check of its mutexes faults.
// Close then releases the file's mapping anyway and returns an error
// wrapping ErrFault. It leaves in its place an inaccessible reservation of
// the same addresses (no memory, just address space), because it can no
// longer tell whether a thread here holds one of the mutexes: a robust
// list entry pointing there must meet a fault, as it would have in the
// truncated file, never other memory mapped later at the same address.
//
// Close does not remove the segment (see Remove) and does not touch its
// mutexes. After Close, Data returns nil, Mutex returns nil and MutexN and
// Close return ErrClosed. Slices and *Mutex values obtained before Close
// must not be used after it.
func (s *Segment) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	mp := s.m.Load()
	if mp == nil {
		return s.err("close", ErrClosed)
	}
	held, owner, fault := heldHere(mp)
	if fault != nil {
		s.m.Store(nil)
		if err := reserve(mp.mem); err != nil {
			return s.err("close", fmt.Errorf("%w (%v); releasing the mapping: %w", ErrFault, fault, err))
		}
		return s.err("close", detail(ErrFault, "%v; the mapping was released", fault))
	}
	if held >= 0 {
		return s.err("close", detail(ErrInUse, "mutex %d is held by thread %d", held, owner))
	}
	if robustlock.Busy(mp.mem) {
		return s.err("close", detail(ErrInUse, "a thread is locking or unlocking one of its mutexes"))
	}
	s.m.Store(nil)
	if err := unmap(mp.mem); err != nil {
		return s.err("close", err)
	}
	return nil
}

// heldHere returns the first mutex of mp that a thread of this process
// holds (-1 if none) and its owner, or the fault that reading the mutexes
// raised (the file was truncated under the mapping).
func heldHere(mp *mapping) (held, owner int, fault error) {
	held = -1
	err := guard(func() {
		for i, m := range mp.mutexes {
			if m.HeldHere() {
				held, owner = i, m.State().Owner
				return
			}
		}
	})
	return held, owner, err
}

// Check reports whether the segment's memory can still be read and still
// holds a segment: an error wrapping ErrFault if its file was truncated
// while mapped (touching it would raise SIGBUS), ErrBadMagic if the file
// was overwritten with something else, ErrClosed after Close, nil
// otherwise. It reads the first and the last byte of the mapping with a
// fault guard, so it never crashes; the file can of course be damaged
// right after it returns.
func (s *Segment) Check() error {
	mp := s.m.Load()
	if mp == nil {
		return s.err("check", ErrClosed)
	}
	var magic string
	var last byte
	if err := guard(func() {
		magic = string(mp.mem[:len(Magic)])
		last = mp.mem[len(mp.mem)-1]
	}); err != nil {
		return s.err("check", detail(ErrFault, "%v", err))
	}
	_ = last
	if magic != Magic {
		return s.err("check", detail(ErrBadMagic, "%q", magic))
	}
	return nil
}

// guard runs f with the runtime's panic-on-fault mode on for this
// goroutine and returns the fault f met, if any, instead of crashing: the
// way to read mapped memory whose file may have been truncated. Other
// panics pass through.
func guard(f func()) (fault error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(interface{ Addr() uintptr }); ok {
				fault = fmt.Errorf("fault at address %#x", e.Addr())
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

func (s *Segment) err(op string, err error) error {
	return &Error{Op: op, Name: s.name, Path: s.path, Err: err}
}

// String describes the segment in one line.
func (s *Segment) String() string {
	return fmt.Sprintf("segment %s (%d data bytes, %d mutexes, created by pid %d)",
		s.path, s.hdr.DataSize, s.hdr.MutexCount, s.hdr.CreatorPID)
}

// Info describes a segment without opening it: what Stat and List return.
type Info struct {
	Name   string
	Path   string
	Header             // as read from the file, validated like Open does
	UID    int         // the file's owner
	Mode   fs.FileMode // the file's permission bits
	// Mutexes holds the state of every mutex, read without locking:
	// Mutexes[0] is the segment's own lock, Mutexes[i] is MutexN(i).
	Mutexes []robustlock.State
}
