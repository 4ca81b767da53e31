package event

// Design (layout.go has the bytes; wait.go the process-local waiting;
// request.go the request queue).
//
// A Channel is a segment (package segment) whose data holds a header, a
// ring of Capacity message slots and Requests request slots.
//
// Publish. Publishers are serialised by the segment's robust mutex; nothing
// else takes it, so a subscriber never holds anything a publisher needs.
// Under the lock, for message n = head: ver of slot n%capacity becomes
// 2n+1 (an atomic swap: a full barrier before the data), the message and
// its length are copied in, ver becomes 2n+2 (a release store after the
// data), head becomes n+1, and bell is swapped to (n+1)<<1; only if the
// swapped-out bell had its sleeper bit set does the publisher call
// FUTEX_WAKE, still under the lock (a publisher killed between clearing the
// bit and the wake must be found dead by the next one, or its sleepers
// would sleep through every later message). A Publish with nobody asleep
// thus makes no system call and allocates nothing (the uncontended Lock
// makes none).
//
// A publisher killed at any instruction: the next one gets ErrOwnerDied.
// If ver of slot head%capacity is 2*head+2 the dead one had written the
// whole message and only missed the commit, which the next one completes
// (head++); any other state is an uncommitted, invisible slot, which the
// next message simply overwrites. Either way the next one rings the bell
// and wakes every sleeper, sleeper bit or not. Subscribers read only
// messages below head, so they never see a partial one; the message that
// an uncommitted write destroyed (n-capacity, in the same slot) is
// reported as missed by subscribers that had not read it yet.
//
// Subscribe/Next. A Subscription is process-local: the next message number
// it wants. Reading message n: v1 = ver; v1 == 2n+2 means slot holds n,
// then the length and bytes are copied out and ver read again; the same v2
// means the copy is whole. A ver above 2n+2 means n was overwritten: the
// subscriber is lapped, and the exact count missed is from n to the
// oldest message still kept (head-capacity, or n+1 when that one is being
// overwritten now). A subscriber keeps no shared state, so its death
// wedges nothing.
//
// Sleeping. A subscriber with nothing to read sleeps on bell: it reads
// bell, re-checks head, sets bell's sleeper bit with a CAS from the value
// read, and sleeps in the kernel while bell holds that value. Every
// publish changes bell, and the publisher that clears a set bit wakes
// everyone; a dead sleeper leaves at most one needless wake. Within a
// process, goroutines wait through a hub (wait.go): one thread sleeps in
// the kernel per Channel, however many goroutines wait.
//
// Memory order: the data is copied with plain loads and stores between
// the atomic accesses of ver. On amd64 (TSO) that is enough; elsewhere
// copyOut reads the data with atomic loads so that it cannot be reordered
// after the second read of ver.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/futexlab/robustlock"
	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/segment"
)

// A Channel is an open event channel. Its methods are safe for concurrent
// use; Close must be the last.
type Channel struct {
	seg  *segment.Segment
	lay  layout
	data []byte
	mu   *robustlock.Mutex // publishers' lock: the segment's own

	head  *uint64
	bell  *uint32
	qbell *uint32
	qtick *uint64

	subs, servers, space hub

	hmu    sync.Mutex
	h      *holder
	closed atomic.Bool

	mp         *mapping      // the process's shared mapping of seg; nil if seg is this Channel's own
	recoveries atomic.Uint64 // publishes that found a dead publisher's lock
	users      atomic.Int64  // Request, NextRequest, Respond and waits in progress
}

// enter counts a waiting operation in, so that Close can wake it and wait
// for it to leave before unmapping; leave counts it out.
func (c *Channel) enter() error {
	c.users.Add(1)
	if c.closed.Load() {
		c.users.Add(-1)
		return ErrClosed
	}
	return nil
}

func (c *Channel) leave() { c.users.Add(-1) }

