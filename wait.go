package robustlock

// Waiting in a goroutine world: two levels.
//
// The lock word names a kernel thread, so the goroutine that holds a Mutex
// is locked to its thread until Unlock. Waiting is another matter: a
// goroutine that waits costs a goroutine, never a thread of its own.
//
// Level 1, between processes, is the protocol of lock.go, unchanged: spin,
// set WAITERS, FUTEX_WAIT on the shared word; glibc peers and the kernel's
// death-time wake see nothing new. Level 2, inside this process, is a room
// per Mutex address (process-local, never in shared memory):
//
//	Lock's fast path: pin, CAS 0 -> tid. No room, no lookup.
//	slow path, phase 1: deadlock check (pinned), a short adaptive spin
//	  (pinned for at most GOMAXPROCS spinners, else pinned per CAS; polls
//	  backing off, and only while the spin delays nothing on this P).
//	phase 2 (unpinned): enter the Mutex's room.
//	  no delegate yet -> become the delegate
//	  else            -> join the room's FIFO queue and park (a goroutine)
//	the delegate loops on the word w:
//	  __owner NOTRECOVERABLE -> ErrNotRecoverable (every sleeper woken)
//	  w.TID == 0             -> pin, CAS (as lock.go); unpin if it failed
//	  w.TID a live thread of this process (robustlist.Owner):
//	                            count itself on that thread's record, re-read
//	                            the word, park in Go until the holder's
//	                            Unlock wakes the room (or a probe timer fires)
//	  otherwise (another process, or C) -> set WAITERS, FUTEX_WAIT, exactly
//	                            as lock.go always did: the one thread per
//	                            room that may sit in the kernel
//	on leaving (acquired, or an error): the head of the queue becomes the
//	delegate; with nobody queued the room has no delegate.
//
// So at most one goroutine per process and Mutex sleeps in the kernel (one
// thread), and a hand-over between two goroutines of this process costs a
// goroutine wake-up, not a system call: Unlock releases the word as always,
// and when its thread's record counts local waiters it wakes the room.
//
// Why no lost wake-up: the delegate adds itself to the holder's record and
// then re-reads the word; Unlock swaps the word and then reads the count.
// Both are sequentially consistent atomics, so either Unlock sees the count
// (and wakes the room, whose one-slot channel keeps the wake until the
// delegate parks) or the delegate sees the word changed and does not park.
// A local holder that dies (its goroutine exits while locked to the thread)
// gets its word stamped by the kernel, which wakes only kernel sleepers: the
// delegate's probe timer (1 ms, doubling to 8 ms) finds it.
//
// Fairness, in two budgets (cohort-lock style), each lifted as soon as the
// waiter it protects has the lock:
//   - Local: a delegate that goroutines of its own process have kept
//     overtaking for starveAfter (counted from the first time it found the
//     word free, or was woken by an Unlock, and lost it) marks its room
//     starving. Until it gets the lock, every other locker of that Mutex in
//     this process queues behind it instead of trying the word.
//   - Remote: an Unlock that wakes kernel sleepers of a word held here says
//     someone in another process (Go or C) waits. When that has gone on for
//     yieldAfter without a gap, this process yields the Mutex: for up to
//     yieldFor its lockers do not take the word, so the woken waiter gets it.
//
// Both are announced to Lock's fast path by one process-wide word, hint:
// while it is set, fast paths go to the slow path, which asks the Mutex's
// room or pressure slot whether to defer. Unset, the fast path pays one load.
// It is lowered as soon as no room starves and no yield runs (or at its
// deadline, whichever comes first): left up, it would keep every Lock of
// the process on the slow path.
//
// Rooms live in a sharded map keyed by the Mutex's address and are counted
// by the goroutines inside; the last one out deletes it (back to a pool),
// so a process that maps and unmaps many segments keeps nothing for idle
// ones. A goroutine never blocks while pinned: a pinned goroutine that
// parks holds its thread, and a crowd of them would each hold one.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/futexlab/robustlock/internal/futex"
)

// Budgets of the two fairness rules and the probe of a local holder.
const (
	starveAfter = time.Millisecond      // a delegate this long barged past: its room starves
	yieldAfter  = 2 * time.Millisecond  // remote sleepers woken this long without a gap: yield
	yieldGap    = time.Millisecond      // a pause this long ends an episode of remote pressure
	yieldFor    = 2 * time.Millisecond  // the longest a yield holds this process back
	probeMin    = time.Millisecond      // first probe of a local holder that may have died
	probeMax    = 8 * time.Millisecond  // probes double up to this
	yieldPoll   = 20 * time.Microsecond // how often a yielding delegate looks at the word
)

