//go:build linux

package robustlist

// A Thread is this package's record of one OS thread: the robust list head
// the kernel knows about, and a sentinel entry that tells whether the record
// still belongs to a live thread.
//
// Records live in mmap'd memory (never moved, never freed, wiped on fork)
// and are found by TID. Those for TIDs below the pid_max seen at the first
// registration are one flat array, one multiply away (the fast path is a
// chain of dependent loads, and this keeps it short); TIDs above it (pid_max
// raised later) find theirs in chunks mapped on demand,
// chunks[tid/chunkLen][tid%chunkLen]. The flat array is those first chunks,
// so code that is not in a hurry sees chunks only. A record is in
// one of three states:
//
//	empty      sentinel word != tid: never used, wiped by fork, or its thread
//	           died (the kernel stamped OWNER_DIED on the sentinel)
//	own        this package registered rec.head with set_robust_list
//	joined     the thread already had a list (glibc's); rec.head is unused
//	           and pending is glibc's
//
// In both, the sentinel is linked once, at registration, and every entry of
// this package is linked right after it, so it precedes them all in the
// kernel's walk (in the joined state glibc's own entries, linked at its
// head, may come before it).
//
// empty -> own|joined happens in register, on the thread itself. own|joined
// -> empty happens only in the kernel, when the thread exits or execs: the
// sentinel's word holds the TID, so the kernel's robust walk finds it and
// stamps it. The walk gives up at the first entry it cannot read (a mutex
// unmapped while held), which is why the sentinel goes before this
// package's entries: a dead thread's record must never look alive, or the
// next thread given its TID would link its locks into a list the kernel no
// longer knows. A new thread that gets a dead thread's TID sees the stamp
// and registers afresh; a live thread's record is never touched by another.
//
// List links use glibc's format (include/uapi/linux/futex.h plus nptl's
// doubly linked __prev): an entry is the address of a mutex's __next field,
// its __prev is the word before it, and __prev holds the address of the
// previous entry's __next (or of the head's list field, whose own __prev
// slot is the word before the head). Stores are plain: only this thread
// writes its list, and the kernel reads it only once the thread has stopped,
// so program order is the order that matters. Go's compiler keeps stores in
// program order.

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FutexOffset is the offset from a list entry (a mutex's __next field) to
// its lock word, as glibc's x86-64 and arm64 layout has it: -32.
const FutexOffset = -32

const (
	headLen  = 24      // sizeof(struct robust_list_head); anything else is EINVAL
	maxTID   = 1 << 22 // PID_MAX_LIMIT on 64-bit kernels
	chunkLen = 4096    // records per chunk
	modeOwn  = 1
	modeJoin = 2
)

// record is one thread's state. Its first four words are laid out as glibc
// lays out robust_prev and robust_head in struct pthread, so the head can be
// linked to like any entry.
type record struct {
	headPrev uintptr // __prev slot of the head
	list     uintptr // robust_list_head.list
	offset   int64   // robust_list_head.futex_offset
	pending  uintptr // robust_list_head.list_op_pending

	// sentinel is shaped like a mutex: word at 0, __prev at 24, __next at 32.
	sentinel [5]uintptr

	tid        uint32
	mode       uint32
	insert     uintptr // the sentinel's __next: new entries are linked after it
	pendingAt  uintptr // the list_op_pending word in use
	registered uint64  // registrations of this record, for tests and inspection
	indexed    uintptr // 1 while the record is in live; guarded by liveMu

	// localWaiters counts goroutines of this process waiting in Go (not in
	// the kernel) for a lock this thread holds; Unlock tells them when it
	// is non-zero. Read and written atomically, by any thread.
	localWaiters atomic.Int32
	_            int32
	_            uintptr // to 128 bytes: the assembly multiplies by shifting
}

const recordSize = unsafe.Sizeof(record{})

var (
	chunks  [maxTID / chunkLen]atomic.Uintptr
	flat    atomic.Uintptr // records for tid < flatLen
	flatLen atomic.Uint32
	mapFlat sync.Once
)

// live indexes the records that may belong to a live thread, so that
// PendingIn reads those and not every record up to pid_max (17 ms per
// call at a pid_max of 4194304). A record joins at registration and is
// dropped by PendingIn once its sentinel says the thread died.
//
// Synchronization: liveMu guards live and every record's indexed flag.
// Register sets a record's sentinel valid while holding it, after putting
// the record in live, so PendingIn (which drops records under liveMu)
// never drops a record that has come back to life: a registration that
// races with a drop re-adds the record before its sentinel says live.
var (
	liveMu sync.Mutex
	live   []*record
)

// Thread is the calling thread's record. It is valid only on the thread
// Current returned it to, while that thread stays alive.
type Thread record

// ErrForeignList is returned when the thread already has a robust list whose
// format this package cannot share (for example musl's, whose futex_offset
// differs from glibc's). Replacing it would silently detach its owner.
var ErrForeignList = errors.New("robustlist: thread has a robust list in a foreign format")

// ErrUnsupported is returned where robust lists cannot be used: not Linux,
// or a kernel without set_robust_list (ENOSYS, or refused by seccomp).
var ErrUnsupported = errors.New("robustlist: robust futex lists are not supported here")

// Current returns the calling thread's record, registering a robust list for
// the thread first if it has none. The caller must be locked to its thread.
func Current() (*Thread, error) {
	if t := Lookup(); t != nil {
		return t, nil
	}
	return Register()
}

// Lookup returns the calling thread's record if the thread has registered
// one, and nil otherwise. The caller must be locked to its thread. It is
// the fast path: a few dependent loads, no system call, no allocation
// (unless the runtime's TID offsets failed to verify; see TID).
func Lookup() *Thread {
	tid := curTID()
	if tid >= flatLen.Load() {
		return lookupChunk(tid)
	}
	r := (*record)(ptr(flat.Load() + uintptr(tid)*recordSize))
	if atomic.LoadUintptr(&r.sentinel[0]) != uintptr(tid) {
		return nil
	}
	return (*Thread)(r)
}

// lookupChunk is Lookup for TIDs above the flat array.
func lookupChunk(tid uint32) *Thread {
	c := chunks[(tid/chunkLen)%uint32(len(chunks))].Load()
	if c == 0 {
		return nil
	}
	r := (*record)(ptr(c + uintptr(tid%chunkLen)*recordSize))
	if atomic.LoadUintptr(&r.sentinel[0]) != uintptr(tid) {
		return nil
	}
	return (*Thread)(r)
}

// Owner returns the record of the live thread of this process whose TID is
// tid, or nil if no thread of this process with that TID has registered
// (a thread of another process, a dead thread, a thread that never locked).
// Any goroutine may call it; the answer may be stale as soon as it returns,
// so callers use it only as a hint that they re-check.
func Owner(tid uint32) *Thread {
	if tid == 0 || tid >= maxTID {
		return nil
	}
	if tid >= flatLen.Load() {
		return lookupChunk(tid)
	}
	r := (*record)(ptr(flat.Load() + uintptr(tid)*recordSize))
	if atomic.LoadUintptr(&r.sentinel[0]) != uintptr(tid) {
		return nil
	}
	return (*Thread)(r)
}

// AddLocalWaiter adds delta to the count of goroutines waiting in Go for a
// lock this thread holds. Any thread may call it.
func (t *Thread) AddLocalWaiter(delta int32) { t.localWaiters.Add(delta) }

// LocalWaiters reports whether some goroutine of this process waits in Go
// for a lock this thread holds.
func (t *Thread) LocalWaiters() bool { return t.localWaiters.Load() != 0 }

// TID returns the thread id the record was registered for.
func (t *Thread) TID() uint32 { return t.tid }

// SetPending records entry (the address of a mutex's __next field) as the
// operation in progress, before the lock word is touched: a death before
// the list is updated still lets the kernel find the mutex.
func (t *Thread) SetPending(entry *uintptr) {
	*(*uintptr)(ptr(t.pendingAt)) = uintptr(unsafe.Pointer(entry))
}

// ClearPending ends the operation SetPending began.
func (t *Thread) ClearPending() {
	*(*uintptr)(ptr(t.pendingAt)) = 0
}

// Enqueue links entry (a mutex's __next field; its __prev is the word
// before) into the thread's list. The mutex must have been acquired first.
func (t *Thread) Enqueue(entry *uintptr) {
	at := (*uintptr)(ptr(t.insert))
	first := *at
	*(*uintptr)(ptr(first&^1 - 8)) = uintptr(unsafe.Pointer(entry)) // first.__prev
	*entry = first
	*prevOf(entry) = t.insert
	*at = uintptr(unsafe.Pointer(entry)) // now the kernel's walk sees it
}

// Took is Enqueue then ClearPending: the end of every acquire, in the one
// order that keeps a death in between found.
func (t *Thread) Took(entry *uintptr) {
	at := (*uintptr)(ptr(t.insert))
	first := *at
	*(*uintptr)(ptr(first&^1 - 8)) = uintptr(unsafe.Pointer(entry)) // first.__prev
	*entry = first
	*prevOf(entry) = t.insert
	*at = uintptr(unsafe.Pointer(entry)) // now the kernel's walk sees it
	*(*uintptr)(ptr(t.pendingAt)) = 0
}

// Dequeue unlinks entry from the thread's list. It must be on the list.
func (t *Thread) Dequeue(entry *uintptr) {
	next, prev := *entry, *prevOf(entry)
	*(*uintptr)(ptr(next&^1 - 8)) = prev // next.__prev
	*(*uintptr)(ptr(prev &^ 1)) = next   // prev.__next: gone from the walk
	*prevOf(entry) = 0
	*entry = 0
}

// Pending returns the entry SetPending recorded, 0 if none.
func (t *Thread) Pending() uintptr { return *(*uintptr)(ptr(t.pendingAt)) }

// Unlink removes entry from the thread's list without reading or writing
// the entry itself (its memory may be gone: a segment truncated under a
// held lock), and reports whether it was there. Its neighbours are found
// by walking the list both ways, at most listLimit entries each, through
// the neighbours' own links only.
func (t *Thread) Unlink(entry uintptr) bool {
	head := t.insert // the sentinel's __next: every entry of ours is after it
	pred := head
	for range listLimit {
		next := *(*uintptr)(ptr(pred)) &^ 1
		if next == entry {
			break
		}
		if next == 0 || next == t.listHead() {
			return false // round the list: not there
		}
		pred = next
	}
	if *(*uintptr)(ptr(pred))&^1 != entry {
		return false
	}
	// The successor is the entry (or the head) whose __prev is entry:
	// walk back from the head's __prev.
	succ := t.listHead()
	for i, e := 0, *prevOf((*uintptr)(ptr(succ))); e != entry; i++ {
		if e == 0 || e == pred || i == listLimit {
			return false // inconsistent links: leave the list alone
		}
		succ = e
		e = *prevOf((*uintptr)(ptr(succ)))
	}
	*(*uintptr)(ptr(pred)) = succ
	*prevOf((*uintptr)(ptr(succ))) = pred
	return true
}

// listHead is the address of the list field of the head the kernel
// walks (this package's or glibc's): the walk's start and end.
func (t *Thread) listHead() uintptr {
	if t.mode == modeJoin {
		return t.pendingAt - 16
	}
	return uintptr(unsafe.Pointer(&t.list))
}

// listLimit is the kernel's ROBUST_LIST_LIMIT: it walks no further.
const listLimit = 2048

// Joined reports whether the thread's list is one it already had (glibc's)
// rather than one this package registered.
func (t *Thread) Joined() bool { return t.mode == modeJoin }

// Registrations counts how often this record has been (re)registered: more
// than one means its TID was reused by a later thread.
func (t *Thread) Registrations() uint64 { return t.registered }

func prevOf(entry *uintptr) *uintptr { return (*uintptr)(unsafe.Add(unsafe.Pointer(entry), -8)) }

// ptr turns an address held as an integer back into a pointer. Every such
// address here is in mmap'd memory or a glibc thread descriptor, never in the
// Go heap, so the collector has nothing to track.
func ptr(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }

// Register registers a robust list for the calling thread (or joins the one
// it has) and returns its record: the slow path of Current, taken on a
// thread's first lock or when a dead thread's TID was reused. The caller
// must be locked to its thread.
func Register() (*Thread, error) {
	discovery.Do(discover)
	tid := verifyTID()
	if tid == 0 || tid >= maxTID {
		return nil, fmt.Errorf("%w: tid %d out of range", ErrUnsupported, tid)
	}
	r, err := recordFor(tid)
	if err != nil {
		return nil, err
	}
	var head uintptr
	var n uintptr
	if _, _, e := unix.RawSyscall(unix.SYS_GET_ROBUST_LIST, 0,
		uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&n))); e != 0 {
		return nil, fmt.Errorf("%w: get_robust_list: %v", ErrUnsupported, e)
	}
	self := uintptr(unsafe.Pointer(&r.list))
	sentinelNext := uintptr(unsafe.Pointer(&r.sentinel[4]))
	atomic.StoreUintptr(&r.sentinel[0], 0)
	r.tid = tid
	if head == 0 || head == self {
		// own: head -> sentinel -> head, then tell the kernel.
		r.mode = modeOwn
		r.offset = FutexOffset
		r.pending = 0
		r.list = sentinelNext
		r.headPrev = sentinelNext
		r.sentinel[3] = self
		r.sentinel[4] = self
		r.insert = sentinelNext
		r.pendingAt = uintptr(unsafe.Pointer(&r.pending))
		if _, _, e := unix.RawSyscall(unix.SYS_SET_ROBUST_LIST, self, headLen, 0); e != 0 {
			return nil, fmt.Errorf("%w: set_robust_list: %v", ErrUnsupported, e)
		}
		// Read it back: a seccomp filter that fakes success (returns 0
		// without running the call) would leave every lock of this
		// thread silently not robust.
		var got, gotLen uintptr
		if _, _, e := unix.RawSyscall(unix.SYS_GET_ROBUST_LIST, 0,
			uintptr(unsafe.Pointer(&got)), uintptr(unsafe.Pointer(&gotLen))); e != 0 || got != self || gotLen != headLen {
			return nil, fmt.Errorf("%w: set_robust_list reported success but the kernel holds head %#x len %d (errno %v), not %#x",
				ErrUnsupported, got, gotLen, e, self)
		}
	} else {
		// joined: link the sentinel at the foreign head as glibc would.
		if n != headLen || *(*int64)(ptr(head + 8)) != FutexOffset {
			return nil, fmt.Errorf("%w: head %#x len %d futex_offset %d", ErrForeignList,
				head, n, *(*int64)(ptr(head + 8)))
		}
		r.mode = modeJoin
		r.insert = head // to link the sentinel at glibc's head
		r.pendingAt = head + 16
		(*Thread)(r).Enqueue(&r.sentinel[4])
		r.insert = sentinelNext
	}
	r.registered++
	liveMu.Lock()
	if r.indexed == 0 {
		r.indexed = 1
		live = append(live, r)
	}
	atomic.StoreUintptr(&r.sentinel[0], uintptr(tid)) // valid from here on
	liveMu.Unlock()
	return (*Thread)(r), nil
}

