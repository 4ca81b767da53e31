package event

// The request queue. Each of the Requests slots has a phase word st
// (layout.go) and two robust words, rq and cl, the lock words of segment
// mutexes 1+2i and 2+2i, used as bare robust futexes (not through
// robustlock.Mutex, so that no goroutine is pinned to a thread): a word
// holding a TID is on the robust list of that process's holder thread
// (wait.go), and the kernel turns it into OWNER_DIED when the process
// dies. The slot is free exactly when neither rq nor cl has a TID.
//
//	rq: the requester. Taken (0 or OWNER_DIED -> holder TID) to own the
//	    slot; given back as 0 when done, or as OWNER_DIED when the
//	    requester gives up on a claimed request ("gone", as if dead).
//	cl: the server's claim. Taken by a server before it moves st from
//	    Queued to Claimed; given back as 0 after it moves st to Responded.
//	    Also taken, briefly, by a requester that has just taken rq, while
//	    it moves st from whatever it was to Filling (below).
//	    The requester sleeps on cl with WAITERS set from the moment it
//	    queues: the server's take keeps WAITERS, its give wakes, and the
//	    kernel's death-time wake comes on this very word, so a server's
//	    death reaches the requester at once (ErrServerDied).
//
// Phases of st (ticket<<4 | phase; the ticket changes each time the slot
// is taken, so a stale CAS never succeeds):
//
//	any       -> Filling    requester took rq, then cl; gives cl back as 0;
//	                        writes request, len, qseq
//	Filling   -> Queued     requester; rings qbell
//	Queued    -> Claimed    a server holding cl (CAS on st decides among servers)
//	Queued    -> Free       requester gave up before a server took it
//	Claimed   -> Responded  server wrote the response; then gives cl
//	Claimed   -> Abandoned  requester gave up; gives rq as OWNER_DIED
//	Responded -> Free       requester copied the response; gives cl (if no
//	                        TID) and rq
//	Claimed/Abandoned -> Free  the server found the requester gone
//	                        (ErrRequesterGone); gives cl, clears rq
//
// Synchronization: st is written only by a holder of rq or of cl, and
// the two write it apart: by CAS where both may hold their word at once
// (Queued -> Claimed or Free, Claimed -> Responded or Abandoned, a
// server's release), otherwise by the one that holds its word alone. A
// requester therefore holds both words when it moves st on from a dead
// requester's phase: rq alone is not enough, since a server that read rq
// held (by the new requester) and st still Queued (the dead one's) would
// claim that stale ticket, and the two would then overwrite each other's
// st. If a live server holds cl at that moment (it claimed the dead
// requester's request, or is about to fail a stale claim), the requester
// gives rq back unchanged and waits for cl like any requester waiting for
// a slot.
//
// And before it takes rq, a requester withdraws (Queued -> Free, by CAS
// from the value it read before it saw rq free) a request whose
// requester died, so that a server does not claim a dead request in that
// window either.
//
// Deaths: a slot whose rq has no TID and whose cl has none either is free
// for the taking, whatever st says (a dead requester's slot, or a slot
// both parties left); a requester taking it resets cl and st. A slot whose
// rq has no TID while cl has one belongs to that live server until it
// responds (ErrRequesterGone) or dies. A queued slot whose requester died
// is reclaimed by the next NextRequest that sees it. A requester waiting
// for a free slot sleeps (through a hub) on the rq words of every slot and
// the cl words of slots held by a server alone, all with WAITERS set, so
// that a release or a death wakes it. Hence no slot leaks.
//
// Lost rings: servers sleep on qbell, and a requester killed after it
// cleared qbell's sleeper bit but before its FUTEX_WAKE leaves them asleep,
// while every later ring sees the bit clear and wakes nobody; nothing
// robust marks that death on a word the servers sleep on. So a requester
// whose request is still queued after firstNudge wakes qbell's sleepers
// itself, then again at doubling gaps up to maxNudge: a lost ring delays
// a live request by at most about that, and costs a wake only while a
// request waits unclaimed. Likewise a party killed between freeing a slot
// (rq back to 0, off its robust list) and waking the requesters waiting
// for one leaves them asleep on a free slot: they look at the slots again
// at least every spaceRecheck.

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/internal/robustlist"
)

