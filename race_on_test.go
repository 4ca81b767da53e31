//go:build linux && race

package robustlock_test

// raceEnabled: the race detector's runtime makes system calls of its own.
const raceEnabled = true
