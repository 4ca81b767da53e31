package robustlock

// The lock protocol, shared with glibc's robust pthread_mutex_lock/unlock
// (protocol.md has the sources). The word is TID | OWNER_DIED | WAITERS.
//
// Lock (the goroutine is pinned to its thread throughout):
//
//	pending = &m.next                    a death from here on is still found
//	loop on the observed word w:
//	  __owner == NOTRECOVERABLE   -> ErrNotRecoverable, word untouched, and
//	                                 every sleeper woken so it learns it too
//	  w.TID == 0                  -> CAS w -> tid | w.WAITERS | assume
//	      OWNER_DIED was set      -> __owner = INCONSISTENT, enqueue,
//	                                 ErrOwnerDied with the lock held
//	      else                    -> acquired (below)
//	  w.TID == tid                -> ErrDeadlock
//	  otherwise                   -> spin (adaptively, below); then set WAITERS,
//	                                 assume = WAITERS, FUTEX_WAIT(w|WAITERS)
//
// The spin and the sleep are done as a goroutine, not pinned: the pin is
// taken around each CAS, and at most one goroutine per process and Mutex
// (its room's delegate) runs this loop while the others park in Go. When
// the holder is a thread of this process the delegate parks too, and the
// holder's Unlock wakes it without a system call. wait.go has that level;
// stale.go the recovery of a lock whose holder vanished unmarked.
//	acquired: __owner == NOTRECOVERABLE (set by the unlock we raced with)
//	  -> release as Unlock would, ErrNotRecoverable; else __count = 1,
//	  enqueue, pending = nil, __owner = tid, __nusers++.
//
// The spin before sleeping adapts per mutex: glibc leaves __spins unused
// for robust mutexes, so it holds an estimate of how many spins a waiter
// needs. A waiter that got the lock while spinning pulls the estimate
// toward twice what it needed; one that spun out and slept shrinks it. A
// lock whose holders keep it long (or are descheduled, on a busy machine)
// thus stops burning CPU on spins, and one with short critical sections
// hands over without a sleep. Racy updates only blur the estimate.
//
// assume keeps WAITERS set in the word once this thread has slept: the
// unlock that woke it wrote 0, and others may still be asleep (glibc BZ
// 20973). A word whose TID is 0 but WAITERS is set counts as free (a
// kernel-assisted unlock can leave it so); glibc would sleep on it.
//
// Unlock: EPERM unless w.TID == tid; pending = &m.next, dequeue, __owner =
// 0 (NOTRECOVERABLE if it was INCONSISTENT), __nusers--, swap the word to 0,
// wake one sleeper if WAITERS was set (all of them when the mutex just
// became not recoverable), pending = nil; then, if goroutines of this
// process wait in Go for a lock this thread holds, wake the Mutex's room.
//
// Where this differs from glibc 2.36 on purpose: a lock that finds the mutex
// not recoverable wakes every sleeper, WAITERS or not, instead of losing
// the wake (and so also rescues sleepers a glibc peer stranded); TryLock
// never leaves the word held when it reports not recoverable; a timed or
// cancelled lock clears pending and passes on any wake it consumed.

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock/internal/atomicx"
	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/robustlist"
)

// Spin bounds, in CPU pauses (about 25 ns each on the Xeon measured):
// spinMin always, plus up to spinMax from the mutex's learnt estimate; at
// most a few microseconds, far shorter than a futex sleep and wake. The
// word is polled after 1, 2, 4, ... pauses, at most spinGap apart, while
// the holder is a thread of this process: every poll pulls the word's
// cache line away from the holder, which then pays to take it back for
// each field it writes (polling after every pause made the two-goroutine
// shapes twice as slow). Such a spin also stops as soon as it would delay
// other work of this P (see spin).
const (
	spinMin = 8
	spinMax = 256
	spinGap = 32
)