// Phases of a request slot's st word.
const (
	pFree = iota
	pFilling
	pQueued
	pClaimed
	pResponded
	pAbandoned
)

var phaseNames = [...]string{"free", "filling", "queued", "claimed", "responded", "abandoned"}

func mk(phase int, ticket uint32) uint32 { return ticket<<4 | uint32(phase) }
func phaseOf(st uint32) int              { return int(st & 0xf) }
func ticketOf(st uint32) uint32          { return st >> 4 }

type reqSlot struct {
	st      uint32
	reqLen  uint32
	respLen uint32
	_       uint32
	qseq    uint64
}

func (c *Channel) rslot(i int) *reqSlot {
	return (*reqSlot)(unsafe.Pointer(&c.data[c.lay.queueOff+i*c.lay.reqStride]))
}

func (c *Channel) rdata(i, l int) []byte {
	off := c.lay.queueOff + i*c.lay.reqStride + reqHdr
	return c.data[off : off+l : off+l]
}

// words returns slot i's rq and cl words.
func (c *Channel) words(i int) (rq, cl *uint32) {
	m1, _ := c.seg.MutexN(1 + 2*i)
	m2, _ := c.seg.MutexN(2 + 2*i)
	return (*uint32)(unsafe.Pointer(m1)), (*uint32)(unsafe.Pointer(m2))
}

// entryOf is a robust word's list entry: its mutex's __list.__next.
func entryOf(w *uint32) *uintptr {
	return (*uintptr)(unsafe.Add(unsafe.Pointer(w), -robustlist.FutexOffset))
}

func (c *Channel) holder() (*holder, error) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.h == nil {
		h, err := startHolder()
		if err != nil {
			return nil, err
		}
		c.h = h
		c.space.passOn = true
	}
	return c.h, nil
}

// ring moves a bell on and wakes its sleepers if its sleeper bit was set.
func ring(bell *uint32) {
	for {
		o := atomic.LoadUint32(bell)
		if atomic.CompareAndSwapUint32(bell, o, (o+2)&^1) {
			if o&1 != 0 {
				if requestHook != nil {
					requestHook(stepRung)
				}
				futex.Wake(bell, futex.WakeAll)
			}
			return
		}
	}
}

// Nudges: the first, and the longest gap between two, that a requester
// whose request is still queued waits before it wakes the servers' bell
// itself (see the top of this file).
const (
	firstNudge = 50 * time.Millisecond
	maxNudge   = time.Second

	// spaceRecheck bounds each sleep of a requester waiting for a free
	// slot (see the top of this file).
	spaceRecheck = time.Second
)

