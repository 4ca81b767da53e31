package atomicx

// Pause hints to the CPU that the caller is spinning: PAUSE on amd64, YIELD
// on arm64, nothing elsewhere. It never enters the kernel and never yields
// the goroutine; callers bound their own spins.
func Pause(n int) {
	for ; n > 0; n-- {
		pause()
	}
}