// Lock acquires m, sleeping while another thread, in any process, holds it.
// It returns nil or ErrOwnerDied with the lock held: ErrOwnerDied is not a
// failure to lock, it means the lock IS held and the previous owner died
// holding it, so the data m guards may be half-written. Repair it, call
// MarkConsistent, then Unlock (Do does all of this, on every path). A
// caller that returns on any error without unlocking leaks the lock.
//
// While the lock is held the calling goroutine is locked to its OS thread,
// until Unlock. Other errors (ErrNotRecoverable, ErrDeadlock, ErrKind,
// ErrUnsupported) leave m and the thread as they were.
func (m *Mutex) Lock() error {
	if m == nil {
		return ErrNilMutex
	}
	runtime.LockOSThread()
	c := m.c()
	t := robustlist.LookupFast()
	if t == nil {
		var err error
		if t, err = m.begin(); err != nil {
			return err
		}
	}
	t.SetPending(m.entry()) // before m's memory is first touched: see guard.go
	if !supportedKind(atomic.LoadInt32(&c.kind)) {
		return m.fail(t, ErrKind)
	}
	tid := t.TID()
	if hint.Load() == 0 && atomic.CompareAndSwapUint32(&c.lock, 0, tid) {
		if c.owner == ownerNotRecoverable {
			return m.acquired(t, tid, 0) // releases and reports it
		}
		t.Took(m.entry()) // took, by hand: the pair is too big to inline whole
		m.holder(tid)
		return nil
	}
	return m.lockSlow(t, nil)
}

// Unlock releases m. It must be called by the goroutine that locked it (the
// same OS thread); anything else gets ErrNotOwner and m is left untouched.
// Unlocking after ErrOwnerDied without MarkConsistent still releases m but
// makes it not recoverable for everyone, as POSIX requires, and returns
// ErrUnlockedInconsistent to say so (errors.Is ErrNotRecoverable).
func (m *Mutex) Unlock() error {
	if m == nil {
		return ErrNilMutex
	}
	c := m.c()
	t := robustlist.LookupFast()
	if t == nil {
		t = robustlist.Lookup()
	}
	if t == nil || atomic.LoadUint32(&c.lock)&futex.TIDMask != t.TID() {
		return ErrNotOwner // a thread with no record has never locked
	}
	var newOwner int32
	var err error
	wake := 1
	if c.owner == ownerInconsistent {
		newOwner, wake, err = ownerNotRecoverable, futex.WakeAll, ErrUnlockedInconsistent
	}
	t.SetPending(&c.next)
	t.Dequeue(&c.next)
	c.owner = newOwner
	c.nusers--
	if atomic.SwapUint32(&c.lock, 0)&futex.Waiters != 0 {
		m.wakeSleepers(wake)
	}
	t.ClearPending()
	local := t.LocalWaiters() // read after the swap: see wait.go
	runtime.UnlockOSThread()
	if local {
		wakeRoom(uintptr(unsafe.Pointer(m)))
	}
	return err
}

// wakeSleepers wakes n threads asleep in the kernel on m's word, which this
// process has just released with WAITERS set, and counts it as pressure
// from waiters elsewhere (wait.go).
func (m *Mutex) wakeSleepers(n int) {
	futex.Wake(&m.c().lock, n)
	notePressure(uintptr(unsafe.Pointer(m)))
}

// TryLock acquires m if nobody holds it, without waiting. It returns nil or
// ErrOwnerDied with the lock held (as Lock), ErrBusy if another thread
// holds it, ErrDeadlock if this one does, ErrNotRecoverable without
// touching the word.
func (m *Mutex) TryLock() error {
	if m == nil {
		return ErrNilMutex
	}
	runtime.LockOSThread()
	t, err := m.begin()
	if err != nil {
		return err
	}
	c := m.c()
	tid := t.TID()
	for {
		if atomic.LoadInt32(&c.owner) == ownerNotRecoverable {
			return m.notRecoverable(t)
		}
		w := atomic.LoadUint32(&c.lock)
		switch w & futex.TIDMask {
		case 0:
			if atomic.CompareAndSwapUint32(&c.lock, w, tid|w&futex.Waiters) {
				return m.acquired(t, tid, w)
			}
		case tid:
			return m.fail(t, ErrDeadlock)
		default:
			return m.fail(t, ErrBusy)
		}
	}
}