// waitingNow counts the goroutines of this process in phase 2 of a
// contended acquire (queued, or the delegate): for tests and inspection.
var waitingNow atomic.Int32

// hint is non-zero while some room starves or some Mutex is yielded: a
// monotonic deadline (futex.Now) after which it may be cleared.
var hint atomic.Int64

// raiseHint keeps hint set until at least until.
func raiseHint(until int64) { raiseTo(&hint, until) }

// raiseTo makes v at least x.
func raiseTo(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if old >= x || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// starvingRooms counts the rooms that starve now, and yieldsUntil is the
// latest end of any yield: when both say nothing is deferred, the hint is
// lowered at once instead of at its deadline (while it is up, every Lock
// of the process takes the slow path).
var (
	starvingRooms atomic.Int32
	yieldsUntil   atomic.Int64
	starvations   atomic.Int64 // episodes so far: for tests and inspection
)

// startStarving marks r starving (its delegate's call).
func (r *room) startStarving(now int64) {
	r.starving.Store(true)
	starvations.Add(1)
	starvingRooms.Add(1)
	raiseHint(now + int64(2*probeMax))
}

// endStarving lifts r's starving mark, if set, and with it the hint when
// nothing else defers. A racing startStarving elsewhere may see its hint
// lowered: its delegate raises it again each time round its loop.
func (r *room) endStarving() {
	if !r.starving.Load() {
		return
	}
	r.starving.Store(false)
	if starvingRooms.Add(-1) == 0 && futex.Now() >= yieldsUntil.Load() {
		hint.Store(0)
	}
}

// A room is the process-local waiting state of one Mutex address.
//
// Synchronization: refs is guarded by the shard's mu; queue, delegate and
// the parked entries' links by the room's mu; wake is a channel; starving
// is atomic (read by lockers without mu).
type room struct {
	addr uintptr
	refs int32

	mu       sync.Mutex
	delegate bool    // some goroutine is the delegate
	head     *parked // FIFO of goroutines waiting to become the delegate
	tail     *parked
	wake     chan struct{} // cap 1: Unlock of a local holder -> the delegate
	starving atomic.Bool
	timer    *time.Timer // the delegate's probe; only the delegate uses it
}

// parked is one goroutine queued in a room.
type parked struct {
	next, prev *parked
	ready      chan struct{} // cap 1: sent to when it becomes the delegate
	queued     bool
}

const roomShards = 64

var rooms [roomShards]struct {
	mu sync.Mutex
	m  map[uintptr]*room
	_  [40]byte // one shard per cache line
}

func shardOf(addr uintptr) uintptr { return (addr >> 3) % roomShards }

// enterRoom returns addr's room, made if needed, counted as in use.
func enterRoom(addr uintptr) *room {
	s := &rooms[shardOf(addr)]
	s.mu.Lock()
	r := s.m[addr]
	if r == nil {
		if s.m == nil {
			s.m = make(map[uintptr]*room)
		}
		r = roomPool.Get().(*room)
		r.addr = addr
		s.m[addr] = r
	}
	r.refs++
	s.mu.Unlock()
	return r
}

// exitRoom ends a use of r; the last one out deletes it.
func exitRoom(r *room) {
	s := &rooms[shardOf(r.addr)]
	s.mu.Lock()
	if r.refs--; r.refs == 0 {
		delete(s.m, r.addr)
		if r.timer != nil {
			r.timer.Stop()
		}
		select { // a wake nobody waited for
		case <-r.wake:
		default:
		}
		roomPool.Put(r)
	}
	s.mu.Unlock()
}

// Rooms and queue entries are reused: a contended acquire between
// processes enters and leaves a room every time, and should not allocate.
var (
	roomPool   = sync.Pool{New: func() any { return &room{wake: make(chan struct{}, 1)} }}
	parkedPool = sync.Pool{New: func() any { return &parked{ready: make(chan struct{}, 1)} }}
)

// wakeRoom tells addr's delegate, if it waits in Go, that a holder of this
// process unlocked. It never blocks.
func wakeRoom(addr uintptr) {
	s := &rooms[shardOf(addr)]
	s.mu.Lock()
	if r := s.m[addr]; r != nil {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// starvingRoom reports whether addr's room starves: lockers must queue.
func starvingRoom(addr uintptr) bool {
	s := &rooms[shardOf(addr)]
	s.mu.Lock()
	r := s.m[addr]
	st := r != nil && r.starving.Load()
	s.mu.Unlock()
	return st
}

// roomsInUse reports how many Mutex addresses have process-local waiting
// state now (0 once every waiter has left): for tests and inspection.
func roomsInUse() int {
	n := 0
	for i := range rooms {
		rooms[i].mu.Lock()
		n += len(rooms[i].m)
		rooms[i].mu.Unlock()
	}
	return n
}

// waitingIn reports whether some goroutine of this process waits for a
// Mutex at an address in [lo, hi): the memory must stay mapped.
//
//lint:ignore U1000 Busy (Linux) is its caller; elsewhere nothing waits
func waitingIn(lo, hi uintptr) bool {
	for i := range rooms {
		s := &rooms[i]
		s.mu.Lock()
		for addr := range s.m {
			if addr >= lo && addr < hi {
				s.mu.Unlock()
				return true
			}
		}
		s.mu.Unlock()
	}
	return false
}

// join makes the caller r's delegate, parking it in the queue until its
// turn. It returns ctx's error if ctx ends first (ctx may be nil: no end).
func (r *room) join(ctx context.Context) error {
	r.mu.Lock()
	if !r.delegate {
		r.delegate = true
		r.mu.Unlock()
		return nil
	}
	p := parkedPool.Get().(*parked)
	p.queued, p.prev = true, r.tail
	if r.tail != nil {
		r.tail.next = p
	} else {
		r.head = p
	}
	r.tail = p
	r.mu.Unlock()
	if ctx == nil {
		<-p.ready
		parkedPool.Put(p)
		return nil
	}
	select {
	case <-p.ready:
		parkedPool.Put(p)
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	if p.queued { // still waiting: just leave the queue
		r.unlink(p)
		r.mu.Unlock()
		parkedPool.Put(p)
		return ctx.Err()
	}
	r.mu.Unlock()
	<-p.ready // made the delegate as ctx ended: take the turn, pass it on
	parkedPool.Put(p)
	r.leave()
	return ctx.Err()
}

func (r *room) unlink(p *parked) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		r.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		r.tail = p.prev
	}
	p.next, p.prev, p.queued = nil, nil, false
}

// leave ends the caller's turn as delegate: the head of the queue, if any,
// takes the role.
func (r *room) leave() {
	r.mu.Lock()
	if p := r.head; p != nil {
		r.unlink(p)
		p.ready <- struct{}{} // its one slot is empty: p waits for this
	} else {
		r.delegate = false
	}
	r.mu.Unlock()
}

// park waits, as the delegate, for a local Unlock to wake the room, for
// the probe d to pass, or for ctx to end (nil: never). woken reports an
// Unlock's wake.
func (r *room) park(ctx context.Context, d time.Duration) (woken bool, err error) {
	if r.timer == nil {
		r.timer = time.NewTimer(d)
	} else {
		r.timer.Reset(d)
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	select {
	case <-r.wake:
		woken = true
	case <-r.timer.C:
	case <-done:
		return false, ctx.Err()
	}
	r.timer.Stop()
	return woken, nil
}

// Remote pressure: one slot per hash of a Mutex address (collisions only
// blur the estimate). Written racily by Unlocks that woke kernel sleepers.
type pressureSlot struct {
	addr       atomic.Uintptr
	start      atomic.Int64 // futex.Now of the episode's first such Unlock
	last       atomic.Int64 // and of its latest
	yieldUntil atomic.Int64
	_          [32]byte
}

var pressure [64]pressureSlot

func slotOf(addr uintptr) *pressureSlot { return &pressure[(addr>>3)%uintptr(len(pressure))] }

// notePressure is called by an Unlock that found WAITERS set on a word this
// process held: a sleeper, most likely in another process, was woken.
func notePressure(addr uintptr) {
	now := futex.Now()
	p := slotOf(addr)
	if p.addr.Load() != addr || now-p.last.Load() > int64(yieldGap) {
		p.addr.Store(addr)
		p.start.Store(now)
	}
	p.last.Store(now)
	if now-p.start.Load() > int64(yieldAfter) {
		until := now + int64(yieldFor)
		p.yieldUntil.Store(until)
		p.start.Store(until) // the next episode is counted after this yield
		raiseTo(&yieldsUntil, until)
		raiseHint(until)
	}
}

// yielded reports whether this process holds back from addr now.
func yielded(addr uintptr, now int64) bool {
	p := slotOf(addr)
	return p.addr.Load() == addr && now < p.yieldUntil.Load()
}

// endYield lifts addr's yield: the waiter it was for has the lock.
func endYield(addr uintptr) {
	if p := slotOf(addr); p.addr.Load() == addr {
		p.yieldUntil.Store(0)
	}
}

// deferNow reports whether a locker of addr must skip the word and queue:
// its room starves, or the process yields it to another. Called only while
// hint is set.
func deferNow(addr uintptr) bool {
	h := hint.Load()
	if h == 0 {
		return false
	}
	now := futex.Now()
	if now >= h {
		hint.CompareAndSwap(h, 0)
	}
	return yielded(addr, now) || starvingRoom(addr)
}
