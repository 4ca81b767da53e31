package atomicx

import _ "unsafe" // go:linkname

// Pause hints to the CPU that the caller is spinning: PAUSE on amd64, YIELD
// on arm64, nothing elsewhere. It never enters the kernel and never yields
// the goroutine; callers bound their own spins.
func Pause(n int) {
	for ; n > 0; n-- {
		pause()
	}
}

// SpinPays reports whether a busy-wait may pay off now: the runtime's own
// test for sync.Mutex's spin (a multicore machine, GOMAXPROCS > 1, another
// P running, and nothing else queued on this P, which a spin would delay).
// A handful of loads; no system call.
func SpinPays() bool { return canSpin(0) }

// canSpin is sync.runtime_canSpin, which the runtime exports by linkname
// for sync and keeps stable for outside users (go.dev/issue/67401). Its
// argument is sync's spin count; 0 asks only about the scheduler.
//
//go:linkname canSpin sync.runtime_canSpin
func canSpin(i int) bool
