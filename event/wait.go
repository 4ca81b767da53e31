package event

// Waiting, the process-local half (the shared half is in channel.go and
// request.go).
//
// A hub lets any number of goroutines of one process wait for one kind of
// event on one Channel while at most one thread sleeps in the kernel: the
// first goroutine to wait becomes the leader and sleeps in the kernel on
// the shared words its arm function chose (FUTEX_WAIT_BITSET for one word,
// futex_waitv for several), with a sleeper bit or the WAITERS bit set so
// that the waker knows to call FUTEX_WAKE; the others
// are followers, parked by the Go scheduler on a channel. When the leader
// returns from the kernel, for any reason, it counts a round, closes the
// followers' channel and leaves; every goroutine then re-checks its own
// condition in its caller's loop and one of them leads the next sleep.
//
// Lost wake-ups: a goroutine reads the hub's round number before it checks
// its condition and passes it to wait. If a round has ended since, the
// condition may have changed, so wait returns at once. Otherwise the
// leader, if there is one, armed its words before this goroutine's check
// and has not been woken since, so whatever makes the condition true will
// wake it, and its round's end wakes the follower. A new leader arms with
// the caller's own snapshot of the shared word (read before its check), so
// a change after the check makes the arm fail.
//
// Synchronization: mu guards leader, followers and gen; rounds is atomic
// (read without mu by callers). ws is the leader's alone.
//
// A leader whose context ends while it sleeps is woken by ctx's AfterFunc,
// which wakes the first armed word (every sleeper on it, in every
// process, wakes and re-checks: a spurious wake is harmless) until the
// leader acknowledges.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/robustlist"
)

type hub struct {
	rounds    atomic.Uint64
	mu        sync.Mutex
	leader    bool
	followers int
	gen       chan struct{}
	ws        [futex.MaxWaitV]futex.WaitVEntry
	closed    atomic.Bool
	sleepOn   atomic.Pointer[uint32] // the leader's first word while it sleeps
	// passOn: the words are robust, and the kernel's death-time wake
	// wakes only one sleeper; a leader woken by a word now OWNER_DIED
	// wakes all the others (in every process) in turn.
	passOn bool
}

// an arm function fills ws with the words to sleep on and returns how many;
// 0 means the condition may already hold: do not sleep.
type armFunc func(ws []futex.WaitVEntry) int

// wait sleeps one round (see the top of this file). r is h.rounds as read
// before the caller checked its condition. It returns nil to re-check, or
// ctx's error, or ErrClosed.
func (h *hub) wait(ctx context.Context, r uint64, arm armFunc) error {
	if h.closed.Load() {
		return ErrClosed
	}
	h.mu.Lock()
	if h.rounds.Load() != r {
		h.mu.Unlock()
		return nil
	}
	if h.leader {
		if h.gen == nil {
			h.gen = make(chan struct{})
		}
		g := h.gen
		h.followers++
		h.mu.Unlock()
		select {
		case <-g:
			return nil
		case <-ctx.Done():
			h.mu.Lock()
			if h.gen == g {
				h.followers--
			}
			h.mu.Unlock()
			return ctx.Err()
		}
	}
	h.leader = true
	h.mu.Unlock()
	err := h.lead(ctx, arm)
	h.mu.Lock()
	h.leader = false
	h.rounds.Add(1)
	if h.gen != nil {
		close(h.gen)
		h.gen, h.followers = nil, 0
	}
	h.mu.Unlock()
	return err
}

// lead arms and sleeps once, as the leader.
func (h *hub) lead(ctx context.Context, arm armFunc) error {
	n := arm(h.ws[:])
	if n == 0 {
		return nil
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		if deadline = futex.Deadline(d); deadline <= 0 {
			deadline = 1
		}
	}
	h.sleepOn.Store((*uint32)(unsafePtr(h.ws[0].Addr)))
	defer h.sleepOn.Store(nil)
	var stop func() bool
	var cancelled, acked atomic.Bool
	if ctx.Done() != nil {
		word := (*uint32)(unsafePtr(h.ws[0].Addr))
		stop = context.AfterFunc(ctx, func() {
			cancelled.Store(true)
			for i := 0; !acked.Load(); i++ {
				futex.Wake(word, futex.WakeAll)
				backoff(i)
			}
		})
	}
	if h.closed.Load() {
		return ErrClosed
	}
	var k int
	var err error
	if n == 1 { // the common case (a bell): plain FUTEX_WAIT_BITSET
		err = futex.WaitUntil((*uint32)(unsafePtr(h.ws[0].Addr)), uint32(h.ws[0].Val), deadline)
		if deadline == 0 && err == syscall.ETIMEDOUT {
			err = nil
		}
	} else {
		k, err = futex.WaitV(h.ws[:n], deadline)
	}
	if h.passOn && err == nil && k >= 0 && k < n {
		if w := (*uint32)(unsafePtr(h.ws[k].Addr)); atomic.LoadUint32(w)&futex.OwnerDied != 0 {
			futex.Wake(w, futex.WakeAll)
		}
	}
	if stop != nil {
		acked.Store(true)
		stop()
	}
	switch {
	case h.closed.Load():
		return ErrClosed
	case cancelled.Load():
		return ctx.Err()
	case err == syscall.ETIMEDOUT:
		if e := ctx.Err(); e != nil {
			return e
		}
		return context.DeadlineExceeded
	case err == syscall.ENOSYS:
		return err
	}
	return nil
}