// LockContext is Lock that gives up when ctx is done: it then returns
// ctx.Err() (context.DeadlineExceeded once the deadline passes), with m and
// the thread as they were and no wake-up lost for other waiters. If ctx is
// already done it returns at once without touching m. It sleeps in the
// kernel until woken, the deadline passes or ctx is cancelled; it never
// polls.
func (m *Mutex) LockContext(ctx context.Context) error {
	if m == nil {
		return ErrNilMutex
	}
	if ctx.Done() == nil {
		return m.Lock()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	runtime.LockOSThread()
	t, err := m.begin()
	if err != nil {
		return err
	}
	c := m.c()
	if tid := t.TID(); hint.Load() == 0 && atomic.CompareAndSwapUint32(&c.lock, 0, tid) {
		return m.acquired(t, tid, 0)
	}
	return m.lockSlow(t, ctx)
}

// MarkConsistent declares the data m guards repaired after ErrOwnerDied,
// so the next Unlock leaves m usable. The caller must hold m
// (ErrNotOwner otherwise) and m must be inconsistent (ErrConsistent
// otherwise).
func (m *Mutex) MarkConsistent() error {
	if m == nil {
		return ErrNilMutex
	}
	c := m.c()
	t := robustlist.Lookup()
	if t == nil || atomic.LoadUint32(&c.lock)&futex.TIDMask != t.TID() {
		return ErrNotOwner
	}
	if !atomic.CompareAndSwapInt32(&c.owner, ownerInconsistent, int32(t.TID())) {
		return ErrConsistent
	}
	return nil
}

// begin is the slow start of an acquire, on a pinned thread: register the
// thread if needed, set pending to m, and check the platform and the kind.
// On error pending is cleared and the pin released.
func (m *Mutex) begin() (*robustlist.Thread, error) {
	if !supportedPlatform {
		runtime.UnlockOSThread()
		return nil, ErrUnsupported
	}
	if !robustlist.Prepared() {
		// The process's first registration blocks its callers: let them
		// wait unpinned (robustlist.Prepare).
		runtime.UnlockOSThread()
		robustlist.Prepare()
		runtime.LockOSThread()
	}
	t, err := robustlist.Current()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, unsupported(err)
	}
	t.SetPending(m.entry()) // before m's memory is first touched: see guard.go
	if !supportedKind(atomic.LoadInt32(&m.c().kind)) {
		return nil, m.fail(t, ErrKind)
	}
	return t, nil
}

// notRecoverable ends an acquire that found m not recoverable. It wakes
// every sleeper, whether or not WAITERS is set: a glibc peer's unlock or
// lock on this path loses wake-ups (glibc 2.36 wakes one, or none when
// WAITERS is set), and the sleepers it stranded must learn the news too. A
// system call, but only on this error path.
func (m *Mutex) notRecoverable(t *robustlist.Thread) error {
	futex.Wake(&m.c().lock, futex.WakeAll)
	return m.fail(t, ErrNotRecoverable)
}

// fail ends an acquire that did not take the lock.
func (m *Mutex) fail(t *robustlist.Thread, err error) error {
	t.ClearPending()
	runtime.UnlockOSThread()
	return err
}

// acquired finishes an acquire whose CAS replaced the word old with tid.
func (m *Mutex) acquired(t *robustlist.Thread, tid, old uint32) error {
	c := m.c()
	if old&futex.OwnerDied != 0 {
		c.count = 1
		c.owner = ownerInconsistent // __nusers is not counted on this takeover (glibc)
		t.Took(m.entry())
		return ErrOwnerDied
	}
	if c.owner == ownerNotRecoverable {
		// The unlock we raced with made it unrecoverable after we read
		// __owner: put the word back, then tell every sleeper.
		atomic.StoreUint32(&c.lock, 0)
		return m.notRecoverable(t)
	}
	m.took(t, tid)
	return nil
}

// took is the epilogue of every acquire that took a consistent m whose
// word now holds tid, in two inlined halves: the thread's robust list
// (robustlist.Thread.Took links the entry, then ends the pending
// operation: a death in between is still found) and glibc's fields for the
// new holder. Written once, used by Lock's fast path and by acquired.
func (m *Mutex) took(t *robustlist.Thread, tid uint32) {
	t.Took(m.entry())
	m.holder(tid)
}

// holder sets glibc's fields for a new, consistent holder tid (the access
// rule beside core: only the holder writes them).
func (m *Mutex) holder(tid uint32) {
	c := m.c()
	c.count = 1
	c.owner = int32(tid)
	c.nusers++
}

