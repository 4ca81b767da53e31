package robustlock

import "time"

// Test hooks into the process-local waiting of wait.go.

// Waiting reports how many goroutines of this process wait for a Mutex.
func Waiting() int { return int(waitingNow.Load()) }

// RoomsInUse reports how many Mutex addresses have waiting state now.
func RoomsInUse() int { return roomsInUse() }

// StaleWakes counts the exit watches (pidfds) that woke a stale lock's
// waiter.
func StaleWakes() int64 { return staleWakes.Load() }

// SetStaleMax sets the longest interval between probes of a holder (the
// interval once its exit is watched) and returns a func that restores it.
func SetStaleMax(d time.Duration) (restore func()) {
	old := staleMax
	staleMax = d
	return func() { staleMax = old }
}

// StaleWatches counts the exit watches started.
func StaleWatches() int64 { return staleWatches.Load() }

// Deferring reports whether Lock's fast path is sent to the slow path now
// (some room starves or some Mutex is yielded).
func Deferring() bool { return hint.Load() != 0 }

// Starvations counts the starvation episodes of rooms so far.
func Starvations() int64 { return starvations.Load() }