// Request sends msg to one server (NextRequest, in any process) and waits
// for its response. It waits for a free request slot first, under ctx. It
// returns ErrTooLarge for a msg over MaxMessage, ErrServerDied if the
// server that took the request died or closed its Channel before
// responding (as soon as the kernel reports the death) or if its slot was
// found broken by a faulty peer (the slot is repaired), and ctx's error
// if ctx ends first, in which case the request is withdrawn (a server that
// took it gets ErrRequesterGone from Respond).
//
// While it waits for the response the calling goroutine sleeps in the
// kernel, holding an OS thread: at most Requests per Channel and process.
// Goroutines waiting for a free slot cost no thread each.
func (c *Channel) Request(ctx context.Context, msg []byte) ([]byte, error) {
	if len(msg) > c.lay.maxMessage {
		return nil, ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	h, err := c.holder()
	if err != nil {
		return nil, err
	}
	i, t, err := c.acquire(ctx, h)
	if err != nil {
		return nil, err
	}
	s := c.rslot(i)
	copy(c.rdata(i, len(msg)), msg)
	atomic.StoreUint32(&s.reqLen, uint32(len(msg)))
	atomic.StoreUint64(&s.qseq, atomic.AddUint64(c.qtick, 1))
	atomic.StoreUint32(&s.st, mk(pQueued, t))
	if requestHook != nil {
		requestHook(stepQueued)
	}
	ring(c.qbell)
	return c.await(ctx, h, i, t)
}

// acquire takes a free slot, waiting for one under ctx (each sleep at
// most spaceRecheck: see the top of this file).
func (c *Channel) acquire(ctx context.Context, h *holder) (int, uint32, error) {
	for {
		r := c.space.rounds.Load()
		for i := 0; i < c.lay.requests; i++ {
			if t, ok := c.tryTake(h, i); ok {
				return i, t, nil
			}
		}
		wctx, cancel := context.WithTimeout(ctx, spaceRecheck)
		err := c.space.wait(wctx, r, c.armSpace)
		cancel()
		if err != nil {
			if e := ctx.Err(); e != nil {
				return 0, 0, e
			}
			if err != context.DeadlineExceeded {
				return 0, 0, err
			}
		}
	}
}

// tryTake takes slot i if it is free (see the top of the file) and
// returns its new ticket, with st Filling.
//
// Taking rq alone does not make the slot this requester's: st may still
// say Queued for a dead requester, and a server that sees rq held (now by
// this requester) would claim that stale ticket. So the requester takes cl
// as well, which every server holds to change st, before it moves st on;
// a live server found holding cl keeps the slot (it claimed the dead
// requester's request, or is about to fail a stale claim), and the
// requester gives rq back as it found it and waits for cl's release.
//
// Before that, a Queued st seen before rq was seen free is withdrawn
// (Queued -> Free by CAS): its requester died, and a server that has not
// claimed it yet must not, once rq is held again. (A requester moves st
// off its own Queued before it gives rq back, so a Queued st read before
// rq was seen free is a dead one's; the CAS fails if st moved since.)
func (c *Channel) tryTake(h *holder, i int) (uint32, bool) {
	rq, cl := c.words(i)
	s := c.rslot(i)
	p := atomic.LoadUint32(&s.st)
	r := atomic.LoadUint32(rq)
	if r&futex.TIDMask != 0 || atomic.LoadUint32(cl)&futex.TIDMask != 0 {
		return 0, false
	}
	if requestHook != nil {
		requestHook(stepSeenFree)
	}
	if phaseOf(p) == pQueued {
		atomic.CompareAndSwapUint32(&s.st, p, mk(pFree, ticketOf(p)))
	}
	if !h.take(rq, r) {
		return 0, false
	}
	if requestHook != nil {
		requestHook(stepTook)
	}
	for {
		w := atomic.LoadUint32(cl)
		if w&futex.TIDMask != 0 {
			h.give(rq, r&^futex.Waiters)
			return 0, false
		}
		if h.take(cl, w) {
			break
		}
	}
	t := (ticketOf(atomic.LoadUint32(&s.st)) + 1) & (1<<28 - 1)
	atomic.StoreUint32(&s.st, mk(pFilling, t))
	if requestHook != nil {
		requestHook(stepFilling)
	}
	h.give(cl, 0)
	return t, true
}

// resetClaim clears a claim word nobody holds (OWNER_DIED left by a dead
// server), waking whoever sleeps on it.
func resetClaim(cl *uint32) {
	for {
		w := atomic.LoadUint32(cl)
		if w&futex.TIDMask != 0 || w == 0 {
			return
		}
		if atomic.CompareAndSwapUint32(cl, w, 0) {
			if w&futex.Waiters != 0 {
				futex.Wake(cl, futex.WakeAll)
			}
			return
		}
	}
}

// armSpace arms the words a requester waiting for a free slot sleeps on;
// 0 if a slot looks free now.
func (c *Channel) armSpace(ws []futex.WaitVEntry) int {
	n := 0
	arm := func(w *uint32) bool {
		v := atomic.LoadUint32(w)
		if v&futex.Waiters == 0 && !atomic.CompareAndSwapUint32(w, v, v|futex.Waiters) {
			return false
		}
		ws[n] = futex.Entry(w, v|futex.Waiters)
		n++
		return true
	}
	for i := 0; i < c.lay.requests; i++ {
		rq, cl := c.words(i)
		r := atomic.LoadUint32(rq)
		if r&futex.TIDMask == 0 {
			if atomic.LoadUint32(cl)&futex.TIDMask == 0 {
				return 0
			}
			if !arm(cl) {
				return 0
			}
		}
		if !arm(rq) {
			return 0
		}
	}
	return n
}

// await waits for the response to the request in slot i (ticket t).
func (c *Channel) await(ctx context.Context, h *holder, i int, t uint32) ([]byte, error) {
	s := c.rslot(i)
	_, cl := c.words(i)
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		if deadline = futex.Deadline(d); deadline <= 0 {
			deadline = 1
		}
	}
	gap := firstNudge
	nudgeAt := futex.Now() + int64(gap)
	for {
		if c.closed.Load() {
			return c.abandon(h, i, t, ErrClosed)
		}
		p := atomic.LoadUint32(&s.st)
		if ticketOf(p) != t {
			// Impossible by the protocol (only the holder of rq or cl
			// writes st, and this requester holds rq): a peer broke it.
			// The request is lost, whoever has it; the slot is still ours
			// and is repaired, not left to leak.
			c.finish(h, i, t)
			return nil, ErrServerDied
		}
		w := atomic.LoadUint32(cl)
		switch phaseOf(p) {
		case pResponded:
			return c.collect(h, i, t)
		case pClaimed:
			if w&futex.TIDMask == 0 {
				if atomic.LoadUint32(&s.st) != p {
					continue
				}
				c.finish(h, i, t)
				return nil, ErrServerDied
			}
		case pQueued:
			if w&futex.TIDMask == 0 && w&futex.OwnerDied != 0 {
				// A server died between taking cl and claiming: not ours.
				// Servers that skipped the slot meanwhile must look again.
				if atomic.CompareAndSwapUint32(cl, w, w&futex.Waiters) {
					ring(c.qbell)
				}
				continue
			}
		default: // free, filling or abandoned under our ticket: as above
			c.finish(h, i, t)
			return nil, ErrServerDied
		}
		if w&futex.Waiters == 0 {
			if !atomic.CompareAndSwapUint32(cl, w, w|futex.Waiters) {
				continue
			}
			w |= futex.Waiters
		}
		if atomic.LoadUint32(&s.st) != p {
			continue
		}
		until := deadline
		if phaseOf(p) == pQueued && (deadline == 0 || nudgeAt < deadline) {
			until = nudgeAt
		}
		err := sleepOne(ctx, cl, w, until)
		if err == context.DeadlineExceeded && until != deadline && ctx.Err() == nil {
			// Still queued: wake the servers, in case a ring was lost.
			futex.Wake(c.qbell, futex.WakeAll)
			gap = min(2*gap, maxNudge)
			nudgeAt = futex.Now() + int64(gap)
			continue
		}
		if err != nil {
			return c.abandon(h, i, t, err)
		}
	}
}