// lockSlow is the contended part of Lock and LockContext (ctx nil for
// Lock). It is called pinned, with pending set. Phase 1 spins briefly on
// the word. At most GOMAXPROCS goroutines of the process spin pinned (their
// CAS follows the moment the word is seen free, which is what wins a lock
// that is held for nanoseconds); the others spin unpinned and pin only for
// each CAS. Unbounded, a pinned spinner that the scheduler preempts holds
// its thread: with 100,000 lockers that is thousands of threads. A pinned
// goroutine never blocks. Phase 2 (wait) waits as a goroutine, in the
// Mutex's room (wait.go).
func (m *Mutex) lockSlow(t *robustlist.Thread, ctx context.Context) error {
	c := m.c()
	tid := t.TID()
	if atomic.LoadInt32(&c.owner) == ownerNotRecoverable {
		return m.notRecoverable(t)
	}
	holder := atomic.LoadUint32(&c.lock) & futex.TIDMask
	if holder == tid {
		return m.fail(t, ErrDeadlock) // pinned, so tid is still this goroutine's
	}
	deferring := hint.Load() != 0
	est := atomic.LoadInt32(&c.spins) & 0xffff // __spins; __elision stays 0
	est0 := est
	limit := spinMin + min(est, spinMax)
	sp := spin{limit: limit, local: robustlist.Owner(holder) != nil} // one of the two loops below runs
	learn := func(spins int32, slept bool) {
		if slept {
			est -= est/8 + 1
		} else {
			est += (2*spins - est) / 8
		}
		if v := max(0, min(est, spinMax)); v != est0 {
			atomic.StoreInt32(&c.spins, v) // only on a change: the word's cache line is contended
		}
	}
	if !deferring && pinnedSpinners.Add(1) <= maxProcs.Load() {
		for sp.next() {
			old := atomic.LoadUint32(&c.lock)
			if old&futex.TIDMask != 0 {
				continue
			}
			if atomic.LoadInt32(&c.owner) == ownerNotRecoverable {
				break // the room's delegate reports it, and wakes everyone
			}
			if atomic.CompareAndSwapUint32(&c.lock, old, tid|old&futex.Waiters) {
				pinnedSpinners.Add(-1)
				learn(sp.spent, false)
				return m.acquired(t, tid, old)
			}
		}
		pinnedSpinners.Add(-1)
		t.ClearPending()
		runtime.UnlockOSThread()
		learn(limit, true)
		return m.wait(ctx)
	}
	if !deferring {
		pinnedSpinners.Add(-1)
	}
	t.ClearPending()
	runtime.UnlockOSThread()
	if deferring && deferNow(uintptr(unsafe.Pointer(m))) {
		return m.wait(ctx) // starving or yielded: queue at once (never asked pinned: it may block)
	}
	for sp.next() {
		old := atomic.LoadUint32(&c.lock)
		if old&futex.TIDMask != 0 {
			continue
		}
		if atomic.LoadInt32(&c.owner) == ownerNotRecoverable {
			break
		}
		runtime.LockOSThread()
		t, err := m.begin()
		if err != nil {
			return err
		}
		tid := t.TID()
		if atomic.CompareAndSwapUint32(&c.lock, old, tid|old&futex.Waiters) {
			learn(sp.spent, false)
			return m.acquired(t, tid, old)
		}
		t.ClearPending()
		runtime.UnlockOSThread()
	}
	learn(limit, true)
	return m.wait(ctx)
}

// A spin is phase 1's schedule of polls: next pauses until the next poll
// of the word, or reports false when the spin is over (limit pauses
// spent). For a holder of this process (local) it spins only while nothing
// else waits for this P (atomicx.SpinPays, sync.Mutex's rule), and its
// polls back off up to spinGap pauses apart. A holder in another process
// runs whatever this process's Ps do, and a waiter that notices its release
// late lets that process take the lock again and again (backed off, p99
// waits between processes doubled): those polls stay one pause apart.
type spin struct {
	limit int32
	local bool
	spent int32 // pauses before the current poll
	gap   int32 // pauses before the current poll since the previous one; 0 before the first
}

func (s *spin) next() bool {
	if s.gap == 0 {
		s.gap = 1
	} else {
		s.spent += s.gap
		if s.local {
			s.gap = min(2*s.gap, spinGap)
		}
	}
	if s.spent >= s.limit || s.local && !atomicx.SpinPays() {
		return false
	}
	atomicx.Pause(int(s.gap))
	return true
}

// pinnedSpinners counts the goroutines spinning pinned in lockSlow.
var pinnedSpinners atomic.Int32

// maxProcs caches runtime.GOMAXPROCS(0), which takes a runtime lock that
// every contended acquire would otherwise fight over: read at start, and
// again by phase 2 (already microseconds) at most every procsEvery, so a
// change of GOMAXPROCS reaches it soon.
var (
	maxProcs atomic.Int32
	procsAt  atomic.Int64 // futex.Now of the last reading
)

const procsEvery = 10 * time.Millisecond