// Open opens the channel name, or creates and publishes it (atomically,
// as a segment) if it does not exist and OpenOnly is not given. An
// existing channel is validated; a Capacity, MaxMessage or Requests option
// that differs from it is ErrMismatch (options not given accept the
// existing sizes).
func Open(name string, opts ...Option) (*Channel, error) {
	c := newConfig(opts)
	if c.bad != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalidOption, c.bad)
	}
	want := newLayout(c.capacity, c.maxMessage, c.requests)
	if want.total > segment.MaxSize {
		return nil, fmt.Errorf("%w: channel of %d bytes exceeds segment.MaxSize", ErrInvalidOption, want.total)
	}
	if mp := sharedUnless(c.createOnly, filepath.Join(c.dir, name)); mp != nil {
		ch, err := attach(mp.seg)
		if err == nil {
			err = c.compare(name, ch.lay)
		}
		if err != nil {
			release(mp)
			return nil, err
		}
		ch.mp = mp
		return ch, nil
	}
	open := func() (*segment.Segment, error) {
		return segment.Open(name, append(c.seg[:len(c.seg):len(c.seg)], segment.OpenOnly())...)
	}
	var seg *segment.Segment
	var err error
	if c.openOnly {
		seg, err = open()
	} else {
		seg, err = segment.Open(name, append(c.seg[:len(c.seg):len(c.seg)],
			segment.Size(want.total), segment.Mutexes(2*want.requests),
			segment.Init(func(data []byte) error { want.write(data); return nil }))...)
		if errors.Is(err, segment.ErrSizeMismatch) {
			// It exists, with other sizes: open it as it is, then compare.
			seg, err = open()
		}
	}
	if err != nil {
		return nil, err
	}
	ch, err := attach(seg)
	if err == nil {
		err = c.compare(name, ch.lay)
	}
	if err != nil {
		seg.Close()
		return nil, err
	}
	ch.mp = register(seg)
	return ch, nil
}

// compare checks the sizes asked for against an existing channel's.
func (c *config) compare(name string, l layout) error {
	if (c.capSet && l.capacity != c.capacity) || (c.maxSet && l.maxMessage != c.maxMessage) ||
		(c.reqSet && l.requests != c.requests) {
		return fmt.Errorf("%w: %s has capacity %d, max message %d, %d request slots", ErrMismatch,
			name, l.capacity, l.maxMessage, l.requests)
	}
	return nil
}

// attach validates seg's data as a channel (reading only).
func attach(seg *segment.Segment) (*Channel, error) {
	data := seg.Data()
	if uintptr(unsafe.Pointer(unsafe.SliceData(data)))%lineSize != 0 {
		return nil, bad("data is not %d-byte aligned", lineSize)
	}
	l, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	if seg.NumMutexes() != 1+2*l.requests {
		return nil, bad("segment has %d mutexes, a channel with %d request slots needs %d",
			seg.NumMutexes(), l.requests, 1+2*l.requests)
	}
	return &Channel{
		seg: seg, lay: l, data: data, mu: seg.Mutex(),
		head: u64(data, offHead), bell: u32(data, offBell),
		qbell: u32(data, offQBell), qtick: u64(data, offQTick),
	}, nil
}

// Name returns the channel's name.
func (c *Channel) Name() string { return c.seg.Name() }

// Capacity returns the number of messages the ring keeps.
func (c *Channel) Capacity() int { return c.lay.capacity }

// MaxMessage returns the largest message, request or response, in bytes.
func (c *Channel) MaxMessage() int { return c.lay.maxMessage }

// Requests returns the number of request slots.
func (c *Channel) Requests() int { return c.lay.requests }

// Segment returns the segment the channel lives in. Channels of one
// process that open the same file share it: do not Close it.
func (c *Channel) Segment() *segment.Segment { return c.seg }