// prepared is set once Prepare has run.
var prepared atomic.Bool

// Prepare does the once-per-process work of the first registration: it
// discovers the runtime's TID offset (on helper threads it waits for) and
// maps the records. Callers must not be pinned by themselves when they call
// it (a goroutine that blocks while locked to its thread holds the thread,
// and a crowd of them piling up behind the first registration would make
// the runtime start a thread for each). Register calls it too, for
// callers that skip it.
func Prepare() {
	if prepared.Load() {
		return
	}
	discovery.Do(discover)
	mapFlat.Do(mapFlatRecords)
	prepared.Store(true)
}

// Prepared reports whether Prepare has run.
func Prepared() bool { return prepared.Load() }

// recordFor returns tid's record, mapping its chunk on first use.
func recordFor(tid uint32) (*record, error) {
	mapFlat.Do(mapFlatRecords)
	slot := &chunks[tid/chunkLen]
	c := slot.Load()
	if c == 0 {
		var err error
		if c, err = mapRecords(1); err != nil {
			return nil, err
		}
		if !slot.CompareAndSwap(0, c) {
			unix.Munmap(unsafe.Slice((*byte)(ptr(c)), chunkLen*recordSize))
			c = slot.Load()
		}
	}
	return (*record)(ptr(c + uintptr(tid%chunkLen)*recordSize)), nil
}