func init() { maxProcs.Store(int32(runtime.GOMAXPROCS(0))) }

func refreshProcs() {
	if now, at := futex.Now(), procsAt.Load(); now-at > int64(procsEvery) && procsAt.CompareAndSwap(at, now) {
		maxProcs.Store(int32(runtime.GOMAXPROCS(0)))
	}
}

// wait is phase 2 of a contended acquire, unpinned: queue in the room,
// then, as its delegate, take part in the cross-process protocol. It
// returns as Lock would, pinned only when the lock was acquired.
func (m *Mutex) wait(ctx context.Context) error {
	refreshProcs()
	r := enterRoom(uintptr(unsafe.Pointer(m)))
	waitingNow.Add(1)
	defer func() {
		waitingNow.Add(-1)
		exitRoom(r)
	}()
	if err := r.join(ctx); err != nil {
		return err
	}
	defer func() { // deferred: a Guarded call's fault must not strand the room
		r.endStarving()
		r.leave()
	}()
	return m.delegate(r, ctx)
}

// delegate runs the lock loop for the room r, whose delegate the caller is
// (wait.go has the state machine). It pins the goroutine only around each
// attempt to take the word and keeps the pin when one succeeds.
func (m *Mutex) delegate(r *room, ctx context.Context) error {
	c := m.c()
	addr := uintptr(unsafe.Pointer(m))
	var assume uint32 // WAITERS once this goroutine has slept in the kernel
	var fw *waiter    // LockContext's kernel sleep, made when first needed
	defer func() {
		if fw != nil {
			fw.done()
		}
	}()
	// lost is when this delegate was first overtaken (the word was free,
	// or an Unlock here woke it, and someone else took it): the local
	// starvation budget runs from then, not from a long hold.
	var lost int64
	woken, probe := false, probeMin
	var stale staleProbe
	defer stale.stop()
	for {
		if ctx != nil && ctx.Err() != nil {
			m.passWake(assume)
			return ctx.Err()
		}
		if atomic.LoadInt32(&c.owner) == ownerNotRecoverable {
			futex.Wake(&c.lock, futex.WakeAll) // see notRecoverable
			return ErrNotRecoverable
		}
		now := futex.Now()
		if r.starving.Load() {
			raiseHint(now + int64(2*probeMax))
		} else if lost != 0 && now-lost > int64(starveAfter) {
			r.startStarving(now)
		}
		old := atomic.LoadUint32(&c.lock)
		holder := old & futex.TIDMask
		if holder == 0 {
			if !r.starving.Load() && hint.Load() != 0 && yielded(addr, now) {
				if err := sleepCtx(ctx, yieldPoll); err != nil {
					m.passWake(assume)
					return err
				}
				continue // another process's waiter was woken: let it in
			}
			runtime.LockOSThread()
			t, err := m.begin()
			if err != nil {
				return err
			}
			tid := t.TID()
			if atomic.CompareAndSwapUint32(&c.lock, old, tid|old&futex.Waiters|assume) {
				return m.acquired(t, tid, old)
			}
			t.ClearPending()
			runtime.UnlockOSThread()
			if lost == 0 {
				lost = now // overtaken: the starvation budget runs from here
			}
			continue
		}
		if woken && lost == 0 {
			lost = now // a local Unlock woke us and someone else has it
		}
		woken = false
		if h := robustlist.Owner(holder); h != nil {
			// Held by a thread of this process: wait in Go for its Unlock.
			h.AddLocalWaiter(1)
			var err error
			if atomic.LoadUint32(&c.lock) == old {
				woken, err = r.park(ctx, probe)
				probe = min(2*probe, probeMax)
			}
			h.AddLocalWaiter(-1)
			if err != nil {
				m.passWake(assume)
				return err
			}
			continue
		}
		// Held elsewhere: another process, C code, or a thread that is
		// gone without the kernel marking its lock (stale.go). Sleep in
		// the kernel until woken or until the holder's next probe.
		endYield(addr)
		if holder != stale.tid {
			stale.watch(holder, now)
		} else if stale.due(now) {
			if err, ok := m.recoverStale(old, assume, stale.exited()); ok {
				return err
			}
			stale.backoff(now, &c.lock)
			continue
		}
		if old&futex.Waiters == 0 && !atomic.CompareAndSwapUint32(&c.lock, old, old|futex.Waiters) {
			continue
		}
		assume = futex.Waiters
		var err error
		if ctx == nil {
			err = waitFailed(futex.WaitBitset(&c.lock, old|futex.Waiters, plainBit, stale.next))
		} else {
			if fw == nil {
				fw = newWaiter(ctx, &c.lock)
			}
			err = fw.wait(old|futex.Waiters, stale.next)
		}
		if err != nil {
			m.passWake(assume)
			return err
		}
	}
}