// close makes every present and future wait return ErrClosed.
func (h *hub) close() {
	h.closed.Store(true)
	for i := 0; ; i++ {
		h.mu.Lock()
		busy := h.leader
		h.mu.Unlock()
		if !busy {
			return
		}
		if w := h.sleepOn.Load(); w != nil {
			futex.Wake(w, futex.WakeAll)
		}
		backoff(i)
	}
}

func backoff(i int) {
	if i < 4 {
		runtime.Gosched()
		return
	}
	time.Sleep(50 * time.Microsecond)
}

// sleepOne is the inline wait of one goroutine on one word (a Request
// awaiting its response: the thread this costs is bounded by the number of
// request slots). It sleeps while *word == val, until a wake, the
// deadline (absolute monotonic ns, 0 none), or cancel; it returns nil to
// re-check.
func sleepOne(ctx context.Context, word *uint32, val uint32, deadline int64) error {
	var stop func() bool
	var cancelled, acked atomic.Bool
	bit := uint32(1) << (sleepBits.Add(1) % 32)
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			cancelled.Store(true)
			for i := 0; !acked.Load(); i++ {
				futex.WakeBitset(word, futex.WakeAll, bit)
				backoff(i)
			}
		})
	}
	err := futex.WaitBitset(word, val, bit, deadline)
	if stop != nil {
		acked.Store(true)
		stop()
	}
	switch {
	case cancelled.Load():
		return ctx.Err()
	case err == syscall.ETIMEDOUT:
		if e := ctx.Err(); e != nil {
			return e
		}
		return context.DeadlineExceeded
	}
	return nil
}

var sleepBits atomic.Uint32

// A holder is the thread of this process whose robust list carries every
// request-slot word this Channel holds (the rq word of each of its
// requests in flight and the cl word of each request its servers have
// claimed). Its goroutine is locked to the thread and parked for the
// Channel's life, so it costs one thread per Channel that uses requests,
// never one per request. Any goroutine takes and releases words in its
// name: the word gets the holder's TID, and the list edit is made under mu,
// with the list's pending field set around it, exactly as the thread itself
// would make it. When the process dies, the kernel walks the holder's list
// and marks every word it still holds OWNER_DIED, waking the waiters.
//
// Synchronization: mu serialises every use of t (SetPending, Enqueue,
// Dequeue, ClearPending); the kernel reads the list only at the thread's
// exit, which cannot happen while the goroutine is parked.
type holder struct {
	mu   sync.Mutex
	t    *robustlist.Thread
	tid  uint32
	held map[*uint32]bool // words held, for Close
	stop chan struct{}
	done chan struct{}
}

func startHolder() (*holder, error) {
	h := &holder{held: make(map[*uint32]bool), stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		t, err := robustlist.Current()
		if err != nil {
			ready <- err
			runtime.UnlockOSThread()
			return
		}
		h.t, h.tid = t, t.TID()
		ready <- nil
		<-h.stop
		runtime.UnlockOSThread()
		close(h.done)
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return h, nil
}

// take sets *word from old (which must have no owner TID) to the holder's
// TID, keeping old's WAITERS bit, and links it on the holder's list. It
// reports whether the CAS won.
func (h *holder) take(word *uint32, old uint32) bool {
	if old&futex.TIDMask != 0 {
		return false
	}
	entry := entryOf(word)
	h.mu.Lock()
	h.t.SetPending(entry)
	ok := atomic.CompareAndSwapUint32(word, old, h.tid|old&futex.Waiters)
	if ok {
		h.t.Enqueue(entry)
		h.held[word] = true
	}
	h.t.ClearPending()
	h.mu.Unlock()
	return ok
}

// give unlinks *word (held by the holder) and stores v in it, waking every
// sleeper if WAITERS was set.
func (h *holder) give(word *uint32, v uint32) {
	if h.release(word, v) {
		futex.Wake(word, futex.WakeAll)
	}
}

// release is give without the wake: it reports whether the word had
// WAITERS set, and the caller must then wake its sleepers.
func (h *holder) release(word *uint32, v uint32) bool {
	entry := entryOf(word)
	h.mu.Lock()
	h.t.SetPending(entry)
	h.t.Dequeue(entry)
	delete(h.held, word)
	old := atomic.SwapUint32(word, v)
	h.t.ClearPending()
	h.mu.Unlock()
	return old&futex.Waiters != 0
}

// shutdown marks every word still held OWNER_DIED, as the kernel would at
// the thread's death, and ends the holder's goroutine.
func (h *holder) shutdown() {
	h.mu.Lock()
	words := make([]*uint32, 0, len(h.held))
	for w := range h.held {
		words = append(words, w)
	}
	h.mu.Unlock()
	for _, w := range words {
		h.give(w, futex.OwnerDied)
	}
	close(h.stop)
	<-h.done
}
