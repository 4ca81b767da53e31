package bench

import _ "unsafe" // go:linkname

// nanotime is the runtime's CLOCK_MONOTONIC reading through the vDSO: the
// same clock, read the same way, as the C loops' clock_gettime, and shared
// by every process on the machine, so timestamps taken in two processes can
// be subtracted. time.Now reads two clocks and costs more, which would
// penalise the Go contenders' latency figures.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