// waitFailed applies the error policy of every futex wait here: a wake,
// EAGAIN (the word changed), EINTR and ETIMEDOUT are the loop's business
// (nil); anything else (EPERM or ENOSYS from a seccomp filter, EFAULT from
// memory that went away) is returned as a typed error instead of retried,
// so a refused wait fails instead of spinning a CPU for ever.
func waitFailed(err error) error {
	switch err {
	case nil, syscall.EAGAIN, syscall.EINTR, syscall.ETIMEDOUT:
		return nil
	}
	errno, _ := err.(syscall.Errno)
	return &Error{"futex wait failed: " + err.Error(), errno}
}

// sleepCtx sleeps for d or until ctx (nil: none) ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if ctx == nil {
		time.Sleep(d)
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// passWake is called by a waiter that gives up after having slept: the
// wake meant for it may have been consumed, so hand it on. If the lock is
// free (or its owner died), wake a sleeper; if it is held without WAITERS,
// set WAITERS so its owner's unlock wakes one.
func (m *Mutex) passWake(assume uint32) {
	if assume == 0 {
		return
	}
	c := m.c()
	for {
		w := atomic.LoadUint32(&c.lock)
		if w&futex.TIDMask == 0 {
			futex.Wake(&c.lock, 1)
			return
		}
		if w&futex.Waiters != 0 || atomic.CompareAndSwapUint32(&c.lock, w, w|futex.Waiters) {
			return
		}
	}
}

// Sleepers wait with a futex bitset so that cancelling one LockContext
// waiter wakes it and the few sharing its bit, not every sleeper. Lock's
// sleepers use plainBit, LockContext's one of the other 31 bits, handed
// out in turn. Unlock's FUTEX_WAKE and the kernel's death-time wake match
// every bitset, so they reach all alike. (glibc's sleepers wait with all
// bits set, so a cancel wakes them too; they re-check and sleep again.)
const plainBit = 1 << 31

var waiterBits atomic.Uint32

// A waiter is one LockContext call's sleeping state. Cancellation runs
// ctx's AfterFunc on another goroutine, which cannot know whether the
// waiter is already asleep or just about to be; so it wakes the waiter's bit
// until the waiter acknowledges, backing off briefly between tries.
type waiter struct {
	ctx       context.Context
	word      *uint32
	deadline  int64 // CLOCK_MONOTONIC ns; 0: none
	bit       uint32
	cancelled atomic.Bool
	acked     atomic.Bool
	stop      func() bool
}

func newWaiter(ctx context.Context, word *uint32) *waiter {
	w := &waiter{ctx: ctx, word: word, bit: 1 << (waiterBits.Add(1) % 31)}
	if d, ok := ctx.Deadline(); ok {
		w.deadline = futex.Deadline(d)
		if w.deadline <= 0 {
			w.deadline = 1 // already past: WaitBitset takes 0 as "none"
		}
	}
	w.stop = context.AfterFunc(ctx, w.cancel)
	return w
}

func (w *waiter) cancel() {
	w.cancelled.Store(true)
	for i := 0; !w.acked.Load(); i++ {
		futex.WakeBitset(w.word, futex.WakeAll, w.bit)
		backoff(i)
	}
}

// wait sleeps while *w.word == val, at most until the monotonic time until
// (0: no limit but the context's). It returns nil to retry, or the
// context's error once the waiter must give up.
func (w *waiter) wait(val uint32, until int64) error {
	if w.cancelled.Load() {
		return w.ctx.Err()
	}
	d := w.deadline
	if until != 0 && (d == 0 || until < d) {
		d = until
	}
	err := futex.WaitBitset(w.word, val, w.bit, d)
	switch {
	case w.cancelled.Load():
		return w.ctx.Err()
	case err == syscall.ETIMEDOUT && w.deadline != 0 && futex.Now() >= w.deadline:
		return context.DeadlineExceeded
	}
	return waitFailed(err)
}

// done ends the waiter: stops the AfterFunc, or lets a running one finish.
func (w *waiter) done() {
	w.acked.Store(true)
	w.stop()
}