// mapFlatRecords maps the flat array for TIDs up to pid_max. Untouched
// pages cost no memory (MAP_NORESERVE): a thread's first registration
// touches one page.
func mapFlatRecords() {
	n := uint32(maxTID)
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && v > 0 && v < maxTID {
			n = uint32(v)
		}
	}
	nchunks := (n + chunkLen - 1) / chunkLen
	base, err := mapRecords(nchunks)
	if err != nil {
		return // every TID then takes the chunk path
	}
	for i := uint32(0); i < nchunks; i++ {
		chunks[i].Store(base + uintptr(i)*chunkLen*recordSize)
	}
	flat.Store(base)
	flatLen.Store(nchunks * chunkLen)
}

// mapRecords maps n chunks of empty records.
func mapRecords(n uint32) (uintptr, error) {
	mem, err := unix.Mmap(-1, 0, int(uintptr(n)*chunkLen*recordSize), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return 0, fmt.Errorf("robustlist: mapping thread records: %w", err)
	}
	// A child forked without exec has no robust lists: make it see every
	// record empty. Kernels before 4.14 lack this; Go programs cannot fork
	// without exec anyway.
	_ = unix.Madvise(mem, unix.MADV_WIPEONFORK)
	return uintptr(unsafe.Pointer(unsafe.SliceData(mem))), nil
}

