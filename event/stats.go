package event

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/futexlab/robustlock/internal/futex"
	"github.com/futexlab/robustlock/segment"
)

// Stats is a snapshot of a channel's shared state, read without locking
// anything: what `robustlock ls` and `inspect` show.
type Stats struct {
	Name       string `json:"name"`
	Capacity   int    `json:"capacity"`
	MaxMessage int    `json:"max_message"`
	Requests   int    `json:"requests"`
	Head       uint64 `json:"head"`      // messages committed so far
	RingUsed   int    `json:"ring_used"` // messages kept in the ring: min(Head, Capacity)
	// SubscribersAsleep: a subscriber sleeps in the kernel waiting for a
	// message (the bell's sleeper bit; subscribers awake or reading are
	// not counted, and a killed sleeper may leave it set until the next
	// Publish).
	SubscribersAsleep bool        `json:"subscribers_asleep"`
	ServersAsleep     bool        `json:"servers_asleep"` // likewise, servers waiting in NextRequest
	PublisherLock     string      `json:"publisher_lock"` // the segment mutex's state
	Slots             []SlotStats `json:"slots"`
}

// SlotStats describes one request slot.
type SlotStats struct {
	Phase          string `json:"phase"`     // free, filling, queued, claimed, responded, abandoned
	Requester      int    `json:"requester"` // TID of the requesting process's holder thread; 0 if none
	RequesterAlive bool   `json:"requester_alive"`
	RequesterDied  bool   `json:"requester_died"` // the word is OWNER_DIED: the requester died (or gave up)
	Server         int    `json:"server"`         // TID of the claiming process's holder thread; 0 if none
	ServerAlive    bool   `json:"server_alive"`
	ServerDied     bool   `json:"server_died"`
	Len            int    `json:"len"` // request bytes
}

// InUse reports whether the slot is taken (not free for a new request).
func (s SlotStats) InUse() bool { return s.Requester != 0 || s.Server != 0 }

// SlotsInUse counts the slots taken by a live or unreclaimed request.
func (st Stats) SlotsInUse() int {
	n := 0
	for _, s := range st.Slots {
		if s.InUse() {
			n++
		}
	}
	return n
}

// Stats returns a snapshot of the channel's state.
func (c *Channel) Stats() Stats {
	st := Stats{
		Name: c.seg.Name(), Capacity: c.lay.capacity, MaxMessage: c.lay.maxMessage, Requests: c.lay.requests,
		Head:              atomic.LoadUint64(c.head),
		SubscribersAsleep: atomic.LoadUint32(c.bell)&1 != 0,
		ServersAsleep:     atomic.LoadUint32(c.qbell)&1 != 0,
		PublisherLock:     c.mu.State().String(),
	}
	st.RingUsed = int(min(st.Head, uint64(c.lay.capacity)))
	for i := 0; i < c.lay.requests; i++ {
		rq, cl := c.words(i)
		r, w := atomic.LoadUint32(rq), atomic.LoadUint32(cl)
		s := c.rslot(i)
		p := atomic.LoadUint32(&s.st)
		ss := SlotStats{
			Requester: int(r & futex.TIDMask), RequesterDied: r&futex.OwnerDied != 0,
			Server: int(w & futex.TIDMask), ServerDied: w&futex.OwnerDied != 0,
			Len: int(atomic.LoadUint32(&s.reqLen)),
		}
		if r&futex.TIDMask == 0 && (r == 0 || w&futex.TIDMask == 0) {
			ss.Phase = "free"
		} else if ph := phaseOf(p); ph < len(phaseNames) {
			ss.Phase = phaseNames[ph]
		} else {
			ss.Phase = "invalid"
		}
		ss.RequesterAlive = ss.Requester != 0 && alive(ss.Requester)
		ss.ServerAlive = ss.Server != 0 && alive(ss.Server)
		st.Slots = append(st.Slots, ss)
	}
	return st
}

// alive reports whether thread tid exists (in this PID namespace).
func alive(tid int) bool {
	err := unix.Kill(tid, 0)
	return err == nil || err == unix.EPERM
}

// Inspect opens the existing channel name (without creating or changing
// anything), returns its Stats and closes it. opts are Open's (Dir, ...).
// A segment that is not a channel is ErrBadChannel.
func Inspect(name string, opts ...Option) (Stats, error) {
	c, err := Open(name, append(opts[:len(opts):len(opts)], OpenOnly())...)
	if err != nil {
		return Stats{}, err
	}
	defer c.Close()
	return c.Stats(), nil
}

// IsChannel reports whether a segment's data holds an event channel
// header (for listing: segments that are not channels are skipped).
func IsChannel(seg *segment.Segment) bool {
	_, err := parseHeader(seg.Data())
	return err == nil
}
