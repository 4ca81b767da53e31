package segment

import (
	"io/fs"

	"github.com/futexlab/robustlock"
)

// Entry is one segment as Walk reports it: enough for a listing, read at a
// cost bounded per file whatever its header claims.
type Entry struct {
	Name string
	Path string
	UID  int         // the file's owner
	Mode fs.FileMode // the file's permission bits

	// Err is set when the file starts with the segment magic but cannot be
	// read as a segment: damaged (ErrTruncated, ErrCorrupt), made by
	// another header version or ABI (ErrVersion, ErrABI), or failing to
	// read (an errno). It is an *Error; Header and the fields below it are
	// then zero, except for what was read before the failure.
	Err error

	Header                  // as read from the file, validated like Open does
	Lock   robustlock.State // the segment's own lock, mutex 0
	Counts Counts           // the states of the mutexes read
}

// Counts summarises the states of a segment's mutexes, read without
// locking. Every mutex read is counted in exactly one of Free, Held,
// OwnerDied and NotRecoverable; Inconsistent and Waiters count across
// those.
type Counts struct {
	// Scanned is how many mutexes were read, from mutex 0 on. It is less
	// than the header's MutexCount when the file's mutexes take more than
	// ScanBudget bytes: Walk then stops counting, and says so here.
	Scanned int

	Free           int // not held
	Held           int // a TID in the lock word (Inconsistent ones included)
	OwnerDied      int // the holder died; the next locker recovers
	NotRecoverable int // unlocked while inconsistent

	Inconsistent int // held, being recovered: MarkConsistent not yet called
	Waiters      int // a thread may be asleep on it
}

// ScanBudget is the most bytes of mutexes Walk reads from one file: the
// whole mutex area of a segment with the largest Mutexes option, laid out
// as this package lays it out. A file whose header claims more (a larger
// stride) is counted up to the budget. Parts of a sparse file that hold no
// data are counted as free mutexes (zero bytes) without being read.
const ScanBudget = (MaxMutexes + 1) * mutexStride

// Add counts one mutex's state, as Walk does.
func (c *Counts) Add(st robustlock.State) {
	c.Scanned++
	switch {
	case st.NotRecoverable:
		c.NotRecoverable++
	case st.OwnerDied:
		c.OwnerDied++
	case st.Owner == 0:
		c.Free++
	default:
		c.Held++
		if st.Inconsistent {
			c.Inconsistent++
		}
	}
	if st.Waiters {
		c.Waiters++
	}
}