// PendingIn reports whether any live thread of this process has a robust
// operation in progress (list_op_pending set) on an entry inside [lo, hi).
// It reads only this process's live records (see live) and the pending
// words they name, and drops from the index the records of threads that
// have died. The answer is advisory: a thread may start an operation just
// after.
func PendingIn(lo, hi uintptr) bool {
	liveMu.Lock()
	defer liveMu.Unlock()
	found := false
	kept := live[:0]
	for _, r := range live {
		tid := uintptr(r.tid)
		if tid == 0 || atomic.LoadUintptr(&r.sentinel[0]) != tid {
			// Dead, or being registered again (which re-adds it).
			r.indexed = 0
			continue
		}
		kept = append(kept, r)
		if found {
			continue
		}
		p := pendingOf(r)
		// A registration of a reused TID rewrites the record: it
		// clears the sentinel first and sets it last, so an unchanged
		// sentinel means p was read from one consistent record.
		if atomic.LoadUintptr(&r.sentinel[0]) == tid && p >= lo && p < hi {
			found = true
		}
	}
	clear(live[len(kept):])
	live = kept
	return found
}

// pendingOf reads r's list_op_pending. A joined record's lives in glibc's
// thread descriptor, which is gone if the thread died without the kernel
// stamping its sentinel (a glibc entry before it could not be read); such a
// record has nothing pending.
func pendingOf(r *record) (p uintptr) {
	if r.mode == modeOwn {
		return atomic.LoadUintptr(&r.pending)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			p = 0
		}
	}()
	return atomic.LoadUintptr((*uintptr)(ptr(r.pendingAt)))
}