// collect copies the response out of slot i and frees it.
func (c *Channel) collect(h *holder, i int, t uint32) ([]byte, error) {
	l := int(atomic.LoadUint32(&c.rslot(i).respLen))
	if l > c.lay.maxMessage {
		c.finish(h, i, t)
		return nil, bad("response length %d over the maximum %d", l, c.lay.maxMessage)
	}
	out := make([]byte, l)
	copy(out, c.rdata(i, l))
	c.finish(h, i, t)
	return out, nil
}

// finish frees slot i, which this requester owns.
func (c *Channel) finish(h *holder, i int, t uint32) {
	rq, cl := c.words(i)
	atomic.StoreUint32(&c.rslot(i).st, mk(pFree, t))
	resetClaim(cl)
	if h.release(rq, 0) {
		if requestHook != nil {
			requestHook(stepFreed)
		}
		futex.Wake(rq, futex.WakeAll)
	}
}

// abandon withdraws the request in slot i after ctx ended (err).
func (c *Channel) abandon(h *holder, i int, t uint32, err error) ([]byte, error) {
	s := c.rslot(i)
	rq, _ := c.words(i)
	for {
		p := atomic.LoadUint32(&s.st)
		switch {
		case p == mk(pResponded, t):
			return c.collect(h, i, t)
		case p == mk(pQueued, t):
			if atomic.CompareAndSwapUint32(&s.st, p, mk(pFree, t)) {
				c.finish(h, i, t)
				return nil, err
			}
		case p == mk(pClaimed, t):
			if atomic.CompareAndSwapUint32(&s.st, p, mk(pAbandoned, t)) {
				h.give(rq, futex.OwnerDied) // the server frees it
				return nil, err
			}
		default:
			c.finish(h, i, t)
			return nil, err
		}
	}
}