// Close closes the channel in this process: waits in progress return
// ErrClosed, requests this process has in flight are abandoned and those
// its servers hold are released as if this process had died (their
// requesters get ErrServerDied), and the segment is unmapped. The channel
// itself stays (segment.Remove removes it). Close must not run while
// other goroutines still publish or read message bytes.
func (c *Channel) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	c.subs.close()
	c.servers.close()
	c.space.close()
	for i := 0; c.users.Load() > 0; i++ {
		for j := 0; j < c.lay.requests; j++ { // requesters asleep on their claim words
			_, cl := c.words(j)
			futex.Wake(cl, futex.WakeAll)
		}
		futex.Wake(c.bell, futex.WakeAll)
		futex.Wake(c.qbell, futex.WakeAll)
		backoff(i)
	}
	c.hmu.Lock()
	if c.h != nil {
		c.h.shutdown()
		c.h = nil
	}
	c.hmu.Unlock()
	if c.mp != nil {
		return release(c.mp)
	}
	return c.seg.Close()
}

// Publish broadcasts msg to every subscriber. It never waits for
// subscribers: the oldest message is overwritten. It returns ErrTooLarge
// for a msg longer than MaxMessage.
func (c *Channel) Publish(msg []byte) error {
	if len(msg) > c.lay.maxMessage {
		return ErrTooLarge
	}
	if c.closed.Load() {
		return ErrClosed
	}
	switch err := c.mu.Lock(); {
	case errors.Is(err, robustlock.ErrOwnerDied):
		c.recoverPublish()
		if err := c.mu.MarkConsistent(); err != nil {
			c.mu.Unlock()
			return err
		}
	case err != nil:
		return err
	}
	n := atomic.LoadUint64(c.head)
	s := c.slot(n)
	if publishHook != nil {
		publishHook(1)
	}
	atomic.SwapUint64(&s.ver, 2*n+1)
	if publishHook != nil {
		publishHook(2)
	}
	copy(c.slotData(n, len(msg)), msg)
	if publishHook != nil {
		publishHook(3)
	}
	atomic.StoreUint32(&s.len, uint32(len(msg)))
	if publishHook != nil {
		publishHook(4)
	}
	atomic.StoreUint64(&s.ver, 2*n+2)
	if publishHook != nil {
		publishHook(5)
	}
	atomic.StoreUint64(c.head, n+1)
	if publishHook != nil {
		publishHook(6)
	}
	old := atomic.SwapUint32(c.bell, uint32(n+1)<<1)
	if publishHook != nil {
		publishHook(7)
	}
	if old&1 != 0 {
		futex.Wake(c.bell, futex.WakeAll) // before Unlock: see the top of this file
	}
	c.mu.Unlock()
	return nil
}

// publishHook, nil except in tests, stops a publisher at each step of
// Publish (to be killed there).
var publishHook func(stage int)

// recoverPublish runs with the lock after a publisher died holding it: a
// message written whole but not committed is committed; anything else in
// the slot is invisible and will be overwritten. Then the bell is rung and
// its sleepers woken whatever its sleeper bit says: the dead publisher may
// have committed and cleared the bit without living to wake them.
func (c *Channel) recoverPublish() {
	c.recoveries.Add(1)
	n := atomic.LoadUint64(c.head)
	if atomic.LoadUint64(&c.slot(n).ver) == 2*n+2 {
		n++
		atomic.StoreUint64(c.head, n)
	}
	atomic.SwapUint32(c.bell, uint32(n)<<1)
	futex.Wake(c.bell, futex.WakeAll)
}

// Head returns the number of messages committed to the channel so far
// (the sequence number the next message will get).
func (c *Channel) Head() uint64 { return atomic.LoadUint64(c.head) }

type ringSlot struct {
	ver uint64
	len uint32
	_   uint32
}

func (c *Channel) slot(n uint64) *ringSlot {
	off := c.lay.ringOff + int(n%uint64(c.lay.capacity))*c.lay.slotStride
	return (*ringSlot)(unsafe.Pointer(&c.data[off]))
}

// slotData returns the first l bytes of message n's slot; l <= maxMessage.
func (c *Channel) slotData(n uint64, l int) []byte {
	off := c.lay.ringOff + int(n%uint64(c.lay.capacity))*c.lay.slotStride + slotHdr
	return c.data[off : off+l : off+l]
}

// A Subscription receives the messages published after it was made, in
// order, each once. It is process-local, holds nothing shared, and needs
// no closing. Its methods must not be called concurrently.
type Subscription struct {
	c    *Channel
	next uint64
}

