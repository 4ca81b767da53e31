package robustlock

import (
	"runtime"
	"time"
)

// backoff pauses a retry loop that waits for another goroutine: yield for
// the first few rounds, then sleep, doubling up to a millisecond.
func backoff(round int) {
	if round < 4 {
		runtime.Gosched()
		return
	}
	d := time.Microsecond << min(round-4, 10)
	time.Sleep(min(d, time.Millisecond))
}