// requestHook, nil except in tests, stops a party to a request at each
// step below (to be killed there, or raced).
var requestHook func(step int)

// Steps of requestHook.
const (
	stepSeenFree  = 1 + iota // requester: rq and cl seen free, nothing taken
	stepTook                 // requester: rq taken, cl not yet
	stepFilling              // requester: rq and cl held, st Filling
	stepQueued               // requester: st Queued, qbell not rung
	stepRung                 // any party: a bell's sleeper bit cleared, its sleepers not woken
	stepSeenHeld             // server: st seen Queued and rq held, cl not taken
	stepClaiming             // server: cl taken, st still Queued
	stepClaimed              // server: st Claimed, request copied out
	stepResponded            // server: st Responded, cl not yet given
	stepFreed                // requester: slot freed, requesters waiting for one not woken
)

// A Request is one request taken by NextRequest. Respond answers it; until
// then its slot stays claimed by this process (if the process dies or
// closes the Channel first, the requester gets ErrServerDied). Respond
// may be called from any goroutine, once.
type Request struct {
	c    *Channel
	h    *holder
	i    int
	t    uint32
	data []byte
	done atomic.Bool
}

// Data returns the request's bytes (a private copy).
func (r *Request) Data() []byte { return r.data }

// NextRequest waits for a queued request, under ctx, and takes it: each
// request is taken by exactly one NextRequest, in any process, oldest
// first. Goroutines waiting here cost no thread each.
func (c *Channel) NextRequest(ctx context.Context) (*Request, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.leave()
	h, err := c.holder()
	if err != nil {
		return nil, err
	}
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		r := c.servers.rounds.Load()
		b := atomic.LoadUint32(c.qbell)
		if req := c.claimOldest(h); req != nil {
			return req, nil
		}
		if err := c.servers.wait(ctx, r, func(ws []futex.WaitVEntry) int {
			return armBell(c.qbell, b, ws)
		}); err != nil {
			return nil, err
		}
	}
}

// claimOldest claims the oldest claimable queued request, reclaiming the
// slots of dead requesters it meets; nil if there is none.
func (c *Channel) claimOldest(h *holder) *Request {
	var tried uint64
	for {
		best, bestP, bestSeq := -1, uint32(0), uint64(0)
		for i := 0; i < c.lay.requests; i++ {
			p := atomic.LoadUint32(&c.rslot(i).st)
			if phaseOf(p) != pQueued || tried&(1<<i) != 0 {
				continue
			}
			if q := atomic.LoadUint64(&c.rslot(i).qseq); best < 0 || q < bestSeq {
				best, bestP, bestSeq = i, p, q
			}
		}
		if best < 0 {
			return nil
		}
		tried |= 1 << best
		if req := c.claim(h, best, bestP); req != nil {
			return req
		}
	}
}