// Subscribe returns a Subscription that receives what is published after
// this call.
func (c *Channel) Subscribe() (*Subscription, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	return &Subscription{c: c, next: atomic.LoadUint64(c.head)}, nil
}

// Seq returns the sequence number of the next message the subscription
// will return (as Head counts).
func (s *Subscription) Seq() uint64 { return s.next }

// Next waits for the next message and returns a copy of it. See NextInto.
func (s *Subscription) Next(ctx context.Context) ([]byte, error) {
	return s.NextInto(ctx, nil)
}

// NextInto waits for the next message and returns it in buf[:0] grown as
// needed: it allocates nothing when cap(buf) >= MaxMessage (or the
// message's length). It returns a *LappedError (ErrLapped) once if
// messages were overwritten before it could read them, and goes on at the
// oldest message still kept; ctx's error if ctx ends first; ErrClosed
// after Close.
func (s *Subscription) NextInto(ctx context.Context, buf []byte) ([]byte, error) {
	c := s.c
	for {
		if c.closed.Load() {
			return nil, ErrClosed
		}
		r := c.subs.rounds.Load()
		b := atomic.LoadUint32(c.bell)
		if h := atomic.LoadUint64(c.head); h != s.next {
			return s.read(h, buf)
		}
		if err := c.enter(); err != nil {
			return nil, err
		}
		err := c.subs.wait(ctx, r, func(ws []futex.WaitVEntry) int {
			return armBell(c.bell, b, ws)
		})
		c.leave()
		if err != nil {
			return nil, err
		}
	}
}

// armBell sets bell's sleeper bit if bell still holds b and returns the
// one entry to sleep on, or 0 if bell moved.
func armBell(bell *uint32, b uint32, ws []futex.WaitVEntry) int {
	if b&1 == 0 && !atomic.CompareAndSwapUint32(bell, b, b|1) {
		return 0
	}
	ws[0] = futex.Entry(bell, b|1)
	return 1
}

// read returns message s.next (below head h), or the lap.
func (s *Subscription) read(h uint64, buf []byte) ([]byte, error) {
	c := s.c
	capacity := uint64(c.lay.capacity)
	for {
		n := s.next
		if h-n > capacity || n > h { // behind by more than the ring, or a head moved back (hostile)
			return nil, s.lap(h)
		}
		sl := c.slot(n)
		v1 := atomic.LoadUint64(&sl.ver)
		switch {
		case v1 > 2*n+2:
			return nil, s.lap(atomic.LoadUint64(c.head))
		case v1 < 2*n+2:
			return nil, bad("ring slot %d holds version %d below message %d's", n%capacity, v1, n)
		}
		l := int(atomic.LoadUint32(&sl.len))
		if l > c.lay.maxMessage {
			if atomic.LoadUint64(&sl.ver) != v1 {
				continue // overwritten under us: the next round sees the lap
			}
			return nil, bad("message %d has length %d over the maximum %d", n, l, c.lay.maxMessage)
		}
		switch {
		case buf == nil: // Next: a copy of its own size
			buf = make([]byte, 0, l)
		case cap(buf) < l:
			buf = make([]byte, 0, max(l, c.lay.maxMessage))
		}
		buf = buf[:l]
		copyOut(buf, c.slotData(n, l))
		if atomic.LoadUint64(&sl.ver) != v1 {
			h = atomic.LoadUint64(c.head)
			continue
		}
		s.next = n + 1
		return buf, nil
	}
}

// lap moves s to the oldest message still kept at head h and reports what
// it missed.
func (s *Subscription) lap(h uint64) error {
	capacity := uint64(s.c.lay.capacity)
	oldest := s.next + 1
	if h > capacity && h-capacity > oldest {
		oldest = h - capacity
	}
	if h < s.next { // head moved back: only a hostile writer does that
		oldest = h
		s.next = h
		return bad("head %d is behind a message already read", h)
	}
	missed := oldest - s.next
	s.next = oldest
	return &LappedError{Missed: missed}
}
