package robustlock

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/futexlab/robustlock/internal/atomicx"
	"github.com/futexlab/robustlock/internal/futex"
)

// Mutex is a robust, process-shared mutex with glibc's pthread_mutex_t
// layout (Size bytes). It must live in memory mapped by every process that
// uses it, at an 8-byte-aligned address (see At), and be initialised once,
// by Init or by a C program's pthread_mutex_init with the robust attribute,
// before anyone uses it. A Mutex must not be copied or moved while in use.
//
// While a thread holds it, the kernel keeps the Mutex's address (on that
// thread's robust list) and writes to it if the thread dies, so it must
// not live in memory the Go runtime manages and may free or move: not in a
// Go-allocated slice or variable, and not unmapped while held (segment's
// Close refuses to). go vet's copylocks check reports copies.
type Mutex struct {
	_ noCopy
	_ [Size / 8]uint64
}

// noCopy makes go vet report copies of a Mutex (its copylocks check looks
// for Lock and Unlock methods, which Mutex's own error-returning ones are
// not). It takes no space: Mutex stays Size bytes.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// c views m as glibc's fields.
func (m *Mutex) c() *core { return (*core)(unsafe.Pointer(m)) }

// entry is &m.c().next, the robust list entry, computed without the nil
// check &c.next would compile to: that check loads from m, and guard.go
// needs pending set before m's memory is first read.
func (m *Mutex) entry() *uintptr {
	return (*uintptr)(unsafe.Add(unsafe.Pointer(m), unsafe.Offsetof(core{}.next)))
}

// At returns the Mutex at mem[off:], after checking that all Size bytes lie
// inside mem and that the address is 8-byte aligned. mem is normally a
// MAP_SHARED mapping; the Mutex is valid while the mapping is.
func At(mem []byte, off int) (*Mutex, error) {
	p, err := atomicx.Ptr(mem, off, Size, 8)
	if err != nil {
		return nil, fmt.Errorf("robustlock: mutex at offset %d: %w", off, err)
	}
	return (*Mutex)(p), nil
}

// Init initialises m as a robust, process-shared, normal mutex, exactly as
// pthread_mutex_init with those attributes would: free, consistent, no
// users. Like pthread_mutex_init it must not be called while any thread, in
// any process, uses m. It is also the only way back from ErrNotRecoverable,
// once every user agrees the guarded data has been rebuilt. On a nil m it
// does nothing.
func (m *Mutex) Init() {
	if m == nil {
		return
	}
	c := m.c()
	c.count, c.owner, c.nusers, c.spins, c.prev, c.next = 0, 0, 0, 0, 0, 0
	atomic.StoreInt32(&c.kind, KindRobustNormal)
	atomic.StoreUint32(&c.lock, 0)
}

// State is a snapshot of a Mutex, read without taking it. Fields of a mutex
// in use may change at any moment after State returns.
type State struct {
	Owner          int   // TID in the lock word; 0 when free
	Waiters        bool  // some thread may be asleep waiting for it
	OwnerDied      bool  // the owner died holding it and nobody has taken it since
	Inconsistent   bool  // taken after an owner died; MarkConsistent not yet called
	NotRecoverable bool  // unlocked while inconsistent: unusable until Init
	Kind           int32 // glibc's __kind; KindRobustNormal for Init's mutexes
	Users          uint32
	// LastOwner is the TID in glibc's __owner field: the holder's while
	// held, and, once the kernel has cleared a dead owner's TID from the
	// lock word, still the thread that died. 0 when the field holds one
	// of its special values or nothing.
	LastOwner int
}

// State returns a snapshot of m without locking it (the zero State for a
// nil m).
func (m *Mutex) State() State {
	if m == nil {
		return State{}
	}
	c := m.c()
	w := atomic.LoadUint32(&c.lock)
	o := atomic.LoadInt32(&c.owner)
	return State{
		Owner:          int(w & futex.TIDMask),
		Waiters:        w&futex.Waiters != 0,
		OwnerDied:      w&futex.OwnerDied != 0,
		Inconsistent:   o == ownerInconsistent,
		NotRecoverable: o == ownerNotRecoverable,
		Kind:           atomic.LoadInt32(&c.kind),
		Users:          atomic.LoadUint32(&c.nusers),
		LastOwner:      lastOwner(o),
	}
}

func lastOwner(o int32) int {
	if o <= 0 || uint32(o) > futex.TIDMask {
		return 0 // free, or INCONSISTENT / NOTRECOVERABLE
	}
	return int(o)
}

// String describes the state in a few words, as robustlock inspect shows it.
func (s State) String() string {
	var st string
	switch {
	case s.NotRecoverable:
		st = "not recoverable"
	case s.OwnerDied:
		st = "owner died, free to recover"
	case s.Owner == 0:
		st = "free"
	case s.Inconsistent:
		st = fmt.Sprintf("held by tid %d, recovering (inconsistent)", s.Owner)
	default:
		st = fmt.Sprintf("held by tid %d", s.Owner)
	}
	if s.Waiters {
		st += ", waiters"
	}
	return st
}

// supportedKind reports whether k names a protocol this package runs:
// robust, not PI or PP, and not recursive. Errorcheck and adaptive robust
// mutexes follow the same protocol as normal ones (this package reports
// relocking and foreign unlocks for every kind).
func supportedKind(k int32) bool {
	return k&kindProtocol == kindRobust && k&kindTypeMask != kindRecurse
}

// supportedPlatform is true where Mutex works: Linux on amd64 and arm64.
const supportedPlatform = runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64")