// claim tries to claim slot i, seen queued as p.
func (c *Channel) claim(h *holder, i int, p uint32) *Request {
	rq, cl := c.words(i)
	s := c.rslot(i)
	if atomic.LoadUint32(rq)&futex.TIDMask == 0 {
		if t, ok := c.tryTake(h, i); ok { // its requester died: free it
			c.finish(h, i, t)
		}
		return nil
	}
	if requestHook != nil {
		requestHook(stepSeenHeld)
	}
	for {
		// The requester may set WAITERS on cl under us: retry while no
		// one holds it. One who does is a server about to fail its CAS on
		// st (a stale claim), which rings qbell when it gives cl back, or
		// a requester moving st to Filling, which rings it when it queues.
		w := atomic.LoadUint32(cl)
		if w&futex.TIDMask != 0 {
			return nil
		}
		if h.take(cl, w) {
			break
		}
	}
	if requestHook != nil {
		requestHook(stepClaiming)
	}
	t := ticketOf(p)
	if !atomic.CompareAndSwapUint32(&s.st, p, mk(pClaimed, t)) {
		h.give(cl, 0)
		ring(c.qbell) // servers that skipped this slot while we held cl
		return nil
	}
	l := int(atomic.LoadUint32(&s.reqLen))
	if l > c.lay.maxMessage {
		h.give(cl, futex.OwnerDied) // the requester learns ErrServerDied
		return nil
	}
	data := make([]byte, l)
	copy(data, c.rdata(i, l))
	if requestHook != nil {
		requestHook(stepClaimed)
	}
	return &Request{c: c, h: h, i: i, t: t, data: data}
}

// Respond sends msg to the requester and ends the request. It returns
// ErrTooLarge (the request stays open) for a msg over MaxMessage,
// ErrRequesterGone if the requester died or gave up (the slot is freed),
// ErrResponded if called again.
func (r *Request) Respond(msg []byte) error {
	c := r.c
	if len(msg) > c.lay.maxMessage {
		return ErrTooLarge
	}
	if r.done.Swap(true) {
		return ErrResponded
	}
	if err := c.enter(); err != nil {
		return err
	}
	defer c.leave()
	s := c.rslot(r.i)
	rq, cl := c.words(r.i)
	claimed := mk(pClaimed, r.t)
	if atomic.LoadUint32(&s.st) != claimed || atomic.LoadUint32(rq)&futex.TIDMask == 0 {
		r.release()
		return ErrRequesterGone
	}
	copy(c.rdata(r.i, len(msg)), msg)
	atomic.StoreUint32(&s.respLen, uint32(len(msg)))
	if !atomic.CompareAndSwapUint32(&s.st, claimed, mk(pResponded, r.t)) {
		r.release()
		return ErrRequesterGone
	}
	if requestHook != nil {
		requestHook(stepResponded)
	}
	r.h.give(cl, 0)
	return nil
}

// release frees the slot of a request whose requester is gone. st is
// freed only if it still holds this request's ticket (a CAS, not a store:
// a slot that a peer broke may be another requester's by now); in that
// case servers that skipped the slot while this one held cl look again.
func (r *Request) release() {
	c := r.c
	rq, cl := c.words(r.i)
	s := c.rslot(r.i)
	ours := false
	for !ours {
		p := atomic.LoadUint32(&s.st)
		if p != mk(pClaimed, r.t) && p != mk(pAbandoned, r.t) {
			break
		}
		ours = atomic.CompareAndSwapUint32(&s.st, p, mk(pFree, r.t))
	}
	r.h.give(cl, 0)
	if !ours {
		ring(c.qbell)
		return
	}
	if v := atomic.LoadUint32(rq); v&futex.TIDMask == 0 && v != 0 {
		if atomic.CompareAndSwapUint32(rq, v, 0) && v&futex.Waiters != 0 {
			futex.Wake(rq, futex.WakeAll)
		}
	}
}
